"""A real gunicorn over TLS, called the way kube-apiserver calls it."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import ssl
import threading
import time

import jsonpatch
import pytest
from serverkit import SECRET_VALUE, GunicornServer, encode, make_review, metric_value, read_response, send

from presets.admission import admit, encode_review
from webhook.sources.documents import load_presets
from webhook.sources.snapshot import StaticSource

pytestmark = pytest.mark.server
JSON = {"Content-Type": "application/json"}


def expected_bytes(server: GunicornServer, review: dict) -> bytes:
    presets = load_presets([str(server.presets_dir)]).presets
    return encode_review(admit(review, StaticSource(presets).snapshot().index).response)


def test_a_matching_pod_gets_a_patch_that_adds_every_preset_field(server: GunicornServer) -> None:
    review = make_review()
    status, headers, body = server.request("POST", "/mutate", encode(review), JSON)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert body == expected_bytes(server, review), "/mutate and podpreset review must give the same bytes"
    answer = json.loads(body)
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == review["request"]["uid"]
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert "warnings" not in response
    patch = json.loads(base64.b64decode(response["patch"]))
    pod = jsonpatch.apply_patch(review["request"]["object"], patch)
    container = pod["spec"]["containers"][0]
    assert [e["name"] for e in container["env"]] == ["DB_PASSWORD", "GREETING"]
    assert container["envFrom"] == [{"configMapRef": {"name": "web-config"}}]
    assert container["volumeMounts"] == [{"name": "cache", "mountPath": "/cache"}]
    assert pod["spec"]["volumes"] == [{"name": "cache", "emptyDir": {}}]
    assert pod["spec"]["tolerations"][0]["key"] == "dedicated"
    annotations = pod["metadata"]["annotations"]
    assert set(annotations) == {
        "podpreset.admission.kubernetes.io/podpreset-db-password",
        "podpreset.admission.kubernetes.io/podpreset-web-settings",
    }


def test_a_pod_of_a_namespace_without_presets_gets_no_patch_fields(server: GunicornServer) -> None:
    status, answer = server.mutate(make_review(namespace="elsewhere"))
    assert status == 200
    assert answer["response"] == {"uid": make_review()["request"]["uid"], "allowed": True}


def test_the_request_namespace_is_used_when_the_pod_has_none(server: GunicornServer) -> None:
    review = make_review()
    assert "namespace" not in review["request"]["object"]["metadata"]
    status, answer = server.mutate(review)
    assert status == 200 and "patch" in answer["response"]


def test_a_conflict_admits_the_pod_unchanged_with_one_warning_that_hides_the_value(
    server: GunicornServer,
) -> None:
    review = make_review(env=[{"name": "GREETING", "value": "mine"}])
    status, answer = server.mutate(review)
    assert status == 200
    response = answer["response"]
    assert response["allowed"] is True
    assert "patch" not in response and "patchType" not in response
    assert len(response["warnings"]) == 1
    warning = response["warnings"][0]
    assert "web-settings" in warning and "GREETING" in warning and "app" in warning
    assert SECRET_VALUE not in warning and "mine" not in warning


def test_dry_run_gets_the_same_answer(server: GunicornServer) -> None:
    wet = server.mutate(make_review())
    dry = server.mutate(make_review(dry_run=True))
    assert dry == wet


def test_an_update_is_admitted_without_a_patch(server: GunicornServer) -> None:
    status, answer = server.mutate(make_review(operation="UPDATE"))
    assert status == 200
    assert answer["response"] == {"uid": make_review()["request"]["uid"], "allowed": True}


def _bad_reviews() -> list:
    review = make_review()
    no_uid = make_review()
    del no_uid["request"]["uid"]
    no_object = make_review()
    del no_object["request"]["object"]
    deep = make_review()
    deep["request"]["object"]["spec"]["containers"][0]["env"] = "GREETING=hi"
    labels = make_review()
    labels["request"]["object"]["metadata"]["labels"] = {"app": 7}
    wrong_kind = make_review()
    wrong_kind["kind"] = "Pod"
    return [
        pytest.param(b"garbage", "invalid JSON", id="garbage"),
        pytest.param(encode(review)[:-20], "invalid JSON", id="truncated-json"),
        pytest.param(b"", "empty", id="empty-body"),
        pytest.param(b"\xff\xfe\xfa", "UTF-8", id="not-utf8"),
        pytest.param(b"[1, 2]", "AdmissionReview", id="a-json-list"),
        pytest.param(encode(wrong_kind), "kind", id="wrong-kind"),
        pytest.param(encode(no_uid), "request.uid", id="missing-uid"),
        pytest.param(encode(no_object), "request.object", id="missing-object"),
        pytest.param(encode(deep), "spec.containers[0].env", id="wrong-type-deep-in-the-pod"),
        pytest.param(encode(labels), "metadata.labels", id="a-label-that-is-a-number"),
        pytest.param(b"[" * 100_000, "nests deeper than 100 levels", id="nesting-too-deep"),
    ]


@pytest.mark.parametrize(("body", "named"), _bad_reviews())
def test_a_bad_body_is_a_400_naming_the_problem_and_the_server_keeps_serving(
    server: GunicornServer, body: bytes, named: str
) -> None:
    conn = server.connection()
    try:
        status, headers, data = send(conn, "POST", "/mutate", body, JSON)
        assert status == 400
        assert headers["content-type"] == "application/json"
        error = json.loads(data)
        assert error["code"] == 400
        assert named in error["error"]
        status, _, data = send(conn, "POST", "/mutate", encode(make_review()), JSON)
        assert status == 200 and "patch" in json.loads(data)["response"]
    finally:
        conn.close()


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/yaml", None]
)
def test_a_body_that_is_not_declared_json_is_a_415(server: GunicornServer, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    status, _, data = server.request("POST", "/mutate", encode(make_review()), headers)
    assert status == 415
    assert "Content-Type" in json.loads(data)["error"]


def test_json_with_a_charset_is_accepted(server: GunicornServer) -> None:
    status, _, _ = server.request(
        "POST", "/mutate", encode(make_review()), {"Content-Type": "application/json; charset=utf-8"}
    )
    assert status == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_another_method_than_post_is_a_405(server: GunicornServer, method: str) -> None:
    status, headers, data = server.request(method, "/mutate")
    assert status == 405
    assert "POST" in headers["allow"]
    assert json.loads(data)["code"] == 405


def test_a_body_over_the_limit_is_a_413_even_while_the_client_still_sends(server: GunicornServer) -> None:
    huge = b'{"padding": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    head = (
        f"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(huge)}\r\n\r\n"
    ).encode()
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw,
        server.context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        # The server may answer and close without reading it all, as it should.
        with contextlib.suppress(OSError):
            tls.sendall(head + huge)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := tls.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert server.mutate(make_review())[0] == 200


def test_a_chunked_body_over_the_limit_is_a_413(server: GunicornServer) -> None:
    chunk = b"x" * (1024 * 1024)
    conn = server.connection()
    try:
        # The server answers once the body passes 3 MiB and closes without reading the rest (it
        # drains at most 64 KiB more): the send of the fourth MiB then fails whenever the socket
        # buffers cannot take what is left, with EPIPE, a reset, or SSLEOFError (seen in CI).
        # The answer was sent before the close and is read all the same.
        with contextlib.suppress(OSError):
            conn.request("POST", "/mutate", body=iter([chunk] * 4), headers=JSON, encode_chunked=True)
        status, _, data = read_response(conn)
    finally:
        conn.close()
    assert status == 413
    assert json.loads(data)["error"] == "body: larger than the limit of 3145728 bytes"
    status, _ = server.mutate(make_review())
    assert status == 200


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(server: GunicornServer) -> None:
    conn = server.connection()
    try:
        conn.putrequest("POST", "/mutate")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(1024 * 1024 * 1024))
        conn.endheaders()
        status, _, _ = read_response(conn)
    finally:
        conn.close()
    assert status == 413


def test_health_and_readiness_are_served_on_the_plain_http_health_port(server: GunicornServer) -> None:
    assert server.health("/healthz")[0] == 200
    status, _, body = server.health("/readyz")
    assert status == 200
    assert json.loads(body)["presets"] == 2
    status, headers, body = server.health("/metrics")
    assert status == 200 and b"podpreset_admissions_total" in body
    assert headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/nope"])
def test_the_tls_port_serves_only_mutate(server: GunicornServer, path: str) -> None:
    status, _, body = server.request("GET", path)
    assert status == 404 and json.loads(body)["code"] == 404
    assert "only POST /mutate" in json.loads(body)["error"]


def test_the_health_port_does_not_serve_mutate(server: GunicornServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.health_port, timeout=30)
    try:
        status, _, body = send(conn, "POST", "/mutate", encode(make_review()), JSON)
    finally:
        conn.close()
    assert status == 404 and "only on the TLS port" in json.loads(body)["error"]


def test_many_requests_reuse_one_kept_alive_connection(server: GunicornServer) -> None:
    conn = server.connection()
    try:
        send(conn, "POST", "/mutate", encode(make_review(uid="first")), JSON)
        sock = conn.sock
        for i in range(50):
            status, headers, _ = send(conn, "POST", "/mutate", encode(make_review(uid=f"uid-{i}")), JSON)
            assert status == 200
            assert headers.get("connection", "keep-alive").lower() != "close"
        assert conn.sock is sock, "the client had to reconnect"
    finally:
        conn.close()


def test_the_certificate_is_verified_against_the_ca_and_names_the_address(server: GunicornServer) -> None:
    conn = server.connection()
    try:
        send(conn, "POST", "/mutate", encode(make_review()), JSON)
        assert isinstance(conn.sock, ssl.SSLSocket)
        assert conn.sock.version() == "TLSv1.3"
    finally:
        conn.close()
    untrusting = http.client.HTTPSConnection("127.0.0.1", server.port, context=ssl.create_default_context())
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            untrusting.request("POST", "/mutate", encode(make_review()), JSON)
    finally:
        untrusting.close()


def test_thousands_of_concurrent_requests_all_succeed(server: GunicornServer) -> None:
    review = make_review()
    expected = expected_bytes(server, review)
    body = encode(review)
    failures: list[str] = []
    counts = [0] * 8

    def client(slot: int) -> None:
        conn = server.connection()
        try:
            for _ in range(300):
                status, _, data = send(conn, "POST", "/mutate", body, JSON)
                if status != 200 or data != expected:
                    failures.append(f"{status}: {data[:200]!r}")
                counts[slot] += 1
        except Exception as exc:
            failures.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sum(counts) == 2400


def test_metrics_count_each_outcome_across_workers(server: GunicornServer) -> None:
    before = server.metrics()
    for _ in range(6):
        assert server.mutate(make_review())[0] == 200
    server.mutate(make_review(namespace="elsewhere"))
    server.mutate(make_review(env=[{"name": "GREETING", "value": "mine"}]))
    server.mutate(make_review(operation="UPDATE"))
    server.request("POST", "/mutate", b"garbage", JSON)
    after = server.metrics()

    def delta(name: str) -> float:
        return metric_value(after, name) - metric_value(before, name)

    assert delta('podpreset_admissions_total{outcome="mutated"}') == 6
    assert delta('podpreset_admissions_total{outcome="unchanged"}') == 1
    assert delta('podpreset_admissions_total{outcome="conflict"}') == 1
    assert delta('podpreset_admissions_total{outcome="skipped"}') == 1
    assert delta('podpreset_admissions_total{outcome="error"}') == 1
    assert metric_value(after, 'podpreset_conflicts_total{namespace="default",preset="web-settings"}') >= 1
    assert delta("podpreset_admission_duration_seconds_count") == 9
    assert metric_value(after, "podpreset_presets_loaded") == 2
    assert metric_value(after, "podpreset_source_synced") == 1
    assert metric_value(after, "podpreset_source_problems") == 0
    assert metric_value(after, "podpreset_source_last_success_timestamp_seconds") > 1_600_000_000


def test_each_decision_is_logged_once_without_env_values(server: GunicornServer) -> None:
    uid = "log-check-4a1f"
    server.mutate(make_review(uid=uid, env=[{"name": "GREETING", "value": "mine-too"}]))
    deadline = time.monotonic() + 60  # a worker writes its log lines a few milliseconds later
    while f"uid={uid} namespace=" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = [line for line in server.log().splitlines() if f"uid={uid}" in line]
    decisions = [line for line in lines if "action=" in line]
    assert len(decisions) == 1
    assert "namespace=default" in decisions[0] and "pod=web-1" in decisions[0]
    assert "action=conflict" in decisions[0]
    assert SECRET_VALUE not in server.log() and "mine-too" not in server.log()


def test_podpreset_review_prints_the_bytes_the_server_sends(server: GunicornServer, tmp_path) -> None:
    import subprocess
    import sys

    review = make_review()
    review_file = tmp_path / "review.json"
    review_file.write_bytes(encode(review))
    _, _, body = server.request("POST", "/mutate", encode(review), JSON)
    cli = subprocess.run(
        [sys.executable, "-m", "webhook.cli", "review", "-f", str(server.presets_dir), str(review_file)],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert cli.stdout == body
