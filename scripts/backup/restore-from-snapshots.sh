#!/usr/bin/env bash
# The guide's PVC restore (docs/kubernetes.md): a thin wrapper around `lifeboat pvc restore`.
# Scales down the workloads that mount the PVCs, keeps the old volumes (reclaim policy Retain), recreates
# each PVC from its VolumeSnapshot, waits for binding, scales back up; rolls back on failure.
#   ./scripts/backup/restore-from-snapshots.sh                          # latest set
#   ./scripts/backup/restore-from-snapshots.sh --timestamp 20241201_120000 --dry-run
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lifeboat.sh"
exec "${LIFEBOAT[@]}" pvc restore "$@"
