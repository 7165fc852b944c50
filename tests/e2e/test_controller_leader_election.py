"""Two ``podpreset controller`` processes against the real API server, each with deploy/'s
ServiceAccount and RBAC: one holds the Lease and acts, the other takes over when it goes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Cluster, create_preset
from .controller import FAST_ELECTION, LEASE, LocalController, controller_kubeconfig, status_of
from .rest import eventually

pytestmark = pytest.mark.local_only


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
