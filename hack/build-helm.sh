#!/usr/bin/env bash
# Builds helm from its Go module (the module proxy; `go install` needs no network once the
# modules are in the Go module cache) into a cache outside the repository keyed by version. A
# binary already there that reports the right version is kept. If HELM points at a helm binary
# of that version, nothing is built and it is used.
# Prints the path of the helm binary on its last line.
set -euo pipefail

# helm v3: the release line most clusters' tooling still runs; v4 changes defaults (server-side
# apply) that the chart does not need. Bump here: the chart tests pin nothing else.
HELM_VERSION=v3.22.0

if [ -n "${HELM:-}" ] && [ -x "$HELM" ] && "$HELM" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
  echo "using HELM=$HELM" >&2
  echo "$HELM"
  exit 0
fi

cache=${PODPRESET_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podpreset/helm}
bin="$cache/$HELM_VERSION"
mkdir -p "$bin"

if "$bin/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION" && [ -f "$bin/helm.stamped" ]; then
  echo "helm $HELM_VERSION: cached in $bin" >&2
else
  echo "building helm $HELM_VERSION into $bin (cold build: a few minutes)" >&2
  tmp=$(mktemp -d "$bin/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  start=$SECONDS
  # Stamp what helm's own Makefile stamps: its version, and the Kubernetes version `helm template`
  # and `helm lint` assume without a cluster (its client-go's minor; unstamped it is 1.20, which
  # the chart's kubeVersion refuses).
  export GOTOOLCHAIN=local CGO_ENABLED=0
  gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  minor=$(awk '$1 == "k8s.io/client-go" {split($2, v, "."); print v[2]; exit}' "$gomod")
  [ -n "$minor" ] || { echo "cannot read helm $HELM_VERSION's k8s.io/client-go version from $gomod" >&2; exit 1; }
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags="$ldflags -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$minor"
  done
  GOBIN="$tmp" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$tmp/helm" "$bin/helm"
  touch "$bin/helm.stamped"
  echo "built helm $HELM_VERSION in $((SECONDS - start)) s" >&2
fi

echo "$bin/helm"
