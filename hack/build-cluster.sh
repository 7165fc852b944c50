#!/usr/bin/env bash
# Builds the node side of the e2e-cluster (kubelet, kube-proxy, kube-controller-manager,
# kube-scheduler) and kubectl from the Go tools module tools/kube-node, at the same
# k8s.io/kubernetes version as the kube-apiserver that hack/build-controlplane.sh builds (the
# script refuses to build when the two go.mod files disagree). Same cache as the control plane,
# keyed by that version; binaries already there with the right --version are kept.
# Prints the directory holding the binaries on its last line.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
version_of() { awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$1"; }
K8S_VERSION=$(version_of "$top/tools/kube-apiserver/go.mod")
NODE_VERSION=$(version_of "$top/tools/kube-node/go.mod")
[ -n "$K8S_VERSION" ] || { echo "cannot read the k8s.io/kubernetes version from tools/kube-apiserver/go.mod" >&2; exit 1; }
if [ "$K8S_VERSION" != "$NODE_VERSION" ]; then
  echo "tools/kube-node/go.mod requires k8s.io/kubernetes $NODE_VERSION but tools/kube-apiserver/go.mod" \
    "requires $K8S_VERSION: set both to the same version (and the k8s.io/* replace lines to v0.x of it)" >&2
  exit 1
fi

cache=${PODPRESET_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podpreset/controlplane}
bin="$cache/k8s-$K8S_VERSION-node"
mkdir -p "$bin"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

tools=(kubelet kube-proxy kube-controller-manager kube-scheduler kubectl)
[ $# -eq 0 ] || tools=("$@")  # e.g. `hack/build-cluster.sh kubectl` for make test
missing=()
for tool in "${tools[@]}"; do
  if [ "$tool" = kubectl ]; then
    "$bin/kubectl" version --client 2>/dev/null | grep -qx "Client Version: $K8S_VERSION" && continue
  else
    "$bin/$tool" --version 2>/dev/null | grep -qx "Kubernetes $K8S_VERSION" && continue
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
  (cd "$top/tools/kube-node" && go build -trimpath -pgo=off -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
  for tool in "${missing[@]}"; do mv "$tmp/$tool" "$bin/$tool"; done
  echo "built ${missing[*]} in $((SECONDS - start)) s" >&2
fi

echo "$bin"
