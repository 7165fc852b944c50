"""Issue 16 end to end: how large a preset the webhook holds, and which volume types a namespaced
PodPreset may inject, against the real API server."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from support.cli import run_cli

from .conftest import (
    ANNOTATION_PREFIX,
    CLUSTER_ANNOTATION_PREFIX,
    Cluster,
    ClusterPresets,
    annotations_of,
    create_pod,
    create_preset,
    env_of,
    pod_body,
)
from .rest import Kube, eventually


def test_an_oversized_podpreset_is_reported_in_readyz_and_never_applied(
    cluster: Cluster, admin: Kube, namespace: str, tmp_path: Path
) -> None:
    # Nine values of 30,000 characters: each within the CRD's 32 KiB bound, together over the
    # webhook's default 256 KiB preset bound, so the API server stores it and the webhook skips it.
    huge = [{"name": f"BIG_{i}", "value": "x" * 30_000} for i in range(9)]
    create_preset(admin, namespace, "huge", {"env": huge})
    create_preset(admin, namespace, "marker", {"env": [{"name": "MARKER", "value": "1"}]})
    try:

        def admitted() -> dict[str, Any] | None:
            pod = create_pod(admin, namespace, pod_body("probe"), dry_run=True).body
            return pod if ANNOTATION_PREFIX + "marker" in annotations_of(pod) else None

        pod = eventually("the webhook to see the presets of the namespace", admitted)
        assert ANNOTATION_PREFIX + "huge" not in annotations_of(pod)
        assert set(env_of(pod["spec"]["containers"][0])) == {"MARKER"}
        (tmp_path / "pod.json").write_text(json.dumps(pod_body("probe")))
        preview = run_cli(
            "apply",
            "--kubeconfig",
            str(admin.kubeconfig),
            "-n",
            namespace,
            "-o",
            "json",
            str(tmp_path / "pod.json"),
        )
        assert preview.returncode == 0, preview.stderr
        assert f"warning: skipped, as the webhook does: podpreset {namespace}/huge: is " in preview.stderr
        assert set(env_of(json.loads(preview.stdout)["spec"]["containers"][0])) == {"MARKER"}
        if cluster.webhook is not None:  # in cluster mode the replicas' /readyz is not reachable here

            def reported() -> list[dict[str, str]]:
                problems = cluster.webhook.readyz()[1]["problems"] if cluster.webhook else []
                return [p for p in problems if p["source"] == f"podpreset {namespace}/huge"]

            (problem,) = eventually("the oversized preset in /readyz", reported)
            assert "bytes as compact JSON, over the limit of 256 KiB" in problem["error"], problem
            assert cluster.webhook.readyz()[0] == 200, "the other presets still serve"
    finally:
        admin.delete(f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets/huge")


def test_a_podpreset_with_host_path_is_refused_at_admission_and_a_cluster_preset_with_host_path_applies(
    admin: Kube, namespace: str, cluster_presets: ClusterPresets
) -> None:
    token = secrets.token_hex(3)
    labels = {"e2e-bounds": token}
    create_preset(
        admin,
        namespace,
        "node-logs",
        {
            "selector": {"matchLabels": labels},
            "volumes": [{"name": "logs", "hostPath": {"path": "/var/log"}}],
            "volumeMounts": [{"name": "logs", "mountPath": "/host-logs"}],
        },
    )
    agent = f"node-agent-{token}"
    cluster_presets.create(
        agent,
        {
            "selector": {"matchLabels": labels},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "volumes": [{"name": "agent", "hostPath": {"path": "/run/agent"}}],
            "volumeMounts": [{"name": "agent", "mountPath": "/run/agent"}],
        },
    )

    def answer() -> Any:
        reply = create_pod(admin, namespace, pod_body("probe", labels=labels), dry_run=True)
        applied = CLUSTER_ANNOTATION_PREFIX + agent in annotations_of(reply.body)
        return reply if applied and any("node-logs" in w for w in reply.warnings) else None

    eventually("the webhook to see both presets", answer)
    reply = create_pod(admin, namespace, pod_body("app", labels=labels))
    (warning,) = [w for w in reply.warnings if "node-logs" in w]
    assert "podpreset 'node-logs' is not applied: volume 'logs' is of type hostPath" in warning
    pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/app")
    assert ANNOTATION_PREFIX + "node-logs" not in annotations_of(pod)
    assert [v["name"] for v in pod["spec"]["volumes"] if "hostPath" in v] == ["agent"]
    mounts = [m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]]
    assert "/run/agent" in mounts and "/host-logs" not in mounts
