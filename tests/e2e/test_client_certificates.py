"""The API server authenticates itself to the webhook with a client certificate (``--client-ca``).

A control plane of its own: kube-apiserver started with ``--admission-control-config-file``, whose
MutatingAdmissionWebhook configuration names a kubeconfig holding a client certificate and key for
the webhook's ``host:port`` (Kubernetes' "Authenticate apiservers"). The webhook requires a
certificate of that client CA. Pods are mutated through the API server; a client without that
certificate, the API server included when it calls the same webhook by another name (no
kubeconfig entry, so no certificate), is refused in the TLS handshake.
"""

from __future__ import annotations

import base64
import copy
import http.client
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
import yaml

from .conftest import (
    ANNOTATION_PREFIX,
    LocalWebhook,
    create_pod,
    create_preset,
    ensure_namespace,
    env_of,
    install,
    pod_body,
    register,
    service_account_token,
    wait_for_pods_to,
    wait_for_registration,
    webhook_configuration,
)
from .controlplane import ControlPlane, free_port
from .rest import ApiError, Kube, eventually

pytestmark = pytest.mark.local_only


@dataclass
class Authenticated:
    admin: Kube
    webhook: LocalWebhook
    serving_ca: trustme.CA
    apiserver_ca: trustme.CA


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def authenticated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authenticated]:
    workdir = tmp_path_factory.mktemp("client-cert")
    port = free_port()
    apiserver_ca = trustme.CA()
    presented = apiserver_ca.issue_cert("kube-apiserver", common_name="kube-apiserver")
    # The kubeconfig the API server reads for webhook calls: a user per webhook host:port.
    webhook_kubeconfig = workdir / "admission-kubeconfig.yaml"
    webhook_kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "users": [
                    {
                        "name": f"127.0.0.1:{port}",
                        "user": {
                            "client-certificate-data": _b64(presented.cert_chain_pems[0].bytes()),
                            "client-key-data": _b64(presented.private_key_pem.bytes()),
                        },
                    }
                ],
            }
        )
    )
    admission_config = workdir / "admission-config.yaml"
    admission_config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "AdmissionConfiguration",
                "plugins": [
                    {
                        "name": "MutatingAdmissionWebhook",
                        "configuration": {
                            "apiVersion": "apiserver.config.k8s.io/v1",
                            "kind": "WebhookAdmissionConfiguration",
                            "kubeConfigFile": str(webhook_kubeconfig),
                        },
                    }
                ],
            }
        )
    )
    plane = ControlPlane(workdir, apiserver_args=(f"--admission-control-config-file={admission_config}",))
    webhook: LocalWebhook | None = None
    try:
        plane.start()
        admin = Kube(plane.kubeconfig(workdir / "admin.kubeconfig"))
        install(admin)
        kubeconfig = plane.kubeconfig(
            workdir / "webhook.kubeconfig", user={"token": service_account_token(admin)}
        )
        serving_ca = trustme.CA()
        serving = serving_ca.issue_cert("127.0.0.1", "localhost")
        cert, key, client_ca = workdir / "webhook.crt", workdir / "webhook.key", workdir / "client-ca.crt"
        serving.cert_chain_pems[0].write_to_path(str(cert))
        serving.private_key_pem.write_to_path(str(key))
        apiserver_ca.cert_pem.write_to_path(str(client_ca))
        webhook = LocalWebhook(
            workdir,
            kubeconfig,
            cert,
            key,
            serving_ca.cert_pem.bytes(),
            extra_args=("--client-ca", str(client_ca)),
            port=port,
        )
        webhook.start()
        register(admin, webhook.url, serving_ca.cert_pem.bytes())
        wait_for_registration(admin)  # a dry-run pod mutated: the API server's call got through
        yield Authenticated(admin, webhook, serving_ca, apiserver_ca)
    finally:
        if webhook is not None:
            webhook.stop()
        plane.stop()


def test_the_api_server_presents_its_client_certificate_and_pods_are_mutated(
    authenticated: Authenticated,
) -> None:
    admin = authenticated.admin
    ensure_namespace(admin, "mtls")
    create_preset(admin, "mtls", "greeting", {"env": [{"name": "GREETING", "value": "hello"}]})
    wait_for_pods_to(
        admin,
        "mtls",
        pod_body("probe"),
        "the preset",
        lambda p: ANNOTATION_PREFIX + "greeting" in p["metadata"].get("annotations", {}),
    )
    created = create_pod(admin, "mtls", pod_body("web")).body
    assert env_of(created["spec"]["containers"][0]) == {"GREETING": "hello"}
    assert created["metadata"]["annotations"][ANNOTATION_PREFIX + "greeting"]


def _call(authenticated: Authenticated, client_ca: trustme.CA | None) -> int:
    context = ssl.create_default_context()
    authenticated.serving_ca.configure_trust(context)
    if client_ca is not None:
        client_ca.issue_cert("someone").configure_cert(context)
    conn = http.client.HTTPSConnection("127.0.0.1", authenticated.webhook.port, context=context, timeout=10)
    try:
        conn.request("POST", "/mutate", b"{}", {"Content-Type": "application/json"})
        with conn.getresponse() as response:  # on "Connection: close" the response owns the socket
            return response.status
    finally:
        conn.close()


REFUSED = (ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)


def test_a_client_without_the_certificate_is_refused_in_the_tls_handshake(
    authenticated: Authenticated,
) -> None:
    # A client with a certificate of the API server's CA gets an HTTP answer (400: not a review) ...
    assert _call(authenticated, authenticated.apiserver_ca) == 400
    # ... one with none, or with another CA's, never gets to send its request.
    for client_ca in (None, trustme.CA()):
        with pytest.raises(REFUSED):
            _call(authenticated, client_ca)
    with socket.create_connection(("127.0.0.1", authenticated.webhook.health_port), timeout=10):
        pass  # probes and scraping stay on the plain-HTTP port, no certificate needed
    assert authenticated.webhook.readyz()[0] == 200


def test_the_api_server_without_a_kubeconfig_entry_for_the_webhook_is_refused(
    authenticated: Authenticated,
) -> None:
    """The same webhook under another name (localhost), for which the admission kubeconfig has no
    user: the API server calls it without a client certificate and, failing closed, refuses pods."""
    admin = authenticated.admin
    ensure_namespace(admin, "no-client-cert")
    admin.request(
        "PATCH",
        "/api/v1/namespaces/no-client-cert",
        {"metadata": {"labels": {"client-cert-test": "none"}}},
        content_type="application/merge-patch+json",
    )
    doc = webhook_configuration(
        f"https://localhost:{authenticated.webhook.port}/mutate", authenticated.serving_ca.cert_pem.bytes()
    )
    doc = copy.deepcopy(doc)
    doc["metadata"]["name"] = "podpreset-no-client-cert"
    for hook in doc["webhooks"]:
        hook["name"] = "no-client-cert." + hook["name"]
        hook["failurePolicy"] = "Fail"
        hook["namespaceSelector"] = {"matchLabels": {"client-cert-test": "none"}}
    admin.apply_manifest(doc)

    def refused() -> str | None:
        try:
            create_pod(admin, "no-client-cert", pod_body(generate_name="refused-"), dry_run=True)
        except ApiError as exc:
            text = str(exc)
            return text if "failed calling webhook" in text else None
        return None

    try:
        message = eventually("the API server to fail calling the webhook without a certificate", refused)
    finally:
        admin.delete(
            f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{doc['metadata']['name']}"
        )
    assert "no-client-cert." in message
    # Refused in the handshake, not unreachable: the API server reads the alert ("tls: certificate
    # required") or, when the server has already closed, a reset or a closed connection while it
    # writes the request (which of the three depends on timing). The webhook's log below says which
    # handshake failed and why.
    handshake_refusals = ("certificate required", "reset by peer", "use of closed network connection")
    assert any(sign in message for sign in handshake_refusals), message
    assert "connection refused" not in message
    # A worker writes its log lines from a writer thread, a moment after the handshake failed.
    eventually(
        "the webhook to log the refused handshake",
        lambda: (
            "failed: PEER_DID_NOT_RETURN_A_CERTIFICATE"
            in Path(authenticated.webhook.process.log).read_text(errors="replace")
        ),
    )
