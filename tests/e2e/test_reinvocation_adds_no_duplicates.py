"""A later webhook changes the pod; ours runs again and leaves no duplicates."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme

from .conftest import (
    ANNOTATION_PREFIX,
    HOST_ADDRESS,
    Cluster,
    annotations_of,
    create_pod,
    create_preset,
    env_of,
    pod_body,
    pod_webhook_config,
    wait_for_pods_to,
)
from .rest import Kube

SIDECAR = {"name": "sidecar", "image": "registry.k8s.io/pause:3.10"}


class SidecarInjector(BaseHTTPRequestHandler):
    """A tiny mutating webhook: adds a sidecar container when the pod has none (like a mesh would)."""

    calls: list[str]

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = review["request"]
        pod = request["object"]
        patch: list[dict[str, Any]] = []
        if not any(c["name"] == "sidecar" for c in pod["spec"]["containers"]):
            patch.append({"op": "add", "path": "/spec/containers/-", "value": SIDECAR})
        self.server.calls.append(request["uid"])  # type: ignore[attr-defined]
        response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
        if patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        body = json.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def sidecar_webhook(cluster: Cluster, namespace: str, tmp_path: Any) -> Iterator[ThreadingHTTPServer]:
    ca = trustme.CA()
    cert = ca.issue_cert(HOST_ADDRESS)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    server = ThreadingHTTPServer(
        ("0.0.0.0" if HOST_ADDRESS != "127.0.0.1" else "127.0.0.1", 0), SidecarInjector
    )
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.calls = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # Named after ours ("podpreset"): the API server calls webhooks in name order, so it runs second.
    name = f"zz-e2e-sidecar-{namespace}"
    config = pod_webhook_config(
        name,
        "sidecar.e2e.podpreset.dev",
        namespace,
        {
            "url": f"https://{HOST_ADDRESS}:{server.server_address[1]}/",
            "caBundle": base64.b64encode(ca.cert_pem.bytes()).decode(),
        },
        reinvocationPolicy="IfNeeded",
        timeoutSeconds=5,
    )
    cluster.admin.create("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", config)
    try:
        yield server
    finally:
        cluster.admin.delete(f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}")
        server.shutdown()
        server.server_close()


def test_after_a_later_webhook_adds_a_container_ours_runs_again_without_duplicates(
    admin: Kube, namespace: str, sidecar_webhook: ThreadingHTTPServer
) -> None:
    create_preset(
        admin,
        namespace,
        "defaults",
        {
            "selector": {"matchLabels": {"app": "web"}},
            "env": [{"name": "REGION", "value": "eu"}],
            "envFrom": [{"configMapRef": {"name": "settings"}}],
            "volumes": [{"name": "certs", "secret": {"secretName": "certs"}}],
            "volumeMounts": [{"name": "certs", "mountPath": "/certs"}],
            "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
        },
    )
    key = ANNOTATION_PREFIX + "defaults"
    wait_for_pods_to(
        admin,
        namespace,
        pod_body("probe", labels={"app": "web"}),
        "both webhooks to act on a dry-run pod",
        lambda p: key in annotations_of(p) and len(p["spec"]["containers"]) == 2,
    )

    create_pod(admin, namespace, pod_body("web-1", labels={"app": "web"}))
    pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/web-1")

    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert list(containers) == ["app", "sidecar"]
    # The sidecar was added after our first call: it has our env only because we ran again.
    for container in containers.values():
        assert [e["name"] for e in container["env"]] == ["REGION"]
        assert env_of(container) == {"REGION": "eu"}
        assert [e["configMapRef"]["name"] for e in container["envFrom"]] == ["settings"]
        assert [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "certs"] == ["/certs"]
    assert [v["name"] for v in pod["spec"]["volumes"] if v["name"] == "certs"] == ["certs"]
    assert [t for t in pod["spec"]["tolerations"] if t.get("key") == "spot"] == [
        {"key": "spot", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert sidecar_webhook.calls  # type: ignore[attr-defined]
