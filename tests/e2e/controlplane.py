"""A real etcd + kube-apiserver on 127.0.0.1, started the way controller-runtime's envtest does.

Plain Python with no pytest dependency, so ``hack/gen-crd.py`` can use it to fetch the API
server's OpenAPI. Binaries come from ``$KUBEBUILDER_ASSETS`` (``make test``/``make e2e`` set it
from ``hack/build-controlplane.sh``). Certificates come from trustme: one CA signs the API
server's serving certificate (IP SAN 127.0.0.1) and the admin client certificate (group
``system:masters``). Only the processes started here are ever stopped.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class ControlPlaneError(RuntimeError):
    """The control plane could not be started; the message says why and where the logs are."""


def assets_dir() -> Path:
    """The directory holding ``etcd`` and ``kube-apiserver``, from ``$KUBEBUILDER_ASSETS``."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        raise ControlPlaneError(
            "KUBEBUILDER_ASSETS is not set: run the end-to-end tests with `make e2e` (or `make test`), which "
            "build kube-apiserver and etcd with hack/build-controlplane.sh and export it, or set it to a "
            "directory holding both binaries"
        )
    path = Path(assets)
    for name in ("etcd", "kube-apiserver"):
        if not os.access(path / name, os.X_OK):
            raise ControlPlaneError(f"KUBEBUILDER_ASSETS={assets}: no executable {name} there")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    """A child process whose output goes to a log file."""

    name: str
    args: list[str]
    log: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"\n=== starting: {' '.join(self.args)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                self.args, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM this process (only this one), then SIGKILL after ``timeout``."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.popen = None

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_until(
    what: str,
    check: Any,
    timeout: float = START_TIMEOUT,
    interval: float = 0.2,
    process: Process | None = None,
) -> Any:
    """Poll ``check()`` until it returns a truthy value; raise ``ControlPlaneError`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and not process.running():
            raise ControlPlaneError(
                f"{process.name} exited while waiting for {what}; log {process.log}:\n{process.tail()}"
            )
        try:
            result = check()
        except Exception as exc:  # polling: any failure means "not yet"
            last = exc
        else:
            if result:
                return result
        time.sleep(interval)
    detail = f" (last error: {last})" if last else ""
    tail = f"\nlog {process.log}:\n{process.tail()}" if process is not None else ""
    raise ControlPlaneError(f"timed out after {timeout:.0f}s waiting for {what}{detail}{tail}")


@dataclass
class ControlPlane:
    """etcd + kube-apiserver in ``workdir``; ``start()``, ``restart_apiserver()``, ``stop()``."""

    workdir: Path
    ca: trustme.CA = field(default_factory=trustme.CA)
    etcd: Process | None = None
    apiserver: Process | None = None
    api_port: int = 0
    apiserver_args: tuple[str, ...] = ()
    """More kube-apiserver flags (``--admission-control-config-file`` for one scenario)."""

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    def start(self) -> None:
        bin_dir = assets_dir()
        self.pki.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(self.pki / "ca.crt"))
        serving = self.ca.issue_cert("127.0.0.1", "localhost", common_name="localhost")
        serving.cert_chain_pems[0].write_to_path(str(self.pki / "apiserver.crt"))
        serving.private_key_pem.write_to_path(str(self.pki / "apiserver.key"))
        admin = self.ca.issue_cert("admin", common_name="admin", organization_name="system:masters")
        admin.cert_chain_pems[0].write_to_path(str(self.pki / "admin.crt"))
        admin.private_key_pem.write_to_path(str(self.pki / "admin.key"))
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (self.pki / "sa.key").write_bytes(
            sa_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (self.pki / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

        # Random ports can race with other processes: retry the whole start a few times, as envtest does.
        for attempt in range(5):
            etcd_port, peer_port, self.api_port = free_port(), free_port(), free_port()
            self.etcd = Process(
                "etcd",
                [
                    str(bin_dir / "etcd"),
                    "--name=default",
                    f"--data-dir={self.workdir / 'etcd-data'}",
                    f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                    f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                ],
                self.workdir / "etcd.log",
            )
            self.apiserver = Process(
                "kube-apiserver",
                [
                    str(bin_dir / "kube-apiserver"),
                    f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={self.api_port}",
                    f"--cert-dir={self.workdir / 'apiserver-certs'}",
                    f"--tls-cert-file={self.pki / 'apiserver.crt'}",
                    f"--tls-private-key-file={self.pki / 'apiserver.key'}",
                    f"--client-ca-file={self.pki / 'ca.crt'}",
                    "--authorization-mode=RBAC",
                    f"--service-account-issuer=https://127.0.0.1:{self.api_port}/",
                    f"--service-account-key-file={self.pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={self.pki / 'sa.key'}",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--allow-privileged=true",
                    "--disable-admission-plugins=ServiceAccount",
                    *self.apiserver_args,
                ],
                self.workdir / "apiserver.log",
            )
            try:
                self.etcd.start()
                wait_until("etcd /health", lambda p=etcd_port: _etcd_healthy(p), process=self.etcd)
                self._start_apiserver()
                return
            except ControlPlaneError:
                self.stop()
                shutil.rmtree(self.workdir / "etcd-data", ignore_errors=True)
                if attempt == 4:
                    raise

    def _start_apiserver(self) -> None:
        assert self.apiserver is not None
        self.apiserver.start()
        wait_until("kube-apiserver /readyz", lambda: self.get("/readyz") == b"ok", process=self.apiserver)
        wait_until(
            "namespace default", lambda: self.get("/api/v1/namespaces/default"), process=self.apiserver
        )

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver and start it again on the same port, with the same etcd."""
        assert self.apiserver is not None
        self.apiserver.stop()
        self._start_apiserver()

    def stop(self) -> None:
        for process in (self.apiserver, self.etcd):
            if process is not None:
                process.stop()

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def get(self, path: str) -> bytes:
        """GET ``path`` as admin; raises on any non-2xx answer."""
        try:
            with urllib.request.urlopen(self.url + path, context=self.ssl_context(), timeout=10) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                raise ControlPlaneError(f"GET {path}: HTTP {exc.code}: {exc.read()[:200]!r}") from None

    def kubeconfig(self, path: Path, *, user: dict[str, Any] | None = None) -> Path:
        """Write a kubeconfig for this API server: admin by default, or the given ``user`` entry."""
        if user is None:
            user = {
                "client-certificate": str(self.pki / "admin.crt"),
                "client-key": str(self.pki / "admin.key"),
            }
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "e2e",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(
                            (self.pki / "ca.crt").read_bytes()
                        ).decode(),
                    },
                }
            ],
            "users": [{"name": "e2e", "user": user}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "e2e"}}],
            "current-context": "e2e",
        }
        path.write_text(yaml.safe_dump(config))
        return path


def _etcd_healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        return b'"health":"true"' in response.read()


@contextlib.contextmanager
def running_control_plane(workdir: Path | None = None) -> Any:
    """A started control plane for the duration of a ``with`` block (for scripts)."""
    tmp = Path(tempfile.mkdtemp(prefix="podpreset-cp-")) if workdir is None else workdir
    plane = ControlPlane(tmp)
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
