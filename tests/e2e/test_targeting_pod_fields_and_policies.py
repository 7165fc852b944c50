"""Issue 9 end to end: container targeting, pod-level fields, conflict policies, env order.

Each scenario creates presets in its own namespace, waits until the webhook applies one to a
dry-run probe, then creates the pod and reads it back from the API server.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from .conftest import (
    ANNOTATION_PREFIX,
    Cluster,
    annotations_of,
    create_pod,
    create_preset,
    env_of,
    pod_body,
    wait_for_pods_to,
)
from .rest import Kube, eventually

IMAGE = "registry.k8s.io/pause:3.10"
WEBHOOK = "podpresets.podpreset.dev"


def container(name: str, env: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, **({"env": env} if env else {})}


def known(admin: Kube, namespace: str, name: str, labels: dict[str, str]) -> None:
    """Wait until the webhook applies preset ``name`` to a plain dry-run pod with ``labels``."""
    wait_for_pods_to(
        admin,
        namespace,
        pod_body("probe", labels=labels),
        f"the webhook to know preset {name}",
        lambda p: ANNOTATION_PREFIX + name in annotations_of(p),
    )


def created(admin: Kube, namespace: str, pod: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Create ``pod``; the pod as stored and the warnings the client was shown."""
    reply = create_pod(admin, namespace, pod)
    stored = admin.get(f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}")
    return stored, reply.warnings


def test_an_excluded_sidecar_gets_nothing_and_the_app_container_gets_the_env(
    admin: Kube, namespace: str
) -> None:
    create_preset(
        admin,
        namespace,
        "app-env",
        {
            "selector": {"matchLabels": {"app": "web"}},
            "containerSelector": {"exclude": ["istio-*", "linkerd-proxy"]},
            "env": [{"name": "LOG_LEVEL", "value": "info"}],
        },
    )
    known(admin, namespace, "app-env", {"app": "web"})
    pod = pod_body(
        "meshed",
        labels={"app": "web"},
        containers=[container("app"), container("istio-proxy"), container("linkerd-proxy")],
    )
    stored, warnings = created(admin, namespace, pod)
    app, istio, linkerd = stored["spec"]["containers"]
    assert env_of(app) == {"LOG_LEVEL": "info"}
    assert "env" not in istio and "env" not in linkerd
    assert warnings == ()


def test_node_selector_image_pull_secrets_labels_and_annotations_are_injected(
    admin: Kube, namespace: str
) -> None:
    create_preset(
        admin,
        namespace,
        "gpu-pool",
        {
            "selector": {"matchLabels": {"app": "trainer"}},
            "nodeSelector": {"pool": "gpu"},
            "imagePullSecrets": [{"name": "registry-creds"}],
            "podMetadata": {
                "labels": {"cost-center": "ml"},
                "annotations": {"example.com/owner": "ml-platform"},
            },
        },
    )
    known(admin, namespace, "gpu-pool", {"app": "trainer"})
    pod = pod_body(
        "trainer",
        labels={"app": "trainer"},
        imagePullSecrets=[{"name": "registry-creds"}, {"name": "own-creds"}],
        nodeSelector={"zone": "a"},
    )
    stored, _ = created(admin, namespace, pod)
    assert stored["spec"]["nodeSelector"] == {"zone": "a", "pool": "gpu"}
    assert stored["spec"]["imagePullSecrets"] == [
        {"name": "registry-creds"},
        {"name": "own-creds"},
    ]  # de-duplicated
    assert stored["metadata"]["labels"] == {"app": "trainer", "cost-center": "ml"}
    assert annotations_of(stored)["example.com/owner"] == "ml-platform"


def conflicting_app(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return pod_body(
        name, labels=labels, containers=[container("app", [{"name": "LOG_LEVEL", "value": "debug"}])]
    )


def test_skip_preset_drops_only_the_conflicting_preset_and_says_so(admin: Kube, namespace: str) -> None:
    labels = {"app": "api"}
    create_preset(admin, namespace, "a-logging", {
        "selector": {"matchLabels": labels},
        "onConflict": "SkipPreset",
        "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "LOG_FORMAT", "value": "json"}],
    })  # fmt: skip
    create_preset(admin, namespace, "b-tracing", {
        "selector": {"matchLabels": labels}, "env": [{"name": "TRACING", "value": "on"}],
    })  # fmt: skip
    known(admin, namespace, "a-logging", labels)
    known(admin, namespace, "b-tracing", labels)

    stored, warnings = created(admin, namespace, conflicting_app("api", labels))
    assert env_of(stored["spec"]["containers"][0]) == {"LOG_LEVEL": "debug", "TRACING": "on"}
    assert ANNOTATION_PREFIX + "a-logging" not in annotations_of(stored)
    assert ANNOTATION_PREFIX + "b-tracing" in annotations_of(stored)
    (warning,) = warnings
    assert "a-logging" in warning and "LOG_LEVEL" in warning and "debug" not in warning


def test_keep_existing_keeps_the_pods_value_and_applies_the_rest(admin: Kube, namespace: str) -> None:
    labels = {"app": "worker"}
    create_preset(admin, namespace, "logging", {
        "selector": {"matchLabels": labels},
        "onConflict": "KeepExisting",
        "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "LOG_FORMAT", "value": "json"}],
    })  # fmt: skip
    known(admin, namespace, "logging", labels)

    stored, warnings = created(admin, namespace, conflicting_app("worker", labels))
    assert [(e["name"], e["value"]) for e in stored["spec"]["containers"][0]["env"]] == [
        ("LOG_LEVEL", "debug"),
        ("LOG_FORMAT", "json"),
    ]
    assert ANNOTATION_PREFIX + "logging" in annotations_of(stored)
    (warning,) = warnings
    assert "logging" in warning and "LOG_LEVEL" in warning


def reject_preset(admin: Kube, namespace: str, labels: dict[str, str]) -> None:
    create_preset(admin, namespace, "strict", {
        "selector": {"matchLabels": labels},
        "onConflict": "Reject",
        "env": [{"name": "LOG_LEVEL", "value": "info"}],
    })  # fmt: skip
    known(admin, namespace, "strict", labels)


def preset_events(admin: Kube, namespace: str, preset: str) -> list[dict[str, Any]]:
    events = admin.get(f"/api/v1/namespaces/{namespace}/events")["items"]
    return [e for e in events if preset in e.get("message", "")]


def test_reject_refuses_the_pod_with_a_message_and_a_dry_run_refuses_it_without_an_event(
    admin: Kube, namespace: str
) -> None:
    labels = {"app": "billing"}
    reject_preset(admin, namespace, labels)

    dry = admin.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        conflicting_app("dry", labels),
        params={"dryRun": "All"},
    )
    real = admin.request("POST", f"/api/v1/namespaces/{namespace}/pods", conflicting_app("billing", labels))

    for reply in (dry, real):
        assert reply.status == 409, reply
        assert f'admission webhook "{WEBHOOK}" denied the request' in reply.message
        assert "strict" in reply.message and "app" in reply.message and "LOG_LEVEL" in reply.message
        assert "debug" not in reply.message  # never env values
    assert admin.request("GET", f"/api/v1/namespaces/{namespace}/pods/billing").status == 404
    (event,) = eventually(
        "the Warning Event of the real request", lambda: preset_events(admin, namespace, "strict")
    )
    assert event["type"] == "Warning"
    assert event["involvedObject"]["name"] == "billing"  # the dry run's pod "dry" got none
    assert preset_events(admin, namespace, "strict") == [event]


def test_kubectl_shows_the_refusal_message(cluster: Cluster, namespace: str, tmp_path: Any) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the refusal message is checked through the API above")
    labels = {"app": "ledger"}
    reject_preset(cluster.admin, namespace, labels)
    manifest = tmp_path / "pod.json"
    manifest.write_text(json.dumps(conflicting_app("ledger", labels)))
    for extra in ((), ("--dry-run=server",)):
        result = subprocess.run(
            [
                kubectl,
                "--kubeconfig",
                str(cluster.admin.kubeconfig),
                "-n",
                namespace,
                "create",
                "-f",
                str(manifest),
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1, result
        assert f'admission webhook "{WEBHOOK}" denied the request' in result.stderr
        assert "strict" in result.stderr and "LOG_LEVEL" in result.stderr


def test_an_injected_variable_comes_before_the_pod_env_that_references_it(
    admin: Kube, namespace: str
) -> None:
    labels = {"app": "orders"}
    create_preset(admin, namespace, "database", {
        "selector": {"matchLabels": labels},
        "env": [{"name": "DB_HOST", "value": "db.internal"}, {"name": "DB_PORT", "value": "5432"}],
    })  # fmt: skip
    known(admin, namespace, "database", labels)
    own = [
        {"name": "APP_MODE", "value": "prod"},
        {"name": "DATABASE_URL", "value": "postgres://$(DB_HOST):$(DB_PORT)/orders"},
        {"name": "OTHER", "value": "x"},
    ]
    stored, _ = created(
        admin, namespace, pod_body("orders", labels=labels, containers=[container("app", own)])
    )
    names = [e["name"] for e in stored["spec"]["containers"][0]["env"]]
    assert names == ["APP_MODE", "DB_HOST", "DB_PORT", "DATABASE_URL", "OTHER"]
