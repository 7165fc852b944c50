"""What a preset may do and how much of it the server holds: the preset size bound (file and
Kubernetes sources), the volume types of namespaced presets, and metrics labels and messages that
come from the presets, never from the request. Through the Flask test client and the sources."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from serverkit import PRESETS_YAML, encode, make_review, metric_value

from presets.limits import preset_bytes
from presets.model import parse_preset
from webhook.server.app import create_app
from webhook.settings import Settings
from webhook.sources.files import FileSource
from webhook.sources.kube import KubeSource
from webhook.sources.snapshot import StaticSource

JSON = "application/json"


def preset_doc(
    name: str, *, namespace: str | None = "default", kind: str = "PodPreset", **spec: Any
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None and kind == "PodPreset":
        metadata["namespace"] = namespace
    return {"apiVersion": "podpreset.dev/v1", "kind": kind, "metadata": metadata, "spec": spec}


def big_env(count: int, length: int) -> list[dict[str, str]]:
    return [{"name": f"BIG_{i}", "value": "x" * length} for i in range(count)]


def preset(doc: dict[str, Any]) -> Any:
    return parse_preset(doc, source="t", document=1, default_namespace="default")


def problems_of(client: Any) -> list[dict[str, str]]:
    body = client.get("/readyz").json
    return list(body["problems"])


# The size bound


def test_a_preset_file_over_the_size_bound_is_skipped_and_said_in_readyz_metrics_and_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "presets.yaml"
    path.write_text(PRESETS_YAML)
    source = FileSource([str(path)], interval=3600)
    source.start()
    try:
        app = create_app(Settings(insecure_http=True), source)
        client = app.test_client()
        big = preset_doc("huge", selector={"matchLabels": {"app": "web"}}, env=big_env(9, 30_000))
        path.write_text(PRESETS_YAML + "---\n" + json.dumps(big))
        with caplog.at_level(logging.INFO):
            source.reload()
            path.write_text(PRESETS_YAML + "---\n" + json.dumps(big) + "\n")
            source.reload()  # an edit with the same problem: not logged again
        (problem,) = problems_of(client)
        assert problem["source"] == str(path)
        assert "document 3 (huge): the preset is " in problem["error"]
        assert "over the limit of 256 KiB (262144 bytes, --max-preset-bytes)" in problem["error"]
        lines = [r.getMessage() for r in caplog.records if "huge" in r.getMessage()]
        assert len(lines) == 1 and lines[0].startswith("preset source problem: "), lines
        assert [p.name for p in source.snapshot().index.for_namespace("default")] == [
            "db-password",
            "web-settings",
        ], "the last good presets keep serving"
        answer = client.post("/mutate", data=encode(make_review()), content_type=JSON).json["response"]
        assert "BIG_0" not in json.dumps(answer)
        exposition = client.get("/metrics").data.decode()
        assert metric_value(exposition, "podpreset_source_problems") == 1

        path.write_text(PRESETS_YAML)
        with caplog.at_level(logging.INFO, logger="webhook.sources.health"):
            source.reload()
        assert problems_of(client) == []
        assert any("problem resolved" in r.getMessage() for r in caplog.records)
    finally:
        source.stop()


def test_the_file_source_takes_its_size_bound_from_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "presets.yaml"
    path.write_text(PRESETS_YAML)
    source = FileSource([str(path)], interval=3600, max_preset_bytes=300)
    source.reload()
    assert source.snapshot().problems, "a bound of 300 bytes refuses the example presets"
    assert "over the limit of 300 bytes" in source.snapshot().problems[0]


def test_a_kubernetes_preset_over_the_size_bound_is_skipped_and_said_in_readyz_metrics_and_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(insecure_http=True, max_preset_bytes=4096)
    source = KubeSource(settings)
    small = preset_doc("small", namespace="team-a", env=[{"name": "A", "value": "1"}])
    big = preset_doc("big", namespace="team-a", env=big_env(1, 5000))
    big["metadata"]["resourceVersion"] = "3"
    source.presets.handle({"type": "ADDED", "object": small})
    with caplog.at_level(logging.INFO, logger="webhook.sources.health"):
        source.presets.handle({"type": "ADDED", "object": big})
        source.presets.handle(
            {"type": "MODIFIED", "object": {**big, "metadata": {**big["metadata"], "resourceVersion": "4"}}}
        )
    for watch in source.watches:
        watch.synced = True
    source.presets.handle({"type": "ADDED", "object": small})  # publish as synced
    assert [p.name for p in source.snapshot().index.for_namespace("team-a")] == ["small"]
    client = create_app(settings, source).test_client()
    (problem,) = problems_of(client)
    assert problem["source"] == "podpreset team-a/big"
    size = preset_bytes(big)
    assert problem["error"].startswith(
        f"is {size} bytes as compact JSON, over the limit of 4 KiB (4096 bytes"
    )
    assert metric_value(client.get("/metrics").data.decode(), "podpreset_presets_invalid") == 1
    lines = [r.getMessage() for r in caplog.records if "team-a/big" in r.getMessage()]
    assert len(lines) == 1, "logged when the problem starts, not on every event"

    with caplog.at_level(logging.INFO, logger="webhook.sources.health"):
        source.presets.handle({"type": "MODIFIED", "object": {**big, "spec": {"env": big_env(1, 10)}}})
    assert problems_of(client) == []
    assert [p.name for p in source.snapshot().index.for_namespace("team-a")] == ["big", "small"]
    assert any("problem resolved: podpreset team-a/big" in r.getMessage() for r in caplog.records)


def test_the_size_leaves_out_managed_fields_and_the_last_applied_annotation() -> None:
    doc = preset_doc("p", env=[{"name": "A", "value": "é"}])
    plain = preset_bytes(doc)
    assert plain == len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode())
    applied = {
        **doc,
        "metadata": {
            **doc["metadata"],
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"x" * 1000: {}}}}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(doc)},
        },
        "status": {"observed": "y" * 1000},
    }
    assert preset_bytes(applied) == plain + len(',"annotations":{}')


# Volume types of namespaced presets


HOST_LOGS = {
    "volumes": [{"name": "logs", "hostPath": {"path": "/var/log"}}],
    "volumeMounts": [{"name": "logs", "mountPath": "/logs"}],
}


def test_a_podpreset_with_a_host_path_volume_is_not_applied_warned_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    presets = [
        preset(preset_doc("node-logs", namespace="team-a", onConflict="Reject", **HOST_LOGS)),
        preset(preset_doc("greeting", namespace="team-a", env=[{"name": "GREETING", "value": "hi"}])),
        preset(
            preset_doc(
                "node-agent",
                kind="ClusterPodPreset",
                **{**HOST_LOGS, "volumeMounts": [{"name": "logs", "mountPath": "/agent"}]},
            )
        ),
    ]
    app = create_app(Settings(insecure_http=True), StaticSource(presets))
    with caplog.at_level(logging.INFO, logger="webhook.server.app"):
        response = app.test_client().post(
            "/mutate", data=encode(make_review(namespace="team-a")), content_type=JSON
        )
    answer = response.json["response"]
    assert answer["allowed"] is True, "refused presets are left out; onConflict: Reject plays no part"
    assert answer["warnings"] == [
        "podpreset 'node-logs' is not applied: volume 'logs' is of type hostPath, which a PodPreset may "
        "not inject (the webhook's --namespaced-volume-types); a ClusterPodPreset may"
    ]
    patch = json.loads(base64.b64decode(answer["patch"]))
    added = json.dumps(patch)
    assert "clusterpodpreset-node-agent" in added and "podpreset-greeting" in added
    assert "podpreset-node-logs" not in added and '"/logs"' not in added
    assert any("is not applied: volume 'logs' is of type hostPath" in r.getMessage() for r in caplog.records)
    exposition = app.extensions["podpreset"].metrics.exposition().decode()
    assert (
        metric_value(exposition, 'podpreset_presets_refused_total{namespace="team-a",preset="node-logs"}')
        == 1
    )


def test_the_server_lets_podpresets_use_the_volume_types_of_its_setting() -> None:
    presets = [preset(preset_doc("node-logs", namespace="team-a", **HOST_LOGS))]
    settings = Settings(insecure_http=True, namespaced_volume_types=("hostPath",))
    app = create_app(settings, StaticSource(presets))
    answer = (
        app.test_client()
        .post("/mutate", data=encode(make_review(namespace="team-a")), content_type=JSON)
        .json["response"]
    )
    assert "warnings" not in answer and "patch" in answer


# Metrics and messages from real input only


def test_the_conflict_metric_labels_a_preset_by_its_own_namespace_never_the_requests() -> None:
    presets = [
        preset(preset_doc("strict", kind="ClusterPodPreset", env=[{"name": "GREETING", "value": "hello"}])),
        preset(preset_doc("local", namespace="team-a", env=[{"name": "GREETING", "value": "hi"}])),
    ]
    app = create_app(Settings(insecure_http=True), StaticSource(presets))
    client = app.test_client()
    mine = [{"name": "GREETING", "value": "mine"}]
    for namespace in ("made-up-1", "made-up-2", "team-a"):
        review = make_review(namespace=namespace, env=mine)
        assert client.post("/mutate", data=encode(review), content_type=JSON).json["response"]["warnings"]
    exposition = app.extensions["podpreset"].metrics.exposition().decode()
    assert metric_value(exposition, 'podpreset_conflicts_total{namespace="",preset="strict"}') == 3
    assert metric_value(exposition, 'podpreset_conflicts_total{namespace="team-a",preset="local"}') == 1
    assert "made-up" not in exposition


def test_a_huge_label_key_is_echoed_only_in_part() -> None:
    client = create_app(Settings(insecure_http=True), StaticSource([])).test_client()
    review = make_review(labels={"k" * 100_000: 1})  # type: ignore[dict-item]
    response = client.post("/mutate", data=encode(review), content_type=JSON)
    assert response.status_code == 400
    message = response.json["error"]
    assert len(message) < 200 and "(100000 characters)]: expected a string" in message, message
