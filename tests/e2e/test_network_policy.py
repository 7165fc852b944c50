"""deploy/'s NetworkPolicy in a cluster that enforces it (issue 16): a pod that makes up an
AdmissionReview and sends it to the webhook gets no connection, nor to its metrics port, while the
API server's own calls keep being answered and a namespace labelled as a metrics reader scrapes.
make e2e-cluster runs kube-router's network-policy controller for this (hack/cluster.sh); the
policy comes from deploy/base as hack/install.sh applied it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import (
    ANNOTATION_PREFIX,
    NAMESPACE,
    Cluster,
    Namespaces,
    annotations_of,
    create_pod,
    create_preset,
    env_of,
    pod_body,
    wait_for_pods_to,
)
from .rest import Kube, eventually
from .test_in_cluster_deployment import ready, webhook_pods

WEBHOOK_IMAGE = "docker.io/library/podpreset:dev"
"""The webhook's own image: it has Python, so the intruder can speak TLS and HTTP."""
PYTHON = "/opt/podpreset/bin/python"

INTRUDER = r"""
import json, socket, ssl, sys
review = json.dumps({
    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
    "request": {
        "uid": "made-up", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": sys.argv[1], "operation": "CREATE", "userInfo": {"username": "nobody"},
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                   "spec": {"containers": [{"name": "c", "image": "i"}]}},
    },
}).encode()
ctx = ssl.create_default_context()
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
results = {}
for target in sys.argv[2:]:
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            if port in ("443", "8443"):
                raw = ctx.wrap_socket(raw)
            if port == "8080":
                raw.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            else:
                path = "/mutate" if port in ("443", "8443") else "/"
                head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                head += f"Connection: close\r\nContent-Length: {len(review)}\r\n\r\n"
                raw.sendall(head.encode() + review)
            reply = b""
            while chunk := raw.recv(65536):
                reply += chunk
        results[target] = "answered " + reply.split(b"\r\n", 1)[0].decode()
    except OSError as exc:
        results[target] = "blocked " + type(exc).__name__
print(json.dumps(results))
"""

LISTENER = (
    "import http.server as h\n"
    "class H(h.BaseHTTPRequestHandler):\n"
    "    def do_POST(self):\n"
    "        self.rfile.read(int(self.headers['Content-Length']))\n"
    "        self.send_response(200); self.end_headers()\n"
    "h.HTTPServer(('', 8000), H).serve_forever()\n"
)


@pytest.fixture
def cluster(kubelet_cluster: Cluster) -> Cluster:
    return kubelet_cluster


def python_pod(name: str, *args: str, **spec: Any) -> dict[str, Any]:
    return pod_body(
        name,
        labels={"app": name},
        containers=[{"name": name, "image": WEBHOOK_IMAGE, "command": [PYTHON, "-c", *args]}],
        **spec,
    )


def pod_ip(admin: Kube, namespace: str, name: str) -> str:
    def running() -> str | None:
        pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        return str(pod["status"]["podIP"]) if ready(pod) and pod["status"].get("podIP") else None

    found: str = eventually(f"pod {name} to be ready", running, timeout=120)
    return found


def intrude(admin: Kube, namespace: str, name: str, targets: list[str]) -> dict[str, str]:
    """What a pod of ``namespace`` gets when it sends a made-up review to each host:port."""
    create_pod(admin, namespace, python_pod(name, INTRUDER, namespace, *targets, restartPolicy="Never"))

    def finished() -> dict[str, str] | None:
        pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        if pod["status"].get("phase") not in ("Succeeded", "Failed"):
            return None
        reply = admin.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}/log")
        assert pod["status"]["phase"] == "Succeeded", reply.body
        # The log is one line of JSON, which the client has already decoded.
        body = (
            reply.body
            if isinstance(reply.body, dict)
            else json.loads(str(reply.body).strip().splitlines()[-1])
        )
        return dict(body)

    results: dict[str, str] = eventually(f"pod {name} to finish", finished, timeout=180)
    return results


def test_a_made_up_admission_review_from_a_pod_gets_no_connection_while_the_api_servers_calls_work(
    admin: Kube, namespaces: Namespaces
) -> None:
    ns = namespaces.create("intruder")
    create_preset(admin, ns, "secret-ish", {"env": [{"name": "TOKEN", "value": "only-for-my-pods"}]})
    key = ANNOTATION_PREFIX + "secret-ish"
    wait_for_pods_to(admin, ns, pod_body("probe"), "the preset", lambda p: key in annotations_of(p))

    # The policy is in the cluster as deploy/base has it.
    policy = admin.get(f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/networkpolicies/podpreset-webhook")
    assert [r["ports"][0]["port"] for r in policy["spec"]["ingress"]] == ["https", "metrics"]

    # A listener in the intruder's namespace shows that its network works at all.
    create_pod(admin, ns, python_pod("listener", LISTENER))
    control = f"{pod_ip(admin, ns, 'listener')}:8000"
    service = admin.get(f"/api/v1/namespaces/{NAMESPACE}/services/podpreset-webhook")["spec"]["clusterIP"]
    addresses = [p["status"]["podIP"] for p in webhook_pods(admin)]
    assert len(addresses) == 2
    tls = [f"{service}:443", *(f"{a}:8443" for a in addresses)]
    metrics = [f"{a}:8080" for a in addresses]

    results = intrude(admin, ns, "intruder", [control, *tls, *metrics])

    assert results[control] == "answered HTTP/1.0 200 OK", results
    for target in (*tls, *metrics):
        assert results[target].startswith("blocked "), results

    # A namespace labelled as a metrics reader scrapes every replica, and still cannot send reviews.
    scraper = namespaces.create("scraper", {"podpreset.dev/metrics-reader": "true"})
    results = intrude(admin, scraper, "scraper", [*tls, *metrics])
    for target in metrics:
        assert results[target].startswith("answered HTTP/1.") and " 200 " in results[target], results
    for target in tls:
        assert results[target].startswith("blocked "), results

    # Meanwhile the API server's admissions are answered: a pod is created with the preset.
    create_pod(admin, ns, pod_body("admitted"))
    pod = admin.get(f"/api/v1/namespaces/{ns}/pods/admitted")
    assert key in annotations_of(pod)
    assert env_of(pod["spec"]["containers"][0]) == {"TOKEN": "only-for-my-pods"}
