#!/usr/bin/env bash
# Installs podpreset into the cluster of $KUBECONFIG exactly as deploy/README.md tells a user to, in
# this order: everything but the MutatingWebhookConfiguration (`kubectl apply --server-side` of the
# overlay without the objects labelled podpreset.dev/apply-last), the serving certificate
# (hack/bootstrap-certs.sh, or cert-manager's Certificate when the overlay has one), `kubectl rollout
# status`, a probe that the API server reaches a replica through the Service (kube-proxy has
# programmed it), and last the webhook configuration with its caBundle in the same request. So no
# pod creation is ever sent to a webhook that has no Secret, no routed replica or no caBundle yet: under
# overlays/fail-closed, pods created while this runs are admitted as before (make e2e-cluster checks).
# Shared by hack/e2e-cluster.sh (make e2e-cluster) and hack/e2e-kind.sh (make e2e-kind), so both run
# the same steps. The image podpreset:dev must already be on the node(s).
#   OVERLAY=deploy/overlays/fail-closed hack/install.sh     # another overlay
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
KUBECTL=${KUBECTL:-kubectl}
OVERLAY=${OVERLAY:-$top/deploy/overlays/self-signed}
TIMEOUT=${ROLLOUT_TIMEOUT:-180s}
NAMESPACE=podpreset-system
export KUBECTL

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$SECONDS
"$KUBECTL" kustomize "$OVERLAY" > "$work/manifests.yaml"
awk 'BEGIN { RS = "\n---\n"; ORS = "\n" } /(^|\n)kind: MutatingWebhookConfiguration\n/' "$work/manifests.yaml" \
  > "$work/webhook.yaml"
grep -q '^kind: MutatingWebhookConfiguration$' "$work/webhook.yaml" ||
  { echo "install: $OVERLAY renders no MutatingWebhookConfiguration" >&2; exit 1; }

# 1. Everything but the webhook configuration.
"$KUBECTL" apply --server-side -f "$work/manifests.yaml" -l 'podpreset.dev/apply-last!=true'
"$KUBECTL" wait --for=condition=Established crd/podpresets.podpreset.dev crd/clusterpodpresets.podpreset.dev \
  --timeout=60s

# 2. The serving certificate, and the CA the caBundle must trust.
if grep -q '^kind: Certificate$' "$work/manifests.yaml"; then
  # cert-manager: the serving certificate comes from the overlay's CA; the caBundle is that CA
  # (cainjector keeps it the same, deploy/overlays/cert-manager).
  "$KUBECTL" -n "$NAMESPACE" wait --for=condition=Ready certificate/podpreset-ca certificate/podpreset-webhook \
    --timeout=120s
  ca_bundle=$("$KUBECTL" -n "$NAMESPACE" get secret podpreset-ca -o 'jsonpath={.data.ca\.crt}')
else
  "$top/hack/bootstrap-certs.sh"
  ca_bundle=$("$KUBECTL" -n "$NAMESPACE" get secret podpreset-webhook-ca -o 'jsonpath={.data.ca-bundle\.crt}')
fi
[ -n "$ca_bundle" ] || { echo "install: no CA to put in the webhook's caBundle" >&2; exit 1; }

# 3. Replicas ready to answer.
if ! "$KUBECTL" -n "$NAMESPACE" rollout status deployment/podpreset-webhook --timeout="$TIMEOUT"; then
  echo "install: the webhook Deployment did not become ready; its pods:" >&2
  "$KUBECTL" -n "$NAMESPACE" get pods -o wide >&2 || true
  "$KUBECTL" -n "$NAMESPACE" describe pods >&2 || true
  exit 1
fi

"$KUBECTL" patch --local -f "$work/webhook.yaml" --type=json -o yaml \
  -p "[{\"op\":\"add\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"$ca_bundle\"}]" \
  > "$work/webhook-with-ca.yaml"

# 4. The API server reaches a replica through the Service. A ready replica is not yet a routed one:
# each node's kube-proxy programs the Service from its own watch, a moment (after an API server
# outage, seconds) later, and until then a fail-closed configuration refuses pods ("connection
# refused"). So a probe configuration, the same webhook failing closed but only for pods labelled
# podpreset.dev/install-probe in this namespace, is called with server-side dry runs until the API
# server's call gets through; then it is deleted.
"$KUBECTL" patch --local -f "$work/webhook-with-ca.yaml" --type=json -o yaml -p '[
  {"op": "add", "path": "/metadata/name", "value": "podpreset-install-probe"},
  {"op": "add", "path": "/metadata/labels", "value": {"app.kubernetes.io/name": "podpreset"}},
  {"op": "add", "path": "/webhooks/0/name", "value": "install-probe.podpreset.dev"},
  {"op": "add", "path": "/webhooks/0/failurePolicy", "value": "Fail"},
  {"op": "add", "path": "/webhooks/0/matchConditions", "value": []},
  {"op": "add", "path": "/webhooks/0/namespaceSelector",
   "value": {"matchLabels": {"kubernetes.io/metadata.name": "'"$NAMESPACE"'"}}},
  {"op": "add", "path": "/webhooks/0/objectSelector",
   "value": {"matchLabels": {"podpreset.dev/install-probe": "true"}}}]' > "$work/probe-webhook.yaml"
cat > "$work/probe-pod.yaml" <<'POD'
apiVersion: v1
kind: Pod
metadata:
  generateName: install-probe-
  labels: {podpreset.dev/install-probe: "true"}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 65534, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: probe
      image: install-probe
      securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
      resources: {limits: {cpu: 10m, memory: 16Mi}}
POD
trap '"$KUBECTL" delete --ignore-not-found mutatingwebhookconfiguration podpreset-install-probe >/dev/null 2>&1; rm -rf "$work"' EXIT
"$KUBECTL" apply --server-side -f "$work/probe-webhook.yaml" >/dev/null
probe_deadline=$((SECONDS + 120))
until answer=$("$KUBECTL" -n "$NAMESPACE" create --dry-run=server -f "$work/probe-pod.yaml" -o name 2>&1) ||
  ! grep -q 'install-probe.podpreset.dev' <<<"$answer"; do
  if [ $SECONDS -ge $probe_deadline ]; then
    echo "install: the API server could not reach the webhook through its Service within 120 s:" >&2
    echo "$answer" >&2
    exit 1
  fi
  sleep 1
done
"$KUBECTL" delete mutatingwebhookconfiguration podpreset-install-probe >/dev/null
echo "install: the API server reaches the webhook through its Service" >&2

# 5. Last, the webhook configuration, created (or updated) with its caBundle in one request.
"$KUBECTL" apply --server-side -f "$work/webhook-with-ca.yaml"

# 6. The controller (preset status; never on the admission path, so it comes after).
if grep -q '^  name: podpreset-controller$' "$work/manifests.yaml"; then
  if ! "$KUBECTL" -n "$NAMESPACE" rollout status deployment/podpreset-controller --timeout="$TIMEOUT"; then
    echo "install: the controller Deployment did not become ready; its pods:" >&2
    "$KUBECTL" -n "$NAMESPACE" get pods -l app.kubernetes.io/component=controller -o wide >&2 || true
    "$KUBECTL" -n "$NAMESPACE" describe pods -l app.kubernetes.io/component=controller >&2 || true
    exit 1
  fi
fi
echo "install: podpreset installed and rolled out in $((SECONDS - start)) s" >&2
