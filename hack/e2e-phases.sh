# shellcheck shell=bash
# The test phases make e2e-cluster and make e2e-kind share, sourced once the cluster is up and
# podpreset installed from deploy/ (hack/install.sh): so both run the same scenarios, the same count.
#   run_phases NAME    NAME is the caller's name for messages (e2e-cluster, e2e-kind)
# Needs: top, python, logs (the run's log directory), the function `timed WHAT COMMAND...`, kubectl
# on PATH, KUBECONFIG, HELM (optional: hack/build-helm.sh builds it), and the PODPRESET_E2E_* settings
# of cluster mode exported (KUBECONFIG, HOST_ADDRESS, TEST_IMAGE, RESTART_APISERVER, LOG_DIR).
#   PYTEST_ARGS          extra pytest arguments for the kustomize phase
#   HELM_PYTEST_ARGS     the same for the Helm phase
#   SKIP_HELM_PHASE=1    the kustomize phase only

phases_no_skips() {  # phases_no_skips NAME JUNIT: in cluster mode every selected scenario must run
  local skipped
  skipped=$("$python" -c 'import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); print(sum(int(s.get("skipped", 0)) for s in r.iter("testsuite")))' "$2")
  if [ "$skipped" != 0 ]; then
    echo "$1: $skipped test(s) skipped; in cluster mode every scenario must run" >&2
    return 1
  fi
}

# The Helm phase's switch: remove what the kustomize overlay installed but the CRDs (and so the
# presets) and the namespace, and the certificate Secrets hack/bootstrap-certs.sh made; then install
# the chart as deploy/README.md tells a cluster user to (release podpreset, so every object keeps
# deploy/'s name and the scenarios find it).
phases_switch_to_helm() {
  kubectl kustomize "$top/deploy/overlays/self-signed" \
    | "$python" -c 'import sys, yaml; print(yaml.safe_dump_all([d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] not in ("CustomResourceDefinition", "Namespace")]))' \
    | kubectl delete --ignore-not-found -f -
  kubectl -n podpreset-system delete secret --ignore-not-found podpreset-webhook-tls podpreset-webhook-ca
  kubectl -n podpreset-system wait --for=delete pod -l app.kubernetes.io/component=webhook --timeout=120s
  "$HELM" install podpreset "$top/charts/podpreset" --namespace podpreset-system --wait --timeout 240s
}

run_phases() {
  local name=$1 status=0 junit="$logs/junit.xml" helm_junit="$logs/junit-helm.xml"
  # shellcheck disable=SC2086
  timed "end-to-end suite in cluster mode (pytest tests/e2e)" \
    "$python" -m pytest -q -rs "$top/tests/e2e" --junitxml="$junit" ${PYTEST_ARGS:-} || status=$?
  if [ $status -eq 0 ]; then
    phases_no_skips "$name" "$junit" || status=1
  fi
  [ $status -eq 0 ] && [ -z "${SKIP_HELM_PHASE:-}" ] || return $status

  if [ -z "${HELM:-}" ]; then
    timed "build helm (hack/build-helm.sh)" bash -c "'$top/hack/build-helm.sh' >/dev/null 2>>'$logs/build.log'"
    HELM=$("$top/hack/build-helm.sh" 2>/dev/null | tail -n 1)
    export HELM
  fi
  timed "replace the kustomize install with the chart (helm install)" phases_switch_to_helm 2>&1 | tee "$logs/helm-install.log"
  [ "${PIPESTATUS[0]}" = 0 ] || return 1

  # shellcheck disable=SC2086
  PODPRESET_E2E_HELM_RELEASE=podpreset PODPRESET_E2E_RESTART_APISERVER= \
    timed "webhook scenarios, then helm upgrade/rollback/uninstall, on the chart's release" \
    "$python" -m pytest -q -rs -s --junitxml="$helm_junit" \
    "$top/tests/e2e/test_matching_pod_gets_every_field.py" \
    "$top/tests/e2e/test_conflicts_exclusion_update_dry_run.py" \
    "$top/tests/e2e/test_reinvocation_adds_no_duplicates.py" \
    "$top/tests/e2e/test_targeting_pod_fields_and_policies.py" \
    "$top/tests/e2e/test_network_policy.py" "$top/tests/e2e/test_opt_out_and_mandatory_presets.py" \
    "$top/tests/e2e/test_installed_controller_writes_status.py" \
    "$top/tests/e2e/test_helm_release.py" ${HELM_PYTEST_ARGS:-} 2>&1 | tee "$logs/helm-phase.log" || status=$?
  grep -E '^helm (upgrade|rollback): ' "$logs/helm-phase.log" >> "$logs/timings.txt" || true
  if [ $status -eq 0 ]; then
    phases_no_skips "$name" "$helm_junit" || status=1
  fi
  return $status
}
