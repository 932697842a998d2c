#!/usr/bin/env bash
# The guide's post-recovery check: a thin wrapper around `lifeboat health` (docs/operations.md#health).
#   ./scripts/lifecycle/validate-cluster-health.sh -n rocketchat
#   ./scripts/lifecycle/validate-cluster-health.sh -n rocketchat --mongodb-uri "$MONGODB_URI" \
#       --smoke-test-url https://chat.example.com/api/info --wait 300
# Every Deployment/StatefulSet/DaemonSet rolled out and ready, PVCs bound, no pod crash-looping; MongoDB
# and the smoke test answering when given. Exit 0 healthy, 1 something failed (named), 2 usage.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lifeboat.sh"
exec "${LIFEBOAT[@]}" health "$@"
