#!/usr/bin/env bash
# make e2e-cluster: a one-node cluster on this machine (hack/cluster.sh), the images built locally
# (hack/build-images.sh) and imported into its containerd, podpreset installed as deploy/README.md
# says (hack/install.sh, shared with make e2e-kind), then the end-to-end suite in cluster mode and
# the cluster-only scenarios. Then the Helm phase: the kustomize install is removed (the CRDs and
# presets stay), `helm install` of charts/podpreset takes its place, the webhook scenarios run
# against it, then tests/e2e/test_helm_release.py (helm upgrade under load, rollback, uninstall).
# Everything is torn down afterwards (also on failure or Ctrl-C) and checked to be gone. Needs Linux
# and root. Every component's log stays in build/e2e-cluster/<time>/.
#   KEEP_CLUSTER=1 make e2e-cluster     leave the cluster up (hack/cluster.sh down RUN_DIR stops it)
#   make e2e-cluster PYTEST_ARGS='-k rollout'        (the kustomize phase only; HELM_PYTEST_ARGS for the Helm phase)
#   SKIP_HELM_PHASE=1 make e2e-cluster              the kustomize phase only
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$top/.venv/bin/python}

if [ "$(uname -s)" != Linux ]; then
  echo "e2e-cluster: needs Linux (containerd, runc, kubelet, a network bridge and iptables); this is $(uname -s)." \
    "Use make e2e (a local kube-apiserver) or make e2e-kind (Docker) instead." >&2
  exit 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "e2e-cluster: needs root: it runs containerd, kubelet and kube-proxy, creates a network bridge and" \
    "iptables rules (all removed afterwards). Run it as root, e.g. sudo make e2e-cluster." >&2
  exit 2
fi

# Debian packages: command -> package.
declare -A packages=(
  [containerd]=containerd [runc]=runc [ctr]=containerd [iptables]=iptables [ip6tables]=iptables
  [conntrack]=conntrack [openssl]=openssl [curl]=curl [ip]=iproute2 [nft]=nftables [setsid]=util-linux
  [ipset]=ipset
)
missing=()
for cmd in "${!packages[@]}"; do command -v "$cmd" >/dev/null || missing+=("${packages[$cmd]}"); done
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || missing+=(containernetworking-plugins)
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "e2e-cluster: installing Debian packages: ${missing[*]}" >&2
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

# shellcheck source=hack/lib/timed.sh
. "$top/hack/lib/timed.sh"
run_logs "${E2E_CLUSTER_LOGS:-$top/build/e2e-cluster/$(date -u +%Y%m%dT%H%M%SZ)}" timings.txt
echo "e2e-cluster: logs of every component in $logs" >&2

timed "build kube-apiserver and etcd (hack/build-controlplane.sh)" \
  bash -c "'$top/hack/build-controlplane.sh' >/dev/null 2>>'$logs/build.log'"
timed "build kubelet, kube-proxy, kube-controller-manager, kube-scheduler, kubectl (hack/build-cluster.sh)" \
  bash -c "'$top/hack/build-cluster.sh' >/dev/null 2>>'$logs/build.log'"
timed "build kube-router, the NetworkPolicy enforcer (hack/build-netpol.sh)" \
  bash -c "'$top/hack/build-netpol.sh' >/dev/null 2>>'$logs/build.log'"
bin=$("$top/hack/build-cluster.sh" 2>/dev/null | tail -n 1)
timed "build helm (hack/build-helm.sh)" bash -c "'$top/hack/build-helm.sh' >/dev/null 2>>'$logs/build.log'"
HELM=$("$top/hack/build-helm.sh" 2>/dev/null | tail -n 1)
export HELM

# The images: docker-archive tarballs from hack/build-images.sh (names in hack/images.env).
# shellcheck source=hack/images.env
. "$top/hack/images.env"
if [ -n "${PODPRESET_E2E_IMAGES:-}" ]; then
  read -r -a images <<< "$PODPRESET_E2E_IMAGES"
else
  timed "build the images (hack/build-images.sh)" bash -c "'$top/hack/build-images.sh' > '$logs/images-dir' 2>>'$logs/images-build.log'"
  images_dir=$(tail -n 1 "$logs/images-dir")
  images=("$images_dir/$PAUSE_TARBALL" "$images_dir/$TESTBOX_TARBALL" "$images_dir/$WEBHOOK_TARBALL")
fi
test_image=${PODPRESET_E2E_TEST_IMAGE:-$TESTBOX_IMAGE}

run=$(mktemp -d "${TMPDIR:-/tmp}/podpreset-e2e.XXXXXX")
cleanup() {
  status=$?
  trap - EXIT INT TERM
  if [ $status -ne 0 ] && [ -f "$run/admin.kubeconfig" ]; then
    {
      echo "--- pods"; "$bin/kubectl" --kubeconfig "$run/admin.kubeconfig" get pods -A -o wide
      echo "--- events"; "$bin/kubectl" --kubeconfig "$run/admin.kubeconfig" get events -A --sort-by=.lastTimestamp
    } > "$logs/cluster-state.txt" 2>&1 || true
  fi
  if [ -n "${KEEP_CLUSTER:-}" ] && [ $status -eq 0 ]; then
    echo "e2e-cluster: cluster kept: KUBECONFIG=$run/admin.kubeconfig; stop it with hack/cluster.sh down $run" >&2
  else
    timed "teardown and leftover check (hack/cluster.sh down)" "$top/hack/cluster.sh" down "$run" || status=1
  fi
  echo "e2e-cluster: logs of every component in $logs" >&2
  cat "$timings" >&2
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

timed "cluster bring-up (hack/cluster.sh up)" "$top/hack/cluster.sh" up "$run" "$logs" "${images[@]}"

export KUBECONFIG="$run/admin.kubeconfig" PATH="$bin:$PATH"
timed "install podpreset (hack/install.sh)" env KUBECTL="$bin/kubectl" "$top/hack/install.sh" 2>&1 | tee "$logs/install.log"
[ "${PIPESTATUS[0]}" = 0 ]

# Cluster mode (as make e2e-kind): the suite talks to this cluster; the API server runs on this
# host, so webhooks the tests serve themselves listen on 127.0.0.1. Then the Helm phase. Both in
# hack/e2e-phases.sh, shared with make e2e-kind.
export PODPRESET_E2E_KUBECONFIG="$run/admin.kubeconfig" PODPRESET_E2E_HOST_ADDRESS=127.0.0.1 \
  PODPRESET_E2E_TEST_IMAGE="$test_image" PODPRESET_E2E_RESTART_APISERVER="$top/hack/cluster.sh restart-apiserver $run" \
  PODPRESET_E2E_LOG_DIR="$logs"
# shellcheck source=hack/e2e-phases.sh
. "$top/hack/e2e-phases.sh"
run_phases e2e-cluster
