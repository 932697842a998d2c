#!/usr/bin/env bash
# The guide's secrets restoration (docs/secrets.md, step 4 of "Complete Cluster Recovery"): a thin
# wrapper around `lifeboat secrets sync`. Recreates Kubernetes Secrets from Azure Key Vault (missing
# namespaces are created), reads each one back and compares it byte for byte. `--diff` shows drift only.
#   ./scripts/secrets/sync-from-keyvault.sh
#   ./scripts/secrets/sync-from-keyvault.sh --secret mongodb-password
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lifeboat.sh"
exec "${LIFEBOAT[@]}" secrets sync "$@"
