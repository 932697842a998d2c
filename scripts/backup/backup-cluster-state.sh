#!/usr/bin/env bash
# The guide's cluster-state backup (docs/kubernetes.md): a thin wrapper around `lifeboat cluster-state backup`.
# Helm releases (decoded: chart, version, values, history), ConfigMaps, Secrets (encrypted), workloads,
# Services, Ingresses, RBAC, PVC specs, cert-manager objects and the CRDs in use, into the repository.
#   ./scripts/backup/backup-cluster-state.sh --name custom-backup
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lifeboat.sh"
exec "${LIFEBOAT[@]}" cluster-state backup "$@"
