"""End-to-end fixtures: a real kube-apiserver + etcd, the CRD and RBAC from deploy/, and the webhook.

Local mode (the default; ``make e2e`` and ``make test``): etcd and kube-apiserver from
``$KUBEBUILDER_ASSETS`` on 127.0.0.1; the CRD, namespace and RBAC applied from ``deploy/``;
``podpreset serve`` as a local process watching the cluster with a ServiceAccount token bound
only to deploy/'s ClusterRole; a MutatingWebhookConfiguration taken from deploy/ with its
clientConfig rewritten to the local URL and caBundle.

Cluster mode (``PODPRESET_E2E_KUBECONFIG`` set; ``hack/e2e-cluster.sh`` and ``hack/e2e-kind.sh``):
the cluster already runs deploy/ with the webhook in it, installed by ``hack/install.sh``; the same
scenarios run against it, plus those that need a kubelet (``cluster_only``). Optional variables:
``PODPRESET_E2E_TEST_IMAGE`` (the image of pods that run a shell), ``PODPRESET_E2E_RESTART_APISERVER``
(a command that restarts the API server), ``PODPRESET_E2E_LOG_DIR`` (component logs to attach to a
failure), ``PODPRESET_E2E_HOST_ADDRESS`` (where the API server reaches webhooks the tests serve).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import secrets
import shlex
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from .controlplane import ControlPlane, Process, free_port, wait_until
from .rest import Kube, eventually

TOP = Path(__file__).resolve().parents[2]
DEPLOY = TOP / "deploy"
NAMESPACE = "podpreset-system"
ANNOTATION_PREFIX = "podpreset.admission.kubernetes.io/podpreset-"
CLUSTER_ANNOTATION_PREFIX = "podpreset.admission.kubernetes.io/clusterpodpreset-"
KIND_KUBECONFIG = os.environ.get("PODPRESET_E2E_KUBECONFIG")
HOST_ADDRESS = os.environ.get("PODPRESET_E2E_HOST_ADDRESS", "127.0.0.1")
"""Where the API server reaches webhooks the tests run (kind: the Docker network's gateway)."""
TEST_IMAGE = os.environ.get("PODPRESET_E2E_TEST_IMAGE", "docker.io/library/busybox:1.36")
"""An image with a POSIX shell, for pods whose output the cluster-only scenarios read back."""
RESTART_APISERVER = os.environ.get("PODPRESET_E2E_RESTART_APISERVER")
HELM_RELEASE = os.environ.get("PODPRESET_E2E_HELM_RELEASE")
"""Set by make e2e-cluster's Helm phase, once the webhook runs from the chart's release of this name."""
LOG_DIR = os.environ.get("PODPRESET_E2E_LOG_DIR")

pytestmark = pytest.mark.e2e


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the suite e2e, and deselect (not skip) what the current mode cannot run at all.

    Locally (``make test``, ``make e2e``) there is no kubelet: the scenarios that need pods to run
    are deselected, and ``make e2e-cluster`` runs them. In cluster mode (``make e2e-cluster``,
    ``make e2e-kind``) the scenarios that start a webhook process of their own beside the local
    control plane are deselected, and ``make test`` runs them. So every scenario runs in one of
    the two, and neither shows a skip. The Helm release's scenarios (``helm_release``) run only
    in ``make e2e-cluster``'s Helm phase, which sets ``PODPRESET_E2E_HELM_RELEASE``.
    """
    kept, dropped = [], []
    for item in items:
        if "tests/e2e" not in str(item.path):
            kept.append(item)
            continue
        item.add_marker(pytest.mark.e2e)
        needs_kubelet = "kubelet_cluster" in getattr(item, "fixturenames", ())
        local_only = item.get_closest_marker("local_only") is not None
        helm_release = item.get_closest_marker("helm_release") is not None
        (
            dropped
            if (needs_kubelet and not KIND_KUBECONFIG)
            or (local_only and KIND_KUBECONFIG)
            or (helm_release and not HELM_RELEASE)
            else kept
        ).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    # Files run in name order, except those that disturb the session's cluster (and then leave it
    # working again): they run after every other scenario, in this order.
    kept.sort(key=lambda item: RUN_LAST.index(item.path.name) if item.path.name in RUN_LAST else -1)
    items[:] = kept


RUN_LAST = ("test_install_order.py", "test_restarts_of_webhook_and_api_server.py")
"""The scenarios that reinstall the webhook, and restart it and the API server. The reinstall comes
first: right after an API server restart, kube-proxy's watch may still be backing off, so a
Service whose endpoints just changed refuses connections for some seconds (docs/operations.md,
"Known issues"), which is not what the install-order scenario is about."""


def manifests(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


class LocalWebhook:
    """``podpreset serve`` as a child process on 127.0.0.1."""

    def __init__(
        self,
        workdir: Path,
        kubeconfig: Path,
        cert: Path,
        key: Path,
        ca_pem: bytes,
        *,
        extra_args: tuple[str, ...] = (),
        port: int | None = None,
    ) -> None:
        self.workdir, self.kubeconfig, self.cert, self.key = workdir, kubeconfig, cert, key
        self.port = port or free_port()
        self.health_port = free_port()
        self.url = f"https://127.0.0.1:{self.port}/mutate"
        self.ca_pem = ca_pem
        podpreset = Path(sys.executable).parent / "podpreset"
        command = [str(podpreset)] if podpreset.exists() else [sys.executable, "-m", "webhook.cli"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("KUBECONFIG", None)
        self.process = Process(
            "podpreset serve",
            [
                *command,
                "serve",
                "--kubeconfig",
                str(kubeconfig),
                "--tls-cert",
                str(cert),
                "--tls-key",
                str(key),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--health-bind",
                f"127.0.0.1:{self.health_port}",
                "--workers",
                "2",
                *extra_args,
            ],
            workdir / "webhook.log",
            env=env,
        )

    def start(self) -> None:
        self.process.start()
        wait_until("the webhook's /readyz", self.ready, process=self.process)

    def stop(self) -> None:
        self.process.stop()

    def another(self, workdir: Path, kubeconfig: Path | None = None, *extra_args: str) -> LocalWebhook:
        """A second ``podpreset serve`` like this one (default settings), not registered with the
        API server: for tests that stop it or cut its connections."""
        return LocalWebhook(
            workdir, kubeconfig or self.kubeconfig, self.cert, self.key, self.ca_pem, extra_args=extra_args
        )

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem.decode())

    def get(self, path: str) -> bytes:
        """``GET path`` on the plain-HTTP health port (``/healthz``, ``/readyz``, ``/metrics``)."""
        url = f"http://127.0.0.1:{self.health_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return bytes(response.read())

    def readyz(self) -> tuple[int, Any]:
        """``/readyz``'s status and JSON body."""
        url = f"http://127.0.0.1:{self.health_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())

    def ready(self) -> bool:
        try:
            return self.readyz()[0] == 200
        except OSError:
            return False


class Cluster:
    """What the scenarios need: an admin client, and ways to break things."""

    def __init__(self, admin: Kube, logs: list[Path]) -> None:
        self.admin = admin
        self.logs = logs
        self.plane: ControlPlane | None = None
        self.webhook: LocalWebhook | None = None
        self.ca: trustme.CA | None = None

    @property
    def local(self) -> bool:
        return self.plane is not None

    def stop_webhook(self) -> None:
        if self.webhook is not None:
            self.webhook.stop()
            return
        scale_installed(self, "webhook", 0)

    def start_webhook(self) -> None:
        if self.webhook is not None:
            self.webhook.start()
        else:
            scale_installed(self, "webhook", 2)

    @property
    def can_restart_apiserver(self) -> bool:
        return self.plane is not None or bool(RESTART_APISERVER)

    def restart_apiserver(self) -> None:
        if self.plane is not None:
            self.plane.restart_apiserver()
            return
        assert RESTART_APISERVER, "no way to restart this cluster's API server"
        subprocess.run(shlex.split(RESTART_APISERVER), check=True)


def kubectl(cluster: Cluster, *args: str) -> None:
    subprocess.run(["kubectl", "--kubeconfig", str(cluster.admin.kubeconfig), *args], check=True)


def scale_installed(cluster: Cluster, component: str, replicas: int) -> None:
    """Scale deploy/'s ``podpreset-COMPONENT`` Deployment to REPLICAS, then wait until its pods are
    gone (none) or its rollout is done."""
    deployment = f"deployment/podpreset-{component}"
    kubectl(cluster, "-n", NAMESPACE, "scale", deployment, f"--replicas={replicas}")
    if replicas:
        kubectl(cluster, "-n", NAMESPACE, "rollout", "status", deployment, "--timeout=180s")
        return
    eventually(
        f"the installed {component}'s pods to be gone",
        lambda: (
            not cluster.admin.get(
                f"/api/v1/namespaces/{NAMESPACE}/pods",
                labelSelector=f"app.kubernetes.io/component={component}",
            )["items"]
        ),
        timeout=120,
    )


def kubectl_output(cluster: Cluster, *args: str, check: bool = True) -> str:
    """What kubectl prints on stdout (stderr is passed through)."""
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(cluster.admin.kubeconfig), *args],
        check=check,
        stdout=subprocess.PIPE,
        text=True,
    )
    return done.stdout


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if KIND_KUBECONFIG:
        logs = sorted(Path(LOG_DIR).glob("*.log")) if LOG_DIR else []
        yield Cluster(Kube(Path(KIND_KUBECONFIG)), logs)
        return
    workdir = tmp_path_factory.mktemp("cluster")
    plane = ControlPlane(workdir)
    logs = [workdir / "apiserver.log", workdir / "etcd.log", workdir / "webhook.log"]
    try:
        plane.start()
        admin = Kube(plane.kubeconfig(workdir / "admin.kubeconfig"))
        c = Cluster(admin, logs)
        c.plane = plane
        install(admin)
        token = service_account_token(admin)
        kubeconfig = plane.kubeconfig(workdir / "webhook.kubeconfig", user={"token": token})
        c.ca = trustme.CA()
        serving = c.ca.issue_cert("127.0.0.1", "localhost")
        cert, key = workdir / "webhook.crt", workdir / "webhook.key"
        serving.cert_chain_pems[0].write_to_path(str(cert))
        serving.private_key_pem.write_to_path(str(key))
        c.webhook = LocalWebhook(workdir, kubeconfig, cert, key, c.ca.cert_pem.bytes())
        c.webhook.start()
        register(admin, c.webhook.url, c.ca.cert_pem.bytes())
        wait_for_registration(admin)
        yield c
    finally:
        for process in (getattr(locals().get("c"), "webhook", None),):
            if process is not None:
                process.stop()
        plane.stop()
        if os.environ.get("PODPRESET_E2E_KEEP"):
            print(f"\ne2e logs kept in {workdir}", file=sys.stderr)


CRDS = ("podpresets", "clusterpodpresets")


def install(admin: Kube) -> None:
    """The CRDs, the namespace and the RBAC rules, exactly as deploy/ has them."""
    for plural in CRDS:
        for doc in manifests(DEPLOY / "crd" / f"{plural}.podpreset.dev.yaml"):
            admin.apply_manifest(doc)
    for plural in CRDS:
        eventually(
            f"the {plural} CRD to be established",
            lambda plural=plural: any(
                c["type"] == "Established" and c["status"] == "True"
                for c in admin.get(
                    f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.podpreset.dev"
                )
                .get("status", {})
                .get("conditions")
                or ()
            ),
        )
        eventually(
            f"the {plural} resource to be served",
            lambda plural=plural: admin.get(f"/apis/podpreset.dev/v1/{plural}"),
        )
    for name in ("namespace.yaml", "rbac.yaml", "rbac-users.yaml", "controller-rbac.yaml"):
        for doc in manifests(DEPLOY / "base" / name):
            doc.setdefault("metadata", {})
            if doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
                doc["metadata"].setdefault("namespace", NAMESPACE)
            admin.apply_manifest(doc)


def service_account_token(admin: Kube, account: str = "podpreset") -> str:
    """A token for one of deploy/'s ServiceAccounts (the webhook's by default): a process run with
    it has exactly that account's RBAC."""
    reply = admin.create(
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{account}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 86400},
        },
    )
    return str(reply.body["status"]["token"])


def webhook_configuration(url: str, ca_pem: bytes) -> dict[str, Any]:
    """deploy/'s MutatingWebhookConfiguration, pointed at a URL instead of the in-cluster Service."""
    (doc,) = manifests(DEPLOY / "base" / "mutatingwebhookconfiguration.yaml")
    for hook in doc["webhooks"]:
        hook["clientConfig"] = {"url": url, "caBundle": base64.b64encode(ca_pem).decode()}
    return doc


def register(admin: Kube, url: str, ca_pem: bytes) -> None:
    admin.apply_manifest(webhook_configuration(url, ca_pem))


NORMAL_BOUND = 2.0
"""Seconds within which a preset created, changed or deleted applies to the next pod (docs/operations.md)."""
RECOVERY_BOUND = 10.0
"""The same after an API server restart or a dropped watch, counted from when the API server serves again."""

MARKER_NAMESPACE = "e2e-marker"


def wait_for_registration(admin: Kube) -> None:
    """Registration is asynchronous: poll a dry-run pod until the webhook's mutation shows."""
    ensure_namespace(admin, MARKER_NAMESPACE)
    create_preset(
        admin,
        MARKER_NAMESPACE,
        "marker",
        {"selector": {"matchLabels": {"marker": "yes"}}, "env": [{"name": "MARKER", "value": "1"}]},
    )
    eventually(
        "the webhook to mutate a dry-run marker pod",
        lambda: (
            ANNOTATION_PREFIX + "marker"
            in (
                dry_run_pod(admin, MARKER_NAMESPACE, pod_body("marker", labels={"marker": "yes"}))[
                    "metadata"
                ].get("annotations", {})
            )
        ),
        timeout=60,
    )


# Object helpers the scenarios share.


def ensure_namespace(admin: Kube, name: str) -> None:
    reply = admin.request(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    assert reply.status in (201, 409), reply


def label_namespace(admin: Kube, name: str, labels: dict[str, str | None]) -> None:
    """Set (or, with None, remove) labels of a namespace, as ``kubectl label`` does."""
    reply = admin.request(
        "PATCH",
        f"/api/v1/namespaces/{name}",
        {"metadata": {"labels": labels}},
        content_type="application/merge-patch+json",
    )
    assert reply.status == 200, reply


def new_namespace(cluster: Cluster, stem: str, labels: dict[str, str | None] | None = None) -> str:
    """A fresh namespace named after ``stem``, with ``labels``."""
    name = f"e2e-{stem}-{secrets.token_hex(3)}"
    ensure_namespace(cluster.admin, name)
    if labels:
        label_namespace(cluster.admin, name, labels)
    if not cluster.local:
        eventually(
            "the default ServiceAccount",
            lambda: cluster.admin.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        )
    return name


class ClusterPresets:
    """Creates ClusterPodPresets for one test and deletes them after it (they reach every namespace)."""

    def __init__(self, admin: Kube) -> None:
        self.admin = admin
        self.names: list[str] = []

    def create(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = self.admin.create(
            "/apis/podpreset.dev/v1/clusterpodpresets",
            {
                "apiVersion": "podpreset.dev/v1",
                "kind": "ClusterPodPreset",
                "metadata": {"name": name},
                "spec": spec,
            },
        ).body
        self.names.append(name)
        return body

    def delete_all(self) -> None:
        for name in self.names:
            self.admin.delete(f"/apis/podpreset.dev/v1/clusterpodpresets/{name}")


@pytest.fixture
def cluster_presets(cluster: Cluster) -> Iterator[ClusterPresets]:
    presets = ClusterPresets(cluster.admin)
    yield presets
    presets.delete_all()


class Namespaces:
    """Namespaces a test makes beside its ``namespace``; in cluster mode deleted after it, so that
    the kubelet stops their pods (locally namespaces never finish deleting: no controllers)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.names: list[str] = []

    def create(self, stem: str, labels: dict[str, str | None] | None = None) -> str:
        name = new_namespace(self.cluster, stem, labels)
        self.names.append(name)
        return name

    def delete_all(self) -> None:
        if not self.cluster.local:
            for name in self.names:
                self.cluster.admin.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def namespaces(cluster: Cluster) -> Iterator[Namespaces]:
    made = Namespaces(cluster)
    yield made
    made.delete_all()


def pod_body(
    name: str | None = None,
    *,
    generate_name: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if name:
        metadata["name"] = name
    if generate_name:
        metadata["generateName"] = generate_name
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": containers or [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
            **spec,
        },
    }


def create_pod(admin: Kube, namespace: str, pod: dict[str, Any], *, dry_run: bool = False) -> Any:
    return admin.create(f"/api/v1/namespaces/{namespace}/pods", pod, dry_run=dry_run)


def dry_run_pod(admin: Kube, namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = create_pod(admin, namespace, copy.deepcopy(pod), dry_run=True).body
    return body


def create_preset(admin: Kube, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = admin.create(
        f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets",
        {
            "apiVersion": "podpreset.dev/v1",
            "kind": "PodPreset",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        },
    ).body
    return body


def edit_preset(admin: Kube, namespace: str, name: str, **changes: Any) -> None:
    """Replace a PodPreset's labels (``labels=``) or spec fields (any other keyword)."""
    path = f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets/{name}"
    current = admin.get(path)
    for key, value in changes.items():
        if key == "labels":
            current["metadata"]["labels"] = value
        else:
            current["spec"][key] = value
    reply = admin.request("PUT", path, current)
    assert reply.status == 200, reply


def pod_webhook_config(
    name: str, webhook: str, namespace: str, client_config: dict[str, Any], **settings: Any
) -> dict[str, Any]:
    """A MutatingWebhookConfiguration NAME with one fail-closed webhook WEBHOOK that the API server
    calls, at CLIENT_CONFIG, for the pods created in NAMESPACE only; SETTINGS add to the webhook."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": webhook,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                **settings,
                "clientConfig": client_config,
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            }
        ],
    }


def rollout_argv(admin: Kube, *args: str) -> list[str]:
    """``podpreset rollout ARGS`` against ADMIN's cluster, as a command line."""
    return [sys.executable, "-m", "webhook.cli", "rollout", "--kubeconfig", str(admin.kubeconfig), *args]


def run_rollout(admin: Kube, *args: str) -> subprocess.CompletedProcess[str]:
    """One ``podpreset rollout ARGS`` pass, its output captured."""
    return subprocess.run(rollout_argv(admin, *args), capture_output=True, text=True, cwd=TOP, timeout=120)


def rollout_passes(admin: Kube, *args: str) -> list[str]:
    """The lines of one successful ``podpreset rollout ARGS`` pass (one per workload it names)."""
    done = run_rollout(admin, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def annotations_of(pod: dict[str, Any]) -> dict[str, str]:
    return dict(pod["metadata"].get("annotations") or {})


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or ()}


def wait_for_pods_to(
    admin: Kube,
    namespace: str,
    pod: dict[str, Any],
    what: str,
    check: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Dry-run ``pod`` until the webhook's answer satisfies ``check`` (its watch is asynchronous)."""

    def answer() -> dict[str, Any] | None:
        mutated = dry_run_pod(admin, namespace, pod)
        return mutated if check(mutated) else None

    result: dict[str, Any] = eventually(what, answer, timeout=timeout)
    return result


@pytest.fixture
def admin(cluster: Cluster) -> Kube:
    return cluster.admin


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test. In cluster mode it is deleted afterwards, so that the kubelet
    stops its pods (locally namespaces never finish deleting: there are no controllers)."""
    stem = "".join(ch if ch.isalnum() else "-" for ch in request.node.name.lower())[:40].strip("-")
    name = f"e2e-{stem}-{secrets.token_hex(3)}"
    ensure_namespace(cluster.admin, name)
    if not cluster.local:
        # With ServiceAccount admission on (kind), pods wait for the namespace's default account.
        eventually(
            "the default ServiceAccount",
            lambda: cluster.admin.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        )
    yield name
    if not cluster.local:
        cluster.admin.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def kubelet_cluster(cluster: Cluster) -> Cluster:
    """The cluster, for scenarios that need pods to run (a kubelet, a scheduler, controllers)."""
    if cluster.local:
        pytest.skip(
            "needs a cluster with a kubelet: make e2e-cluster (or make e2e-kind); "
            "make e2e runs only a kube-apiserver"
        )
    return cluster


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and call.when in ("setup", "call"):
        cluster = item.funcargs.get("cluster") if hasattr(item, "funcargs") else None
        logs = cluster.logs if isinstance(cluster, Cluster) else []
        for log in logs:
            if log.exists():
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-80:])
                report.sections.append((f"log tail: {log.name}", tail))
    return report
