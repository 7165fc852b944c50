"""``podpreset controller`` against the real API server: leader election on its Lease."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import NAMESPACE, Cluster
from .controller import FAST_ELECTION, LocalController
from .rest import eventually

LEASE = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/podpreset-controller"

pytestmark = pytest.mark.local_only


def holder(cluster: Cluster) -> str:
    return str(cluster.admin.get(LEASE)["spec"].get("holderIdentity") or "")


@pytest.fixture
def controllers(cluster: Cluster, tmp_path: Path) -> Iterator[list[LocalController]]:
    assert cluster.plane is not None
    kubeconfig = cluster.plane.kubeconfig(tmp_path / "admin.kubeconfig")
    started = [LocalController(tmp_path, kubeconfig, name, *FAST_ELECTION) for name in ("c1", "c2")]
    try:
        for controller in started:
            controller.start()
        yield started
    finally:
        for controller in started:
            controller.stop()


def test_of_two_controllers_exactly_one_holds_the_lease_and_leads(
    cluster: Cluster, controllers: list[LocalController]
) -> None:
    leader_name = eventually("a controller to hold the Lease", lambda: holder(cluster))
    assert leader_name in ("c1", "c2")
    by_name = {c.identity: c for c in controllers}
    eventually(
        "the holder to report itself leader",
        lambda: by_name[leader_name].metric("podpreset_controller_leader") == 1,
    )
    other = by_name["c2" if leader_name == "c1" else "c1"]
    assert other.metric("podpreset_controller_leader") == 0


def test_when_the_leader_is_killed_the_other_takes_over(
    cluster: Cluster, controllers: list[LocalController]
) -> None:
    first = eventually("a controller to hold the Lease", lambda: holder(cluster))
    by_name = {c.identity: c for c in controllers}
    transitions = cluster.admin.get(LEASE)["spec"].get("leaseTransitions", 0)
    by_name[first].kill()
    second = "c2" if first == "c1" else "c1"
    eventually("the other controller to take the Lease over", lambda: holder(cluster) == second, timeout=30)
    eventually("it to lead", lambda: by_name[second].metric("podpreset_controller_leader") == 1)
    assert cluster.admin.get(LEASE)["spec"]["leaseTransitions"] == transitions + 1


def test_a_leader_stopped_with_sigterm_gives_the_lease_up(
    cluster: Cluster, controllers: list[LocalController]
) -> None:
    first = eventually("a controller to hold the Lease", lambda: holder(cluster))
    by_name = {c.identity: c for c in controllers}
    by_name[first].stop()
    assert "released lease podpreset-controller" in by_name[first].log()
    second = "c2" if first == "c1" else "c1"
    eventually("the other controller to take the Lease over", lambda: holder(cluster) == second, timeout=30)
