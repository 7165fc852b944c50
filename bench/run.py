"""``make bench``: start the servers, drive them with wrk, time the engine, write the report.

Every HTTP scenario gets its own server process on loopback, started as production starts it
(``podpreset serve -f DIR --tls-cert F --tls-key F``, default workers and threads; the floor is
``python -m bench.noop`` through the same ``serve_app``), with a trustme certificate. Once every
server answers ``/readyz`` and one verified request shows the intended decision (patch, or
conflict warning, or nothing), each gets a wrk warm-up, then the scenarios are measured in
rounds (noop, typical, scale, ... then again) so that the machine's noise spreads over all of
them; each figure is the median over the rounds. wrk runs one thread with a fixed number of
keep-alive HTTPS connections, POSTing the review from ``post.lua``.

Usage: ``python -m bench.run [--quick] [--out build/bench.json]``.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme

from bench import e2e_latency, inprocess, report, scenarios
from bench.procs import free_port, stop_process_group
from bench.scenarios import Scenario

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "post.lua"
_RESULT_RE = re.compile(r"^BENCH_RESULT (.*)$", re.MULTILINE)


class BenchError(Exception):
    """The benchmark cannot run or measured the wrong thing; the message says what."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """How long and how hard each scenario is driven."""

    quick: bool
    warmup: float
    duration: int
    """Seconds per round (wrk takes whole seconds)."""
    repeats: int
    connections: int
    engine_repeats: int
    engine_seconds: float
    load_repeats: int


def plan_for(quick: bool, connections: int) -> Plan:
    if quick:
        return Plan(
            quick=True,
            warmup=1,
            duration=2,
            repeats=2,
            connections=connections,
            engine_repeats=3,
            engine_seconds=0.05,
            load_repeats=1,
        )
    return Plan(
        quick=False,
        warmup=3,
        duration=3,
        repeats=10,
        connections=connections,
        engine_repeats=7,
        engine_seconds=0.3,
        load_repeats=3,
    )


@dataclass(slots=True)
class Server:
    """One server process (gunicorn arbiter) serving one scenario."""

    scenario: Scenario
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    started: float
    health_port: int = 0
    """The plain-HTTP port of ``/readyz`` and ``/metrics`` (``--health-bind``); 0 for a tree from
    before that flag, which serves them on the TLS port."""
    ready_seconds: float = 0.0
    runs: list[dict[str, float]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mutate"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("QUICK", "") not in ("", "0"),
        help="every scenario briefly (under a minute); also QUICK=1",
    )
    parser.add_argument("--out", default=str(ROOT / "build" / "bench.json"), help="the JSON report")
    parser.add_argument(
        "--workdir", default=str(ROOT / "build" / "bench"), help="certificates, presets, logs"
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk keep-alive connections")
    parser.add_argument(
        "--scenarios",
        default=",".join(scenarios.HTTP_SCENARIOS),
        help="HTTP scenarios to run, comma separated",
    )
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra flag for every server, e.g. --serve-arg=--workers=3",
    )
    parser.add_argument(
        "--no-e2e",
        action="store_true",
        help="skip the end-to-end latency and replica memory scenarios (bench.e2e_latency)",
    )
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (BenchError, e2e_latency.E2EError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    plan = plan_for(args.quick, args.connections)
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk not found; `make bench` installs it (apt-get install -y wrk)")
    workdir = Path(args.workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    cert, key, client_context = serving_tls(workdir)

    names = [n for n in args.scenarios.split(",") if n]
    built = {name: scenarios.build(name) for name in names}
    servers: dict[str, Server] = {}
    try:
        for name, scenario in built.items():
            servers[name] = start_server(scenario, workdir, cert, key, args.serve_arg)
        for server in servers.values():
            wait_ready(server, client_context)
            verify(server, client_context)
        log(f"{len(servers)} servers ready; warm-up {plan.warmup:g} s each")
        for server in servers.values():
            drive(wrk, server, workdir, plan.warmup, plan.connections)
        order = list(servers.items())
        for round_number in range(plan.repeats):
            # Serpentine: forward, then backward. Each ratio's two scenarios stay neighbours (the
            # machine's speed drifts over seconds), measured in both orders so drift cancels.
            for name, server in order if round_number % 2 == 0 else order[::-1]:
                result = drive(wrk, server, workdir, plan.duration, plan.connections)
                server.runs.append(result)
                log(
                    f"round {round_number + 1}/{plan.repeats} {name:<9} {result['rps']:8.0f} req/s  "
                    f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  "
                    f"cpu {result['cpu_ms_per_request']:.3f} ms/req"
                )
        rss = {name: workers_rss_mib(server.process.pid) for name, server in servers.items()}
    finally:
        for server in servers.values():
            stop_server(server)

    results: dict[str, Any] = {}
    for name, server in servers.items():
        results[name] = summarize(server.runs)
        results[name].update(
            presets=server.scenario.preset_count,
            matching=server.scenario.matching,
            worker_rss_mib=rss.get(name, []),
            ready_seconds=round(server.ready_seconds, 2),
        )

    log("engine: admit() in-process")
    results["engine"] = {
        name: inprocess.time_engine(
            scenarios.build(name), repeats=plan.engine_repeats, min_seconds=plan.engine_seconds
        )
        for name in scenarios.ENGINE_SCENARIOS
    }
    results["memory"] = measure_memory(workdir, plan, rss, servers)
    if not args.no_e2e:
        results["e2e"] = e2e_latency.run(quick=plan.quick, workdir=workdir / "e2e", log=log)

    machine = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "wrk": wrk_version(wrk),
        "platform": sys.platform,
    }
    run_info = {
        "quick": plan.quick,
        "warmup_s": plan.warmup,
        "duration_s": plan.duration,
        "repeats": plan.repeats,
        "connections": plan.connections,
        "wrk_threads": 1,
        "serve_args": list(args.serve_arg),
        "machine": machine,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    final = report.build_report(results, run_info)
    final["run"]["wall_seconds"] = round(time.monotonic() - started, 1)
    out = Path(args.out)
    report.write_report(final, out)
    print(report.format_table(final))
    print(f"\nwritten {out} in {final['run']['wall_seconds']:.0f} s")
    return 0


def serving_tls(workdir: Path) -> tuple[Path, Path, ssl.SSLContext]:
    """A serving certificate and key for 127.0.0.1 from a new CA, written into WORKDIR, and a
    client context that trusts that CA only."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = workdir / "server.pem", workdir / "server.key"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return cert, key, client_context


def start_server(scenario: Scenario, workdir: Path, cert: Path, key: Path, extra: Sequence[str]) -> Server:
    port, health_port = free_port(), free_port()
    flags = [
        "--health-bind",
        f"127.0.0.1:{health_port}",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        "--bind",
        f"127.0.0.1:{port}",
        "--metrics-dir",
        str(workdir / f"metrics-{scenario.name}"),
        *extra,
    ]
    if scenario.name == "noop":
        command = [sys.executable, "-m", "bench.noop", *flags]
    else:
        presets = scenario.write_presets(workdir / "presets" / scenario.name)
        command = [sys.executable, "-m", "webhook.cli", "serve", "-f", str(presets), *flags]
    (workdir / f"{scenario.name}.json").write_bytes(scenario.body())
    log_path = workdir / f"{scenario.name}.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return spawn(scenario, command, cwd=ROOT, env=env, log_path=log_path, port=port, health_port=health_port)


def spawn(
    scenario: Scenario,
    command: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    port: int,
    health_port: int,
) -> Server:
    """Start a server process in its own session, its output in ``log_path``."""
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True
        )
    return Server(
        scenario=scenario,
        port=port,
        process=process,
        log=log_path,
        started=time.monotonic(),
        health_port=health_port,
    )


def stop_server(server: Server) -> None:
    """SIGTERM the server's own process group (the arbiter and its workers), SIGKILL if it lingers."""
    stop_process_group(server.process)


def request(
    server: Server, context: ssl.SSLContext, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    """``/mutate`` on the TLS port; any other path on the plain-HTTP health port (on the TLS port
    too when the server has none)."""
    connection: http.client.HTTPConnection
    if path == "/mutate" or not server.health_port:
        connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", server.health_port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        # Closed even if reading fails: on "Connection: close" the response owns the socket.
        with connection.getresponse() as response:
            return response.status, response.read()
    finally:
        connection.close()


def wait_ready(server: Server, context: ssl.SSLContext, timeout: float = 120) -> None:
    deadline = server.started + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(
                f"{server.scenario.name}: the server exited ({server.process.returncode}); "
                f"see {server.log}:\n{tail(server.log)}"
            )
        try:
            status, _ = request(server, context, "GET", "/readyz")
        except (OSError, http.client.HTTPException):
            status = 0
        if status == 200:
            server.ready_seconds = time.monotonic() - server.started
            return
        time.sleep(0.1)
    raise BenchError(f"{server.scenario.name}: not ready after {timeout:g} s; see {server.log}")


def verify(server: Server, context: ssl.SSLContext) -> None:
    """One verified request: the scenario must take the path it is meant to measure."""
    scenario = server.scenario
    status, body = request(server, context, "POST", "/mutate", scenario.body())
    if status != 200:
        raise BenchError(f"{scenario.name}: /mutate answered {status}: {body[:200]!r}")
    answer = json.loads(body)["response"]
    patch = json.loads(base64.b64decode(answer["patch"])) if "patch" in answer else []
    applied = sum(op["path"].startswith("/metadata/annotations/podpreset.admission") for op in patch)
    expected = 0 if scenario.conflict else scenario.matching
    if not answer.get("allowed") or applied != expected or bool(answer.get("warnings")) != scenario.conflict:
        raise BenchError(
            f"{scenario.name}: unexpected answer (expected {expected} presets applied, "
            f"conflict={scenario.conflict}): {json.dumps(answer)[:300]}"
        )


def drive(wrk: str, server: Server, workdir: Path, duration: float, connections: int) -> dict[str, float]:
    """One wrk run against the server; raises when any request failed."""
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        server.url,
    ]
    env = {**os.environ, "BENCH_BODY": str(workdir / f"{server.scenario.name}.json")}
    workers = worker_pids(server.process.pid)
    cpu_before = [cpu_seconds(pid) for pid in workers]
    completed = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=duration + 60, check=False
    )
    per_worker = [cpu_seconds(pid) - before for pid, before in zip(workers, cpu_before, strict=True)]
    cpu = sum(per_worker)
    result = parse_wrk(completed.stdout, completed.stderr, server.scenario.name)
    result["cpu_ms_per_request"] = 1000 * cpu / max(result["requests"], 1)
    # gunicorn's workers share one listening socket, and a burst of new keep-alive connections
    # often lands on one worker: the round then measures one worker, about half the server.
    result["busiest_worker_share"] = max(per_worker) / cpu if cpu > 0 else 1.0
    return result


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (from /proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_wrk(stdout: str, stderr: str, name: str) -> dict[str, float]:
    """rps, p50/p90/p99 in ms and errors from ``post.lua``'s result line."""
    match = _RESULT_RE.search(stdout)
    if match is None:
        raise BenchError(f"{name}: wrk printed no result:\n{stdout}\n{stderr}")
    values = {k: float(v) for k, v in (pair.split("=") for pair in match.group(1).split())}
    errors = sum(v for k, v in values.items() if k.startswith("errors_"))
    if errors:
        raise BenchError(f"{name}: {errors:.0f} failed requests ({match.group(1)})")
    seconds = values["duration_us"] / 1e6
    return {
        "requests": values["requests"],
        "rps": values["requests"] / seconds,
        "p50_ms": values["p50_us"] / 1000,
        "p90_ms": values["p90_us"] / 1000,
        "p99_ms": values["p99_us"] / 1000,
        "max_ms": values["max_us"] / 1000,
    }


def summarize(runs: Sequence[dict[str, float]]) -> dict[str, Any]:
    """The median of each figure over the rounds where both workers served (all rounds if none
    did), and every round."""
    chosen = [r for r in runs if report.both_workers(r)] or list(runs)
    return {
        "rps": round(statistics.median(r["rps"] for r in chosen), 1),
        "p50_ms": round(statistics.median(r["p50_ms"] for r in chosen), 3),
        "p90_ms": round(statistics.median(r["p90_ms"] for r in chosen), 3),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in chosen), 3),
        "cpu_ms_per_request": round(statistics.median(r.get("cpu_ms_per_request", 0) for r in chosen), 3),
        "rounds_both_workers": sum(1 for r in runs if report.both_workers(r)),
        "errors": 0,
        "runs": [{k: round(v, 3) for k, v in r.items()} for r in runs],
    }


def worker_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in children.read_text().split()]
    except OSError:
        return []


def rss_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return round(int(match.group(1)) / 1024, 1) if match else None


def workers_rss_mib(pid: int) -> list[float]:
    return [value for child in worker_pids(pid) if (value := rss_mib(child)) is not None]


def measure_memory(
    workdir: Path, plan: Plan, rss: dict[str, list[float]], servers: dict[str, Server]
) -> dict[str, Any]:
    """RSS of the ``scale`` server's workers (10,000 presets) and the in-process load time."""
    directory = workdir / "presets" / "scale"
    if not directory.is_dir():
        directory = scenarios.scale().write_presets(directory)
    log("memory: loading 10,000 presets in-process")
    seconds, count = inprocess.time_load(directory, repeats=plan.load_repeats)
    workers = rss.get("scale", [])
    baseline = rss.get("typical", [])
    return {
        "presets": count,
        "rss_mib": max(workers) if workers else None,
        "workers_rss_mib": workers,
        "baseline_rss_mib": max(baseline) if baseline else None,
        "load_seconds": round(seconds, 2),
        "ready_seconds": round(servers["scale"].ready_seconds, 2) if "scale" in servers else None,
    }


def wrk_version(wrk: str) -> str:
    completed = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    first = (completed.stdout or completed.stderr).splitlines()
    return first[0].strip() if first else ""


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
