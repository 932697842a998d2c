#!/usr/bin/env bash
# The guide's comprehensive integrity check: every pack of the repository read and verified
# (`lifeboat check --read-data`), then the newest snapshot of each type (or of --component) read back in
# full (`lifeboat validate`). Exit 0 ok, 1 missing/stale snapshots, 3 damage found.
#   ./scripts/backup/backup-integrity-check.sh
#   ./scripts/backup/backup-integrity-check.sh --component mongodb
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LIFEBOAT=("$ROOT/node_modules/.bin/node" "$ROOT/bin/lifeboat.mjs")
validate_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --component) validate_args+=(--type "$2"); shift 2 ;;
    --component=*) validate_args+=(--type "${1#--component=}"); shift ;;
    *) validate_args+=("$1"); shift ;;
  esac
done
"${LIFEBOAT[@]}" check --read-data
check=$?
"${LIFEBOAT[@]}" validate "${validate_args[@]}"
validate=$?
# The worse of the two: damage (3) over missing/stale (1) over ok.
if [ $check -eq 3 ] || [ $validate -eq 3 ]; then exit 3; fi
if [ $check -ne 0 ]; then exit $check; fi
exit $validate
