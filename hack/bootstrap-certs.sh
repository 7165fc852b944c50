#!/usr/bin/env bash
# Self-signed bootstrap for the webhook's serving certificate, with nothing but openssl and kubectl:
# makes a CA and a serving certificate for podpreset-webhook.podpreset-system.svc, stores them in
# Secret podpreset-webhook-tls, and puts the CA into the MutatingWebhookConfiguration's caBundle.
# Run after `kubectl apply -k deploy/overlays/self-signed` (or fail-closed); rerun to rotate.
# The running pods re-read the certificate when the Secret's files change.
set -euo pipefail

NAMESPACE=${NAMESPACE:-podpreset-system}
SERVICE=${SERVICE:-podpreset-webhook}
SECRET=${SECRET:-podpreset-webhook-tls}
WEBHOOK_CONFIG=${WEBHOOK_CONFIG:-podpreset}
DAYS=${DAYS:-825}
KUBECTL=${KUBECTL:-kubectl}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt \
  -days "$DAYS" -subj "/CN=podpreset-webhook-ca" 2>/dev/null
printf 'subjectAltName=DNS:%s.%s.svc,DNS:%s.%s.svc.cluster.local\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' \
  "$SERVICE" "$NAMESPACE" "$SERVICE" "$NAMESPACE" > server.ext
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout tls.key -out tls.csr \
  -subj "/CN=$SERVICE.$NAMESPACE.svc" 2>/dev/null
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$DAYS" -extfile server.ext \
  -out tls.crt 2>/dev/null

"$KUBECTL" -n "$NAMESPACE" create secret tls "$SECRET" --cert=tls.crt --key=tls.key \
  --dry-run=client -o yaml | "$KUBECTL" apply -f -
ca_bundle=$(base64 < ca.crt | tr -d '\n')
"$KUBECTL" patch mutatingwebhookconfiguration "$WEBHOOK_CONFIG" --type=json \
  -p "[{\"op\":\"add\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"$ca_bundle\"}]"
echo "certificate for $SERVICE.$NAMESPACE.svc stored in secret $NAMESPACE/$SECRET; caBundle set on $WEBHOOK_CONFIG" >&2
