#!/usr/bin/env bash
# make e2e-kind: the cluster-mode end-to-end suite against a kind cluster, for machines with Docker
# and kind. Creates cluster "podpreset-e2e" from hack/kind/cluster.yaml, loads the webhook image
# built from the Dockerfile, installs podpreset with hack/install.sh (deploy/README.md's steps, as
# make e2e-cluster), runs the suite in cluster mode (the kubelet scenarios included; a skip fails
# the run), then deletes the cluster.
#
#   make e2e-kind                         docker build the Dockerfile; test pods use busybox:1.36
#   KEEP_CLUSTER=1 make e2e-kind          leave the cluster up
#   make e2e-kind PYTEST_ARGS='-k rollout'
#   hack/e2e-kind.sh restart-apiserver CLUSTER    (what the tests call to restart the API server)
#
# For a machine without a registry (make e2e-kind-local sets these): KIND_NODE_IMAGE (a node image,
# e.g. from hack/kind-node-image.sh), KIND_CONFIG (default hack/kind/cluster.yaml),
# PODPRESET_E2E_IMAGES (docker-archive tarballs to `kind load image-archive` instead of `docker
# build`; hack/build-images.sh makes them from the same Dockerfile), PODPRESET_E2E_TEST_IMAGE.
# Logs: build/e2e-kind/<time>/ (kind export logs on failure).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cluster=${KIND_CLUSTER:-podpreset-e2e}

if [ "${1:-}" = restart-apiserver ]; then
  # Stop the kube-apiserver container's task in the node's containerd; kubelet starts the static pod's
  # container again. Returns once the API server answers /readyz (as hack/cluster.sh restart-apiserver
  # does): while it is down, Docker's port proxy accepts connections and resets them, which a client
  # sees as a TLS error rather than a refused connection.
  node="${2:-$cluster}-control-plane"
  docker exec "$node" bash -ec '
    filter="labels.\"io.kubernetes.container.name\"==kube-apiserver"
    for id in $(ctr -n k8s.io containers ls -q "$filter"); do
      ctr -n k8s.io tasks kill -s SIGTERM "$id" 2>/dev/null || true
    done
    for _ in $(seq 300); do
      ! kubectl --kubeconfig /etc/kubernetes/admin.conf get --raw /readyz >/dev/null 2>&1 || break
      sleep 0.2
    done
    for _ in $(seq 600); do
      kubectl --kubeconfig /etc/kubernetes/admin.conf get --raw /readyz >/dev/null 2>&1 && exit 0
      sleep 0.2
    done
    echo "e2e-kind: kube-apiserver not ready 120 s after its restart" >&2
    exit 1'
  exit
fi

image=${IMAGE:-podpreset:dev}
python=${PYTHON:-$top/.venv/bin/python}
config=${KIND_CONFIG:-$top/hack/kind/cluster.yaml}
test_image=${PODPRESET_E2E_TEST_IMAGE:-docker.io/library/busybox:1.36}
# shellcheck source=hack/lib/timed.sh
. "$top/hack/lib/timed.sh"
run_logs "${E2E_KIND_LOGS:-$top/build/e2e-kind/$(date -u +%Y%m%dT%H%M%SZ)}" timings.txt
kubeconfig="$logs/kubeconfig"

for tool in docker kind kubectl openssl; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: $tool is required" >&2; exit 2; }
done

cleanup() {
  status=$?
  trap - EXIT INT TERM
  if [ $status -ne 0 ] && [ -s "$kubeconfig" ]; then
    {
      echo "--- pods"; kubectl --kubeconfig "$kubeconfig" get pods -A -o wide
      echo "--- events"; kubectl --kubeconfig "$kubeconfig" get events -A --sort-by=.lastTimestamp
      echo "--- webhook logs"
      kubectl --kubeconfig "$kubeconfig" -n podpreset-system logs -l app.kubernetes.io/component=webhook \
        --all-containers --tail=200
    } > "$logs/cluster-state.txt" 2>&1 || true
    kind export logs "$logs/kind" --name "$cluster" >/dev/null 2>&1 || true
  fi
  if [ -z "${KEEP_CLUSTER:-}" ]; then
    timed "kind delete cluster" kind delete cluster --name "$cluster" >/dev/null 2>&1 || status=1
  else
    echo "e2e-kind: cluster kept: KUBECONFIG=$kubeconfig; kind delete cluster --name $cluster" >&2
  fi
  echo "e2e-kind: logs in $logs" >&2
  cat "$timings" >&2
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

create_args=(--name "$cluster" --config "$config" --wait 180s)
[ -z "${KIND_NODE_IMAGE:-}" ] || create_args+=(--image "$KIND_NODE_IMAGE")
if ! kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  timed "kind create cluster" kind create cluster "${create_args[@]}" 2>&1 | tee "$logs/kind-create.log"
  [ "${PIPESTATUS[0]}" = 0 ]
fi
kind get kubeconfig --name "$cluster" > "$kubeconfig"
export KUBECONFIG="$kubeconfig"

if [ -n "${PODPRESET_E2E_IMAGES:-}" ]; then
  read -r -a tarballs <<< "$PODPRESET_E2E_IMAGES"
  for tarball in "${tarballs[@]}"; do
    timed "kind load image-archive $(basename "$tarball")" kind load image-archive "$tarball" --name "$cluster"
  done
else
  timed "docker build" docker build -t "$image" "$top"
  timed "kind load docker-image" kind load docker-image "$image" --name "$cluster"
fi

# The same install steps as make e2e-cluster (deploy/README.md's, for a user).
timed "install podpreset (hack/install.sh)" env KUBECTL=kubectl "$top/hack/install.sh" 2>&1 | tee "$logs/install.log"
[ "${PIPESTATUS[0]}" = 0 ]

# The API server runs in the node container: webhooks the tests serve themselves listen on this
# host, reached through the kind network's gateway address.
network=${KIND_EXPERIMENTAL_DOCKER_NETWORK:-kind}
gateway=$(docker network inspect "$network" -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' | tr ' ' '\n' |
  grep -E '^[0-9]+\.' | head -n 1 || true)
if [ -z "$gateway" ]; then  # Docker may leave IPAM's Gateway empty: the node's default route's then
  gateway=$(docker exec "$cluster-control-plane" ip -4 route show default | awk '{print $3; exit}' || true)
fi
[ -n "$gateway" ] || { echo "e2e-kind: cannot find the gateway address of docker network $network" >&2; exit 1; }

export PODPRESET_E2E_KUBECONFIG="$kubeconfig" PODPRESET_E2E_HOST_ADDRESS="$gateway" \
  PODPRESET_E2E_TEST_IMAGE="$test_image" PODPRESET_E2E_LOG_DIR="$logs" \
  PODPRESET_E2E_RESTART_APISERVER="$top/hack/e2e-kind.sh restart-apiserver $cluster"
# shellcheck source=hack/e2e-phases.sh
. "$top/hack/e2e-phases.sh"
run_phases e2e-kind
