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
import json, os, socket, ssl, sys, time
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
# A new pod's address reaches the policy enforcer's sets a moment after the pod starts: with
# RETRY_8080 set, a refused metrics port is tried again until then (each other target once).
retry_until = time.monotonic() + float(os.environ.get("RETRY_8080", "0"))
def attempt(target):
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
        return "answered " + reply.split(b"\r\n", 1)[0].decode()
    except OSError as exc:
        return "blocked " + type(exc).__name__
for target in sys.argv[2:]:
    results[target] = attempt(target)
    retry = target.endswith(":8080")
    while retry and results[target].startswith("blocked") and time.monotonic() < retry_until:
        time.sleep(1)
        results[target] = attempt(target)
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


def intrude(
    admin: Kube, namespace: str, name: str, targets: list[str], retry_metrics: int = 0
) -> dict[str, str]:
    """What a pod of ``namespace`` gets when it sends a made-up review to each host:port (in
    order); a refused metrics port is tried again for up to ``retry_metrics`` seconds."""
    pod = python_pod(name, INTRUDER, namespace, *targets, restartPolicy="Never")
    pod["spec"]["containers"][0]["env"] = [{"name": "RETRY_8080", "value": str(retry_metrics)}]
    create_pod(admin, namespace, pod)

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
    # The metrics ports first: once they answer, the enforcer knows the scraper pod, and the TLS
    # ports refused after that are refused by the policy, not by a pod still unknown to it.
    results = intrude(admin, scraper, "scraper", [*metrics, *tls], retry_metrics=60)
    for target in metrics:
        assert results[target].startswith("answered HTTP/1.") and " 200 " in results[target], results
    for target in tls:
        assert results[target].startswith("blocked "), results

    # Meanwhile the API server's admissions are answered: a pod is created with the preset.
    create_pod(admin, ns, pod_body("admitted"))
    pod = admin.get(f"/api/v1/namespaces/{ns}/pods/admitted")
    assert key in annotations_of(pod)
    assert env_of(pod["spec"]["containers"][0]) == {"TOKEN": "only-for-my-pods"}
