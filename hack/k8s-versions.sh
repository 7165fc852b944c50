#!/usr/bin/env bash
# The Kubernetes versions podpreset builds and tests against: one Go tools module per minor
# version, tools/k8s-1.N (written by hack/new-tools-module.sh), each paired with the etcd of the
# minor version that Kubernetes release itself requires (tools/etcd-3.M).
#
#   hack/k8s-versions.sh list              every version, oldest first (v1.34.4 v1.35.4 ...)
#   hack/k8s-versions.sh newest            the newest (the default everywhere)
#   hack/k8s-versions.sh resolve [VERSION] shell assignments for the build scripts: K8S_VERSION,
#                                          K8S_MODULE, ETCD_VERSION, ETCD_MODULE, K8S_GOTOOLCHAIN
#
# VERSION is 1.36, v1.36, 1.36.3 or v1.36.3; empty means the newest.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

required() {  # required GO_MOD MODULE: the version GO_MOD requires of MODULE
  awk -v m="$2" '($1 == m && $2 ~ /^v/) || ($1 == "require" && $2 == m) {print ($1 == "require" ? $3 : $2); exit}' "$1"
}

modules() {  # every tools/k8s-1.N directory, oldest first
  local dir
  for dir in "$top"/tools/k8s-1.*/; do
    [ -f "$dir/go.mod" ] && echo "${dir%/}"
  done | sort -t. -k2,2n
}

list() {
  local dir
  for dir in $(modules); do required "$dir/go.mod" k8s.io/kubernetes; done
}

resolve() {
  local wanted=${1:-} dir version minor etcd_minor etcd_dir etcd_version toolchain
  if [ -z "$wanted" ]; then
    dir=$(modules | tail -n 1)
    [ -n "$dir" ] || { echo "no tools/k8s-1.* module in $top/tools" >&2; exit 1; }
  else
    [[ $wanted =~ ^v?1\.([0-9]+)(\.[0-9]+)?$ ]] || {
      echo "K8S_VERSION=$wanted: expected a Kubernetes version such as 1.36 or v1.36.3 (supported: $(list | paste -sd ' '))" >&2
      exit 2
    }
    minor=${BASH_REMATCH[1]}
    dir="$top/tools/k8s-1.$minor"
    [ -f "$dir/go.mod" ] || {
      echo "K8S_VERSION=$wanted is not a supported version (supported: $(list | paste -sd ' '));" \
        "add one with hack/new-tools-module.sh kubernetes v1.$minor.P" >&2
      exit 2
    }
  fi
  version=$(required "$dir/go.mod" k8s.io/kubernetes)
  [ -n "$version" ] || { echo "cannot read the k8s.io/kubernetes version from ${dir#"$top"/}/go.mod" >&2; exit 1; }
  if [ -n "$wanted" ] && [[ $wanted =~ ^v?1\.[0-9]+\.[0-9]+$ ]] && [ "v${wanted#v}" != "$version" ]; then
    echo "K8S_VERSION=$wanted: ${dir#"$top"/} builds $version (one patch release per minor version)" >&2
    exit 2
  fi
  # The etcd this Kubernetes release was made with: the minor version of the etcd client it requires.
  etcd_minor=$(required "$dir/go.mod" go.etcd.io/etcd/client/v3 | sed -E 's/^v([0-9]+\.[0-9]+)\..*/\1/')
  etcd_dir="$top/tools/etcd-$etcd_minor"
  [ -f "$etcd_dir/go.mod" ] || {
    echo "$version requires etcd $etcd_minor (go.etcd.io/etcd/client/v3 in ${dir#"$top"/}/go.mod) and there is no" \
      "tools/etcd-$etcd_minor: add it with hack/new-tools-module.sh etcd v$etcd_minor.P" >&2
    exit 1
  }
  etcd_version=$(required "$etcd_dir/go.mod" go.etcd.io/etcd/server/v3)
  # A module whose go line is newer than the local Go names the toolchain to fetch (module proxy).
  toolchain=$(awk '$1 == "toolchain" {print $2; exit}' "$dir/go.mod")
  printf 'K8S_VERSION=%s\nK8S_MODULE=%s\nETCD_VERSION=%s\nETCD_MODULE=%s\nK8S_GOTOOLCHAIN=%s\n' \
    "$version" "$dir" "$etcd_version" "$etcd_dir" "${toolchain:-local}"
}

case "${1:-}" in
  list) list ;;
  newest) list | tail -n 1 ;;
  resolve) resolve "${2:-}" ;;
  *) echo "usage: $0 list | newest | resolve [VERSION]" >&2; exit 2 ;;
esac
