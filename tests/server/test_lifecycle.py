"""A real gunicorn through its life: SIGTERM under load, certificate rotation, preset reloads."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from serverkit import (
    PRESETS_YAML,
    ROOT,
    GunicornServer,
    der_of,
    encode,
    make_review,
    metric_value,
    send,
    wait_until,
    write_cert,
)

from webhook.settings import Settings

pytestmark = pytest.mark.server
JSON = {"Content-Type": "application/json"}


@dataclass
class Load:
    """Client threads sending reviews until stopped, recording every outcome."""

    server: GunicornServer
    threads: int = 4
    new_connection_each_time: bool = False
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    """Requests that were sent and got no correct answer."""
    refused: int = 0
    """Connections the server no longer accepted (after SIGTERM only)."""
    unread: int = 0
    """Requests on a kept-alive connection the stopping server had closed (never read)."""
    stop_requested: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, slot: int) -> None:
        body = encode(make_review())
        conn: http.client.HTTPSConnection | None = None
        while not self.stop.is_set():
            if conn is None:
                conn = self.server.connection(timeout=30)
                try:
                    conn.connect()
                except OSError as exc:
                    # After SIGTERM the listener is closed: connections are refused or reset
                    # before a byte of the request was sent.
                    with self.lock:
                        if self.stop_requested:
                            self.refused += 1
                        else:
                            self.failures.append(f"connect: {exc!r}")
                    conn.close()
                    conn = None
                    time.sleep(0.01)
                    continue
            try:
                status, headers, data = send(conn, "POST", "/mutate", body, JSON)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                # A kept-alive connection closed by the server before this request was read:
                # nothing was processed, and every HTTP client retries on a new connection.
                conn.close()
                conn = None
                with self.lock:
                    if self.stop_requested:
                        self.unread += 1
                    else:
                        self.failures.append(repr(exc))
                continue
            except Exception as exc:
                with self.lock:
                    self.failures.append(repr(exc))
                conn.close()
                conn = None
                continue
            with self.lock:
                if status == 200 and _has_patch(data):
                    self.ok += 1
                else:
                    self.failures.append(f"{status}: {data[:200]!r}")
            if self.new_connection_each_time or headers.get("connection", "").lower() == "close":
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Load:
        self.workers = [threading.Thread(target=self.run, args=(i,)) for i in range(self.threads)]
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join()

    def wait_for(self, count: int) -> None:
        """Until ``count`` answers came or a request failed (at most 120 s, a bound not a speed)."""
        deadline = time.monotonic() + 120
        while self.ok < count and time.monotonic() < deadline and not self.failures:
            time.sleep(0.01)


def _has_patch(data: bytes) -> bool:
    """An AdmissionReview answer with a patch (a body that is not one is a failure to record, not
    an exception that ends a client thread with its connection open)."""
    try:
        return "patch" in json.loads(data)["response"]
    except (ValueError, KeyError, TypeError):
        return False


def test_sigterm_during_load_answers_every_request_in_flight(own_server: GunicornServer) -> None:
    own_server.start()
    assert own_server.health("/readyz")[0] == 200
    with Load(own_server, threads=6) as load:
        load.wait_for(300)
        load.stop_requested = True
        own_server.terminate()
        # Readiness ends: /readyz answers 503 while the worker still answers, then connections
        # are refused. Either is "not ready"; which one a probe sees depends on timing.
        assert wait_until(lambda: _not_ready(own_server))
        assert own_server.process is not None
        assert own_server.process.wait(timeout=30) == 0
    assert load.failures == []
    assert load.ok >= 300


def _not_ready(server: GunicornServer) -> bool:
    """Probe ``/readyz`` on a new connection: 503, or no connection at all, means not ready."""
    conn = http.client.HTTPConnection("127.0.0.1", server.health_port, timeout=1)
    try:
        status, _, _ = send(conn, "GET", "/readyz")
    except (ConnectionError, http.client.RemoteDisconnected):
        return True  # refused, reset, or closed by a stopping server before an answer
    except TimeoutError:
        return False  # queued in a listen backlog nobody accepts from any more: ask again
    finally:
        conn.close()
    return status == 503


def _served_cert(server: GunicornServer) -> bytes:
    conn = server.connection()
    try:
        send(conn, "POST", "/mutate", encode(make_review()), {"Content-Type": "application/json"})
        assert isinstance(conn.sock, ssl.SSLSocket)
        der = conn.sock.getpeercert(binary_form=True)
        assert der is not None
        return der
    finally:
        conn.close()


def test_a_rewritten_certificate_is_served_without_a_failed_request(
    own_server: GunicornServer, ca: trustme.CA
) -> None:
    own_server.start()
    old = der_of(own_server.leaf)
    assert _served_cert(own_server) == old
    with (
        Load(own_server, threads=2) as load,
        Load(own_server, threads=2, new_connection_each_time=True) as fresh,
    ):
        load.wait_for(50)
        new = der_of(write_cert(ca, own_server.cert_file, own_server.key_file))
        assert wait_until(lambda: _served_cert(own_server) == new), (
            "the new certificate was not served in 60 s"
        )
        fresh.wait_for(fresh.ok + 50)
    assert load.failures == [] and fresh.failures == []
    assert wait_until(lambda: "reloaded the TLS certificate" in own_server.log())


def _kubernetes_secret_volume(directory: Path, ca: trustme.CA, generation: int) -> bytes:
    """Write a Secret volume the way the kubelet does: ..<timestamp>/ files, ..data symlink swap."""
    version = directory / f"..2026_01_01_00_00_0{generation}.000000000"
    version.mkdir()
    leaf = write_cert(ca, version / "tls.crt", version / "tls.key")
    link = directory / "..data_tmp"
    link.symlink_to(version.name)
    os.replace(link, directory / "..data")
    for name in ("tls.crt", "tls.key"):
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(f"..data/{name}")
    return der_of(leaf)


def test_a_secret_volume_symlink_swap_is_served_without_a_failed_request(
    tmp_path: Path, ca: trustme.CA, client_context: ssl.SSLContext
) -> None:
    volume = tmp_path / "tls"
    volume.mkdir()
    old = _kubernetes_secret_volume(volume, ca, 1)
    server = GunicornServer(
        tmp_path, ca, client_context, cert_file=volume / "tls.crt", key_file=volume / "tls.key"
    )
    server.start()
    try:
        assert _served_cert(server) == old
        with Load(server, threads=2) as load, Load(server, threads=2, new_connection_each_time=True) as fresh:
            load.wait_for(50)
            new = _kubernetes_secret_volume(volume, ca, 2)
            assert wait_until(lambda: _served_cert(server) == new), (
                "the new certificate was not served in 60 s"
            )
            fresh.wait_for(fresh.ok + 50)
        assert load.failures == [] and fresh.failures == []
    finally:
        assert server.stop() == 0


ADDED_PRESET = """\
apiVersion: podpreset.dev/v1
kind: PodPreset
metadata:
  name: added-later
spec:
  env:
    - name: ADDED
      value: "yes"
"""


def _applied(server: GunicornServer) -> set[str]:
    status, answer = server.mutate(make_review())
    assert status == 200
    patch = json.loads(base64.b64decode(answer["response"]["patch"]))
    prefix = "podpreset.admission.kubernetes.io/podpreset-"
    names = set()
    for op in patch:
        if op["path"] == "/metadata/annotations":
            names |= {k.removeprefix(prefix) for k in op["value"]}
        elif op["path"].startswith("/metadata/annotations/"):
            names.add(op["path"].split("/")[-1].replace("~1", "/").removeprefix(prefix))
    return names


def test_an_edited_preset_file_is_reloaded_and_a_bad_edit_keeps_the_last_good_presets(
    own_server: GunicornServer,
) -> None:
    own_server.start()
    assert _applied(own_server) == {"web-settings", "db-password"}
    (own_server.presets_dir / "added.yaml").write_text(ADDED_PRESET)
    assert wait_until(lambda: _applied(own_server) == {"web-settings", "db-password", "added-later"})
    # Both workers, each with its own source, have the new set before the bad edit.
    assert wait_until(lambda: own_server.log().count("loaded 3 presets") == 2)

    (own_server.presets_dir / "added.yaml").write_text(ADDED_PRESET.replace("  env:", "  env: 7\n  envx:"))
    assert wait_until(lambda: metric_value(own_server.metrics(), "podpreset_source_problems") >= 1)
    for _ in range(20):  # every worker still serves the last good set
        assert _applied(own_server) == {"web-settings", "db-password", "added-later"}
    assert own_server.health("/readyz")[0] == 200
    assert wait_until(lambda: "added.yaml: document 1 (added-later): spec.env" in own_server.log())

    (own_server.presets_dir / "added.yaml").unlink()
    assert wait_until(lambda: _applied(own_server) == {"web-settings", "db-password"})
    assert wait_until(lambda: metric_value(own_server.metrics(), "podpreset_source_problems") == 0)


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PODPRESET_")}
    return subprocess.run(
        [sys.executable, "-m", "webhook.server.serve", *args],
        cwd=ROOT, env={**base, **(env or {})}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_serve_refuses_to_start_without_a_certificate(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PRESETS_YAML)
    result = _serve("-f", str(tmp_path / "p.yaml"), "--bind", "127.0.0.1:1")
    assert result.returncode == 2
    assert "--tls-cert and --tls-key are required" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_to_start_on_invalid_presets(tmp_path: Path, ca: trustme.CA) -> None:
    write_cert(ca, tmp_path / "c.pem", tmp_path / "k.pem")
    (tmp_path / "p.yaml").write_text(
        PRESETS_YAML.replace("  env:\n    - name: DB", "  env: 3\n  x:\n    - name: DB")
    )
    result = _serve(
        "-f", str(tmp_path / "p.yaml"), "--bind", "127.0.0.1:1",
        env={"PODPRESET_TLS_CERT": str(tmp_path / "c.pem"), "PODPRESET_TLS_KEY": str(tmp_path / "k.pem")},
    )  # fmt: skip
    assert result.returncode == 2
    assert "invalid presets" in result.stderr and "p.yaml: document 2 (db-password)" in result.stderr


def test_serve_refuses_a_key_that_does_not_match_the_certificate(tmp_path: Path, ca: trustme.CA) -> None:
    write_cert(ca, tmp_path / "c.pem", tmp_path / "k.pem")
    write_cert(ca, tmp_path / "c2.pem", tmp_path / "k2.pem")
    (tmp_path / "p.yaml").write_text(PRESETS_YAML)
    result = _serve("-f", str(tmp_path / "p.yaml"), "--tls-cert", str(tmp_path / "c.pem"),
                    "--tls-key", str(tmp_path / "k2.pem"), "--bind", "127.0.0.1:1")  # fmt: skip
    assert result.returncode == 2
    assert "cannot load the certificate and key" in result.stderr


def test_insecure_http_serves_plain_http_when_asked(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PRESETS_YAML)
    from serverkit import free_port

    port, health_port = free_port(), free_port()
    log = tmp_path / "log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "webhook.server.serve", "-f", str(tmp_path / "p.yaml"), "--insecure-http",
             "--bind", f"127.0.0.1:{port}", "--health-bind", f"127.0.0.1:{health_port}", "--workers", "1"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:

        def ready() -> bool:
            conn = http.client.HTTPConnection("127.0.0.1", health_port, timeout=5)
            try:
                return send(conn, "GET", "/readyz")[0] == 200
            except OSError:
                return False
            finally:
                conn.close()

        assert wait_until(ready), log.read_text()
        assert "for local debugging only" in log.read_text()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            body = encode(make_review())
            status, _, answer = send(conn, "POST", "/mutate", body, {"Content-Type": "application/json"})
        finally:
            conn.close()
        assert status == 200 and "patch" in json.loads(answer)["response"]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            exited = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    assert exited == 0


def test_at_default_settings_sigterm_ends_the_process_without_waiting_out_the_graceful_timeout(
    tmp_path: Path, ca: trustme.CA, client_context: ssl.SSLContext
) -> None:
    # No --graceful-timeout: the 25 s default must only bound requests in flight, never an idle exit.
    server = GunicornServer(tmp_path, ca, client_context, graceful_timeout=None).start()
    try:
        seconds = sigterm_with_kept_alive_connections(server.connection, server.terminate, server.process)
    finally:
        server.stop()  # at once when it has exited; a failed test leaves no process behind
    print(f"file mode: exit {seconds:.2f}s after the last request")
    # Unloaded this takes under 3 s; the bound only has to tell an idle exit from one that waited
    # for the graceful timeout, so a busy machine cannot turn it into a timing test.
    graceful = Settings().graceful_timeout
    assert seconds < graceful / 2, f"exited {seconds:.1f}s after the last request:\n{server.log()}"


def sigterm_with_kept_alive_connections(
    connect: Callable[[], http.client.HTTPSConnection],
    terminate: Callable[[], None],
    process: subprocess.Popen[bytes] | None,
) -> float:
    """Answer requests on kept-alive connections (as the API server keeps them), SIGTERM while they
    stay open and one more is answered, and return the seconds from the last answer to the exit."""
    assert process is not None
    body = encode(make_review())
    connections = [connect() for _ in range(6)]
    try:
        for conn in connections:
            status, headers, _ = send(conn, "POST", "/mutate", body, JSON)
            assert status == 200 and headers.get("connection", "").lower() != "close"
        terminate()
        last = time.monotonic()
        try:
            # A request on a kept-alive connection right after SIGTERM is still answered.
            status, _, _ = send(connections[0], "POST", "/mutate", body, JSON)
            assert status == 200
            last = time.monotonic()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError):
            pass  # closed before the request was read: the client retries elsewhere
        assert process.wait(timeout=60) == 0
        return time.monotonic() - last
    finally:
        for conn in connections:  # also when an assertion failed: none is left to the GC
            conn.close()


def test_a_worker_sent_sigterm_while_it_boots_exits(tmp_path: Path, ca: trustme.CA) -> None:
    """Between gunicorn's fork and the worker's own signal handlers, a SIGTERM used to be queued
    for the arbiter's loop inside the child and lost: the worker served on, and a server stopped
    at that moment waited for the 25 s graceful timeout. Each worker here gets SIGTERM as soon as
    it says it is booting (the arbiter then starts another), and must be gone soon after."""
    from serverkit import free_port

    write_cert(ca, tmp_path / "c.pem", tmp_path / "k.pem")
    (tmp_path / "p.yaml").write_text(PRESETS_YAML)
    process = subprocess.Popen(
        [sys.executable, "-m", "webhook.server.serve", "-f", str(tmp_path / "p.yaml"),
         "--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem"),
         "--bind", f"127.0.0.1:{free_port()}", "--health-bind", f"127.0.0.1:{free_port()}",
         "--workers", "1"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    killed: list[int] = []
    try:
        for line in process.stderr:
            found = re.search(r"Booting worker with pid: (\d+)", line)
            if not found:
                continue
            pid = int(found.group(1))
            os.kill(pid, signal.SIGTERM)
            killed.append(pid)
            # Gone means reaped too. The bound stays below the 25 s graceful timeout that such a
            # worker used to take, which is what this tells apart.
            assert wait_until(lambda pid=pid: not Path(f"/proc/{pid}").exists(), 20), (
                f"worker {pid} still runs 20 s after a SIGTERM sent while it booted"
            )
            if len(killed) == 5:
                break
    finally:
        process.terminate()
        process.stderr.read()
        process.stderr.close()
        assert process.wait(timeout=60) == 0
    assert len(killed) == 5


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_connections_waiting_at_a_worker_that_dies_are_served_by_another(
    own_server: GunicornServer,
) -> None:
    """A worker that dies (killed, out of memory, past gunicorn's timeout) must not take with it
    the connections the kernel has queued for it but it never accepted: with one listening socket
    per worker (SO_REUSEPORT) they were reset, and the API server admitted those pods unmutated
    (or, failing closed, refused them). One worker is stopped, so it accepts nothing, while new
    connections arrive; then it is killed. Every request must be answered by the other worker."""
    server = own_server.start()
    assert server.process is not None
    stopped = _children(server.process.pid)[0]
    review = encode(make_review())
    results: list[int | str] = []

    def one() -> None:
        conn = server.connection(timeout=60)
        try:
            status, _, _ = send(conn, "POST", "/mutate", review, JSON)
            results.append(status)
        except OSError as error:
            results.append(f"{type(error).__name__}: {error}")
        finally:
            conn.close()

    os.kill(stopped, signal.SIGSTOP)
    try:
        clients = [threading.Thread(target=one) for _ in range(16)]
        for client in clients:
            client.start()
        # Every connection is made: answered by the other worker, or queued at a listening socket
        # (the stopped worker's, whose queue is what this test is about).
        assert wait_until(lambda: len(results) + _queued(server.port) == 16), (results, _queued(server.port))
        assert _queued(server.port) > 0, "no connection was queued at the stopped worker"
    finally:
        os.kill(stopped, signal.SIGKILL)
    for client in clients:
        client.join(timeout=120)
    assert results == [200] * 16, results


def _accept_queues(port: int) -> list[int]:
    """One number per socket listening on ``port`` (one per worker slot, whatever the processes
    sharing it): how many connections wait in its accept queue."""
    lines = subprocess.run(
        ["ss", "-Htln", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return [int(line.split()[1]) for line in lines]


def _queued(port: int) -> int:
    return sum(_accept_queues(port))


def _listening(port: int) -> int:
    return len(_accept_queues(port))


def test_every_listening_socket_has_a_worker_after_workers_are_added_and_removed(
    own_server: GunicornServer,
) -> None:
    """SIGTTIN adds a worker (and a slot's socket), SIGTTOU removes an old one: a slot whose socket
    outlived its worker would hold the connections the kernel queues at it until they time out.
    Three rounds: each SIGTTOU makes the arbiter send its worker SIGTERM twice at once, which used
    to deadlock the worker's handler now and then (``stop_on_first_sigterm``; 2 rounds in 9 once)."""
    server = own_server.start()
    assert server.process is not None
    arbiter = server.process.pid
    review = encode(make_review())
    assert wait_until(lambda: len(_children(arbiter)) == 2, 60), _children(arbiter)
    for _ in range(3):
        before = set(_children(arbiter))
        os.kill(arbiter, signal.SIGTTIN)
        assert wait_until(lambda: len(_children(arbiter)) == 3, 60), _children(arbiter)
        [added] = set(_children(arbiter)) - before
        assert wait_until(lambda: _listening(server.port) == 3, 60), _listening(server.port)
        os.kill(arbiter, signal.SIGTTOU)  # gunicorn stops its oldest worker
        # Gone means reaped by the arbiter (a worker not yet reaped is still its child).
        assert wait_until(lambda: len(_children(arbiter)) == 2, 60), (
            f"no worker of {_children(arbiter)} exited within 60 s of SIGTTOU:\n{server.log()[-3000:]}"
        )
        survivors = set(_children(arbiter))
        assert added in survivors and len(survivors & before) == 1, (before, added, survivors)
        # The arbiter closes the free slot's socket right after it reaped the worker.
        assert wait_until(lambda: _listening(server.port) == 2, 60), _listening(server.port)
        for _ in range(16):  # new connections, spread by the kernel over both slots
            conn = server.connection(timeout=30)
            try:
                status, _, _ = send(conn, "POST", "/mutate", review, JSON)
            finally:
                conn.close()
            assert status == 200


def test_a_sigterm_that_arrives_while_the_first_is_handled_is_ignored() -> None:
    """Python runs a second signal's handler inside the first, in the same thread: one that took
    the Event's lock again while the first held it waited for ever (``stop_on_first_sigterm``)."""
    from webhook.server.serve import stop_on_first_sigterm

    calls: list[str] = []

    class SetAtTheSecondSignal(threading.Event):
        def set(self) -> None:
            calls.append("set")
            if calls == ["set"]:
                handler(signal.SIGTERM, None)  # as if the second SIGTERM came now
            super().set()

    stopping = SetAtTheSecondSignal()
    handler = stop_on_first_sigterm(stopping, lambda signum, frame: calls.append("gunicorn's"))
    handler(signal.SIGTERM, None)
    handler(signal.SIGTERM, None)
    assert stopping.is_set()
    assert calls == ["set", "gunicorn's"]
