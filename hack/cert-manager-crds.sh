#!/usr/bin/env bash
# cert-manager's CRDs (cert-manager.io, acme.cert-manager.io) at CERT_MANAGER_VERSION, taken from
# the deploy/crds directory of its Go module (downloaded through the Go module proxy) and cached in
# ~/.cache/podpreset/cert-manager/VERSION/crds. Used by the tests that check deploy/overlays/cert-manager
# against a real API server. Prints the directory holding them on its last line.
set -euo pipefail

CERT_MANAGER_VERSION=${CERT_MANAGER_VERSION:-v1.21.2}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/podpreset/cert-manager/$CERT_MANAGER_VERSION
if [ ! -s "$cache/crds/cert-manager.io_certificates.yaml" ]; then
  echo "fetching cert-manager $CERT_MANAGER_VERSION's CRDs through the Go module proxy" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  dir=$(cd "$work" && GOFLAGS=-mod=mod GOTOOLCHAIN=local \
    go mod download -json "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] && [ -d "$dir/deploy/crds" ] ||
    { echo "cert-manager $CERT_MANAGER_VERSION: no deploy/crds in the module download" >&2; exit 1; }
  mkdir -p "$cache.tmp/crds"
  cp "$dir"/deploy/crds/*.yaml "$cache.tmp/crds/"
  rm -rf "$cache"
  mv "$cache.tmp" "$cache"
fi
echo "$cache/crds"
