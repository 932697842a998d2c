#!/usr/bin/env bash
# The guide's comprehensive integrity check, as a restore drill: `lifeboat integrity-check` reads every
# pack of the repository (--read-data-subset 100% unless given), restores the newest backup of each layer
# (or of --component) into a scratch target, verifies it, removes it, and times it against its RTO
# (docs/operations.md, "Restore drills"). Layers without a restore drill (terraform, secrets, files) are
# checked as before: every pack read, then the newest snapshot read back in full (`lifeboat validate`).
# Exit 0 ok, 1 a drill failed or ran over budget (or a snapshot is missing/stale), 3 damage found.
#   ./scripts/backup/backup-integrity-check.sh
#   ./scripts/backup/backup-integrity-check.sh --component mongodb
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lifeboat.sh"
component=""
subset=(--read-data-subset 100%)
rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    --component) component="$2"; shift 2 ;;
    --component=*) component="${1#--component=}"; shift ;;
    --read-data-subset) subset=(--read-data-subset "$2"); shift 2 ;;
    --read-data-subset=*) subset=(--read-data-subset "${1#--read-data-subset=}"); shift ;;
    *) rest+=("$1"); shift ;;
  esac
done
case "${component:-all}" in
  pvc-snapshots) component=pvc ;;
esac
case "${component:-all}" in
  all | mongodb | pvc | cluster-state)
    exec "${LIFEBOAT[@]}" integrity-check --component "${component:-all}" "${subset[@]}" ${rest[@]+"${rest[@]}"}
    ;;
esac
"${LIFEBOAT[@]}" check --read-data
check=$?
"${LIFEBOAT[@]}" validate --type "$component" ${rest[@]+"${rest[@]}"}
validate=$?
# The worse of the two: damage (3) over missing/stale (1) over ok.
if [ $check -eq 3 ] || [ $validate -eq 3 ]; then exit 3; fi
if [ $check -ne 0 ]; then exit $check; fi
exit $validate
