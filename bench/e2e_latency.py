"""End to end: what a pod creation pays for the webhook, through a real kube-apiserver; and the
memory of one replica in kube mode with 1,000 and 10,000 presets.

One control plane (etcd + kube-apiserver, the one ``make e2e`` builds, ``$KUBEBUILDER_ASSETS``)
and one namespace per configuration, each selected by its own MutatingWebhookConfiguration (the
one in ``deploy/``, pointed at a local URL and given a ``namespaceSelector``):

- ``none``: no webhook;
- ``noop``: ``bench.noop`` on our stack (allowed, no patch): what calling any webhook costs;
- ``fixed``: ``bench.fixedpatch`` on our stack, answering the exact AdmissionReview podpreset
  answered for this pod, without engine work: what applying podpreset's patch costs the API
  server, the floor for this job;
- ``podpreset``: ``podpreset serve`` in kube mode (default flags) with the ``typical`` presets;
- ``traced``: the same, under ``bench.traced``, which records per request the server's wall time,
  the thread's CPU time, the garbage collector's pauses and the time in the decision's log call
  (its latencies are reported but not compared: the recording costs a little).

One client creates the ``typical`` pod (``generateName``) over one keep-alive HTTPS connection, in
rounds that visit the configurations forward then backward; every creation is timed. Afterwards
the created pods are read back: every pod of ``fixed``, ``podpreset`` and ``traced`` must carry
the presets' annotations and the same containers, and no pod of ``none`` or ``noop`` any.

Memory: after the latency rounds the servers stop, presets are created up to 1,000 and then
10,000 in all (100 namespaces), and each time a fresh ``podpreset serve`` (default flags, kube
mode) is started, waits for ``/readyz`` with every preset loaded, answers 200 reviews, and the PSS
of its arbiter and workers is summed (``bench.memory``).
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
import yaml

from bench import scenarios
from bench.memory import replica_pss
from bench.procs import free_port, stop_process_group

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ("none", "noop", "fixed", "podpreset", "traced")
LABEL = "podpreset-bench"
ANNOTATION_PREFIX = "podpreset.admission.kubernetes.io/podpreset-"
MEMORY_SIZES = (1_000, 10_000)


class E2EError(Exception):
    """The end-to-end benchmark cannot run or measured the wrong thing."""


@dataclass(slots=True)
class Webhook:
    config: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    health_port: int = 0
    """The plain-HTTP port of ``/readyz`` and ``/metrics`` (``--health-bind``)."""

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mutate"


@dataclass(slots=True)
class Api:
    """One keep-alive HTTPS connection to the API server as admin (what the timed client uses)."""

    host: str
    port: int
    context: ssl.SSLContext
    conn: http.client.HTTPSConnection | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(
                    self.host, self.port, context=self.context, timeout=60
                )
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                with response:
                    raw = response.read()
                try:
                    return response.status, json.loads(raw) if raw else None
                except ValueError:
                    return response.status, raw.decode(errors="replace")
            except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def must(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)) -> Any:
        status, answer = self.call(method, path, body)
        if status not in ok:
            raise E2EError(f"{method} {path}: HTTP {status}: {json.dumps(answer)[:300]}")
        return answer

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def assets() -> Path:
    """The control plane's binaries: ``$KUBEBUILDER_ASSETS``, else built by hack/build-controlplane.sh."""
    found = os.environ.get("KUBEBUILDER_ASSETS")
    if not found:
        script = ROOT / "hack" / "build-controlplane.sh"
        completed = subprocess.run([str(script)], capture_output=True, text=True, check=False)
        if completed.returncode != 0 or not completed.stdout.strip():
            raise E2EError(f"hack/build-controlplane.sh failed:\n{completed.stderr[-2000:]}")
        found = completed.stdout.strip().splitlines()[-1]
    return Path(found)


def run(*, quick: bool, workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """The latency rounds and the memory measurements; returns their figures."""
    sys.path.insert(0, str(ROOT))
    from tests.e2e.controlplane import ControlPlane  # plain Python, no pytest

    os.environ["KUBEBUILDER_ASSETS"] = str(assets())
    if threading.current_thread() is threading.main_thread():
        # SIGTERM unwinds like Ctrl-C, so that the control plane and servers started here stop.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    plane = ControlPlane(workdir / "controlplane")
    log("e2e: starting etcd and kube-apiserver")
    plane.start()
    webhooks: dict[str, Webhook] = {}
    try:
        kubeconfig = plane.kubeconfig(workdir / "admin.kubeconfig")
        api = Api("127.0.0.1", plane.api_port, plane.ssl_context())
        install_crd(api)
        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        cert, key = workdir / "webhook.pem", workdir / "webhook.key"
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        key.write_bytes(leaf.private_key_pem.bytes())
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        tls = ["--tls-cert", str(cert), "--tls-key", str(key)]

        typical = scenarios.typical()
        for config in CONFIGS:
            api.must("POST", "/api/v1/namespaces", namespace_body(f"bench-{config}", {LABEL: config}))
        for config in ("podpreset", "traced"):
            create_presets(api, (with_namespace(doc, f"bench-{config}") for doc in typical.presets))

        def serve(config: str, command: list[str]) -> Webhook:
            port = free_port()
            flags = [*tls, "--bind", f"127.0.0.1:{port}", "--metrics-dir", str(workdir / f"metrics-{config}")]
            return start(config, [*command, *flags], workdir, port)

        podpreset_cmd = [sys.executable, "-m", "webhook.cli", "serve", "--kubeconfig", str(kubeconfig)]
        trace_dir = workdir / "traces"
        trace_dir.mkdir()
        webhooks["podpreset"] = serve("podpreset", podpreset_cmd)
        webhooks["traced"] = serve(
            "traced",
            [sys.executable, "-m", "bench.traced", "--trace-dir", str(trace_dir), *podpreset_cmd[4:]],
        )
        webhooks["noop"] = serve("noop", [sys.executable, "-m", "bench.noop"])
        for config in ("podpreset", "traced", "noop"):
            wait_ready(webhooks[config], client_context, presets=10 if config != "noop" else None)

        pod = pod_template(typical)
        answer = capture_answer(api, webhooks["podpreset"], client_context, pod)
        answer_file = workdir / "fixed-answer.json"
        answer_file.write_text(json.dumps(answer))
        webhooks["fixed"] = serve(
            "fixed", [sys.executable, "-m", "bench.fixedpatch", "--answer", str(answer_file)]
        )
        wait_ready(webhooks["fixed"], client_context, presets=None)

        for config in ("noop", "fixed", "podpreset", "traced"):
            register(api, config, webhooks[config].url, ca.cert_pem.bytes())
        wait_registered(api, pod)

        rounds, per_round = (2, 25) if quick else (8, 60)
        latencies: dict[str, list[float]] = {config: [] for config in CONFIGS}
        per_round_p50: dict[str, list[float]] = {config: [] for config in CONFIGS}
        log(f"e2e: warm-up, then {rounds} rounds x {per_round} pods per configuration")
        for config in CONFIGS:
            create_pods(api, config, pod, 10 if quick else 30)
        for number in range(rounds):
            order = CONFIGS if number % 2 == 0 else CONFIGS[::-1]
            for config in order:
                timed = create_pods(api, config, pod, per_round)
                latencies[config].extend(timed)
                per_round_p50[config].append(statistics.median(timed))
            log(
                f"e2e: round {number + 1}/{rounds} p50 ms "
                + " ".join(f"{c}={per_round_p50[c][-1]:.2f}" for c in CONFIGS)
            )
        verified = verify_pods(api)
        stop_all([webhooks.pop(config) for config in ("podpreset", "traced", "noop", "fixed")])
        traces = read_traces(trace_dir)

        memory = measure_memory(
            api,
            kubeconfig,
            tls=tls,
            workdir=workdir,
            context=client_context,
            typical=typical,
            log=log,
            quick=quick,
        )
        api.close()
    finally:
        stop_all(list(webhooks.values()))
        plane.stop()
    return {
        "latency": summarize(latencies, per_round_p50),
        "verified": verified,
        "tail": tail_breakdown(traces),
        "memory": memory,
        "rounds": rounds,
        "pods_per_round": per_round,
    }


# Set-up


def install_crd(api: Api) -> None:
    """Both CRDs: the webhook watches PodPresets and ClusterPodPresets, and is ready once both
    have listed."""
    for plural in ("podpresets", "clusterpodpresets"):
        (crd,) = [
            d for d in yaml.safe_load_all((ROOT / f"deploy/crd/{plural}.podpreset.dev.yaml").read_text()) if d
        ]
        api.must("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    deadline = time.monotonic() + 60
    for plural in ("podpresets", "clusterpodpresets"):
        while True:
            status, _ = api.call("GET", f"/apis/podpreset.dev/v1/{plural}")
            if status == 200:
                break
            if time.monotonic() > deadline:
                raise E2EError(f"the {plural} CRD was not served within 60 s")
            time.sleep(0.2)


def namespace_body(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def with_namespace(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["metadata"] = {"name": doc["metadata"]["name"], "namespace": namespace}
    return out


def create_presets(api: Api, documents: Any) -> int:
    count = 0
    for doc in documents:
        namespace = doc["metadata"]["namespace"]
        api.must("POST", f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets", doc)
        count += 1
    return count


def pod_template(scenario: scenarios.Scenario) -> dict[str, Any]:
    pod = copy.deepcopy(scenario.review["request"]["object"])
    pod["metadata"].pop("namespace", None)
    return dict(pod)


def start(config: str, command: list[str], workdir: Path, port: int) -> Webhook:
    """Start a server on ``port`` (TLS) with its health listener on a free port."""
    health_port = free_port()
    command = [*command, "--health-bind", f"127.0.0.1:{health_port}"]
    log_path = workdir / f"{config}.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("KUBECONFIG", None)
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True
        )
    return Webhook(config=config, port=port, process=process, log=log_path, health_port=health_port)


def stop(webhook: Webhook) -> None:
    stop_process_group(webhook.process)


def stop_all(servers: list[Webhook]) -> None:
    """SIGTERM every server at once, then wait for each (a kube-mode worker may take its whole
    graceful timeout to exit)."""
    for webhook in servers:
        if webhook.process.poll() is None:
            os.killpg(webhook.process.pid, signal.SIGTERM)
    for webhook in servers:
        stop(webhook)


def get(
    webhook: Webhook, context: ssl.SSLContext, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    """``/mutate`` on the TLS port; any other path on the plain-HTTP health port."""
    conn: http.client.HTTPConnection
    if path == "/mutate":
        conn = http.client.HTTPSConnection("127.0.0.1", webhook.port, context=context, timeout=10)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", webhook.health_port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        # Closed even if reading fails: on "Connection: close" the response owns the socket.
        with conn.getresponse() as response:
            return response.status, response.read()
    finally:
        conn.close()


def wait_ready(
    webhook: Webhook, context: ssl.SSLContext, *, presets: int | None, timeout: float = 180
) -> float:
    """Seconds until ``/readyz`` answered 200 (with at least ``presets`` presets loaded)."""
    started = time.monotonic()
    while time.monotonic() < started + timeout:
        if webhook.process.poll() is not None:
            raise E2EError(f"{webhook.config}: the server exited; see {webhook.log}")
        try:
            status, body = get(webhook, context, "GET", "/readyz")
        except (OSError, http.client.HTTPException):
            status, body = 0, b""
        if status == 200 and (presets is None or json.loads(body).get("presets", 0) >= presets):
            return time.monotonic() - started
        time.sleep(0.1)
    raise E2EError(f"{webhook.config}: not ready after {timeout:g} s; see {webhook.log}")


def capture_answer(
    api: Api, webhook: Webhook, context: ssl.SSLContext, pod: dict[str, Any]
) -> dict[str, Any]:
    """podpreset's answer for the pod as the API server sends it: the pod is created where no
    webhook runs, read back (defaulted by the API server), and reviewed in podpreset's namespace."""
    created = api.must("POST", "/api/v1/namespaces/bench-none/pods", pod)
    seen = copy.deepcopy(created)
    seen.pop("status", None)
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "name"):
        seen["metadata"].pop(key, None)
    seen["metadata"]["namespace"] = "bench-podpreset"
    review = copy.deepcopy(scenarios.typical().review)
    review["request"]["object"] = seen
    review["request"]["namespace"] = "bench-podpreset"
    review["request"]["name"] = ""
    status, body = get(webhook, context, "POST", "/mutate", json.dumps(review).encode())
    answer = json.loads(body)
    patch = json.loads(base64.b64decode(answer["response"].get("patch", "") or "W10="))
    applied = [
        op
        for op in patch
        if op["path"].startswith("/metadata/annotations/" + ANNOTATION_PREFIX.replace("/", "~1"))
    ]
    if status != 200 or len(applied) != 3:
        raise E2EError(
            f"podpreset's answer for the benchmark pod applies {len(applied)} presets, not 3: {body[:300]!r}"
        )
    return dict(answer)


def register(api: Api, config: str, url: str, ca_pem: bytes) -> None:
    (doc,) = [
        d
        for d in yaml.safe_load_all((ROOT / "deploy/base/mutatingwebhookconfiguration.yaml").read_text())
        if d
    ]
    doc["metadata"] = {"name": f"podpreset-bench-{config}"}
    for hook in doc["webhooks"]:
        hook["clientConfig"] = {"url": url, "caBundle": base64.b64encode(ca_pem).decode()}
        hook["namespaceSelector"] = {"matchLabels": {LABEL: config}}
    api.must("POST", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", doc)


def wait_registered(api: Api, pod: dict[str, Any], timeout: float = 60) -> None:
    """Registration is asynchronous: dry-run pods until every mutating configuration mutates."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(
            any(
                key.startswith(ANNOTATION_PREFIX)
                for key in (
                    api.must("POST", f"/api/v1/namespaces/bench-{c}/pods?dryRun=All", pod)["metadata"].get(
                        "annotations"
                    )
                    or {}
                )
            )
            for c in ("fixed", "podpreset", "traced")
        ):
            time.sleep(1)  # noop's configuration was created first; give the informer a second
            return
        time.sleep(0.2)
    raise E2EError("the webhook configurations did not take effect within 60 s")


# Measuring


def create_pods(api: Api, config: str, pod: dict[str, Any], count: int) -> list[float]:
    """Create ``count`` pods in the configuration's namespace; each creation's milliseconds."""
    path = f"/api/v1/namespaces/bench-{config}/pods"
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        status, answer = api.call("POST", path, pod)
        timings.append((time.perf_counter() - started) * 1000)
        if status != 201:
            raise E2EError(f"creating a pod in bench-{config}: HTTP {status}: {json.dumps(answer)[:300]}")
    return timings


def verify_pods(api: Api) -> dict[str, Any]:
    """Every created pod mutated where it should be, by the same patch, and nowhere else."""
    result: dict[str, Any] = {}
    reference: Any = None
    for config in CONFIGS:
        pods = api.must("GET", f"/api/v1/namespaces/bench-{config}/pods")["items"]
        mutated = [
            p
            for p in pods
            if any(k.startswith(ANNOTATION_PREFIX) for k in (p["metadata"].get("annotations") or {}))
        ]
        expected = len(pods) if config in ("fixed", "podpreset", "traced") else 0
        if config == "none":
            expected = 0
        if len(mutated) != expected:
            raise E2EError(f"bench-{config}: {len(mutated)} of {len(pods)} pods mutated, expected {expected}")
        for p in mutated:
            shape = [p["spec"].get(k) for k in ("containers", "initContainers", "volumes", "tolerations")]
            if reference is None:
                reference = shape
            elif shape != reference:
                raise E2EError(
                    f"bench-{config}: pod {p['metadata']['name']} differs from the others' mutation"
                )
        result[config] = {"pods": len(pods), "mutated": len(mutated)}
    return result


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return float(ordered[index])


def summarize(latencies: dict[str, list[float]], per_round_p50: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for config, values in latencies.items():
        out[config] = {
            "pods": len(values),
            "p50_ms": round(percentile(values, 0.50), 3),
            "p90_ms": round(percentile(values, 0.90), 3),
            "p99_ms": round(percentile(values, 0.99), 3),
            "max_ms": round(max(values), 3),
        }

    def diff(a: str, b: str, key: str) -> float:
        return round(float(out[a][key]) - float(out[b][key]), 3)

    pairs = {
        "noop_over_none": ("noop", "none"),
        "fixed_patch_over_noop": ("fixed", "noop"),
        "e2e_over_fixed_patch": ("podpreset", "fixed"),
        "e2e_over_noop": ("podpreset", "noop"),
        "e2e_over_none": ("podpreset", "none"),
    }
    differences: dict[str, float] = {}
    for name, (a, b) in pairs.items():
        for key in ("p50_ms", "p90_ms", "p99_ms"):
            differences[f"{name}_{key}"] = diff(a, b, key)
        # Paired by round: the median over rounds of the difference of the two rounds' medians.
        rounds = [x - y for x, y in zip(per_round_p50[a], per_round_p50[b], strict=True)]
        differences[f"{name}_p50_ms_paired"] = round(statistics.median(rounds), 3)
    out["differences"] = differences
    return out


def read_traces(directory: Path) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = []
    for path in sorted(directory.glob("trace-*.json")):
        requests.extend(json.loads(path.read_text()).get("requests", []))
    return requests


def tail_breakdown(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """What the traced server's slowest 1% of requests spent their time on, against the median."""
    if not requests:
        return {"requests": 0}
    ordered = sorted(requests, key=lambda r: r["wall_ms"])
    cut = max(1, len(ordered) // 100)
    slow, typical = ordered[-cut:], ordered[: len(ordered) // 2 + 1]

    def mean(items: list[dict[str, Any]], key: str) -> float:
        return round(statistics.fmean(float(r[key]) for r in items), 3)

    def part(items: list[dict[str, Any]]) -> dict[str, float]:
        waiting = mean(items, "wall_ms") - mean(items, "cpu_ms")
        others = mean(items, "others_cpu_ms") if all("others_cpu_ms" in r for r in items) else 0.0
        return {
            "wall_ms": mean(items, "wall_ms"),
            "thread_cpu_ms": mean(items, "cpu_ms"),
            "waiting_ms": round(waiting, 3),
            "waiting_for_gil_ms": round(min(others, waiting), 3),
            "waiting_for_cpu_ms": round(max(0.0, waiting - others), 3),
            "gc_ms": mean(items, "gc_ms"),
            "log_ms": mean(items, "log_ms"),
            "log_cpu_ms": mean(items, "log_cpu_ms") if all("log_cpu_ms" in r for r in items) else 0.0,
            "with_gc_pause": round(sum(1 for r in items if r["gc_ms"] > 0) / len(items), 3),
        }

    return {
        "requests": len(requests),
        "server_p50_ms": round(percentile([r["wall_ms"] for r in requests], 0.5), 3),
        "server_p99_ms": round(percentile([r["wall_ms"] for r in requests], 0.99), 3),
        "slowest_1pct": part(slow),
        "fastest_half": part(typical),
        "gc_pauses_over_1ms": sum(1 for r in requests if r["gc_ms"] > 1),
    }


def measure_memory(
    api: Api,
    kubeconfig: Path,
    *,
    tls: list[str],
    workdir: Path,
    context: ssl.SSLContext,
    typical: scenarios.Scenario,
    log: Callable[[str], None],
    quick: bool,
) -> dict[str, Any]:
    """PSS of one replica (default flags, kube mode) with 1,000 and with 10,000 presets in the cluster."""
    body = typical.body()
    results: dict[str, Any] = {}
    existing = 2 * typical.preset_count  # bench-podpreset's and bench-traced's
    namespaces = 100
    for n in range(namespaces):
        api.must("POST", "/api/v1/namespaces", namespace_body(f"bench-mem-{n:03d}", {}))
    made = existing
    for size in MEMORY_SIZES:
        log(f"memory: creating presets up to {size}")
        wanted = size - made
        documents = []
        for i, doc in enumerate(_cycle(typical, wanted)):
            document = with_namespace(doc, f"bench-mem-{(made + i) % namespaces:03d}")
            document["metadata"]["name"] = f"p-{made + i:05d}"
            documents.append(document)
        made += create_presets_parallel(api, documents)
        variants = {str(size): [], f"{size}_workers_1": ["--workers", "1"]}
        servers: dict[str, Webhook] = {}
        try:
            for name, extra in variants.items():
                port = free_port()
                command = [
                    sys.executable, "-m", "webhook.cli", "serve", "--kubeconfig", str(kubeconfig), *tls,
                    "--bind", f"127.0.0.1:{port}", "--metrics-dir", str(workdir / f"metrics-{name}"), *extra,
                ]  # fmt: skip
                servers[name] = start(f"memory-{name}", command, workdir, port)
            for name, server in servers.items():
                ready = wait_ready(server, context, presets=size)
                for _ in range(200):
                    status, _ = get(server, context, "POST", "/mutate", body)
                    if status != 200:
                        raise E2EError(f"memory-{name}: /mutate answered {status}")
                time.sleep(1)
                pss = replica_pss(server.process.pid)
                pss["ready_seconds"] = round(ready, 2)
                pss["presets"] = size
                results[name] = pss
                log(f"memory: {name} presets: {pss['total_mib']} MiB PSS in {pss['processes']} processes")
        finally:
            stop_all(list(servers.values()))
    return results


def _cycle(scenario: scenarios.Scenario, count: int) -> list[dict[str, Any]]:
    docs = list(scenario.presets)
    return [docs[i % len(docs)] for i in range(count)]


def create_presets_parallel(api: Api, documents: list[dict[str, Any]], connections: int = 4) -> int:
    """Create the presets over a few keep-alive connections at once."""
    chunks = [documents[i::connections] for i in range(connections)]
    errors: list[BaseException] = []

    def work(chunk: list[dict[str, Any]]) -> None:
        own = Api(api.host, api.port, api.context)
        try:
            create_presets(own, chunk)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise E2EError(f"creating presets: {errors[0]}")
    return len(documents)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.e2e_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", default=os.environ.get("QUICK", "") not in ("", "0"))
    parser.add_argument("--workdir", default=str(ROOT / "build" / "bench-e2e"))
    parser.add_argument("--out", default=str(ROOT / "build" / "bench-e2e.json"))
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"bench: {message}", file=sys.stderr, flush=True)

    try:
        result = run(quick=args.quick, workdir=Path(args.workdir), log=log)
    except E2EError as exc:
        print(f"bench.e2e_latency: {exc}", file=sys.stderr)
        return 1
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
