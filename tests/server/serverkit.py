"""Helpers for the server tests: preset files, reviews, certificates and a real gunicorn.

``GunicornServer`` runs ``python -m webhook.server.serve`` in a subprocess on a free loopback port over TLS
with a certificate from the session CA (clients verify it against that CA only), and its health
listener (``/healthz``, ``/readyz``, ``/metrics``, plain HTTP) on another free port.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trustme
from support.reviews import admission_review

ROOT = Path(__file__).resolve().parents[2]
READY_SECONDS = 90.0
"""How long a server may take to be ready: about a second alone, several on 2 busy cores (imports,
two workers forked and loaded); far above that is a server that will not start."""
SECRET_VALUE = "s3cr3t-value-never-logged"

PRESETS_YAML = f"""\
apiVersion: podpreset.dev/v1
kind: PodPreset
metadata:
  name: web-settings
  namespace: default
spec:
  selector:
    matchLabels:
      app: web
  env:
    - name: GREETING
      value: {SECRET_VALUE}
  envFrom:
    - configMapRef:
        name: web-config
  volumes:
    - name: cache
      emptyDir: {{}}
  volumeMounts:
    - name: cache
      mountPath: /cache
  tolerations:
    - key: dedicated
      operator: Equal
      value: web
      effect: NoSchedule
---
apiVersion: settings.k8s.io/v1alpha1
kind: PodPreset
metadata:
  name: db-password
spec:
  env:
    - name: DB_PASSWORD
      valueFrom:
        secretKeyRef:
          name: db
          key: password
"""


def make_review(
    *,
    uid: str = "0b5e0c4e-1111-4222-8333-444455556666",
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    env: list[dict[str, Any]] | None = None,
    operation: str = "CREATE",
    dry_run: bool = False,
    name: str | None = "web-1",
    generate_name: str | None = None,
) -> dict[str, Any]:
    """An AdmissionReview v1 for a pod, shaped as kube-apiserver sends it."""
    metadata: dict[str, Any] = {"labels": {"app": "web"} if labels is None else labels}
    if name is not None:
        metadata["name"] = name
    if generate_name is not None:
        metadata["generateName"] = generate_name
    container: dict[str, Any] = {"name": "app", "image": "registry.example/app:1"}
    if env is not None:
        container["env"] = env
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {"containers": [container]}}
    return admission_review(
        pod, uid=uid, namespace=namespace, operation=operation, name=name or "", dry_run=dry_run
    )


def encode(obj: object) -> bytes:
    return json.dumps(obj).encode()


def write_cert(ca: trustme.CA, cert_file: Path, key_file: Path) -> trustme.LeafCert:
    """Issue a fresh certificate for 127.0.0.1 and write it (a plain rewrite when the files exist)."""
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key_file.write_bytes(leaf.private_key_pem.bytes())
    return leaf


def der_of(leaf: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())


def wait_until(condition: Callable[[], bool], seconds: float = 60) -> bool:
    """Whether CONDITION holds within SECONDS, asked every 0.1 s (and once more at the end).

    The bound only stops a test that would otherwise wait for ever: it is no speed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TlsConnection(http.client.HTTPSConnection):
    """An HTTPS connection that closes its socket when connecting fails.

    ``HTTPSConnection.connect`` wraps a connected socket; when the server resets it during
    ``wrap_socket`` (a listener closed after SIGTERM), CPython's ``SSLSocket._create`` raises
    from its pre-handshake ``recv`` without closing the socket it made, and nobody holds it but
    the traceback: the GC then finds it open in whatever test runs. Wrapped before it connects,
    the socket is ours to close.
    """

    def connect(self) -> None:
        sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            socket.socket(socket.AF_INET, socket.SOCK_STREAM), server_hostname=self.host
        )
        try:
            sock.settimeout(self.timeout)
            sock.connect((self.host, self.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class GunicornServer:
    """``python -m webhook.server.serve`` in a subprocess, over TLS on a loopback port."""

    def __init__(
        self,
        tmp: Path,
        ca: trustme.CA,
        context: ssl.SSLContext,
        *,
        presets: str = PRESETS_YAML,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        extra_args: tuple[str, ...] = (),
        graceful_timeout: float | None = 10,
    ) -> None:
        self.tmp = tmp
        self.context = context
        self.port = free_port()
        self.health_port = free_port()
        self.presets_dir = tmp / "presets"
        self.presets_dir.mkdir(exist_ok=True)
        (self.presets_dir / "presets.yaml").write_text(presets)
        self.cert_file = cert_file or tmp / "tls.crt"
        self.key_file = key_file or tmp / "tls.key"
        if cert_file is None:
            self.leaf = write_cert(ca, self.cert_file, self.key_file)
        self.log_file = tmp / "server.log"
        self.metrics_dir = tmp / "metrics"
        self.args = [
            sys.executable, "-m", "webhook.server.serve",
            "-f", str(self.presets_dir),
            "--tls-cert", str(self.cert_file),
            "--tls-key", str(self.key_file),
            "--bind", f"127.0.0.1:{self.port}",
            "--health-bind", f"127.0.0.1:{self.health_port}",
            "--workers", "2",
            "--threads", "4",
            "--reload-interval", "0.2",
            "--metrics-dir", str(self.metrics_dir),
            *(("--graceful-timeout", str(graceful_timeout)) if graceful_timeout is not None else ()),
            *extra_args,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> GunicornServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PODPRESET_", "PROMETHEUS_"))}
        with open(self.log_file, "wb") as log:
            self.process = subprocess.Popen(
                self.args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        try:
            self.wait_ready()
        except BaseException:
            # A session fixture that fails here has nobody to stop the process, and a Popen
            # left running fails a later test with a ResourceWarning.
            self.process.kill()
            self.process.wait()
            raise
        return self

    def wait_ready(self, seconds: float = READY_SECONDS) -> None:
        """Until ``/readyz`` answers 200; raises if the process exits or ``seconds`` pass."""
        assert self.process is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                status, _, _ = self.health("/readyz")
            except OSError:
                status = 0
            if status == 200:
                return
            time.sleep(0.1)
        raise AssertionError(f"server not ready in {seconds:.0f} s:\n{self.log()}")

    def connection(self, timeout: float = 30) -> http.client.HTTPSConnection:
        return TlsConnection("127.0.0.1", self.port, context=self.context, timeout=timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on a new connection."""
        conn = self.connection()
        try:
            return send(conn, method, path, body, headers)
        finally:
            conn.close()

    def health(self, path: str, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
        """``GET path`` on the plain-HTTP health listener, on a new connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.health_port, timeout=timeout)
        try:
            return send(conn, "GET", path)
        finally:
            conn.close()

    def mutate(self, review: object) -> tuple[int, dict[str, Any]]:
        status, _, body = self.request(
            "POST", "/mutate", encode(review), {"Content-Type": "application/json"}
        )
        return status, json.loads(body)

    def metrics(self) -> str:
        status, _, body = self.health("/metrics")
        assert status == 200
        return body.decode()

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        """SIGTERM, and the exit status; killed (and waited for) if it has not exited in 60 s."""
        assert self.process is not None
        self.terminate()
        try:
            return self.process.wait(timeout=60)
        except BaseException:
            self.process.kill()
            self.process.wait()
            raise


def send(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    return read_response(conn)


def read_response(conn: http.client.HTTPConnection) -> tuple[int, dict[str, str], bytes]:
    """The answer to the request sent on ``conn``: status, headers (names in lower case), body."""
    response = conn.getresponse()
    try:
        data = response.read()
    except BaseException:
        # On "Connection: close" the connection hands its socket to the response,
        # so ``conn.close()`` alone would leave it open until the GC finds it.
        response.close()
        raise
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def metric_value(text: str, name: str) -> float:
    """The value of one sample (``name`` including labels) in Prometheus text format."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics:\n{text}")
