# shellcheck shell=bash
# What hack/build-controlplane.sh and hack/build-cluster.sh share: the Kubernetes release to build
# (hack/k8s-versions.sh resolve), the cache both keep their binaries in, Go's build environment, and
# the version stamp every Kubernetes binary of ours carries (so `--version` names the release and the
# cache check can trust it). Sourced once `top` is set.

resolve_k8s_build() {  # sets K8S_VERSION, K8S_MODULE, ETCD_VERSION, ETCD_MODULE, K8S_GOTOOLCHAIN and cache
  local resolved
  resolved=$("$top/hack/k8s-versions.sh" resolve "${K8S_VERSION:-}")
  eval "$resolved"
  cache=${PODPRESET_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podpreset/controlplane}
  export GOTOOLCHAIN=$K8S_GOTOOLCHAIN CGO_ENABLED=0 GOFLAGS=-mod=mod
}

go_build_k8s() {  # go_build_k8s OUT PACKAGE...: go build in K8S_MODULE, stamped with K8S_VERSION
  local out=$1 minor ldflags p
  shift
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$K8S_MODULE" && go build -trimpath -pgo=off -ldflags "$ldflags" -o "$out" "$@")
}

# A cached binary's version is read whole before it is matched (`grep -q <<<"$(version_of …)"`):
# with pipefail, `etcd --version | grep -q` failed whenever grep had left after the first line and
# the binary died of SIGPIPE writing the next (6 checks in 40 for etcd, 5 for kubectl, under load),
# and a cached binary was built again.
version_of() { "$@" 2>/dev/null || true; }
