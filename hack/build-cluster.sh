#!/usr/bin/env bash
# Builds the node side of the e2e-cluster (kubelet, kube-proxy, kube-controller-manager,
# kube-scheduler) and kubectl from the same Go tools module as the kube-apiserver that
# hack/build-controlplane.sh builds: tools/k8s-1.N for K8S_VERSION (1.36, v1.36.3; empty: the
# newest). Same cache as the control plane, keyed by that version; binaries already there with the
# right --version are kept. Prints the directory holding the binaries on its last line.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
resolved=$("$top/hack/k8s-versions.sh" resolve "${K8S_VERSION:-}")
eval "$resolved"

cache=${PODPRESET_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podpreset/controlplane}
bin="$cache/k8s-$K8S_VERSION-node"
mkdir -p "$bin"

export GOTOOLCHAIN=$K8S_GOTOOLCHAIN CGO_ENABLED=0 GOFLAGS=-mod=mod

tools=(kubelet kube-proxy kube-controller-manager kube-scheduler kubectl)
[ $# -eq 0 ] || tools=("$@")  # e.g. `hack/build-cluster.sh kubectl` for make test
# Versions are read whole before they are matched: with pipefail, `kubectl version | grep -q` failed
# whenever grep had left after the first line and kubectl died of SIGPIPE writing the next (5 checks
# in 40 under load), and a cached binary was built again.
version_of() { "$@" 2>/dev/null || true; }
missing=()
for tool in "${tools[@]}"; do
  if [ "$tool" = kubectl ]; then
    grep -qx "Client Version: $K8S_VERSION" <<<"$(version_of "$bin/kubectl" version --client)" && continue
  elif [ "$tool" = kubeadm ]; then  # for hack/kind-node-image.sh
    [ "$("$bin/kubeadm" version -o short 2>/dev/null)" = "$K8S_VERSION" ] && continue
  else
    grep -qx "Kubernetes $K8S_VERSION" <<<"$(version_of "$bin/$tool" --version)" && continue
  fi
  missing+=("$tool")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "${tools[*]} $K8S_VERSION: cached in $bin" >&2
else
  echo "building ${missing[*]} $K8S_VERSION into $bin (cold build: several minutes)" >&2
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  tmp=$(mktemp -d "$bin/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  pkgs=()
  for tool in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$tool"); done
  start=$SECONDS
  (cd "$K8S_MODULE" && go build -trimpath -pgo=off -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
  for tool in "${missing[@]}"; do mv "$tmp/$tool" "$bin/$tool"; done
  echo "built ${missing[*]} in $((SECONDS - start)) s" >&2
fi

echo "$bin"
