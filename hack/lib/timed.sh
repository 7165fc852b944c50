# shellcheck shell=bash
# timed, for the make e2e-* scripts (hack/e2e-cluster.sh, hack/e2e-kind.sh, hack/e2e-kind-local.sh):
# each step's duration on stderr and in the caller's $timings file, which the run prints at its end.
# Sourced.

timed() {  # timed WHAT COMMAND...: run, and note how long it took
  local what=$1 t0=$SECONDS status=0
  shift
  "$@" || status=$?
  echo "$what: $((SECONDS - t0)) s$([ $status = 0 ] || echo " (failed: exit $status)")" | tee -a "$timings" >&2
  return $status
}
