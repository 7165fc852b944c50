"""What an operator sees when things go wrong: /readyz's problems, the log, and /metrics.

The webhook stays ready while it serves the last good presets, but says what is wrong, where,
and since when. The watch here talks to a real socket that refuses it (an unreachable API
server); the end-to-end suite (tests/e2e/test_own_webhook_process.py) cuts a real one.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.server.app import create_app
from webhook.settings import Settings
from webhook.sources.files import FileSource
from webhook.sources.health import SourceHealth
from webhook.sources.kube import Backoff, KubeSource


def preset_object(name: str, rv: str = "1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "podpreset.dev/v1",
        "kind": "PodPreset",
        "metadata": {"name": name, "namespace": "team-a", "resourceVersion": rv},
        "spec": spec or {"env": [{"name": "A", "value": "1"}]},
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_an_invalid_preset_skipped_by_the_watch_is_a_readiness_problem_and_a_metric() -> None:
    clock = Clock()
    source = KubeSource(None, health=SourceHealth(clock))
    for watch in source.watches:  # as if each had listed an empty cluster
        watch.synced = True
    source.presets.handle({"type": "ADDED", "object": preset_object("good")})
    source.presets.handle(
        {"type": "ADDED", "object": preset_object("bad", env=[{"name": "A=B", "value": "1"}])}
    )
    client = create_app(Settings(insecure_http=True), source).test_client()

    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {
        "status": "serving the last good presets; see problems",
        "presets": 1,
        "problems": [
            {
                "source": "podpreset team-a/bad",
                "error": "spec.env[0].name: 'A=B' must not contain '='",
                "since": "2027-01-15T08:00:00Z",
            }
        ],
    }
    assert "podpreset_presets_invalid 1.0" in client.get("/metrics").text

    clock.now += 60
    source.presets.handle({"type": "MODIFIED", "object": preset_object("bad", rv="2")})
    assert client.get("/readyz").json == {"status": "ok", "presets": 2, "problems": []}
    assert "podpreset_presets_invalid 0.0" in client.get("/metrics").text


def test_an_invalid_preset_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = KubeSource(None, health=SourceHealth(Clock()))
    for watch in source.watches:
        watch.synced = True
    bad = preset_object("bad", env=[{"name": "A=B", "value": "1"}])
    with caplog.at_level(logging.INFO, logger="webhook"):
        source.presets.handle({"type": "ADDED", "object": bad})
        source.presets.handle(
            {"type": "MODIFIED", "object": {**bad, "metadata": {**bad["metadata"], "resourceVersion": "2"}}}
        )
        source.presets.handle({"type": "ADDED", "object": preset_object("good")})
        source.presets.handle({"type": "MODIFIED", "object": preset_object("bad", rv="3")})
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "must not contain '='" in m]) == 1, messages  # not per event
    about_bad = [m for m in messages if "problem" in m and "team-a/bad" in m]
    assert len(about_bad) == 2, about_bad
    assert about_bad[0].startswith("preset source problem: podpreset team-a/bad: spec.env[0].name")
    assert about_bad[1].startswith("preset source problem resolved: podpreset team-a/bad")


def test_an_unreachable_api_server_is_named_with_its_error_and_start_in_readyz_the_log_and_metrics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once closed: connections are refused
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    settings = Settings(insecure_http=True, kubeconfig=str(kubeconfig))
    source = KubeSource(settings, backoff=Backoff(base=0.05, cap=0.1))
    for watch in source.watches:  # as if each had listed before the API server went away
        watch.synced = True
    source.presets._on_change(source.presets, None)
    client = create_app(settings, source).test_client()
    started = time.time()
    with caplog.at_level(logging.WARNING, logger="webhook.sources.health"):
        source.start()
        try:
            deadline = time.monotonic() + 30

            def failures() -> int:
                state = source.health.watches().get("podpresets")
                return state.errors["network"] if state is not None else 0

            while failures() < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            source.stop()

    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json is not None
    # One problem per watch (PodPresets, ClusterPodPresets, Namespaces): each names its resource.
    (problem,) = [p for p in response.json["problems"] if p["source"] == "kubernetes watch podpresets"]
    assert problem["source"] == "kubernetes watch podpresets"
    assert "Connection refused" in problem["error"] or "refused" in problem["error"].lower()
    since = time.mktime(time.strptime(problem["since"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert started - 2 <= since <= time.time() + 1
    assert any("kubernetes watch podpresets" in r.getMessage() for r in caplog.records)

    metrics = client.get("/metrics").text
    assert 'podpreset_watch_connected{resource="podpresets"} 0.0' in metrics
    errors = [line for line in metrics.splitlines() if line.startswith("podpreset_watch_errors_total")]
    assert any('kind="network"' in line and float(line.split()[-1]) >= 2 for line in errors), errors


def test_watch_state_is_counted_once_however_often_it_is_observed() -> None:
    source = KubeSource(None)
    health = source.health
    health.watch_listed()
    health.watch_connected()
    health.watch_event()
    health.watch_failed("expired", "too old")
    health.watch_listed()
    health.watch_failed("network", "reset")
    client = create_app(Settings(insecure_http=True), source).test_client()
    for _ in range(3):
        metrics = client.get("/metrics").text
    assert 'podpreset_watch_relists_total{resource="podpresets"} 1.0' in metrics
    assert 'podpreset_watch_errors_total{kind="expired",resource="podpresets"} 1.0' in metrics
    assert 'podpreset_watch_errors_total{kind="network",resource="podpresets"} 1.0' in metrics
    assert 'podpreset_watch_connected{resource="podpresets"} 0.0' in metrics
    assert "podpreset_watch_last_event_timestamp_seconds" in metrics


def test_a_bad_edit_of_a_preset_file_is_a_readiness_problem_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "presets.yaml"
    path.write_text(
        "apiVersion: podpreset.dev/v1\nkind: PodPreset\nmetadata: {name: a}\nspec: {env: [{name: A}]}\n"
    )
    good = path.read_text()
    path.write_text(good.replace("{name: A}", "{name: A, value: '1'}"))
    source = FileSource([str(tmp_path)], interval=3600)
    source.start()
    try:
        client = create_app(Settings(insecure_http=True), source).test_client()
        assert client.get("/readyz").json == {"status": "ok", "presets": 1, "problems": []}
        path.write_text(good.replace("{name: A}", "{name: 'A=B', value: '1'}"))
        source.reload()
        body = client.get("/readyz").json
        assert body is not None and body["presets"] == 1
        (problem,) = body["problems"]
        assert problem["source"] == str(path)
        assert problem["error"] == "document 1 (a): spec.env[0].name: 'A=B' must not contain '='"
    finally:
        source.stop()


@pytest.mark.parametrize("attempt", [0, 3, 6, 10, 40])
def test_after_any_number_of_failures_the_next_retry_comes_within_5_seconds(attempt: int) -> None:
    # The 10 s recovery bound (docs/operations.md) after an outage of any length: with the old
    # 30 s cap a watch could sleep up to 30 s past the API server's return.
    rng = random.Random(attempt)
    assert all(Backoff().delay(attempt, rng) <= 5.0 for _ in range(200))
