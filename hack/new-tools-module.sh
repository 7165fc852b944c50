#!/usr/bin/env bash
# Writes the Go tools module that hack/build-controlplane.sh and hack/build-cluster.sh build from,
# then runs `go mod tidy` (commit the go.mod and go.sum it leaves):
#
#   hack/new-tools-module.sh kubernetes v1.37.2   tools/k8s-1.37: kube-apiserver, kubelet, kube-proxy,
#                                                 kube-controller-manager, kube-scheduler, kubectl
#   hack/new-tools-module.sh etcd v3.7.4          tools/etcd-3.7: etcd's server
#
# k8s.io/kubernetes is not meant to be required as a module: its go.mod requires every staging
# module (k8s.io/api, k8s.io/client-go, ...) at v0.0.0 and points it at ./staging with a replace
# line, which only applies inside kubernetes itself. The module written here repeats those replace
# lines with the published versions (Kubernetes v1.N.P <-> staging v0.N.P), read from kubernetes'
# own go.mod at that tag, so the list is never out of date. Its `go` line is kubernetes' own, so the
# binaries get the GODEBUG defaults upstream ships. A module whose `go` line is newer than the
# local Go gets a `toolchain` line, which the build scripts honour (the module proxy serves it).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
usage() { echo "usage: $0 kubernetes vX.Y.Z | etcd vX.Y.Z" >&2; exit 2; }
[ $# -eq 2 ] || usage
kind=$1 version=$2
[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || usage
minor=${version#v}
minor=${minor%.*}

export GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
case "$kind" in
  kubernetes)
    dir="$top/tools/k8s-$minor"
    module=k8s.io/kubernetes
    tools=(kube-apiserver kubelet kube-proxy kube-controller-manager kube-scheduler kubectl)
    ;;
  etcd)
    dir="$top/tools/etcd-$minor"
    module=go.etcd.io/etcd/server/v3
    tools=()
    ;;
  *) usage ;;
esac

upstream=$(go mod download -json "$module@$version" | python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')
go_line=$(awk '$1 == "go" {print $2; exit}' "$upstream")
mkdir -p "$dir"
{
  echo "module podpreset.dev/tools/$(basename "$dir")"
  echo
  echo "go $go_line"
  echo
  if [ "$kind" = kubernetes ]; then
    echo "tool ("
    for tool in "${tools[@]}"; do echo "	k8s.io/kubernetes/cmd/$tool"; done
    echo ")"
  else
    echo "tool $module"
  fi
  echo
  echo "require $module $version"
  if [ "$kind" = kubernetes ]; then
    echo
    echo "replace ("
    awk -v v="v0.${version#v1.}" '$2 == "=>" && $3 ~ /^\.\/staging\// {printf "\t%s => %s %s\n", $1, $1, v}' "$upstream"
    echo ")"
  fi
} > "$dir/go.mod"
rm -f "$dir/go.sum"
(cd "$dir" && go mod tidy)
echo "wrote ${dir#"$top"/}/go.mod and go.sum ($module $version, go $go_line)" >&2
