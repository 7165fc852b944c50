"""Issue 19: ``podpreset rollout`` against a real API server.

Deployments, StatefulSets and DaemonSets are stored without a controller manager, so what a pass
writes is checkable here: at first sight only the workload's own record (its template, and so its
its template untouched); after an edit of a matching preset the template annotation
``podpreset.dev/presets-hash`` (a template change: the workload's controller would roll it) and a
``PodPresetRollout`` Event naming the preset; nothing for an edit that changes nothing for it, for
a workload that did not opt in, or for a ``rollout: Never`` preset. That pods then really roll is
``test_rollout_rolls_running_pods``'s (make e2e-cluster).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    NAMESPACE,
    TOP,
    Cluster,
    Namespaces,
    create_preset,
    edit_preset,
    rollout_argv,
    rollout_passes,
    run_rollout,
)
from .controller import FAST_ELECTION, LocalController
from .rest import Kube, eventually

pytestmark = pytest.mark.local_only

HASH = "podpreset.dev/presets-hash"
STATE = "podpreset.dev/rollout-state"
OPT_IN = {"podpreset.dev/rollout": "true"}
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/podpreset-controller"
PLURALS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}


def workload(
    kind: str, name: str, labels: dict[str, str], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
        },
    }
    if kind != "DaemonSet":
        spec["replicas"] = 1
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": spec,
    }


def create(admin: Kube, namespace: str, obj: dict[str, Any]) -> None:
    admin.create(f"/apis/apps/v1/namespaces/{namespace}/{PLURALS[obj['kind']]}", obj)


def read(admin: Kube, namespace: str, kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = admin.get(f"/apis/apps/v1/namespaces/{namespace}/{PLURALS[kind]}/{name}")
    return found


def template_hash(obj: dict[str, Any]) -> str | None:
    return (obj["spec"]["template"]["metadata"].get("annotations") or {}).get(HASH)


def without_hash(template: dict[str, Any]) -> dict[str, Any]:
    """The template as it was before a roll wrote its annotation."""
    metadata = dict(template["metadata"])
    annotations = {k: v for k, v in (metadata.pop("annotations", None) or {}).items() if k != HASH}
    if annotations:
        metadata["annotations"] = annotations
    return {**template, "metadata": metadata}


def events(admin: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    found = admin.get(f"/api/v1/namespaces/{namespace}/events")["items"]
    return [e for e in found if e["involvedObject"]["name"] == name and e["reason"] == "PodPresetRollout"]


def test_a_preset_edit_rolls_an_opted_in_workload_once_and_nothing_else(admin: Kube, namespace: str) -> None:
    web = {"app": "web"}
    create_preset(
        admin,
        namespace,
        "tuning",
        {"selector": {"matchLabels": web}, "env": [{"name": "WORKERS", "value": "2"}]},
    )
    create_preset(
        admin,
        namespace,
        "db",
        {"selector": {"matchLabels": {"app": "db"}}, "env": [{"name": "DB", "value": "1"}]},
    )
    create(admin, namespace, workload("Deployment", "opted", web, OPT_IN))
    create(admin, namespace, workload("Deployment", "plain", web))
    before = {name: read(admin, namespace, "Deployment", name) for name in ("opted", "plain")}

    # Dry run at first sight: it would only record; nothing is written.
    assert rollout_passes(admin, "-n", namespace, "--dry-run") == [
        f"deployment {namespace}/opted: would record: first sight: its pods were admitted with today's "
        "presets; recorded, not rolled"
    ]
    assert (
        read(admin, namespace, "Deployment", "opted")["metadata"]["resourceVersion"]
        == before["opted"]["metadata"]["resourceVersion"]
    )

    # First sight: recorded in its metadata, the template untouched.
    rollout_passes(admin, "-n", namespace)
    opted = read(admin, namespace, "Deployment", "opted")
    assert STATE in opted["metadata"]["annotations"]
    assert template_hash(opted) is None
    # (A Deployment's generation counts annotation changes too; its controller rolls on template changes.)
    assert opted["spec"]["template"] == before["opted"]["spec"]["template"]
    assert rollout_passes(admin, "-n", namespace) == []

    # Edits that change nothing for it: a preset it does not match, a matching preset's labels.
    edit_preset(admin, namespace, "db", env=[{"name": "DB", "value": "2"}])
    edit_preset(admin, namespace, "tuning", labels={"team": "platform"})
    assert rollout_passes(admin, "-n", namespace, "--dry-run") == []
    assert rollout_passes(admin, "-n", namespace) == []
    assert (
        read(admin, namespace, "Deployment", "opted")["metadata"]["resourceVersion"]
        == opted["metadata"]["resourceVersion"]
    )

    # An edit of what the matching preset injects: the dry run names it and changes nothing...
    edit_preset(admin, namespace, "tuning", env=[{"name": "WORKERS", "value": "8"}])
    line = f"deployment {namespace}/opted: would roll: podpreset tuning changed"
    assert rollout_passes(admin, "-n", namespace, "--dry-run") == [line]
    assert template_hash(read(admin, namespace, "Deployment", "opted")) is None

    # ...and the pass rolls it, exactly once, with an Event naming the preset.
    assert rollout_passes(admin, "-n", namespace) == [
        f"deployment {namespace}/opted: rolled: podpreset tuning changed"
    ]
    rolled = read(admin, namespace, "Deployment", "opted")
    assert template_hash(rolled)
    assert without_hash(rolled["spec"]["template"]) == opted["spec"]["template"]
    assert rollout_passes(admin, "-n", namespace) == []
    assert read(admin, namespace, "Deployment", "opted")["spec"]["template"] == rolled["spec"]["template"]
    (event,) = events(admin, namespace, "opted")
    assert event["type"] == "Normal"
    assert event["involvedObject"]["kind"] == "Deployment"
    assert "podpreset tuning changed" in event["message"]

    # The workload that did not opt in was never written.
    plain = read(admin, namespace, "Deployment", "plain")
    assert plain["metadata"]["resourceVersion"] == before["plain"]["metadata"]["resourceVersion"]


def test_never_presets_and_the_owners_own_template_edits_roll_nothing(admin: Kube, namespace: str) -> None:
    web = {"app": "web"}
    create_preset(
        admin,
        namespace,
        "sidecar-env",
        {"selector": {"matchLabels": web}, "env": [{"name": "S", "value": "1"}], "rollout": "Never"},
    )
    create_preset(
        admin, namespace, "tuning", {"selector": {"matchLabels": web}, "env": [{"name": "W", "value": "1"}]}
    )
    create(admin, namespace, workload("StatefulSet", "store", web, OPT_IN))
    rollout_passes(admin, "-n", namespace)
    recorded = read(admin, namespace, "StatefulSet", "store")

    edit_preset(admin, namespace, "sidecar-env", env=[{"name": "S", "value": "2"}])
    assert rollout_passes(admin, "-n", namespace) == []

    # The owner edits the template and a preset at once: the template change rolls it with today's
    # presets already, so the pass only records.
    recorded["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.k8s.io/pause:3.9"
    reply = admin.request("PUT", f"/apis/apps/v1/namespaces/{namespace}/statefulsets/store", recorded)
    assert reply.status == 200, reply
    edit_preset(admin, namespace, "tuning", env=[{"name": "W", "value": "2"}])
    assert rollout_passes(admin, "-n", namespace) == [
        f"statefulset {namespace}/store: recorded: its pod template changed, so it rolls with today's "
        "presets anyway; recorded"
    ]
    assert template_hash(read(admin, namespace, "StatefulSet", "store")) is None


def test_a_labelled_namespace_opts_every_workload_in_and_the_rate_limit_defers_the_rest(
    admin: Kube, namespaces: Namespaces
) -> None:
    namespace = namespaces.create("rollout-ns", OPT_IN)
    web = {"app": "web"}
    create_preset(
        admin, namespace, "tuning", {"selector": {"matchLabels": web}, "env": [{"name": "W", "value": "1"}]}
    )
    create(admin, namespace, workload("DaemonSet", "agent", web))
    create(admin, namespace, workload("Deployment", "front", web))
    create(admin, namespace, workload("Deployment", "out", web, {"podpreset.dev/rollout": "false"}))
    assert len(rollout_passes(admin, "-n", namespace)) == 2  # recorded: the DaemonSet and "front", not "out"

    edit_preset(admin, namespace, "tuning", env=[{"name": "W", "value": "2"}])
    done = run_rollout(admin, "-n", namespace, "--rollout-per-minute", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"daemonset {namespace}/agent: rolled: podpreset tuning changed",
        f"deployment {namespace}/front: waiting: rate limit (1 a minute); a later pass rolls it: "
        "podpreset tuning changed",
    ]
    assert "2 of 3 workload(s) opted in, 1 rolled, 1 waiting" in done.stderr
    assert template_hash(read(admin, namespace, "DaemonSet", "agent"))
    assert template_hash(read(admin, namespace, "Deployment", "front")) is None
    # The next pass rolls the one that waited; "out" opted out of its namespace's label.
    assert rollout_passes(admin, "-n", namespace) == [
        f"deployment {namespace}/front: rolled: podpreset tuning changed"
    ]
    assert STATE not in (read(admin, namespace, "Deployment", "out")["metadata"].get("annotations") or {})


def test_two_passes_at_once_roll_a_workload_once(admin: Kube, namespace: str) -> None:
    """Leader election keeps a second controller replica idle; should two passes still overlap
    (a replica that led a moment ago), the conditional patch lets exactly one of them roll."""
    web = {"app": "web"}
    create_preset(
        admin, namespace, "tuning", {"selector": {"matchLabels": web}, "env": [{"name": "W", "value": "1"}]}
    )
    for i in range(3):
        create(admin, namespace, workload("Deployment", f"web-{i}", web, OPT_IN))
    rollout_passes(admin, "-n", namespace)
    edit_preset(admin, namespace, "tuning", env=[{"name": "W", "value": "2"}])

    command = rollout_argv(admin, "-n", namespace)
    both = [
        subprocess.Popen(command, cwd=TOP, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in both]
    assert [p.returncode for p in both] == [0, 0], outputs
    rolled = [line for out, _ in outputs for line in out.splitlines() if ": rolled: " in line]
    assert sorted(rolled) == [
        f"deployment {namespace}/web-{i}: rolled: podpreset tuning changed" for i in range(3)
    ]
    for i in range(3):
        assert len(events(admin, namespace, f"web-{i}")) == 1


def deployments_listed(controller: LocalController) -> float:
    """How many times this controller listed Deployments (a rollout pass lists them once)."""
    total = 0.0
    for line in controller.get("/metrics").splitlines():
        if line.startswith("podpreset_controller_api_requests_total{") and re.search(
            r'resource="[^"]*deployments",verb="get"', line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_the_controller_rolls_once_and_a_new_leader_does_not_roll_again(
    cluster: Cluster, admin: Kube, namespace: str, tmp_path: Path
) -> None:
    assert cluster.plane is not None
    web = {"app": "web"}
    create_preset(
        admin, namespace, "tuning", {"selector": {"matchLabels": web}, "env": [{"name": "W", "value": "1"}]}
    )
    names = [f"web-{i}" for i in range(3)]
    for name in names:
        create(admin, namespace, workload("Deployment", name, web, OPT_IN))
    kubeconfig = cluster.plane.kubeconfig(tmp_path / "admin.kubeconfig")
    fast = (*FAST_ELECTION, "--rollout-interval", "0.5")
    controllers = {name: LocalController(tmp_path, kubeconfig, name, *fast) for name in ("r1", "r2")}
    try:
        for controller in controllers.values():
            controller.start()
        eventually(
            "the leader to record every workload",
            lambda: all(
                STATE in (read(admin, namespace, "Deployment", n)["metadata"].get("annotations") or {})
                for n in names
            ),
        )
        assert all(template_hash(read(admin, namespace, "Deployment", n)) is None for n in names)

        edit_preset(admin, namespace, "tuning", env=[{"name": "W", "value": "2"}])
        eventually(
            "the leader to roll every workload",
            lambda: all(template_hash(read(admin, namespace, "Deployment", n)) for n in names),
        )
        rolled = {n: template_hash(read(admin, namespace, "Deployment", n)) for n in names}

        # The leader goes away without a word; the other takes over and runs passes of its own.
        leader = str(admin.get(LEASE)["spec"]["holderIdentity"])
        other = controllers["r2" if leader == "r1" else "r1"]
        before = deployments_listed(other)
        controllers[leader].kill()
        eventually(
            "the other controller to lead",
            lambda: other.metric("podpreset_controller_leader") == 1,
            timeout=30,
        )
        eventually("two rollout passes of the new leader", lambda: deployments_listed(other) >= before + 2)

        for n in names:
            assert template_hash(read(admin, namespace, "Deployment", n)) == rolled[n]
            (event,) = events(admin, namespace, n)
            assert "podpreset tuning changed" in event["message"]
        logs = "".join(c.log() for c in controllers.values())
        for n in names:
            assert logs.count(f"rollout: Deployment {namespace}/{n} rolled") == 1, logs
    finally:
        for controller in controllers.values():
            controller.stop()
