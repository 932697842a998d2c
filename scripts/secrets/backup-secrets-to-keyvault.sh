#!/usr/bin/env bash
# The guide's secrets backup (docs/secrets.md): a thin wrapper around `lifeboat secrets backup`.
# Kubernetes Secrets → Azure Key Vault, one vault secret per Secret, written only when changed; names in
# the vault that Lifeboat did not create are left alone (exit 1). The vault comes from --vault or
# LIFEBOAT_SECRETS_VAULT.
#   ./scripts/secrets/backup-secrets-to-keyvault.sh
#   ./scripts/secrets/backup-secrets-to-keyvault.sh --namespace rocketchat
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lifeboat.sh"
exec "${LIFEBOAT[@]}" secrets backup "$@"
