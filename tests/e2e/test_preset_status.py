"""The presets' status as ``podpreset controller`` writes it, against the real API server: what
``kubectl get pp`` and ``kubectl get cpp`` show, why a preset is not valid, and that a status write
is no preset change for the webhook. The controller runs with deploy/'s ServiceAccount and RBAC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import (
    Cluster,
    create_pod,
    create_preset,
    kubectl_output,
    label_namespace,
    pod_body,
    wait_for_pods_to,
)
from .controller import (
    FAST_ELECTION,
    LocalController,
    controller_kubeconfig,
    create_workload,
    status_of,
    workload,
)
from .rest import Kube, eventually

pytestmark = pytest.mark.local_only


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
