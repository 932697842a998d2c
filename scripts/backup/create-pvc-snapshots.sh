#!/usr/bin/env bash
# The guide's PVC snapshots (docs/kubernetes.md): a thin wrapper around `lifeboat pvc snapshot`.
# Snapshots every bound CSI PVC (all namespaces but kube-* unless --namespace is given), tags each
# VolumeSnapshot with the timestamp, PVC and workload, waits until ready, records the set in the repository
# and deletes Lifeboat's VolumeSnapshots older than the retention (7 days by default).
#   ./scripts/backup/create-pvc-snapshots.sh --retention-days 14
# Configured by environment: LIFEBOAT_REPO, LIFEBOAT_KEYSTORE, KUBECONFIG / LIFEBOAT_KUBE_CONTEXT.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lifeboat.sh"
scope=(--all-namespaces)
for a in "$@"; do case "$a" in -n | --namespace | --namespace=* | -A | --all-namespaces) scope=() ;; esac; done
exec "${LIFEBOAT[@]}" pvc snapshot "${scope[@]}" "$@"
