"""The controller's memory and API load with many pods (docs/performance.md, "The controller").

``python -m bench.controller [--pods 10000]`` starts etcd and kube-apiserver (the control plane
only: pods stay Pending, which is all the controller reads), installs both CRDs and one PodPreset,
starts ``podpreset controller`` (default settings: leader election on, a status round every 5 s at
most), then creates the pods over four connections, each already carrying the preset's applied
annotation as the webhook leaves it (no webhook runs here: its cost is measured elsewhere), and
waits until the preset's status counts every one. It prints, as JSON: the controller's peak and
final resident memory (VmHWM, VmRSS), its API requests by verb and resource while the pods were
created and counted, and per 1,000 pods; the status writes; and how long until the count was right.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.e2e_latency import ROOT, Api, E2EError, assets, install_crd
from bench.procs import free_port

ANNOTATION = "podpreset.admission.kubernetes.io/podpreset-app-config"
NAMESPACE = "bench-controller"


def pod_body(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"app-{index:05d}",
            "labels": {"app": "web", "pod-template-hash": "6d4b9c7f8"},
            "annotations": {ANNOTATION: "1"},
        },
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
    }


def create_pods(api: Api, count: int, connections: int = 4) -> None:
    errors: list[BaseException] = []

    def work(indexes: range) -> None:
        own = Api(api.host, api.port, api.context)
        try:
            for i in indexes:
                own.must("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", pod_body(i))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            own.close()

    threads = [
        threading.Thread(target=work, args=(range(i, count, connections),)) for i in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise E2EError(f"creating pods: {errors[0]}")


def metrics(port: int) -> dict[str, float]:
    """The controller's samples, ``name{labels}`` → value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def requests_by_kind(samples: dict[str, float]) -> dict[str, float]:
    prefix = "podpreset_controller_api_requests_total{"
    return {k[len(prefix) : -1]: v for k, v in samples.items() if k.startswith(prefix)}


def memory(pid: int) -> dict[str, int]:
    """VmHWM (peak) and VmRSS of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0])
    return fields


def run(count: int, workdir: Path, log: Any) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.e2e.controlplane import ControlPlane  # plain Python, no pytest

    os.environ["KUBEBUILDER_ASSETS"] = str(assets())
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    plane = ControlPlane(workdir / "controlplane")
    log("controller bench: starting etcd and kube-apiserver")
    plane.start()
    controller: subprocess.Popen[bytes] | None = None
    try:
        kubeconfig = plane.kubeconfig(workdir / "admin.kubeconfig")
        api = Api("127.0.0.1", plane.api_port, plane.ssl_context())
        install_crd(api)
        for name in ("podpreset-system", NAMESPACE):
            api.must(
                "POST",
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
            )
        api.must(
            "POST",
            f"/apis/podpreset.dev/v1/namespaces/{NAMESPACE}/podpresets",
            {
                "apiVersion": "podpreset.dev/v1",
                "kind": "PodPreset",
                "metadata": {"name": "app-config"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "env": [{"name": "A", "value": "1"}]},
            },
        )
        port = free_port()
        log_file = (workdir / "controller.log").open("wb")
        controller = subprocess.Popen(
            [
                *(sys.executable, "-m", "webhook.cli", "controller", "--kubeconfig", str(kubeconfig)),
                *("--namespace", "podpreset-system", "--health-bind", f"127.0.0.1:{port}"),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        status_path = f"/apis/podpreset.dev/v1/namespaces/{NAMESPACE}/podpresets/app-config"

        def injected() -> int | None:
            return (api.must("GET", status_path).get("status") or {}).get("injectedPods")

        deadline = time.monotonic() + 60
        while injected() != 0:
            if time.monotonic() > deadline or controller.poll() is not None:
                raise E2EError(f"the controller wrote no status; see {workdir / 'controller.log'}")
            time.sleep(0.5)
        idle = memory(controller.pid)
        before = metrics(port)
        log(f"controller bench: creating {count} pods")
        started = time.monotonic()
        create_pods(api, count)
        created = time.monotonic() - started
        while injected() != count:
            if time.monotonic() - started > 600:
                raise E2EError(f"the status did not reach {count} injected pods in 10 minutes")
            time.sleep(0.5)
        converged = time.monotonic() - started
        after = metrics(port)
        used = memory(controller.pid)
        requests = {
            k: v
            for k, v in (
                (k, requests_by_kind(after).get(k, 0) - requests_by_kind(before).get(k, 0))
                for k in requests_by_kind(after)
            )
            if v
        }
        total = sum(requests.values())
        writes = after.get('podpreset_controller_status_writes_total{result="written"}', 0) - before.get(
            'podpreset_controller_status_writes_total{result="written"}', 0
        )
        return {
            "pods": count,
            "idle_rss_mib": round(idle["VmRSS"] / 1024, 1),
            "peak_rss_mib": round(used["VmHWM"] / 1024, 1),
            "final_rss_mib": round(used["VmRSS"] / 1024, 1),
            "seconds_to_create": round(created, 1),
            "seconds_until_counted": round(converged, 1),
            "api_requests": requests,
            "api_requests_total": total,
            "api_requests_per_1000_pods": round(total / (count / 1000), 1),
            "status_writes": writes,
        }
    finally:
        if controller is not None and controller.poll() is None:
            controller.send_signal(signal.SIGTERM)
            try:
                controller.wait(30)
            except subprocess.TimeoutExpired:
                controller.kill()
        plane.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.controller", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--workdir", default=str(ROOT / "build" / "bench-controller"))
    args = parser.parse_args(argv)
    result = run(args.pods, Path(args.workdir), lambda message: print(message, file=sys.stderr, flush=True))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
