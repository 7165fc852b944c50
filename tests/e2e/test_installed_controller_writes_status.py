"""The installed controller (deploy/'s Deployment, two replicas) on the node cluster: it becomes
ready, one replica holds the Lease, and it writes the status of a preset whose pods really run."""

from __future__ import annotations

import pytest

from .conftest import NAMESPACE, TEST_IMAGE, Cluster, create_preset, kubectl, kubectl_output
from .controller import LEASE, create_workload, status_of, workload
from .rest import Kube, eventually


@pytest.fixture
def cluster(kubelet_cluster: Cluster) -> Cluster:
    return kubelet_cluster


def test_the_installed_controller_leads_with_one_replica_and_writes_status(
    cluster: Cluster, admin: Kube, namespace: str
) -> None:
    kubectl(
        cluster, "-n", NAMESPACE, "rollout", "status", "deployment/podpreset-controller", "--timeout=180s"
    )
    pods = admin.get(
        f"/api/v1/namespaces/{NAMESPACE}/pods", labelSelector="app.kubernetes.io/component=controller"
    )["items"]
    names = {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}
    assert len(names) == 2, names
    holder = eventually(
        "a controller replica to hold the Lease",
        lambda: (
            admin.get(LEASE)["spec"].get("holderIdentity") in names
            and admin.get(LEASE)["spec"]["holderIdentity"]
        ),
        timeout=60,
    )
    assert holder in names

    create_preset(
        admin,
        namespace,
        "cluster-status",
        {"selector": {"matchLabels": {"app": "status"}}, "env": [{"name": "FROM_PRESET", "value": "yes"}]},
    )
    body = workload("Deployment", "status", {"app": "status"})
    body["spec"]["replicas"] = 2
    body["spec"]["template"]["spec"]["containers"] = [
        {"name": "app", "image": TEST_IMAGE, "command": ["sleep", "3600"]}
    ]
    create_workload(admin, namespace, body)
    path = f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets/cluster-status"
    status = eventually(
        "the controller to count the Deployment and its two injected pods",
        lambda: (
            (s := status_of(admin, path)).get("injectedPods") == 2 and s.get("matchedWorkloads") == 1 and s
        ),
        timeout=120,
    )
    assert status["conditions"][0]["reason"] == "Accepted"
    row = kubectl_output(cluster, "-n", namespace, "get", "pp", "cluster-status", "--no-headers")
    assert row.split()[:5] == ["cluster-status", '{"app":"status"}', "1", "2", "0"], row
