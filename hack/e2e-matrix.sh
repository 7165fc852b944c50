#!/usr/bin/env bash
# make e2e-matrix: the end-to-end suite (tests/e2e against a local kube-apiserver + etcd, as make e2e
# runs it) against each supported Kubernetes version in turn, oldest first, then a table of version,
# passed, failed and seconds (the suite's wall time; builds are timed apart). Versions come from the
# arguments (1.34 1.37) or else every tools/k8s-1.N. A version whose build fails, whose suite fails
# or skips a test is a failed row; the others still run. Exit status 1 if any row failed.
# Each version's build log, pytest output and JUnit file: build/e2e-matrix/<time>/.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$top/.venv/bin/python}
if [ $# -gt 0 ]; then versions=("$@"); else mapfile -t versions < <("$top/hack/k8s-versions.sh" list); fi
logs="$top/build/e2e-matrix/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$logs"
table="$logs/table.txt"
rows=()
status=0

for wanted in "${versions[@]}"; do
  eval "$("$top/hack/k8s-versions.sh" resolve "$wanted")"
  v=$K8S_VERSION
  echo "e2e-matrix: $v: building kube-apiserver, etcd $ETCD_VERSION and kubectl (log: $logs/$v.build.log)" >&2
  t0=$SECONDS
  if assets=$(K8S_VERSION=$v KUBEBUILDER_ASSETS= "$top/hack/build-controlplane.sh" 2>> "$logs/$v.build.log" | tail -n 1) &&
    kubectl_dir=$(K8S_VERSION=$v "$top/hack/build-cluster.sh" kubectl 2>> "$logs/$v.build.log" | tail -n 1); then
    build=$((SECONDS - t0))
  else
    echo "e2e-matrix: $v: build failed after $((SECONDS - t0)) s; see $logs/$v.build.log" >&2
    rows+=("$v|build failed|-|-|$((SECONDS - t0))")
    status=1
    continue
  fi
  echo "e2e-matrix: $v: running tests/e2e (built in $build s; output: $logs/$v.log)" >&2
  t0=$SECONDS
  suite=0
  KUBEBUILDER_ASSETS=$assets PATH="$kubectl_dir:$PATH" \
    "$python" -m pytest -q -p no:cacheprovider "$top/tests/e2e" --junitxml="$logs/$v.junit.xml" ${PYTEST_ARGS:-} \
    > "$logs/$v.log" 2>&1 || suite=$?
  seconds=$((SECONDS - t0))
  tail -n 1 "$logs/$v.log" >&2
  if [ -f "$logs/$v.junit.xml" ]; then
    read -r passed failed skipped < <("$python" - "$logs/$v.junit.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET

suites = list(ET.parse(sys.argv[1]).getroot().iter("testsuite"))
count = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
failed = count["failures"] + count["errors"]
print(count["tests"] - failed - count["skipped"], failed, count["skipped"])
PY
    )
  else
    passed=0 failed="no JUnit file" skipped=0
  fi
  if [ "$suite" != 0 ] || [ "$skipped" != 0 ] || [ "$failed" != 0 ]; then
    status=1
    [ "$skipped" = 0 ] || failed="$failed (+$skipped skipped)"
  fi
  rows+=("$v|$passed|$failed|$seconds|$build")
done

{
  printf '%-10s %8s %8s %8s %14s\n' version passed failed seconds build-seconds
  for row in "${rows[@]}"; do
    IFS='|' read -r v passed failed seconds build <<< "$row"
    printf '%-10s %8s %8s %8s %14s\n' "$v" "$passed" "$failed" "$seconds" "$build"
  done
} | tee "$table"
echo "e2e-matrix: table in $table" >&2
exit $status
