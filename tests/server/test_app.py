"""The Flask app through its test client (fast), the settings, the file source and the TLS reloader."""

from __future__ import annotations

import argparse
import json
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serverkit import PRESETS_YAML, SECRET_VALUE, encode, make_review, metric_value, write_cert
from support.presets import cluster_preset

from presets.admission import Decision
from presets.model import DEFAULT_PROTECTED, RESTRICTED_VOLUME_TYPES, Protected, VolumeTypes
from webhook.observe.logs import JsonFormatter
from webhook.observe.metrics import Metrics, MetricsDirError, prepare_multiprocess_dir
from webhook.server.app import create_app
from webhook.server.tls import CertificateError, CertificateReloader
from webhook.settings import Settings, SettingsError, add_settings_arguments, settings_from_args
from webhook.sources.documents import load_presets
from webhook.sources.files import FileSource
from webhook.sources.snapshot import Snapshot, StaticSource

JSON = "application/json"


@pytest.fixture(scope="module")
def presets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("presets")
    (directory / "presets.yaml").write_text(PRESETS_YAML)
    return directory


@pytest.fixture(scope="module")
def source(presets_dir: Path) -> StaticSource:
    return StaticSource(load_presets([str(presets_dir)]).presets)


@pytest.fixture(scope="module")
def client(source: StaticSource) -> FlaskClient:
    return create_app(Settings(insecure_http=True), source).test_client()


class UnsyncedSource:
    health = None

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def snapshot(self) -> Snapshot:
        return Snapshot(problems=("p.yaml: document 1 (x): spec.env: expected a list",))


class BrokenSource(UnsyncedSource):
    def snapshot(self) -> Snapshot:
        raise RuntimeError("a bug")


def test_mutate_answers_with_a_patch(client: FlaskClient) -> None:
    response = client.post("/mutate", data=encode(make_review()), content_type=JSON)
    assert response.status_code == 200
    assert response.json is not None and response.json["response"]["patchType"] == "JSONPatch"


def test_a_body_declared_over_the_limit_is_refused_with_413(source: StaticSource) -> None:
    small = create_app(Settings(insecure_http=True, max_body_bytes=1000), source).test_client()
    response = small.post("/mutate", data=b"x" * 1001, content_type=JSON)
    assert response.status_code == 413
    assert response.json == {"error": "body: larger than the limit of 1000 bytes", "code": 413}
    assert small.post("/mutate", data=encode(make_review()), content_type=JSON).status_code == 200


def test_readiness_waits_for_the_first_load_and_ends_when_stopping(source: StaticSource) -> None:
    unsynced = create_app(Settings(insecure_http=True), UnsyncedSource()).test_client()
    response = unsynced.get("/readyz")
    assert response.status_code == 503
    assert response.json is not None and "spec.env" in response.json["problems"][0]["error"]
    assert unsynced.get("/healthz").status_code == 200

    stopping = threading.Event()
    app = create_app(Settings(insecure_http=True), source, stopping=stopping).test_client()
    assert app.get("/readyz").status_code == 200
    stopping.set()
    assert app.get("/readyz").status_code == 503


def test_an_unexpected_error_is_a_logged_500_not_an_admission(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(insecure_http=True), BrokenSource())
    with caplog.at_level(logging.ERROR):
        response = app.test_client().post("/mutate", data=encode(make_review()), content_type=JSON)
    assert response.status_code == 500
    assert response.json is not None and "allowed" not in json.dumps(response.json)
    assert any("a bug" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_the_decision_listener_runs_except_for_dry_runs(source: StaticSource) -> None:
    seen: list[Decision] = []
    client = create_app(Settings(insecure_http=True), source, on_decision=seen.append).test_client()
    client.post("/mutate", data=encode(make_review(uid="wet")), content_type=JSON)
    client.post("/mutate", data=encode(make_review(uid="dry", dry_run=True)), content_type=JSON)
    assert [d.request.uid for d in seen] == ["wet"]


def test_a_reject_preset_refuses_the_pod_with_409_counts_it_and_still_tells_the_listener() -> None:
    strict = cluster_preset("strict", onConflict="Reject", env=[{"name": "GREETING", "value": "hello"}])
    seen: list[Decision] = []
    app = create_app(Settings(insecure_http=True), StaticSource([strict]), on_decision=seen.append)
    body = make_review(env=[{"name": "GREETING", "value": "mine"}])
    response = app.test_client().post("/mutate", data=encode(body), content_type=JSON)
    assert response.status_code == 200
    answer = response.json["response"] if response.json else {}
    assert answer["allowed"] is False and answer["status"]["code"] == 409
    assert "clusterpodpreset 'strict'" in answer["status"]["message"]
    assert "mine" not in json.dumps(answer) and "hello" not in json.dumps(answer)
    assert [d.outcome.action for d in seen if d.outcome] == ["rejected"]
    exposition = app.extensions["podpreset"].metrics.exposition().decode()
    assert metric_value(exposition, 'podpreset_admissions_total{outcome="rejected"}') == 1


def test_a_decision_is_one_log_line_naming_the_pod_and_never_a_value(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    review = make_review(
        uid="u-1", name=None, generate_name="web-7d9f-", env=[{"name": "GREETING", "value": "v!"}]
    )
    with caplog.at_level(logging.INFO, logger="webhook.server.app"):
        client.post("/mutate", data=encode(review), content_type=JSON)
    decisions = [r for r in caplog.records if r.getMessage().startswith("admission uid=u-1 namespace")]
    assert len(decisions) == 1
    line = decisions[0].getMessage()
    assert "namespace=default" in line and "pod=web-7d9f-" in line and "action=conflict" in line
    text = "\n".join(r.getMessage() for r in caplog.records) + json.dumps(
        [getattr(r, "fields", {}) for r in caplog.records]
    )
    assert "v!" not in text and SECRET_VALUE not in text
    entry = json.loads(JsonFormatter().format(decisions[0]))
    assert entry["uid"] == "u-1" and entry["pod"] == "web-7d9f-" and entry["action"] == "conflict"
    assert entry["applied"] == [] and "GREETING" in entry["conflicts"][0]


# Fuzzing: no body makes a 500.

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _mutations() -> st.SearchStrategy[object]:
    """A valid review with one field somewhere replaced by an arbitrary JSON value."""
    paths = [
        ("kind",), ("apiVersion",), ("request",), ("request", "uid"), ("request", "operation"),
        ("request", "namespace"), ("request", "dryRun"), ("request", "resource"),
        ("request", "resource", "resource"), ("request", "subResource"), ("request", "object"),
        ("request", "object", "metadata"), ("request", "object", "metadata", "labels"),
        ("request", "object", "metadata", "annotations"), ("request", "object", "metadata", "name"),
        ("request", "object", "spec"), ("request", "object", "spec", "containers"),
        ("request", "object", "spec", "containers", 0), ("request", "object", "spec", "containers", 0, "env"),
        ("request", "object", "spec", "containers", 0, "envFrom"),
        ("request", "object", "spec", "containers", 0, "volumeMounts"),
        ("request", "object", "spec", "volumes"), ("request", "object", "spec", "tolerations"),
        ("request", "object", "spec", "initContainers"),
    ]  # fmt: skip

    def replace(path: tuple[object, ...], value: object) -> object:
        review = make_review()
        target: object = review
        for key in path[:-1]:
            target = target[key]  # type: ignore[index]
        target[path[-1]] = value  # type: ignore[index]
        return review

    return st.builds(replace, st.sampled_from(paths), _json_values)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(review=_json_values | _mutations())
def test_no_json_body_makes_a_500(client: FlaskClient, review: object) -> None:
    response = client.post("/mutate", data=encode(review), content_type=JSON)
    assert response.status_code in (200, 400), response.data
    body = response.json
    assert body is not None
    if response.status_code == 400:
        assert body["error"]
    else:
        assert body["response"]["allowed"] is True


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_no_raw_body_makes_a_500(client: FlaskClient, data: bytes) -> None:
    response = client.post("/mutate", data=data, content_type=JSON)
    assert response.status_code in (200, 400), response.data


# Settings


def _parse(*argv: str, environ: dict[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    return settings_from_args(parser.parse_args(argv), environ or {})


def test_every_flag_falls_back_to_its_environment_variable_and_a_flag_wins(tmp_path: Path) -> None:
    cert, key = tmp_path / "c", tmp_path / "k"
    cert.write_text("x")
    key.write_text("x")
    environ = {
        "PODPRESET_TLS_CERT": str(cert), "PODPRESET_TLS_KEY": str(key), "PODPRESET_BIND": "127.0.0.1:9443",
        "PODPRESET_WORKERS": "3", "PODPRESET_PRESETS": f"a{os.pathsep}b", "PODPRESET_LOG_FORMAT": "json",
        "PODPRESET_MAX_BODY_BYTES": "1024",
    }  # fmt: skip
    from_env = _parse(environ=environ)
    assert (from_env.bind, from_env.workers, from_env.preset_paths) == ("127.0.0.1:9443", 3, ("a", "b"))
    assert from_env.log_format == "json" and from_env.max_body_bytes == 1024
    flagged = _parse("--workers", "5", "-f", "c", environ=environ)
    assert flagged.workers == 5 and flagged.preset_paths == ("c",)


def test_protected_names_default_to_kubernetes_and_loader_variables_and_given_ones_replace_them() -> None:
    default = _parse("--insecure-http").protected
    assert default[0] == "KUBERNETES_*"
    assert {"LD_PRELOAD", "LD_LIBRARY_PATH", "JAVA_TOOL_OPTIONS", "NODE_OPTIONS"} <= set(default)
    assert Protected.parse(default) == DEFAULT_PROTECTED, "serve and the CLI share one default list"
    environ = {"PODPRESET_PROTECTED": "HTTPS_PROXY, KUBERNETES_*"}
    assert _parse("--insecure-http", environ=environ).protected == ("HTTPS_PROXY", "KUBERNETES_*")
    flagged = _parse("--insecure-http", "--protected", "A,B*", "--protected", "C", environ=environ)
    assert flagged.protected == ("A", "B*", "C")
    assert _parse("--insecure-http", "--protected=", environ=environ).protected == ()


def test_namespaced_volume_types_default_to_the_restricted_set_and_given_ones_replace_it() -> None:
    assert _parse("--insecure-http").namespaced_volume_types == RESTRICTED_VOLUME_TYPES
    environ = {"PODPRESET_NAMESPACED_VOLUME_TYPES": "secret, hostPath"}
    assert _parse("--insecure-http", environ=environ).namespaced_volume_types == ("secret", "hostPath")
    flagged = _parse("--insecure-http", "--namespaced-volume-types", "*", environ=environ)
    assert VolumeTypes.parse(flagged.namespaced_volume_types).allowed is None
    assert _parse("--insecure-http", "--namespaced-volume-types=").namespaced_volume_types == ()
    with pytest.raises(SettingsError, match="'hostpath' is not a volume type"):
        _parse("--insecure-http", "--namespaced-volume-types", "secret,hostpath")


def test_max_preset_bytes_defaults_to_256_kib_and_must_be_a_positive_number() -> None:
    assert _parse("--insecure-http").max_preset_bytes == 262144
    assert _parse("--insecure-http", environ={"PODPRESET_MAX_PRESET_BYTES": "1000"}).max_preset_bytes == 1000
    with pytest.raises(SettingsError, match="PODPRESET_MAX_PRESET_BYTES: must be at least 1"):
        _parse("--insecure-http", "--max-preset-bytes", "0")


def test_the_serving_defaults_of_issue_16() -> None:
    settings = _parse("--insecure-http")
    assert (settings.bind, settings.health_bind) == ("0.0.0.0:8443", "0.0.0.0:8080")
    assert settings.tls_min_version == "1.3" and settings.client_ca is None
    assert settings.handshake_timeout == 5.0
    assert settings.max_body_bytes == 3 * 1024 * 1024
    assert settings.max_decoding_bytes == 4 * 1024 * 1024
    environ = {"PODPRESET_TLS_MIN_VERSION": "1.2", "PODPRESET_HEALTH_BIND": "127.0.0.1:9090"}
    from_env = _parse("--insecure-http", environ=environ)
    assert from_env.tls_min_version == "1.2" and from_env.health_bind == "127.0.0.1:9090"
    with pytest.raises(SettingsError, match=r"expected 1\.2 or 1\.3, got '1\.1'"):
        _parse("--insecure-http", environ={"PODPRESET_TLS_MIN_VERSION": "1.1"})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param((), "--tls-cert and --tls-key are required", id="no-tls"),
        pytest.param(("--insecure-http", "--workers", "two"), "expected a number", id="bad-number"),
        pytest.param(("--insecure-http", "--workers", "0"), "at least 1", id="zero-workers"),
        pytest.param(("--insecure-http", "--bind", "8443"), "HOST:PORT", id="bad-bind"),
        pytest.param(("--tls-cert", "/nope", "--tls-key", "/nope"), "no such file", id="missing-cert"),
        pytest.param(
            ("--insecure-http", "--protected", "HTTPS_PROXY,9X"),
            "--protected/PODPRESET_PROTECTED: '9X'",
            id="bad-protected",
        ),
        pytest.param(("--insecure-http", "--protected", "A*B"), "optionally ending in", id="star-inside"),
        pytest.param(
            ("--insecure-http", "--health-bind", "8080"),
            "--health-bind/PODPRESET_HEALTH_BIND: expected HOST:PORT",
            id="bad-health-bind",
        ),
        pytest.param(
            ("--insecure-http", "--bind", "0.0.0.0:9000", "--health-bind", "0.0.0.0:9000"),
            "must differ from --bind",
            id="same-ports",
        ),
        pytest.param(
            ("--insecure-http", "--client-ca", "/ca.pem"), "--client-ca needs TLS", id="client-ca-without-tls"
        ),
        pytest.param(
            ("--insecure-http", "--handshake-timeout", "0"),
            "--handshake-timeout/PODPRESET_HANDSHAKE_TIMEOUT: must be at least 0.1",
            id="zero-handshake-timeout",
        ),
        pytest.param(
            ("--insecure-http", "--handshake-timeout", "inf"),
            "expected a finite number",
            id="infinite-timeout",
        ),
        pytest.param(
            ("--insecure-http", "--max-decoding-bytes", "1000", "--max-body-bytes", "2000"),
            "--max-decoding-bytes/PODPRESET_MAX_DECODING_BYTES: must be at least --max-body-bytes",
            id="decoding-below-body",
        ),
    ],
)
def test_bad_settings_are_refused_with_a_message(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        _parse(*argv)


# File source


def test_the_file_source_reloads_and_keeps_the_last_good_presets_on_a_bad_edit(tmp_path: Path) -> None:
    path = tmp_path / "presets.yaml"
    path.write_text(PRESETS_YAML)
    source = FileSource([str(path)], clock=lambda: 42.0)
    source.start()
    try:
        first = source.snapshot()
        assert first.synced and first.last_sync == 42.0 and len(first.index) == 2
        assert [p.name for p in first.index.for_namespace("default")] == ["db-password", "web-settings"]
        path.write_text(
            PRESETS_YAML + "---\n" + "kind: PodPreset\napiVersion: podpreset.dev/v1\nmetadata: {name: x}\n"
        )
        bad = source.reload()
        assert bad.index is first.index and bad.synced
        assert bad.problems and "presets.yaml: document 3 (x)" in bad.problems[0]
        path.write_text("not: [valid yaml")
        assert "invalid YAML" in source.reload().problems[0]
        path.write_text(PRESETS_YAML.split("---")[0])
        good = source.reload()
        assert len(good.index) == 1 and good.problems == ()
    finally:
        source.stop()


def test_an_unexpected_load_failure_is_published_and_retried_without_an_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "presets.yaml"
    path.write_text(PRESETS_YAML)
    source = FileSource([str(path)], interval=0.02)
    source.start()
    try:
        first = source.snapshot()
        assert first.synced and len(first.index) == 2

        def deep(*args: object, **kwargs: object) -> object:
            raise RecursionError("maximum recursion depth exceeded")

        monkeypatch.setattr("webhook.sources.files.load_presets", deep)
        path.write_text(PRESETS_YAML.split("---")[0])  # an edit, noticed by the poll thread
        assert _eventually(lambda: bool(source.snapshot().problems))
        failed = source.snapshot()
        assert failed.index is first.index and failed.synced
        assert "RecursionError" in failed.problems[0]
        metrics = Metrics()
        metrics.observe_snapshot(failed)
        assert metric_value(metrics.exposition().decode(), "podpreset_source_problems") == 1

        # The files were fine: the next polls retry, with no further edit.
        monkeypatch.undo()
        assert _eventually(lambda: not source.snapshot().problems)
        assert len(source.snapshot().index) == 1
    finally:
        source.stop()


def _eventually(check: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# Metrics directory


def test_the_metrics_dir_gets_a_subdirectory_of_its_own_and_only_its_metric_files_are_removed(
    tmp_path: Path,
) -> None:
    # What --metrics-dir points at may be anything, /tmp say: none of it is ours.
    (tmp_path / "keep.txt").write_text("x")
    (tmp_path / "keep.db").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "counter_1.db").write_text("x")
    path = Path(prepare_multiprocess_dir(str(tmp_path)))
    assert path == tmp_path / "podpreset-metrics" and path.is_dir()
    (path / "counter_123.db").write_text("a previous run's")
    (path / "notes").write_text("not a metric file")
    assert prepare_multiprocess_dir(str(tmp_path)) == str(path)
    assert sorted(p.name for p in path.iterdir()) == ["notes"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.db", "keep.txt", "other", "podpreset-metrics"]
    assert (tmp_path / "other" / "counter_1.db").exists()
    # A directory that does not exist yet is made.
    assert Path(prepare_multiprocess_dir(str(tmp_path / "new" / "dir"))).is_dir()


def test_a_metrics_subdirectory_that_is_not_a_directory_of_its_own_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "important.db").write_text("x")
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "podpreset-metrics").symlink_to(elsewhere)
    with pytest.raises(MetricsDirError, match="not a directory"):
        prepare_multiprocess_dir(str(parent))
    assert (elsewhere / "important.db").exists()
    (tmp_path / "file").mkdir()
    (tmp_path / "file" / "podpreset-metrics").write_text("x")
    with pytest.raises(MetricsDirError):
        prepare_multiprocess_dir(str(tmp_path / "file"))


# TLS reloader


def test_the_reloader_swaps_in_a_new_pair_and_keeps_the_old_while_the_pair_is_inconsistent(
    tmp_path: Path, ca: trustme.CA
) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    write_cert(ca, cert, key)
    reloader = CertificateReloader(str(cert), str(key), interval=0)
    first = reloader.context()
    assert isinstance(first, ssl.SSLContext)
    assert reloader.context() is first, "unchanged files must not rebuild the context"
    other = tmp_path / "other"
    other.mkdir()
    write_cert(ca, other / "tls.crt", other / "tls.key")
    cert.write_bytes((other / "tls.crt").read_bytes())  # the key is not written yet
    assert reloader.context() is first
    key.write_bytes((other / "tls.key").read_bytes())
    assert reloader.context() is not first


def test_the_reloader_refuses_a_mismatched_pair_at_start(tmp_path: Path, ca: trustme.CA) -> None:
    write_cert(ca, tmp_path / "a.crt", tmp_path / "a.key")
    write_cert(ca, tmp_path / "b.crt", tmp_path / "b.key")
    with pytest.raises(CertificateError, match="cannot load"):
        CertificateReloader(str(tmp_path / "a.crt"), str(tmp_path / "b.key"))


@pytest.mark.parametrize("depth", [500, 900, 990, 5000])
def test_deep_nesting_inside_the_pod_is_answered_or_refused_never_a_500(
    client: FlaskClient, depth: int
) -> None:
    body = encode(make_review()).replace(
        b'"image": "registry.example/app:1"', b'"image": "x", "deep": ' + b"[" * depth + b"]" * depth
    )
    response = client.post("/mutate", data=body, content_type=JSON)
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert response.json == {"error": "body: JSON nests deeper than 100 levels", "code": 400}


# Cluster presets, namespace labels and protected names through the app

CLUSTER_PRESETS_YAML = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {env: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: sandbox, labels: {env: dev}}
---
apiVersion: podpreset.dev/v1
kind: ClusterPodPreset
metadata: {name: proxy}
spec:
  namespaceSelector: {matchLabels: {env: prod}}
  env: [{name: HTTPS_PROXY, value: "http://proxy:3128"}]
---
apiVersion: podpreset.dev/v1
kind: ClusterPodPreset
metadata: {name: hijack}
spec:
  namespaceSelector: {matchLabels: {env: dev}}
  env: [{name: KUBERNETES_SERVICE_HOST, value: "10.9.9.9"}, {name: HARMLESS, value: "1"}]
"""


def _answer(client: FlaskClient, namespace: str) -> dict[str, object]:
    response = client.post("/mutate", data=encode(make_review(namespace=namespace)), content_type=JSON)
    assert response.status_code == 200 and response.json is not None
    answer: dict[str, object] = response.json["response"]
    return answer


def test_the_file_source_serves_cluster_presets_by_the_labels_of_namespace_documents(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(CLUSTER_PRESETS_YAML)
    source = FileSource([str(tmp_path)], interval=3600)
    source.start()
    try:
        assert dict(source.snapshot().namespaces["shop"])["env"] == "prod"
        client = create_app(Settings(insecure_http=True), source).test_client()
        assert "patch" in _answer(client, "shop")
        assert "patch" not in _answer(client, "elsewhere")  # only kubernetes.io/metadata.name
        sandbox = _answer(client, "sandbox")
        assert "patch" not in sandbox  # the protected name makes the whole preset a conflict
        (warning,) = sandbox["warnings"]  # type: ignore[misc]
        assert "hijack" in warning and "KUBERNETES_SERVICE_HOST" in warning and "protected" in warning
        assert "10.9.9.9" not in warning
    finally:
        source.stop()


def test_the_protected_setting_reaches_the_engine(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(CLUSTER_PRESETS_YAML)
    loaded = load_presets([str(tmp_path)])
    source = StaticSource(loaded.presets, loaded.namespaces)
    nothing = create_app(Settings(insecure_http=True, protected=()), source).test_client()
    assert "patch" in _answer(nothing, "sandbox")
    proxies = create_app(Settings(insecure_http=True, protected=("HTTPS_PROXY",)), source).test_client()
    shop = _answer(proxies, "shop")
    assert "patch" not in shop and "HTTPS_PROXY" in str(shop["warnings"])
