"""A webhook of the test's own, at default settings, against the real API server.

Not registered with the API server: the tests send it AdmissionReviews themselves, stop it, and
cut its connection to the API server through a proxy, without disturbing the session's webhook.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml
from support.reviews import admission_review

from webhook.settings import Settings

from .conftest import ANNOTATION_PREFIX, NORMAL_BOUND, RECOVERY_BOUND, Cluster, LocalWebhook, create_preset
from .rest import Kube
from .tcpproxy import TcpProxy


def review(namespace: str, uid: str = "6f1c2d3e-0000-4000-8000-000000000006") -> dict[str, Any]:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
    }
    return admission_review(pod, uid=uid, namespace=namespace, name="probe", username="e2e", dry_run=True)


def connect(webhook: LocalWebhook) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", webhook.port, context=webhook.ssl_context(), timeout=10)


def post(conn: http.client.HTTPSConnection, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    conn.request("POST", "/mutate", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    try:
        data = response.read()
    except BaseException:
        response.close()  # on "Connection: close" the response owns the socket
        raise
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(data)


def applied(webhook: LocalWebhook, namespace: str) -> set[str]:
    """The names of the presets the webhook applies to a probe pod of ``namespace`` now."""
    conn = connect(webhook)
    try:
        status, _, answer = post(conn, review(namespace))
    finally:
        conn.close()
    assert status == 200, answer
    patch = answer["response"].get("patch")
    if not patch:
        return set()
    pod = jsonpatch.apply_patch(review(namespace)["request"]["object"], json.loads(base64.b64decode(patch)))
    annotations = pod["metadata"].get("annotations") or {}
    return {key.removeprefix(ANNOTATION_PREFIX) for key in annotations if key.startswith(ANNOTATION_PREFIX)}


def everywhere(webhook: LocalWebhook, namespace: str, names: set[str]) -> bool:
    """Whether every answer of several (which land on both workers) applies ``names``."""
    return all(names <= applied(webhook, namespace) for _ in range(6))


def watch_problems(webhook: LocalWebhook) -> list[Any]:
    """The watch problems /readyz lists (other tests may leave invalid presets behind)."""
    return [p for p in webhook.readyz()[1]["problems"] if p["source"].startswith("kubernetes watch")]


def within(seconds: float, what: str, check: Any) -> float:
    """Poll ``check`` until true; fail if that takes longer than ``seconds``. Returns the time taken."""
    started = time.monotonic()
    while not check():
        taken = time.monotonic() - started
        if taken > seconds:
            raise AssertionError(f"{what}: not in effect within the bound of {seconds:.0f}s")
        time.sleep(0.05)
    taken = time.monotonic() - started
    print(f"{what}: {taken:.2f}s")
    return taken


@pytest.fixture
def own_webhook(cluster: Cluster, tmp_path: Path) -> Iterator[LocalWebhook]:
    if cluster.webhook is None:
        pytest.skip(
            "cluster mode (PODPRESET_E2E_KUBECONFIG set): a webhook of the test's own needs the "
            "local control plane"
        )
    webhook = cluster.webhook.another(tmp_path)
    yield webhook
    webhook.stop()


@pytest.mark.local_only
def test_at_default_settings_sigterm_ends_a_watching_webhook_without_waiting_out_the_graceful_timeout(
    own_webhook: LocalWebhook, namespace: str
) -> None:
    own_webhook.start()
    process = own_webhook.process.popen
    assert process is not None
    body = review(namespace)
    connections = [connect(own_webhook) for _ in range(6)]
    for conn in connections:
        status, headers, _ = post(conn, body)
        assert status == 200 and headers.get("connection", "").lower() != "close"
    process.terminate()
    last = time.monotonic()
    try:
        status, _, _ = post(connections[0], body)  # kept alive across SIGTERM: still answered
        assert status == 200
        last = time.monotonic()
    except (http.client.RemoteDisconnected, ConnectionError):
        pass  # closed before the request was read; a client retries elsewhere
    assert process.wait(timeout=60) == 0
    seconds = time.monotonic() - last
    print(f"watch mode: exit {seconds:.2f}s after the last request")
    for conn in connections:
        conn.close()
    # The behaviour under test: the watch does not hold the exit until gunicorn's graceful timeout
    # (25 s by default) forces it. Unloaded it takes under 3 s; the bound sits well below 25 s so a
    # busy machine cannot turn it into a timing test.
    graceful = Settings().graceful_timeout
    assert seconds < graceful / 2, (
        f"exited {seconds:.1f}s after the last request (graceful timeout {graceful:.0f}s):\n"
        f"{own_webhook.process.tail()}"
    )


@pytest.mark.local_only
def test_a_dropped_watch_and_an_unreachable_api_server_recover_within_the_bound_and_are_reported(
    cluster: Cluster, admin: Kube, namespace: str, tmp_path: Path
) -> None:
    if cluster.webhook is None or cluster.plane is None:
        pytest.skip("cluster mode (PODPRESET_E2E_KUBECONFIG set): needs the local control plane")
    proxy = TcpProxy(("127.0.0.1", cluster.plane.api_port))
    kubeconfig = tmp_path / "proxied.kubeconfig"
    config = yaml.safe_load(cluster.webhook.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    kubeconfig.write_text(yaml.safe_dump(config))
    webhook = cluster.webhook.another(tmp_path, kubeconfig)
    try:
        webhook.start()
        # start() saw one worker ready; the other lists on its own.
        within(
            RECOVERY_BOUND, "both workers ready", lambda: all(webhook.readyz()[0] == 200 for _ in range(6))
        )
        create_preset(admin, namespace, "first", {"env": [{"name": "FIRST", "value": "1"}]})
        within(NORMAL_BOUND, "a created preset", lambda: everywhere(webhook, namespace, {"first"}))

        # A dropped watch: the connection is reset under it; the API server is fine.
        assert proxy.drop() >= 1
        create_preset(admin, namespace, "second", {"env": [{"name": "SECOND", "value": "1"}]})
        within(
            RECOVERY_BOUND,
            "a preset created as the watch was dropped",
            lambda: everywhere(webhook, namespace, {"first", "second"}),
        )

        # The API server unreachable: still ready, serving the last presets, and saying why.
        proxy.paused = True
        proxy.drop()

        def problem_reported() -> bool:
            status, body = webhook.readyz()
            return status == 200 and any(
                p["source"] == "kubernetes watch podpresets" and p["since"] for p in body["problems"]
            )

        within(RECOVERY_BOUND, "the unreachable API server in /readyz", problem_reported)
        assert everywhere(webhook, namespace, {"first", "second"})  # the last presets keep serving
        metrics = webhook.get("/metrics").decode()
        assert 'podpreset_watch_connected{resource="podpresets"} 0.0' in metrics
        assert 'podpreset_watch_errors_total{kind="network",resource="podpresets"}' in metrics

        proxy.paused = False
        create_preset(admin, namespace, "third", {"env": [{"name": "THIRD", "value": "1"}]})
        within(
            RECOVERY_BOUND,
            "a preset created while the API server was unreachable, once it is back",
            lambda: everywhere(webhook, namespace, {"first", "second", "third"}),
        )
        within(NORMAL_BOUND, "the problem cleared from /readyz", lambda: not watch_problems(webhook))
    finally:
        webhook.stop()
        proxy.close()
