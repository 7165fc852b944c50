"""Issue 19 on a node: a preset edit rolls an opted-in Deployment, whose new pods run with the new
preset injected, and rolls neither a Deployment that did not opt in nor anything for an edit that
changes nothing for it (make e2e-cluster: kube-controller-manager rolls, the kubelet runs).

The time from the preset edit to the new pod running with the new env is the rollout latency
docs/performance.md states; it is written to ``$PODPRESET_E2E_LOG_DIR/rollout-latency.txt``
(measured, never asserted).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    ANNOTATION_PREFIX,
    LOG_DIR,
    NAMESPACE,
    TEST_IMAGE,
    Cluster,
    create_preset,
    edit_preset,
    env_of,
    kubectl,
    rollout_passes,
    scale_installed,
)
from .controller import LocalController
from .rest import Kube, eventually

HASH = "podpreset.dev/presets-hash"


@pytest.fixture
def cluster(kubelet_cluster: Cluster) -> Iterator[Cluster]:
    """The node cluster, with the installed controller (deploy/, two replicas) scaled to none while
    the scenario runs: here the roll is driven by the scenario (``podpreset rollout``, or a
    controller process of its own), and the installed one would race it to each write."""
    path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/podpreset-controller"
    installed = kubelet_cluster.admin.request("GET", path)
    replicas = installed.body["spec"]["replicas"] if installed.status == 200 else 0
    if replicas:
        scale_installed(kubelet_cluster, "controller", 0)
    try:
        yield kubelet_cluster
    finally:
        if replicas:
            scale_installed(kubelet_cluster, "controller", replicas)


def deployment(name: str, opted_in: bool) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": {"podpreset.dev/rollout": "true"} if opted_in else {}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "demo"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "app", "image": TEST_IMAGE, "command": ["sleep", "3600"]}],
                },
            },
        },
    }


def running_pods(admin: Kube, namespace: str, app: str) -> list[dict[str, Any]]:
    pods = admin.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=f"app={app}")["items"]
    return [
        p
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def only_pod(admin: Kube, namespace: str, app: str) -> dict[str, Any]:
    def one() -> dict[str, Any] | None:
        pods = admin.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=f"app={app}")["items"]
        running = running_pods(admin, namespace, app)
        return running[0] if len(pods) == 1 and len(running) == 1 else None

    found: dict[str, Any] = eventually(f"one running pod of {app}", one, timeout=180)
    return found


def env_in_container(cluster: Cluster, namespace: str, pod: str, name: str) -> str:
    """The variable's value as the running container's shell sees it."""
    done = subprocess.run(
        [
            *("kubectl", "--kubeconfig", str(cluster.admin.kubeconfig), "-n", namespace, "exec", pod),
            *("--", "sh", "-c", f'echo "${{{name}}}"'),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_preset_edit_rolls_the_opted_in_deployment_whose_new_pod_runs_with_the_new_env(
    cluster: Cluster, admin: Kube, namespace: str
) -> None:
    create_preset(
        admin,
        namespace,
        "greeting",
        {"selector": {"matchLabels": {"tier": "demo"}}, "env": [{"name": "GREETING", "value": "v1"}]},
    )
    create_preset(
        admin,
        namespace,
        "unrelated",
        {"selector": {"matchLabels": {"tier": "other"}}, "env": [{"name": "OTHER", "value": "1"}]},
    )
    # The webhook's watch has the preset before the Deployments' pods are created.
    eventually(
        "the webhook to have the preset",
        lambda: (
            ANNOTATION_PREFIX + "greeting"
            in (
                admin.create(
                    f"/api/v1/namespaces/{namespace}/pods",
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": "probe", "labels": {"tier": "demo"}},
                        "spec": {"containers": [{"name": "app", "image": TEST_IMAGE}]},
                    },
                    dry_run=True,
                )
                .body["metadata"]
                .get("annotations")
                or {}
            )
        ),
    )
    for name, opted_in in (("opted", True), ("plain", False)):
        admin.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment(name, opted_in))
    for name in ("opted", "plain"):
        kubectl(cluster, "-n", namespace, "rollout", "status", f"deployment/{name}", "--timeout=180s")
    first = {name: only_pod(admin, namespace, name) for name in ("opted", "plain")}
    assert env_of(first["opted"]["spec"]["containers"][0]) == {"GREETING": "v1"}

    # First sight: recorded, nothing rolls.
    assert rollout_passes(admin, "-n", namespace) == [
        f"deployment {namespace}/opted: recorded: first sight: its pods were admitted with today's "
        "presets; recorded, not rolled"
    ]
    # Edits that change nothing for it: another preset's env, this preset's labels.
    edit_preset(admin, namespace, "unrelated", env=[{"name": "OTHER", "value": "2"}])
    edit_preset(admin, namespace, "greeting", labels={"team": "platform"})
    assert rollout_passes(admin, "-n", namespace) == []

    # The edit that matters, and the latency from it to the new pod running with the new env.
    started = time.monotonic()
    edit_preset(admin, namespace, "greeting", env=[{"name": "GREETING", "value": "v2"}])
    assert rollout_passes(admin, "-n", namespace) == [
        f"deployment {namespace}/opted: rolled: podpreset greeting changed"
    ]

    def new_running() -> bool:
        return any(
            env_of(p["spec"]["containers"][0]) == {"GREETING": "v2"}
            for p in running_pods(admin, namespace, "opted")
        )

    eventually("a new pod of opted running with GREETING=v2", new_running, timeout=180, interval=0.1)
    latency = time.monotonic() - started
    kubectl(cluster, "-n", namespace, "rollout", "status", "deployment/opted", "--timeout=180s")
    new = only_pod(admin, namespace, "opted")
    assert new["metadata"]["name"] != first["opted"]["metadata"]["name"]
    assert new["metadata"]["annotations"].get(HASH)
    assert env_of(new["spec"]["containers"][0]) == {"GREETING": "v2"}
    assert env_in_container(cluster, namespace, new["metadata"]["name"], "GREETING") == "v2"
    record_latency(latency)

    # The Deployment that did not opt in still runs its first pod, with the old env.
    plain = only_pod(admin, namespace, "plain")
    assert plain["metadata"]["name"] == first["plain"]["metadata"]["name"]
    assert env_in_container(cluster, namespace, plain["metadata"]["name"], "GREETING") == "v1"
    events = admin.get(f"/api/v1/namespaces/{namespace}/events")["items"]
    rolled = [e for e in events if e["reason"] == "PodPresetRollout"]
    assert [e["involvedObject"]["name"] for e in rolled] == ["opted"]


def record_latency(seconds: float, driver: str = "podpreset rollout, run right after the edit") -> None:
    line = f"rollout latency (preset edit -> new pod running with it; {driver}): {seconds:.1f} s"
    print(line, file=sys.stderr)
    if LOG_DIR:
        with Path(LOG_DIR, "rollout-latency.txt").open("a") as out:
            out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}\n")


def test_the_controller_rolls_an_opted_in_deployment_on_its_own(
    cluster: Cluster, admin: Kube, namespace: str, tmp_path: Path
) -> None:
    """``podpreset controller`` (here a process beside the cluster, electing on a Lease of the test's
    namespace so that no other controller shares it) records, then rolls after an edit."""
    create_preset(
        admin,
        namespace,
        "greeting",
        {"selector": {"matchLabels": {"tier": "demo"}}, "env": [{"name": "GREETING", "value": "v1"}]},
    )
    admin.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment("opted", True))
    kubectl(cluster, "-n", namespace, "rollout", "status", "deployment/opted", "--timeout=180s")
    first = only_pod(admin, namespace, "opted")
    # The later --namespace wins: the Lease lives in the test's namespace.
    controller = LocalController(
        tmp_path, admin.kubeconfig, "rollout-e2e", "--rollout-interval", "1", "--namespace", namespace
    )
    controller.start()
    try:
        eventually(
            "the controller to record the Deployment",
            lambda: (
                "podpreset.dev/rollout-state"
                in (
                    admin.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/opted")["metadata"].get(
                        "annotations"
                    )
                    or {}
                )
            ),
            timeout=60,
        )
        started = time.monotonic()
        edit_preset(admin, namespace, "greeting", env=[{"name": "GREETING", "value": "v2"}])

        def new_running() -> bool:
            return any(
                env_of(p["spec"]["containers"][0]) == {"GREETING": "v2"}
                for p in running_pods(admin, namespace, "opted")
            )

        eventually(
            "the controller's roll to run a pod with GREETING=v2", new_running, timeout=180, interval=0.1
        )
        latency = time.monotonic() - started
        kubectl(cluster, "-n", namespace, "rollout", "status", "deployment/opted", "--timeout=180s")
        new = only_pod(admin, namespace, "opted")
        assert new["metadata"]["name"] != first["metadata"]["name"]
        assert env_in_container(cluster, namespace, new["metadata"]["name"], "GREETING") == "v2"
        record_latency(latency, "podpreset controller, --rollout-interval 1")
    finally:
        controller.stop()
