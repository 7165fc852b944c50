"""Scenarios that only a real cluster shows: the webhook running from deploy/ as pods, behind its
Service, with a kubelet running the pods it mutates (issue 10, scenarios 1-8).

They run in cluster mode (``make e2e-cluster``, ``make e2e-kind``) and read every result back from
the cluster: pod status, container output through the kubelet, EndpointSlices, the certificate a
replica serves, ``kubectl`` output. Locally (``make e2e``: no kubelet) they are skipped.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509

from .conftest import (
    ANNOTATION_PREFIX,
    NAMESPACE,
    TEST_IMAGE,
    TOP,
    Cluster,
    annotations_of,
    create_pod,
    create_preset,
    kubectl,
    kubectl_output,
    pod_body,
    pod_webhook_config,
    wait_for_pods_to,
)
from .rest import Kube, eventually

WEBHOOK = "app.kubernetes.io/component=webhook"
SERVICE_DNS = f"podpreset-webhook.{NAMESPACE}.svc"
SERVICE_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:podpreset"
# Pods of the load generator never need to run: admission is what is measured.
NOWHERE = {"podpreset.dev/e2e": "no-such-node"}
KUBECTL = ("kubectl", "--kubeconfig")
WRITE_TO_ROOT = ("python3", "-c", "open('/probe', 'w')")
OTHER_CA_COMMAND = (
    *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
    *("-keyout", "/dev/null", "-subj", "/CN=not-the-webhook-ca", "-days", "1"),
)


@pytest.fixture
def cluster(kubelet_cluster: Cluster) -> Cluster:
    return kubelet_cluster


# Helpers.


def webhook_pods(admin: Kube) -> list[dict[str, Any]]:
    pods = admin.get(f"/api/v1/namespaces/{NAMESPACE}/pods", labelSelector=WEBHOOK)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or ()
    )


def rolled_out(cluster: Cluster) -> None:
    kubectl(cluster, "-n", NAMESPACE, "rollout", "status", "deployment/podpreset-webhook", "--timeout=240s")


def exec_in(cluster: Cluster, namespace: str, pod: str, *command: str, check: bool = True) -> str:
    return kubectl_output(cluster, "-n", namespace, "exec", pod, "--", *command, check=check)


@contextlib.contextmanager
def port_forward(cluster: Cluster, target: str, port: int) -> Iterator[int]:
    """``kubectl port-forward`` to ``target`` (pod/NAME or svc/NAME) in the webhook's namespace."""
    process = subprocess.Popen(
        [
            "kubectl",
            "--kubeconfig",
            str(cluster.admin.kubeconfig),
            "-n",
            NAMESPACE,
            "port-forward",
            target,
            f":{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert found, f"kubectl port-forward {target}: {line!r}"
        yield int(found.group(1))
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def served_certificate(port: int) -> x509.Certificate:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=SERVICE_DNS) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der
    return x509.load_der_x509_certificate(der)


def secret_certificate(admin: Kube, name: str, key: str = "tls.crt") -> bytes:
    secret = admin.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{name}")
    return base64.b64decode(secret["data"][key])


def get_http(port: int, path: str) -> str:
    """``GET path`` in plain HTTP (the health and metrics port); the body of a 200."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], head
    return body.decode()


def get_https(port: int, path: str, ca_pem: str, status: int = 200) -> str:
    ctx = ssl.create_default_context(cadata=ca_pem)
    ctx.check_hostname = True
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=SERVICE_DNS) as tls,
    ):
        tls.sendall(f"GET {path} HTTP/1.0\r\nHost: {SERVICE_DNS}\r\n\r\n".encode())
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and f" {status} ".encode() in head.split(b"\r\n")[0], head
    return body.decode()


def ca_bundle(admin: Kube) -> str:
    config = admin.get("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/podpreset")
    return base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"]).decode()


def preset_for_load(admin: Kube, namespace: str) -> str:
    create_preset(
        admin,
        namespace,
        "load",
        {"selector": {"matchLabels": {"load": "yes"}}, "env": [{"name": "LOADED", "value": "1"}]},
    )
    key = ANNOTATION_PREFIX + "load"
    wait_for_pods_to(
        admin,
        namespace,
        pod_body("probe", labels={"load": "yes"}),
        "the webhook to know the load preset",
        lambda p: key in annotations_of(p),
    )
    return key


class Load:
    """Creates pods that match the ``load`` preset, ``rate`` a second, until stopped (bounded)."""

    def __init__(self, admin: Kube, namespace: str, rate: float = 4.0, limit: int = 600) -> None:
        self.admin, self.namespace, self.rate, self.limit = admin, namespace, rate, limit
        self.created: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.created) < self.limit:
            started = time.monotonic()
            body = pod_body(generate_name="load-", labels={"load": "yes"}, nodeSelector=NOWHERE)
            try:
                reply = create_pod(self.admin, self.namespace, body)
                self.created.append(reply.body["metadata"]["name"])
            except (AssertionError, OSError) as exc:
                self.errors.append(str(exc))
            self._stop.wait(max(0.0, 1.0 / self.rate - (time.monotonic() - started)))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def unmutated(self, key: str) -> list[str]:
        """Created pods, read back from the API server, that lack the preset's annotation or env."""
        pods = self.admin.get(f"/api/v1/namespaces/{self.namespace}/pods", labelSelector="load=yes")["items"]
        by_name = {p["metadata"]["name"]: p for p in pods}
        missing = [name for name in self.created if name not in by_name]
        assert not missing, f"created pods not found: {missing}"
        return [
            name
            for name in self.created
            if key not in annotations_of(by_name[name])
            or {"name": "LOADED", "value": "1"}
            not in (by_name[name]["spec"]["containers"][0].get("env") or ())
        ]


def pod_log(admin: Kube, namespace: str, name: str, container: str | None = None) -> str:
    params = {"container": container} if container else None
    reply = admin.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}/log", params=params)
    return str(reply.body) if reply.status == 200 else ""


def test_the_webhook_pods_are_ready_as_non_root_on_a_read_only_root_with_in_cluster_config_and_deploys_rbac(
    cluster: Cluster, admin: Kube, namespace: str
) -> None:
    pods = webhook_pods(admin)
    assert len(pods) == 2 and all(ready(p) for p in pods), [p["status"].get("conditions") for p in pods]
    for pod in pods:
        name = pod["metadata"]["name"]
        assert pod["spec"]["serviceAccountName"] == "podpreset"
        status = exec_in(cluster, NAMESPACE, name, "cat", "/proc/1/status")
        uids = re.search(r"^Uid:\s+(.*)$", status, re.M)
        assert uids and uids.group(1).split() == ["65532"] * 4, status
        assert re.search(r"^CapEff:\s+0+$", status, re.M), status
        write = subprocess.run(
            [*KUBECTL, str(admin.kubeconfig), "-n", NAMESPACE, "exec", name, "--", *WRITE_TO_ROOT],
            capture_output=True,
            text=True,
        )
        assert write.returncode != 0 and "Read-only file system" in write.stderr, write.stderr
        # In-cluster configuration: the ServiceAccount token and the API server's Service address.
        env = exec_in(
            cluster,
            NAMESPACE,
            name,
            "python3",
            "-c",
            "import os; print(os.environ['KUBERNETES_SERVICE_HOST'])",
        )
        service = admin.get("/api/v1/namespaces/default/services/kubernetes")
        assert env.strip() == service["spec"]["clusterIP"]
        token = exec_in(
            cluster, NAMESPACE, name, "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"
        )
        assert token.count(".") == 2
    # Those pods read the cluster's presets with that token: a preset created now is applied.
    create_preset(admin, namespace, "seen", {"env": [{"name": "SEEN", "value": "1"}]})
    wait_for_pods_to(
        admin,
        namespace,
        pod_body("probe"),
        "the in-cluster webhook to apply a new preset",
        lambda p: ANNOTATION_PREFIX + "seen" in annotations_of(p),
    )
    # deploy/'s RBAC and nothing more: the account may read presets and create events only.
    for verb, group, resource, allowed in (
        ("list", "podpreset.dev", "podpresets", True),
        ("watch", "podpreset.dev", "podpresets", True),
        ("create", "", "events", True),
        ("list", "", "secrets", False),
        ("list", "", "pods", False),
        ("update", "podpreset.dev", "podpresets", False),
    ):
        review = admin.create(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": SERVICE_ACCOUNT,
                    "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"],
                    "resourceAttributes": {"verb": verb, "group": group, "resource": resource},
                },
            },
        ).body
        assert review["status"].get("allowed", False) is allowed, (verb, resource, review["status"])
    bindings = [
        b["metadata"]["name"]
        for b in admin.get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings")["items"]
        if any(
            s.get("kind") == "ServiceAccount"
            and s.get("name") == "podpreset"
            and s.get("namespace") == NAMESPACE
            for s in b.get("subjects") or ()
        )
    ]
    assert bindings == ["podpreset-webhook"]


def test_the_api_server_calls_the_webhook_through_its_service_verifying_the_bootstrap_certificate(
    cluster: Cluster, admin: Kube, namespace: str
) -> None:
    config = admin.get("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/podpreset")
    client = config["webhooks"][0]["clientConfig"]
    assert "url" not in client and client["service"]["name"] == "podpreset-webhook"
    bundle = ca_bundle(admin)
    assert (
        bundle.strip() == secret_certificate(admin, "podpreset-webhook-ca", "ca-bundle.crt").decode().strip()
    )
    serving = x509.load_pem_x509_certificate(secret_certificate(admin, "podpreset-webhook-tls"))
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert SERVICE_DNS in names.get_values_for_type(x509.DNSName)

    # What the API server does, from here: the Service's certificate verifies against the caBundle
    # for the Service's DNS name (and not for another name).
    with port_forward(cluster, "svc/podpreset-webhook", 443) as port:
        # The TLS port serves /mutate only: metrics and probes are on the plain-HTTP port.
        assert "only POST /mutate" in get_https(port, "/metrics", bundle, status=404)
        ctx = ssl.create_default_context(cadata=bundle)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            ctx.wrap_socket(raw, server_hostname=f"other.{NAMESPACE}.svc")

    create_preset(admin, namespace, "svc", {"env": [{"name": "VIA", "value": "service"}]})
    mutated = wait_for_pods_to(
        admin,
        namespace,
        pod_body("probe"),
        "the preset",
        lambda p: ANNOTATION_PREFIX + "svc" in annotations_of(p),
    )
    assert {"name": "VIA", "value": "service"} in mutated["spec"]["containers"][0]["env"]
    create_pod(admin, namespace, pod_body("via-service", nodeSelector=NOWHERE))
    eventually(
        "a webhook replica to log the decision on the pod",
        lambda: any(
            "via-service" in pod_log(admin, NAMESPACE, p["metadata"]["name"])
            and namespace in pod_log(admin, NAMESPACE, p["metadata"]["name"])
            for p in webhook_pods(admin)
        ),
    )

    # The same Service with a CA that did not sign its certificate: the API server refuses the TLS.
    other_ca = subprocess.run(
        OTHER_CA_COMMAND,
        capture_output=True,
        check=True,
    ).stdout
    name = f"zz-e2e-wrong-ca-{namespace}"
    service = {"name": "podpreset-webhook", "namespace": NAMESPACE, "path": "/mutate"}
    admin.create(
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        pod_webhook_config(
            name,
            "wrong-ca.e2e.podpreset.dev",
            namespace,
            {"service": service, "caBundle": base64.b64encode(other_ca).decode()},
        ),
    )
    try:

        def refused() -> str | None:
            reply = admin.request(
                "POST", f"/api/v1/namespaces/{namespace}/pods", pod_body(generate_name="x-")
            )
            return reply.message if reply.status >= 400 else None

        message = eventually("the API server to refuse the pod", refused)
        assert "x509" in message or "certificate" in message, message
    finally:
        admin.delete(f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}")


def test_a_deployments_running_pods_see_the_injected_env_and_downward_api_file(
    cluster: Cluster, admin: Kube, namespace: str
) -> None:
    admin.create(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config"},
            "data": {"COLOR": "blue"},
        },
    )
    admin.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            "stringData": {"password": "s3cret"},
        },
    )
    create_preset(
        admin,
        namespace,
        "app-defaults",
        {
            "selector": {"matchLabels": {"app": "presetted"}},
            "env": [
                {"name": "GREETING", "value": "hello"},
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                {"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
            "envFrom": [{"configMapRef": {"name": "app-config"}}],
            "volumes": [
                {
                    "name": "podinfo",
                    "downwardAPI": {
                        "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
                    },
                }
            ],
            "volumeMounts": [{"name": "podinfo", "mountPath": "/etc/podinfo", "readOnly": True}],
        },
    )
    wait_for_pods_to(
        admin,
        namespace,
        pod_body("probe", labels={"app": "presetted"}),
        "the preset",
        lambda p: ANNOTATION_PREFIX + "app-defaults" in annotations_of(p),
    )
    script = "env | sort; echo '--- labels'; cat /etc/podinfo/labels; echo; echo '--- end'; exec sleep 3600"
    admin.create(
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "presetted"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "presetted"}},
                "template": {
                    "metadata": {"labels": {"app": "presetted", "tier": "demo"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "app", "image": TEST_IMAGE, "command": ["sh", "-c", script]}],
                    },
                },
            },
        },
    )
    kubectl(cluster, "-n", namespace, "rollout", "status", "deployment/presetted", "--timeout=120s")
    (pod,) = admin.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector="app=presetted")["items"]
    name = pod["metadata"]["name"]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    assert ANNOTATION_PREFIX + "app-defaults" in annotations_of(pod)

    def finished_output() -> str | None:
        text = pod_log(admin, namespace, name)
        return text if "--- end" in text else None

    output = eventually("the container's output", finished_output)
    lines = output.splitlines()
    for expected in ("GREETING=hello", "DB_PASSWORD=s3cret", f"MY_POD={name}", "COLOR=blue"):
        assert expected in lines, (expected, output)
    labels = output.split("--- labels", 1)[1]
    assert 'app="presetted"' in labels and 'tier="demo"' in labels, output
    # The same file read inside the running container.
    assert 'app="presetted"' in exec_in(cluster, namespace, name, "cat", "/etc/podinfo/labels")


def test_a_preset_toleration_lets_a_pod_onto_a_tainted_node_where_the_same_pod_without_it_stays_pending(
    cluster: Cluster, admin: Kube, namespace: str
) -> None:
    taint = "podpreset.dev/e2e-dedicated"
    create_preset(
        admin,
        namespace,
        "tolerate",
        {
            "selector": {"matchLabels": {"tolerant": "yes"}},
            "tolerations": [{"key": taint, "operator": "Equal", "value": "presets", "effect": "NoSchedule"}],
        },
    )
    wait_for_pods_to(
        admin,
        namespace,
        pod_body("probe", labels={"tolerant": "yes"}),
        "the preset",
        lambda p: ANNOTATION_PREFIX + "tolerate" in annotations_of(p),
    )
    nodes = [n["metadata"]["name"] for n in admin.get("/api/v1/nodes")["items"]]
    for node in nodes:
        kubectl(cluster, "taint", "node", node, f"{taint}=presets:NoSchedule", "--overwrite")
    try:
        container = {"name": "app", "image": TEST_IMAGE, "command": ["sleep", "3600"]}
        create_pod(
            admin,
            namespace,
            pod_body(
                "with-preset",
                labels={"tolerant": "yes"},
                containers=[container],
                terminationGracePeriodSeconds=1,
            ),
        )
        create_pod(
            admin,
            namespace,
            pod_body("without-preset", containers=[container], terminationGracePeriodSeconds=1),
        )

        def phase(name: str) -> str:
            return str(admin.get(f"/api/v1/namespaces/{namespace}/pods/{name}")["status"].get("phase"))

        eventually("the tolerating pod to run", lambda: phase("with-preset") == "Running", timeout=90)

        def unschedulable() -> dict[str, Any] | None:
            pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/without-preset")
            return next(
                (
                    c
                    for c in pod["status"].get("conditions") or ()
                    if c["type"] == "PodScheduled"
                    and c["status"] == "False"
                    and c.get("reason") == "Unschedulable"
                ),
                None,
            )

        condition = eventually(
            "the scheduler to refuse the pod without the preset", unschedulable, timeout=60
        )
        assert "taint" in condition.get("message", ""), condition
        pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/without-preset")
        assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
        assert not any(t.get("key") == taint for t in pod["spec"].get("tolerations") or ())
    finally:
        for node in nodes:
            kubectl(cluster, "taint", "node", node, f"{taint}=presets:NoSchedule-")


def test_a_rolling_restart_under_load_and_a_forced_replica_deletion_leave_no_pod_unmutated(
    cluster: Cluster, admin: Kube, namespace: str
) -> None:
    key = preset_for_load(admin, namespace)
    rolled_out(cluster)
    before = {p["metadata"]["name"] for p in webhook_pods(admin)}
    with Load(admin, namespace) as load:
        time.sleep(2)
        kubectl(cluster, "-n", NAMESPACE, "rollout", "restart", "deployment/podpreset-webhook")
        rolled_out(cluster)
        time.sleep(2)
    after = {p["metadata"]["name"] for p in webhook_pods(admin)}
    assert not before & after, "the rollout replaced every replica"
    assert not load.errors, load.errors[:3]
    assert len(load.created) >= 20, len(load.created)
    unmutated = load.unmutated(key)
    print(f"rolling restart: {len(load.created)} pods created under load, {len(unmutated)} unmutated")
    assert unmutated == [], (
        f"{len(unmutated)} of {len(load.created)} pods created during the rollout unmutated"
    )

    with Load(admin, namespace) as forced:
        time.sleep(2)
        victim = sorted(after)[0]
        kubectl(cluster, "-n", NAMESPACE, "delete", "pod", victim, "--grace-period=0", "--force")
        rolled_out(cluster)
        eventually(
            "two ready replicas again",
            lambda: len([p for p in webhook_pods(admin) if ready(p)]) == 2,
            timeout=120,
        )
        time.sleep(2)
    assert not forced.errors, forced.errors[:3]
    unmutated = forced.unmutated(key)
    print(f"forced deletion: {len(forced.created)} pods created under load, {len(unmutated)} unmutated")
    assert unmutated == [], (
        f"{len(unmutated)} of {len(forced.created)} pods created around a forced deletion unmutated"
    )


def test_certificate_renewal_keeps_admitting_and_the_new_certificate_is_served_within_the_secret_refresh(
    cluster: Cluster, admin: Kube, namespace: str
) -> None:
    key = preset_for_load(admin, namespace)
    old = x509.load_pem_x509_certificate(secret_certificate(admin, "podpreset-webhook-tls"))
    old_bundle = ca_bundle(admin)
    with Load(admin, namespace) as load:
        time.sleep(1)
        subprocess.run(
            [str(TOP / "hack" / "bootstrap-certs.sh")],
            check=True,
            env={**os.environ, "KUBECONFIG": str(admin.kubeconfig)},
        )
        renewed = time.monotonic()
        new = x509.load_pem_x509_certificate(secret_certificate(admin, "podpreset-webhook-tls"))
        assert new.serial_number != old.serial_number
        assert ca_bundle(admin) == old_bundle, "a renewal keeps the CA"
        served: dict[str, float] = {}
        for pod in webhook_pods(admin):
            name = pod["metadata"]["name"]

            def serves_new(name: str = name) -> bool:
                with port_forward(cluster, f"pod/{name}", 8443) as port:
                    return served_certificate(port).serial_number == new.serial_number

            eventually(f"{name} to serve the renewed certificate", serves_new, timeout=120, interval=2)
            served[name] = time.monotonic() - renewed
        time.sleep(1)
    print(f"certificate renewal: served after {', '.join(f'{s:.0f} s' for s in served.values())}")
    # The kubelet refreshes a mounted Secret within its sync period plus its cache's delay (about a
    # minute by default); the server re-reads its files within seconds after that.
    assert max(served.values()) < 120
    assert not load.errors, load.errors[:3]
    unmutated = load.unmutated(key)
    assert unmutated == [], (
        f"{len(unmutated)} of {len(load.created)} pods created during the renewal unmutated"
    )
    create_pod(admin, namespace, pod_body("after-renewal", labels={"load": "yes"}, nodeSelector=NOWHERE))
    assert key in annotations_of(admin.get(f"/api/v1/namespaces/{namespace}/pods/after-renewal"))


def test_on_sigterm_a_replica_leaves_the_endpoints_drains_and_exits_well_inside_its_grace_period(
    cluster: Cluster, admin: Kube, namespace: str
) -> None:
    key = preset_for_load(admin, namespace)
    rolled_out(cluster)
    victim = sorted(webhook_pods(admin), key=lambda p: p["metadata"]["name"])[0]
    name, ip = victim["metadata"]["name"], victim["status"]["podIP"]
    grace = victim["spec"]["terminationGracePeriodSeconds"]
    events: list[tuple[float, dict[str, Any]]] = []

    def watch() -> None:
        for event in admin.watch(
            f"/api/v1/namespaces/{NAMESPACE}/pods", timeout=grace + 30, fieldSelector=f"metadata.name={name}"
        ):
            events.append((time.monotonic(), event))
            if event["type"] == "DELETED":
                return

    def endpoint_ready() -> bool | None:
        slices = admin.get(
            f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices",
            labelSelector="kubernetes.io/service-name=podpreset-webhook",
        )["items"]
        for s in slices:
            for endpoint in s.get("endpoints") or ():
                if ip in endpoint["addresses"]:
                    return bool(endpoint.get("conditions", {}).get("ready"))
        return None

    assert endpoint_ready() is True
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(0.5)
    with Load(admin, namespace) as load:
        time.sleep(2)
        deleted = time.monotonic()
        admin.delete(f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")
        eventually(
            "the replica to leave the Service's ready endpoints",
            lambda: endpoint_ready() is not True,
            timeout=10,
            interval=0.1,
        )
        left = time.monotonic() - deleted
        watcher.join(grace + 30)
        rolled_out(cluster)
        time.sleep(2)
    assert not watcher.is_alive(), "the pod was not deleted within its grace period"
    gone = events[-1][0] - deleted
    terminated = [
        s["state"]["terminated"]
        for _, e in events
        for s in e["object"].get("status", {}).get("containerStatuses") or ()
        if s["name"] == "webhook" and "terminated" in s.get("state", {})
    ]
    assert terminated, [e["type"] for _, e in events]
    code = terminated[-1]["exitCode"]
    print(
        f"SIGTERM: out of the endpoints after {left:.1f} s, exited with {code}, pod gone after {gone:.1f} s"
    )
    assert terminated[-1]["exitCode"] == 0, terminated[-1]
    assert gone < grace / 2, f"the replica took {gone:.1f} s of its {grace} s grace period"
    assert not load.errors, load.errors[:3]
    unmutated = load.unmutated(key)
    assert unmutated == [], (
        f"{len(unmutated)} of {len(load.created)} pods created while a replica drained unmutated"
    )


def test_kubectl_shows_presets_conflict_events_and_metrics_as_deploy_readme_says(
    cluster: Cluster, admin: Kube, namespace: str
) -> None:
    create_preset(
        admin,
        namespace,
        "logging",
        {"selector": {"matchLabels": {"app": "web"}}, "env": [{"name": "LOG_LEVEL", "value": "info"}]},
    )
    wait_for_pods_to(
        admin,
        namespace,
        pod_body("probe", labels={"app": "web"}),
        "the preset",
        lambda p: ANNOTATION_PREFIX + "logging" in annotations_of(p),
    )
    table = kubectl_output(cluster, "-n", namespace, "get", "podpresets")
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "SELECTOR", "MATCHED", "INJECTED", "CONFLICTS", "AGE"], table
    assert row.split()[:2] == ["logging", '{"app":"web"}'], table
    assert "logging" in kubectl_output(cluster, "get", "pp", "-A")

    container = {
        "name": "app",
        "image": TEST_IMAGE,
        "command": ["sleep", "3600"],
        "env": [{"name": "LOG_LEVEL", "value": "debug"}],
    }
    create_pod(
        admin,
        namespace,
        pod_body("web-1", labels={"app": "web"}, containers=[container], nodeSelector=NOWHERE),
    )

    # deploy/README.md: the conflict Event, with the pod it concerns and the preset and field.
    # (`kubectl describe pod` does not list it: the webhook records it during admission, before the
    # pod has a UID, and describe matches Events by UID; deploy/README.md says so.)
    def conflict_listed() -> str | None:
        text = kubectl_output(
            cluster, "get", "events", "-n", namespace, "--field-selector", "reason=PodPresetConflict"
        )
        return text if "pod/web-1" in text else None

    text = eventually("the conflict Event in kubectl get events", conflict_listed)
    line = next(line for line in text.splitlines() if "pod/web-1" in line)
    assert line.split()[1:4] == ["Warning", "PodPresetConflict", "pod/web-1"], text
    assert "'logging'" in line and "'LOG_LEVEL'" in line, line
    assert "debug" not in line and "info" not in line, "values never appear in Events"

    totals: dict[str, float] = {}
    outcomes: dict[str, float] = {}
    for pod in webhook_pods(admin):
        with port_forward(cluster, f"pod/{pod['metadata']['name']}", 8080) as port:
            metrics = get_http(port, "/metrics")
        assert re.search(r"^podpreset_source_synced 1\.0$", metrics, re.M), metrics
        assert re.search(r"^podpreset_presets_loaded [1-9]", metrics, re.M), metrics
        for found in re.finditer(
            r'^podpreset_conflicts_total\{namespace="([^"]+)",preset="([^"]+)"\} (\S+)$', metrics, re.M
        ):
            if found.group(1) == namespace:
                totals[found.group(2)] = totals.get(found.group(2), 0.0) + float(found.group(3))
        for found in re.finditer(r'^podpreset_admissions_total\{outcome="(\w+)"\} (\S+)$', metrics, re.M):
            outcomes[found.group(1)] = outcomes.get(found.group(1), 0.0) + float(found.group(2))
    # Across the replicas: this test's conflict once, and the dry-run probe's mutation at least.
    assert totals == {"logging": 1.0}, totals
    assert outcomes["conflict"] >= 1 and outcomes["mutated"] >= 1, outcomes
