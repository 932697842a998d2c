#!/usr/bin/env bash
# The guide's backup validation: a thin wrapper around `lifeboat validate`.
#   ./scripts/backup/backup-validation.sh                 # newest snapshot of every type present
#   ./scripts/backup/backup-validation.sh --type mongodb  # one type
# Reads each newest snapshot back in full (authenticated, decompressed, re-hashed), writes nothing, and
# flags snapshots older than --max-age (default 26h). Exit 0 ok, 1 missing/stale, 3 damaged.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exec "$ROOT/node_modules/.bin/node" "$ROOT/bin/lifeboat.mjs" validate "$@"
