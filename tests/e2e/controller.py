"""``podpreset controller`` as a child process of the local e2e suite."""

from __future__ import annotations

import os
import signal
import sys
import urllib.request
from pathlib import Path

from .conftest import NAMESPACE, Cluster, service_account_token
from .controlplane import Process, free_port, wait_until
from .rest import Kube

LEASE = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/podpreset-controller"
FAST_ELECTION = ("--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "0.5")
"""Election timings short enough for a test to see a takeover, in client-go's proportions."""


class LocalController:
    """One ``podpreset controller`` process with its own identity and health port."""

    def __init__(self, workdir: Path, kubeconfig: Path, identity: str, *extra_args: str) -> None:
        self.identity = identity
        self.health_port = free_port()
        podpreset = Path(sys.executable).parent / "podpreset"
        command = [str(podpreset)] if podpreset.exists() else [sys.executable, "-m", "webhook.cli"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("KUBECONFIG", None)
        self.process = Process(
            f"podpreset controller {identity}",
            [
                *command,
                "controller",
                "--kubeconfig",
                str(kubeconfig),
                "--namespace",
                "podpreset-system",
                "--identity",
                identity,
                "--health-bind",
                f"127.0.0.1:{self.health_port}",
                *extra_args,
            ],
            workdir / f"controller-{identity}.log",
            env=env,
        )

    def start(self) -> None:
        self.process.start()
        wait_until(f"controller {self.identity}'s /healthz", self.healthy, process=self.process)

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL: no chance to give the Lease up."""
        if self.process.popen is not None:
            self.process.popen.send_signal(signal.SIGKILL)
            self.process.popen.wait()
            self.process.popen = None

    def get(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.health_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def healthy(self) -> bool:
        try:
            return self.get("/healthz") == "ok\n"
        except OSError:
            return False

    def metric(self, name: str) -> float:
        """The sum of a metric's samples (all label values)."""
        total = 0.0
        for line in self.get("/metrics").splitlines():
            if line.startswith(name) and not line.startswith("#"):
                head = line.split(" ")[0]
                if head == name or head.startswith(name + "{"):
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def log(self) -> str:
        return self.process.log.read_text(errors="replace")


def controller_kubeconfig(cluster: Cluster, tmp_path: Path) -> Path:
    """A kubeconfig with a token of deploy/'s podpreset-controller ServiceAccount."""
    assert cluster.plane is not None
    token = service_account_token(cluster.admin, "podpreset-controller")
    return cluster.plane.kubeconfig(tmp_path / "controller.kubeconfig", user={"token": token})


def workload(kind: str, name: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> dict:
    template = {
        "metadata": {"labels": labels, **({"annotations": annotations} if annotations else {})},
        "spec": {
            "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
            **({"restartPolicy": "Never"} if kind in ("Job", "CronJob") else {}),
        },
    }
    group = "batch/v1" if kind in ("Job", "CronJob") else "apps/v1"
    spec: dict = {"template": template}
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        spec["selector"] = {"matchLabels": labels}
    if kind == "StatefulSet":
        spec["serviceName"] = name
    if kind == "CronJob":
        spec = {"schedule": "0 0 * * *", "jobTemplate": {"spec": {"template": template}}}
    return {"apiVersion": group, "kind": kind, "metadata": {"name": name}, "spec": spec}


def create_workload(admin: Kube, namespace: str, body: dict) -> None:
    group = body["apiVersion"]
    plural = body["kind"].lower() + "s"
    admin.create(f"/apis/{group}/namespaces/{namespace}/{plural}", body)


def status_of(admin: Kube, path: str) -> dict:
    return dict(admin.get(path).get("status") or {})
