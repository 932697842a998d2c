#!/usr/bin/env bash
# The guide's MongoDB restore (docs/mongodb.md): a thin wrapper around `lifeboat mongodb restore`.
#   ./scripts/backup/mongodb-restore.sh                               # the latest backup
#   ./scripts/backup/mongodb-restore.sh --timestamp 20241201_120000   # a given one
#   ./scripts/backup/mongodb-restore.sh --drop                        # replace what the target holds
# Data, then indexes and views; then every collection's count and content hash is verified; on any
# failure the touched namespaces are rolled back. Same environment as mongodb-backup.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lifeboat.sh"
exec "${LIFEBOAT[@]}" mongodb restore "$@"
