#!/usr/bin/env bash
# The guide's MongoDB backup (docs/mongodb.md): a thin wrapper around `lifeboat mongodb backup`.
# Dumps every database except admin/local/config into the repository (compressed, encrypted,
# deduplicated), verifies per-collection counts and hashes, then applies retention (7 days by default).
#
# Configured by environment (or lifeboat.yaml): LIFEBOAT_REPO (e.g. azure://account/container/path),
# LIFEBOAT_KEYSTORE (e.g. azurekv://vault/lifeboat-key), LIFEBOAT_MONGODB_URI,
# LIFEBOAT_MONGODB_USERNAME / LIFEBOAT_MONGODB_PASSWORD_FILE. Extra arguments go to the command:
#   ./scripts/backup/mongodb-backup.sh --retention-days 14 --ns-exclude 'rocketchat.rocketchat_statistics'
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lifeboat.sh"
exec "${LIFEBOAT[@]}" mongodb backup "$@"
