#!/usr/bin/env bash
# Installs podpreset into the cluster of $KUBECONFIG exactly as deploy/README.md tells a user to:
# the self-signed overlay with `kubectl apply -k`, hack/bootstrap-certs.sh, `kubectl rollout status`.
# Shared by hack/e2e-cluster.sh (make e2e-cluster) and hack/e2e-kind.sh (make e2e-kind), so both run
# the same steps. The image podpreset:dev must already be on the node(s).
#   OVERLAY=deploy/overlays/fail-closed hack/install.sh     # another overlay
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
KUBECTL=${KUBECTL:-kubectl}
OVERLAY=${OVERLAY:-$top/deploy/overlays/self-signed}
TIMEOUT=${ROLLOUT_TIMEOUT:-180s}
export KUBECTL

start=$SECONDS
"$KUBECTL" apply --server-side -k "$OVERLAY"
"$KUBECTL" wait --for=condition=Established crd/podpresets.podpreset.dev --timeout=60s
"$top/hack/bootstrap-certs.sh"
if ! "$KUBECTL" -n podpreset-system rollout status deployment/podpreset-webhook --timeout="$TIMEOUT"; then
  echo "install: the webhook Deployment did not become ready; its pods:" >&2
  "$KUBECTL" -n podpreset-system get pods -o wide >&2 || true
  "$KUBECTL" -n podpreset-system describe pods >&2 || true
  exit 1
fi
echo "install: podpreset installed and rolled out in $((SECONDS - start)) s" >&2
