"""``podpreset controller`` against the real API server: leader election on its Lease, and the
presets' status (what ``kubectl get pp`` and ``kubectl get cpp`` show), each controller process run
with deploy/'s ServiceAccount and RBAC for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import (
    NAMESPACE,
    Cluster,
    create_pod,
    create_preset,
    kubectl_output,
    label_namespace,
    pod_body,
    service_account_token,
    wait_for_pods_to,
)
from .controller import FAST_ELECTION, LocalController
from .rest import Kube, eventually

LEASE = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/podpreset-controller"

pytestmark = pytest.mark.local_only


def controller_kubeconfig(cluster: Cluster, tmp_path: Path) -> Path:
    """A kubeconfig with a token of deploy/'s podpreset-controller ServiceAccount."""
    assert cluster.plane is not None
    token = service_account_token(cluster.admin, "podpreset-controller")
    return cluster.plane.kubeconfig(tmp_path / "controller.kubeconfig", user={"token": token})


def holder(cluster: Cluster) -> str:
    return str(cluster.admin.get(LEASE)["spec"].get("holderIdentity") or "")


@pytest.fixture
def controllers(cluster: Cluster, tmp_path: Path) -> Iterator[list[LocalController]]:
    kubeconfig = controller_kubeconfig(cluster, tmp_path)
    started = [LocalController(tmp_path, kubeconfig, name, *FAST_ELECTION) for name in ("c1", "c2")]
    try:
        for controller in started:
            controller.start()
        yield started
    finally:
        for controller in started:
            controller.stop()


def status_writes(controller: LocalController) -> float:
    """Status patches this process sent (whatever their answer)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in controller.get("/metrics").splitlines()
        if line.startswith("podpreset_controller_api_requests_total{")
        and 'resource="podpresets/status"' in line
    )


def test_of_two_controllers_exactly_one_holds_the_lease_and_acts(
    cluster: Cluster, controllers: list[LocalController], namespace: str
) -> None:
    leader_name = eventually("a controller to hold the Lease", lambda: holder(cluster))
    assert leader_name in ("c1", "c2")
    by_name = {c.identity: c for c in controllers}
    leader, other = by_name[leader_name], by_name["c2" if leader_name == "c1" else "c1"]
    eventually(
        "the holder to report itself leader", lambda: leader.metric("podpreset_controller_leader") == 1
    )
    create_preset(cluster.admin, namespace, "elected", {"env": [{"name": "A", "value": "1"}]})
    path = f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets/elected"
    eventually(
        "the leader to write the new preset's status", lambda: status_of(cluster.admin, path), timeout=60
    )
    assert status_writes(leader) >= 1
    assert other.metric("podpreset_controller_leader") == 0
    assert status_writes(other) == 0
    assert other.metric("podpreset_controller_status_rounds_total") == 0


def test_when_the_leader_is_killed_the_other_takes_over_and_acts(
    cluster: Cluster, controllers: list[LocalController], namespace: str
) -> None:
    first = eventually("a controller to hold the Lease", lambda: holder(cluster))
    by_name = {c.identity: c for c in controllers}
    transitions = cluster.admin.get(LEASE)["spec"].get("leaseTransitions", 0)
    by_name[first].kill()
    second = "c2" if first == "c1" else "c1"
    eventually("the other controller to take the Lease over", lambda: holder(cluster) == second, timeout=30)
    eventually("it to lead", lambda: by_name[second].metric("podpreset_controller_leader") == 1)
    assert cluster.admin.get(LEASE)["spec"]["leaseTransitions"] == transitions + 1
    create_preset(cluster.admin, namespace, "after-takeover", {"env": [{"name": "A", "value": "1"}]})
    path = f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets/after-takeover"
    eventually("the new leader to write the status", lambda: status_of(cluster.admin, path), timeout=60)


def test_a_leader_stopped_with_sigterm_gives_the_lease_up(
    cluster: Cluster, controllers: list[LocalController]
) -> None:
    first = eventually("a controller to hold the Lease", lambda: holder(cluster))
    by_name = {c.identity: c for c in controllers}
    by_name[first].stop()
    assert "released lease podpreset-controller" in by_name[first].log()
    second = "c2" if first == "c1" else "c1"
    eventually("the other controller to take the Lease over", lambda: holder(cluster) == second, timeout=30)


def workload(kind: str, name: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> dict:
    template = {
        "metadata": {"labels": labels, **({"annotations": annotations} if annotations else {})},
        "spec": {
            "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
            **({"restartPolicy": "Never"} if kind in ("Job", "CronJob") else {}),
        },
    }
    group = "batch/v1" if kind in ("Job", "CronJob") else "apps/v1"
    spec: dict = {"template": template}
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        spec["selector"] = {"matchLabels": labels}
    if kind == "StatefulSet":
        spec["serviceName"] = name
    if kind == "CronJob":
        spec = {"schedule": "0 0 * * *", "jobTemplate": {"spec": {"template": template}}}
    return {"apiVersion": group, "kind": kind, "metadata": {"name": name}, "spec": spec}


def create_workload(admin: Kube, namespace: str, body: dict) -> None:
    group = body["apiVersion"]
    plural = body["kind"].lower() + "s"
    admin.create(f"/apis/{group}/namespaces/{namespace}/{plural}", body)


def status_of(admin: Kube, path: str) -> dict:
    return dict(admin.get(path).get("status") or {})


@pytest.fixture
def status_controller(cluster: Cluster, tmp_path: Path) -> Iterator[LocalController]:
    controller = LocalController(
        tmp_path,
        controller_kubeconfig(cluster, tmp_path),
        "status",
        *FAST_ELECTION,
        "--status-interval",
        "0.5",
    )
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def test_status_counts_matched_workloads_injected_pods_and_conflicts(
    cluster: Cluster, admin: Kube, namespace: str, status_controller: LocalController
) -> None:
    create_preset(
        admin,
        namespace,
        "web",
        {"selector": {"matchLabels": {"app": "web"}}, "env": [{"name": "LOG_LEVEL", "value": "info"}]},
    )
    for kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"):
        create_workload(admin, namespace, workload(kind, f"web-{kind.lower()}", {"app": "web"}))
    create_workload(admin, namespace, workload("Deployment", "other", {"app": "other"}))
    create_workload(
        admin,
        namespace,
        workload(
            "Deployment", "opted-out", {"app": "web"}, {"podpreset.admission.kubernetes.io/exclude": "true"}
        ),
    )
    for i in range(3):
        create_pod(admin, namespace, pod_body(f"web-{i}", labels={"app": "web"}))
    create_pod(admin, namespace, pod_body("plain", labels={"app": "other"}))
    create_pod(
        admin,
        namespace,
        pod_body(
            "clash",
            labels={"app": "web"},
            containers=[
                {
                    "name": "app",
                    "image": "registry.k8s.io/pause:3.10",
                    "env": [{"name": "LOG_LEVEL", "value": "debug"}],
                }
            ],
        ),
    )
    path = f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets/web"
    status = eventually(
        "the controller to write web's status",
        lambda: (s := status_of(admin, path)).get("conflicts") == 1 and s.get("injectedPods") == 3 and s,
        timeout=60,
    )
    assert status["matchedWorkloads"] == 5, status
    assert status["observedGeneration"] == admin.get(path)["metadata"]["generation"]
    (condition,) = status["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == ("Valid", "True", "Accepted")
    assert status["lastConflict"]["pod"] == "clash"
    assert status["lastConflict"]["field"] == "container 'app': env 'LOG_LEVEL'"
    table = kubectl_output(cluster, "-n", namespace, "get", "pp")
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "SELECTOR", "MATCHED", "INJECTED", "CONFLICTS", "AGE"], table
    assert row.split()[:5] == ["web", '{"app":"web"}', "5", "3", "1"], table


def test_status_says_why_the_webhook_leaves_a_preset_out(
    admin: Kube, namespace: str, status_controller: LocalController
) -> None:
    create_preset(
        admin,
        namespace,
        "preload",
        {"env": [{"name": "LD_PRELOAD", "value": "/x.so"}]},
    )
    create_preset(
        admin,
        namespace,
        "host",
        {"volumes": [{"name": "h", "hostPath": {"path": "/etc"}}]},
    )
    base = f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets"
    for name, reason, words in (
        ("preload", "ProtectedEnvName", "LD_PRELOAD"),
        ("host", "RefusedVolumeType", "hostPath"),
    ):
        condition = eventually(
            f"{name}'s Valid condition",
            lambda name=name: (status_of(admin, f"{base}/{name}").get("conditions") or [None])[0],
            timeout=60,
        )
        assert (condition["status"], condition["reason"]) == ("False", reason), condition
        assert words in condition["message"], condition


def test_cluster_preset_status_counts_across_namespaces_and_follows_edits(
    cluster: Cluster, admin: Kube, namespaces, status_controller: LocalController, cluster_presets
) -> None:
    first = namespaces.create("cpp-a", {"team": "blue"})
    second = namespaces.create("cpp-b", {"team": "blue"})
    outside = namespaces.create("cpp-c", {"team": "red"})
    name = "status-blue"
    cluster_presets.create(
        name,
        {
            "namespaceSelector": {"matchLabels": {"team": "blue"}},
            "selector": {"matchLabels": {"tier": "api"}},
            "env": [{"name": "TEAM", "value": "blue"}],
        },
    )
    for ns in (first, second, outside):
        create_workload(admin, ns, workload("Deployment", "api", {"tier": "api"}))
    path = f"/apis/podpreset.dev/v1/clusterpodpresets/{name}"
    eventually(
        "the cluster preset's status to count two workloads",
        lambda: status_of(admin, path).get("matchedWorkloads") == 2,
        timeout=60,
    )
    label_namespace(admin, outside, {"team": "blue"})
    eventually(
        "a relabelled namespace to count",
        lambda: status_of(admin, path).get("matchedWorkloads") == 3,
        timeout=60,
    )
    table = kubectl_output(cluster, "get", "cpp", name)
    header = table.splitlines()[0]
    assert "MATCHED" in header.split() and "INJECTED" in header.split(), table
    generation = admin.get(path)["metadata"]["generation"]
    admin.request(
        "PATCH",
        path,
        {"spec": {"selector": {"matchLabels": {"tier": "none"}}}},
        content_type="application/merge-patch+json",
    )
    status = eventually(
        "the edit to be observed",
        lambda: (s := status_of(admin, path)).get("observedGeneration") == generation + 1 and s,
        timeout=60,
    )
    assert status["matchedWorkloads"] == 0


def test_a_status_write_does_not_change_what_the_webhook_applies(
    admin: Kube, namespace: str, status_controller: LocalController
) -> None:
    created = create_preset(
        admin,
        namespace,
        "steady",
        {"selector": {"matchLabels": {"app": "steady"}}, "env": [{"name": "A", "value": "1"}]},
    )
    path = f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets/steady"
    eventually("the controller to write the status", lambda: status_of(admin, path), timeout=60)
    stored = admin.get(path)
    assert stored["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    assert stored["metadata"]["generation"] == created["metadata"]["generation"]
    key = "podpreset.admission.kubernetes.io/podpreset-steady"
    wait_for_pods_to(
        admin,
        namespace,
        pod_body("probe", labels={"app": "steady"}),
        "the webhook to know the preset",
        lambda p: key in (p["metadata"].get("annotations") or {}),
    )
    create_pod(admin, namespace, pod_body("steady-1", labels={"app": "steady"}))
    pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/steady-1")
    # The webhook kept the preset it parsed at creation: the status write is no preset change.
    assert (
        pod["metadata"]["annotations"]["podpreset.admission.kubernetes.io/podpreset-steady"]
        == (created["metadata"]["resourceVersion"])
    )
    eventually("the pod to be counted", lambda: status_of(admin, path).get("injectedPods") == 1, timeout=60)
