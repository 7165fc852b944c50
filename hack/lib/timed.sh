# shellcheck shell=bash
# timed, for the make e2e-* scripts (hack/e2e-cluster.sh, hack/e2e-kind.sh, hack/e2e-kind-local.sh):
# each step's duration on stderr and in the caller's $timings file, which the run prints at its end.
# Sourced.

run_logs() {  # run_logs DIR FILE: make DIR the run's $logs (absolute) and $logs/FILE its empty $timings
  mkdir -p "$1"
  logs=$(cd "$1" && pwd)
  timings="$logs/$2"
  : > "$timings"
}

timed() {  # timed WHAT COMMAND...: run, and note how long it took
  local what=$1 t0=$SECONDS status=0
  shift
  "$@" || status=$?
  echo "$what: $((SECONDS - t0)) s$([ $status = 0 ] || echo " (failed: exit $status)")" | tee -a "$timings" >&2
  return $status
}
