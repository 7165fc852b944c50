"""A/B: one scenario served by two versions of the code (or two sets of flags), measured in
alternating rounds within one run, so that a change's before and after see the same machine.

``python -m bench.ab --a-root /tmp/before --b-root . --scenario typical [--rounds 10]``: server A
runs ``podpreset serve`` from the source tree ``--a-root`` (a ``git worktree`` of the commit
before the change), server B from ``--b-root``; ``--a-arg``/``--b-arg`` add flags to one of them.
A tree from before ``--health-bind`` (or ``--metrics-dir``) is started without it, its ``/readyz``
asked on its TLS port.
Rounds run A, B, B, A, A, B, ... (wrk, the same settings as ``bench.run``). Prints the median
req/s, p50, p99 and server CPU per request of each, and the median of the per-round B/A ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.procs import free_port
from bench.run import (
    Server,
    drive,
    log,
    serving_tls,
    spawn,
    stop_server,
    verify,
    wait_ready,
)


def start(
    root: Path,
    label: str,
    *,
    scenario: scenarios.Scenario,
    workdir: Path,
    cert: Path,
    key: Path,
    extra: list[str],
) -> Server:
    port = free_port()
    presets = scenario.write_presets(workdir / "presets")
    (workdir / f"{scenario.name}.json").write_bytes(scenario.body())
    env = {**os.environ, "PYTHONPATH": str(root)}
    flags = serve_flags(root, env)
    command = [
        sys.executable, "-m", "webhook.cli", "serve", "-f", str(presets),
        "--tls-cert", str(cert), "--tls-key", str(key), "--bind", f"127.0.0.1:{port}", *extra,
    ]  # fmt: skip
    health_port = 0
    if "--health-bind" in flags:
        health_port = free_port()
        command += ["--health-bind", f"127.0.0.1:{health_port}"]
    else:
        log(f"{label}: {root} has no --health-bind; /readyz is asked on its TLS port")
    if "--metrics-dir" in flags:
        command += ["--metrics-dir", str(workdir / f"metrics-{label}")]
    log_path = workdir / f"{label}.log"
    return spawn(scenario, command, cwd=root, env=env, log_path=log_path, port=port, health_port=health_port)


def serve_flags(root: Path, env: dict[str, str]) -> str:
    """``podpreset serve --help`` of the tree at ``root``: an older tree lacks newer flags
    (``--health-bind``, ``--metrics-dir``), and would refuse to start with them."""
    completed = subprocess.run(
        [sys.executable, "-m", "webhook.cli", "serve", "--help"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return completed.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--a-root", required=True)
    parser.add_argument("--b-root", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--a-arg", action="append", default=[])
    parser.add_argument("--b-arg", action="append", default=[])
    parser.add_argument("--scenario", default="typical")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workdir", default="build/bench-ab")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print("bench.ab: wrk not found", file=sys.stderr)
        return 1
    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    cert, key, context = serving_tls(workdir)
    scenario = scenarios.build(args.scenario)
    servers: dict[str, Server] = {}
    for label, root, extra in (("A", args.a_root, args.a_arg), ("B", args.b_root, args.b_arg)):
        (workdir / label).mkdir()
        servers[label] = start(
            Path(root).resolve(),
            label,
            scenario=scenario,
            workdir=workdir / label,
            cert=cert,
            key=key,
            extra=extra,
        )
    runs: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    try:
        for label, server in servers.items():
            wait_ready(server, context)
            verify(server, context)
            drive(wrk, server, workdir / label, 2, args.connections)
        for n in range(args.rounds):
            order = ("A", "B") if n % 2 == 0 else ("B", "A")
            for label in order:
                server = servers[label]
                result = drive(wrk, server, workdir / label, args.duration, args.connections)
                runs[label].append(result)
                log(
                    f"round {n + 1}/{args.rounds} {label} {result['rps']:7.0f} req/s "
                    f"p50 {result['p50_ms']:.2f} "
                    f"p99 {result['p99_ms']:.2f} cpu {result['cpu_ms_per_request']:.3f} ms/req"
                )
    finally:
        for server in servers.values():
            stop_server(server)
    result = summarize(runs)
    result["a_root"], result["b_root"] = args.a_root, args.b_root
    result["a_args"], result["b_args"] = args.a_arg, args.b_arg
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def summarize(runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    metrics = ("rps", "p50_ms", "p99_ms", "cpu_ms_per_request")
    out: dict[str, Any] = {}
    for label, rounds in runs.items():
        out[label] = {m: round(statistics.median(r[m] for r in rounds), 3) for m in metrics}
    out["b_over_a"] = {
        m: round(statistics.median(b[m] / a[m] for a, b in zip(runs["A"], runs["B"], strict=True) if a[m]), 3)
        for m in metrics
    }
    out["rounds"] = len(runs["A"])
    return out


if __name__ == "__main__":
    sys.exit(main())
