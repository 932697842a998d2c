#!/usr/bin/env bash
# The guide's backup validation: a thin wrapper around `lifeboat validate` (docs/operations.md#validation).
#   ./scripts/backup/backup-validation.sh                 # the newest backup of every layer present
#   ./scripts/backup/backup-validation.sh --type mongodb  # one layer (mongodb, pvc, cluster-state, secrets, terraform, files)
#   ./scripts/backup/backup-validation.sh --format markdown >> "$GITHUB_STEP_SUMMARY"
# Fast checks of what exists: age (per layer: validate.max-age, else --max-age, default 26h), commit,
# metadata (MongoDB counts/hashes, VolumeSnapshots readyToUse, cluster objects decode, Key Vault digests,
# Terraform lineage/serial), retention. --read-back also reads each newest snapshot back in full.
# Exit 0 ok (warnings allowed), 1 failed/missing/stale, 3 damaged (--read-back).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lifeboat.sh"
exec "${LIFEBOAT[@]}" validate "$@"
