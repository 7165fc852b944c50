#!/usr/bin/env bash
# Builds the NetworkPolicy enforcer of make e2e-cluster: kube-router's network-policy controller
# (run there as a host process with --run-firewall only), from the Go tools module tools/kube-router,
# into ~/.cache/podpreset/netpol/kube-router-VERSION (kept while its --version matches). The node
# cluster's CNI bridge enforces no NetworkPolicy by itself; kube-router writes iptables rules and
# ipsets for them (Debian's ipset is needed at run time, hack/e2e-cluster.sh installs it).
# Prints the path of the binary on its last line.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
module=github.com/cloudnativelabs/kube-router/v2
VERSION=$(awk -v m="$module" '$1 == m && $2 ~ /^v/ {print $2; exit}' "$top/tools/kube-router/go.mod")
[ -n "$VERSION" ] || { echo "cannot read the $module version from tools/kube-router/go.mod" >&2; exit 1; }
cache=${PODPRESET_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podpreset}/netpol
bin="$cache/kube-router-$VERSION"
mkdir -p "$cache"

# Read whole before it is matched: with pipefail, a grep -q that leaves early fails the check when
# the binary dies of SIGPIPE writing its next line (a cached binary was then built again).
if grep -q "version $VERSION," <<<"$("$bin" --version 2>&1 || true)"; then
  echo "kube-router $VERSION: cached in $bin" >&2
else
  echo "building kube-router $VERSION into $bin (cold build: a few minutes)" >&2
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
  start=$SECONDS
  (cd "$top/tools/kube-router" && go build -trimpath -ldflags "-s -w -X $module/pkg/version.Version=$VERSION" \
    -o "$bin.tmp.$$" "$module/cmd/kube-router")
  mv "$bin.tmp.$$" "$bin"
  echo "built kube-router $VERSION in $((SECONDS - start)) s" >&2
fi
echo "$bin"
