#!/usr/bin/env bash
# The end-to-end scenarios against a kind cluster: for machines with Docker and kind.
#   hack/e2e-kind.sh            # create cluster "podpreset-e2e", build + load the image, deploy, test
#   KEEP_CLUSTER=1 hack/e2e-kind.sh   # leave the cluster running afterwards
# The tests run on the host (tests/e2e with PODPRESET_E2E_KUBECONFIG); the webhook runs in the
# cluster from deploy/ with the self-signed bootstrap. The test's helper webhook (reinvocation)
# listens on the host and is reached through the kind network's gateway address.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cluster=${KIND_CLUSTER:-podpreset-e2e}
image=${IMAGE:-podpreset:dev}
python=${PYTHON:-$top/.venv/bin/python}
work=$(mktemp -d)
kubeconfig="$work/kubeconfig"

for tool in docker kind kubectl openssl; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: $tool is required" >&2; exit 2; }
done

cleanup() {
  status=$?
  if [ $status -ne 0 ]; then
    echo "--- webhook logs" >&2
    kubectl --kubeconfig "$kubeconfig" -n podpreset-system logs -l app.kubernetes.io/component=webhook \
      --all-containers --tail=200 >&2 || true
  fi
  if [ -z "${KEEP_CLUSTER:-}" ]; then
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT

kind get clusters 2>/dev/null | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 120s
kind get kubeconfig --name "$cluster" > "$kubeconfig"
export KUBECONFIG="$kubeconfig"

docker build -t "$image" "$top"
kind load docker-image "$image" --name "$cluster"

kubectl apply --server-side -k "$top/deploy/overlays/self-signed"
kubectl wait --for=condition=Established crd/podpresets.podpreset.dev --timeout=60s
KUBECTL=kubectl "$top/hack/bootstrap-certs.sh"
kubectl -n podpreset-system rollout status deployment/podpreset-webhook --timeout=180s

gateway=$(docker network inspect kind -f '{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}} {{end}}{{end}}' \
  | tr ' ' '\n' | grep -E '^[0-9]+\.' | head -n 1)
PODPRESET_E2E_KUBECONFIG="$kubeconfig" PODPRESET_E2E_HOST_ADDRESS="$gateway" \
  "$python" -m pytest -q "$top/tests/e2e" "$@"
