#!/usr/bin/env bash
# Builds the end-to-end test control plane (kube-apiserver and etcd) from the Go tools modules under
# tools/, into a cache outside the repository keyed by version. K8S_VERSION (1.36, v1.36.3; empty:
# the newest) picks tools/k8s-1.N; etcd is the minor version that Kubernetes release requires
# (hack/k8s-versions.sh). A binary already in the cache with the right version is kept. If
# KUBEBUILDER_ASSETS points at a directory holding both binaries, nothing is built and that
# directory is printed. Prints the directory holding the binaries on its last line.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
  echo "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS" >&2
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

# shellcheck source=hack/lib/k8s-build.sh
. "$top/hack/lib/k8s-build.sh"
resolve_k8s_build
bin="$cache/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
mkdir -p "$bin"

if grep -qx "Kubernetes $K8S_VERSION" <<<"$(version_of "$bin/kube-apiserver" --version)"; then
  echo "kube-apiserver $K8S_VERSION: cached in $bin" >&2
else
  echo "building kube-apiserver $K8S_VERSION into $bin (cold build: several minutes)" >&2
  start=$SECONDS
  go_build_k8s "$bin/kube-apiserver.tmp.$$" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$bin/kube-apiserver.tmp.$$" "$bin/kube-apiserver"
  echo "built kube-apiserver $K8S_VERSION in $((SECONDS - start)) s" >&2
fi

if grep -q "etcd Version: ${ETCD_VERSION#v}" <<<"$(version_of "$bin/etcd" --version)"; then
  echo "etcd $ETCD_VERSION: cached in $bin" >&2
else
  echo "building etcd $ETCD_VERSION into $bin" >&2
  start=$SECONDS
  (cd "$ETCD_MODULE" && go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" \
      -o "$bin/etcd.tmp.$$" go.etcd.io/etcd/server/v3)
  mv "$bin/etcd.tmp.$$" "$bin/etcd"
  echo "built etcd $ETCD_VERSION in $((SECONDS - start)) s" >&2
fi

echo "$bin"
