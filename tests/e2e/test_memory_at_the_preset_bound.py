"""A replica's memory with one namespace's presets at its bounds (issue 16): a ResourceQuota on
``count/podpresets.podpreset.dev`` and presets just under the 256 KiB size bound. The presets are
created until the quota refuses one; every replica loads them all and stays under its memory
limit, read from the kubelet (the node's stats summary: the container's working set and RSS).
The figures go to the e2e log directory (``memory-at-preset-bound.txt``) and docs/operations.md.
"""

from __future__ import annotations

import re
import secrets
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import LOG_DIR, NAMESPACE, Cluster, Namespaces
from .rest import Kube, eventually
from .test_in_cluster_deployment import port_forward, ready, webhook_pods

QUOTA = 40
"""PodPresets the namespace may hold."""
VALUES = 7
VALUE_BYTES = 32000
"""Seven env values of 32,000 characters (the CRDs allow 32 KiB): about 219 KiB of compact JSON,
just under the 256 KiB --max-preset-bytes."""
MIB = 1024 * 1024
SAMPLES = 4


@pytest.fixture
def cluster(kubelet_cluster: Cluster) -> Cluster:
    return kubelet_cluster


def quantity_bytes(value: str) -> int:
    units = {"Ki": 1024, "Mi": MIB, "Gi": 1024 * MIB}
    number, unit = re.fullmatch(r"(\d+)([KMG]i)?", value).groups()  # type: ignore[union-attr]
    return int(number) * units.get(unit or "", 1)


def big_preset(namespace: str, index: int) -> dict[str, Any]:
    """A preset of about 219 KiB with values of its own (nothing shared between presets)."""
    seed = secrets.token_hex(16)
    env = [
        {"name": f"BIG_{i}", "value": (seed + str(i)) * (VALUE_BYTES // (len(seed) + 1))}
        for i in range(VALUES)
    ]
    return {
        "apiVersion": "podpreset.dev/v1",
        "kind": "PodPreset",
        "metadata": {"name": f"big-{index}", "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"big": str(index)}}, "env": env},
    }


def replica_memory(admin: Kube) -> dict[str, dict[str, int]]:
    """Each webhook replica's container memory as the kubelet reports it."""
    (node,) = admin.get("/api/v1/nodes")["items"]
    summary = admin.get(f"/api/v1/nodes/{node['metadata']['name']}/proxy/stats/summary")
    out = {}
    for pod in summary["pods"]:
        if pod["podRef"]["namespace"] != NAMESPACE:
            continue
        for container in pod.get("containers") or ():
            if container["name"] == "webhook" and "memory" in container:
                out[pod["podRef"]["name"]] = {
                    "workingSetBytes": int(container["memory"].get("workingSetBytes", 0)),
                    "rssBytes": int(container["memory"].get("rssBytes", 0)),
                }
    return out


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def replica_log(admin: Kube, pod: str) -> str:
    reply = admin.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}/log")
    assert reply.status == 200, reply
    return str(reply.body)


def presets_loaded(cluster: Cluster, pod: str) -> float:
    with port_forward(cluster, f"pod/{pod}", 8080) as port:
        text = get_text(f"http://127.0.0.1:{port}/metrics")
    found = re.search(r"^podpreset_presets_loaded(?:\{[^}]*\})? (\S+)$", text, re.M)
    assert found, text[:500]
    return float(found.group(1))


def sample(admin: Kube, names: list[str]) -> dict[str, dict[str, int]]:
    """The highest of a few kubelet readings per replica (the kubelet refreshes them every ~10 s)."""
    peak: dict[str, dict[str, int]] = {n: {"workingSetBytes": 0, "rssBytes": 0} for n in names}
    for i in range(SAMPLES):
        if i:
            time.sleep(5)
        for name, memory in replica_memory(admin).items():
            if name in peak:
                for key, value in memory.items():
                    peak[name][key] = max(peak[name][key], value)
    return peak


def test_a_namespace_full_of_presets_at_the_size_bound_keeps_every_replica_under_its_memory_limit(
    cluster: Cluster, admin: Kube, namespaces: Namespaces
) -> None:
    pods = webhook_pods(admin)
    names = sorted(p["metadata"]["name"] for p in pods)
    assert len(names) == 2 and all(ready(p) for p in pods)
    (container,) = pods[0]["spec"]["containers"]
    limit = quantity_bytes(container["resources"]["limits"]["memory"])
    restarts = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"] for p in pods}
    before = sample(admin, names)

    ns = namespaces.create("bound")
    admin.create(
        f"/api/v1/namespaces/{ns}/resourcequotas",
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "podpresets"},
            "spec": {"hard": {"count/podpresets.podpreset.dev": str(QUOTA)}},
        },
    )
    eventually(
        "the quota to be counted",
        lambda: admin.get(f"/api/v1/namespaces/{ns}/resourcequotas/podpresets").get("status", {}).get("hard"),
        timeout=60,
    )
    created = 0
    while True:
        reply = admin.request(
            "POST", f"/apis/podpreset.dev/v1/namespaces/{ns}/podpresets", big_preset(ns, created)
        )
        if reply.status != 201:
            break
        created += 1
        assert created <= QUOTA, "the quota let more presets in than it allows"
    assert reply.status == 403 and "exceeded quota" in reply.message, reply
    assert created == QUOTA

    # Watch events come in order: both workers of a replica logging the last preset have them all.
    last = f"added {ns}/big-{QUOTA - 1} "
    for name in names:
        eventually(
            f"both workers of replica {name} to load the presets",
            lambda name=name: replica_log(admin, name).count(last) >= 2,
            timeout=120,
        )
        assert presets_loaded(cluster, name) >= QUOTA
    after = sample(admin, names)

    pods = {p["metadata"]["name"]: p for p in webhook_pods(admin)}
    lines = [
        f"{QUOTA} PodPresets of about {VALUES * VALUE_BYTES // 1024} KiB each "
        f"(ResourceQuota count/podpresets.podpreset.dev={QUOTA}); container memory limit {limit // MIB} MiB"
    ]
    for name in names:
        assert pods[name]["status"]["containerStatuses"][0]["restartCount"] == restarts[name], name
        assert ready(pods[name]), name
        assert 0 < after[name]["workingSetBytes"] < limit, after
        lines.append(
            f"{name}: working set {before[name]['workingSetBytes'] / MIB:.1f} -> "
            f"{after[name]['workingSetBytes'] / MIB:.1f} MiB, RSS {before[name]['rssBytes'] / MIB:.1f} -> "
            f"{after[name]['rssBytes'] / MIB:.1f} MiB"
        )
    if LOG_DIR:
        Path(LOG_DIR, "memory-at-preset-bound.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
