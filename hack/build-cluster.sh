#!/usr/bin/env bash
# Builds the node side of the e2e-cluster (kubelet, kube-proxy, kube-controller-manager,
# kube-scheduler) and kubectl from the same Go tools module as the kube-apiserver that
# hack/build-controlplane.sh builds: tools/k8s-1.N for K8S_VERSION (1.36, v1.36.3; empty: the
# newest). Same cache as the control plane, keyed by that version; binaries already there with the
# right --version are kept. Prints the directory holding the binaries on its last line.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/lib/k8s-build.sh
. "$top/hack/lib/k8s-build.sh"
resolve_k8s_build
bin="$cache/k8s-$K8S_VERSION-node"
mkdir -p "$bin"

tools=(kubelet kube-proxy kube-controller-manager kube-scheduler kubectl)
[ $# -eq 0 ] || tools=("$@")  # e.g. `hack/build-cluster.sh kubectl` for make test
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
  tmp=$(mktemp -d "$bin/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  pkgs=()
  for tool in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$tool"); done
  start=$SECONDS
  go_build_k8s "$tmp/" "${pkgs[@]}"
  for tool in "${missing[@]}"; do mv "$tmp/$tool" "$bin/$tool"; done
  echo "built ${missing[*]} in $((SECONDS - start)) s" >&2
fi

echo "$bin"
