#!/usr/bin/env bash
# Self-signed bootstrap for the webhook's serving certificate, with nothing but openssl and kubectl.
# Run after applying deploy/overlays/self-signed (or fail-closed); hack/install.sh shows the order.
#
#   hack/bootstrap-certs.sh                 first run: make a CA (Secret podpreset-webhook-ca), a serving
#                                           certificate for podpreset-webhook.podpreset-system.svc (Secret
#                                           podpreset-webhook-tls), and set the webhook's caBundle.
#                                           Later runs: keep the CA, renew only the serving certificate.
#   hack/bootstrap-certs.sh --rotate-ca     CA rotation, step 1: make a new CA and trust the old and the
#                                           new one in the caBundle; the serving certificate is unchanged.
#                                           Step 2 is a plain rerun (serving certificate from the new CA).
#   hack/bootstrap-certs.sh --drop-old-cas  step 3, once every replica serves the new certificate: the
#                                           caBundle trusts the current CA only.
#
# The caBundle is set before the serving certificate changes, and trusts every CA whose certificate
# may still be served, so no call fails TLS in between. The running pods re-read the certificate
# when the Secret's files change. See deploy/README.md.
set -euo pipefail

NAMESPACE=${NAMESPACE:-podpreset-system}
SERVICE=${SERVICE:-podpreset-webhook}
SECRET=${SECRET:-podpreset-webhook-tls}
CA_SECRET=${CA_SECRET:-podpreset-webhook-ca}
WEBHOOK_CONFIG=${WEBHOOK_CONFIG:-podpreset}
DAYS=${DAYS:-825}
CA_DAYS=${CA_DAYS:-3650}
KUBECTL=${KUBECTL:-kubectl}

mode=renew
case "${1:-}" in
  "") ;;
  --rotate-ca) mode=rotate-ca ;;
  --drop-old-cas) mode=drop-old-cas ;;
  *) echo "usage: $0 [--rotate-ca | --drop-old-cas]" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

new_ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt \
    -days "$CA_DAYS" -subj "/CN=podpreset-webhook-ca-$(date -u +%Y%m%d%H%M%S)" 2>/dev/null
}

# The CA Secret holds the signing CA (tls.crt, tls.key) and every CA the caBundle trusts
# (ca-bundle.crt: the signing CA, plus the previous one during a rotation).
store_ca() {
  "$KUBECTL" -n "$NAMESPACE" create secret generic "$CA_SECRET" --type=kubernetes.io/tls \
    --from-file=tls.crt=ca.crt --from-file=tls.key=ca.key --from-file=ca-bundle.crt=ca-bundle.crt \
    --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
}

secret_key() {  # secret_key KEY FILE: write the CA Secret's KEY to FILE
  "$KUBECTL" -n "$NAMESPACE" get secret "$CA_SECRET" -o "jsonpath={.data.${1//./\\.}}" | base64 -d > "$2"
}

if "$KUBECTL" -n "$NAMESPACE" get secret "$CA_SECRET" >/dev/null 2>&1; then
  secret_key tls.crt ca.crt
  secret_key tls.key ca.key
  secret_key ca-bundle.crt ca-bundle.crt
  [ -s ca-bundle.crt ] || cp ca.crt ca-bundle.crt
  case "$mode" in
    rotate-ca)
      cp ca-bundle.crt old-bundle.crt
      new_ca
      cat old-bundle.crt ca.crt > ca-bundle.crt
      echo "new CA made; the caBundle trusts the old and the new CA until --drop-old-cas" >&2
      echo "next: rerun $0 without options to issue the serving certificate from the new CA" >&2
      ;;
    drop-old-cas)
      cp ca.crt ca-bundle.crt
      ;;
  esac
  if [ "$mode" != renew ]; then
    store_ca
  fi
else
  if [ "$mode" != renew ]; then
    echo "no CA Secret $NAMESPACE/$CA_SECRET: run without options first" >&2
    exit 1
  fi
  new_ca
  cp ca.crt ca-bundle.crt
  store_ca
  echo "CA stored in secret $NAMESPACE/$CA_SECRET" >&2
fi

if ! openssl x509 -in ca.crt -noout -checkend $((DAYS * 86400)) >/dev/null; then
  echo "warning: the CA expires within $DAYS days ($(openssl x509 -in ca.crt -noout -enddate));" \
    "rotate it with $0 --rotate-ca" >&2
fi

# Trust first: the caBundle never lacks the CA of a certificate that is being served.
# At a first install the configuration does not exist yet: hack/install.sh creates it last, with the
# caBundle taken from the CA Secret's ca-bundle.crt.
ca_bundle=$(base64 < ca-bundle.crt | tr -d '\n')
if "$KUBECTL" get mutatingwebhookconfiguration "$WEBHOOK_CONFIG" >/dev/null 2>&1; then
  "$KUBECTL" patch mutatingwebhookconfiguration "$WEBHOOK_CONFIG" --type=json \
    -p "[{\"op\":\"add\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"$ca_bundle\"}]" >/dev/null
  bundle_note="caBundle set on $WEBHOOK_CONFIG"
else
  bundle_note="no MutatingWebhookConfiguration $WEBHOOK_CONFIG yet: create it with the caBundle from secret $NAMESPACE/$CA_SECRET (key ca-bundle.crt)"
  [ "$mode" = renew ] || { echo "$bundle_note" >&2; exit 0; }
fi
case "$mode" in
  drop-old-cas) echo "caBundle on $WEBHOOK_CONFIG now trusts only the current CA" >&2; exit 0 ;;
  rotate-ca) echo "caBundle on $WEBHOOK_CONFIG now trusts the old and the new CA" >&2; exit 0 ;;
esac

printf 'subjectAltName=DNS:%s.%s.svc,DNS:%s.%s.svc.cluster.local\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' \
  "$SERVICE" "$NAMESPACE" "$SERVICE" "$NAMESPACE" > server.ext
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout tls.key -out tls.csr \
  -subj "/CN=$SERVICE.$NAMESPACE.svc" 2>/dev/null
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
  -days "$DAYS" -extfile server.ext -out tls.crt 2>/dev/null

"$KUBECTL" -n "$NAMESPACE" create secret tls "$SECRET" --cert=tls.crt --key=tls.key \
  --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
echo "certificate for $SERVICE.$NAMESPACE.svc stored in secret $NAMESPACE/$SECRET; $bundle_note" >&2
