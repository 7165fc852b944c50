"""Where a server's time goes under load: ``python -m bench.profile [SCENARIO] [--seconds N]``.

Starts one scenario's server exactly as ``bench.run`` does, drives it with wrk, samples every
gunicorn worker with py-spy (only the thread holding the GIL, so idle threads do not count) and prints the
functions with the largest share of samples, inclusive and self, plus the collapsed stacks in
``build/bench/profile-SCENARIO.txt`` for a flame graph.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import scenarios
from bench.run import (
    ROOT,
    BenchError,
    drive,
    serving_tls,
    start_server,
    stop_server,
    verify,
    wait_ready,
    worker_pids,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="?", default="typical", choices=scenarios.HTTP_SCENARIOS)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--serve-arg", action="append", default=[], metavar="ARG")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    wrk = shutil.which("wrk")
    if wrk is None or not Path(py_spy).exists():
        print("bench.profile: needs wrk and py-spy (pip install py-spy)", file=sys.stderr)
        return 1
    workdir = ROOT / "build" / "bench-profile"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    cert, key, context = serving_tls(workdir)
    server = start_server(scenarios.build(args.scenario), workdir, cert, key, args.serve_arg)
    stacks: collections.Counter[str] = collections.Counter()
    try:
        wait_ready(server, context)
        verify(server, context)
        drive(wrk, server, workdir, 2, args.connections)
        outputs = []
        recorders = []
        for pid in worker_pids(server.process.pid):
            out = workdir / f"py-spy-{pid}.txt"
            outputs.append(out)
            recorders.append(
                subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "-p",
                        str(pid),
                        "-d",
                        str(int(args.seconds)),
                        "-r",
                        "250",
                        "-f",
                        "raw",
                        "-o",
                        str(out),
                        "--gil",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(0.5)
        result = drive(wrk, server, workdir, args.seconds, args.connections)
        for recorder in recorders:
            recorder.wait(timeout=args.seconds + 30)
        for out in outputs:
            for line in out.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                stacks[stack] += int(count)
    except BenchError as exc:
        print(f"bench.profile: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_server(server)
    collapsed = workdir / f"profile-{args.scenario}.txt"
    collapsed.write_text("".join(f"{s} {n}\n" for s, n in stacks.most_common()))
    print(f"{args.scenario}: {result['rps']:.0f} req/s, p50 {result['p50_ms']:.2f} ms under py-spy")
    print_top(stacks, args.top)
    print(f"\ncollapsed stacks: {collapsed}")
    return 0


def print_top(stacks: collections.Counter[str], top: int) -> None:
    """Inclusive and self share of samples per function (frames are ``name (file:line)``)."""
    total = sum(stacks.values()) or 1
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for stack, count in stacks.items():
        frames = [_function(f) for f in stack.split(";") if f]
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    print(f"\n{'incl %':>7} {'self %':>7}  function   ({total} samples, busy threads only)")
    for frame, count in inclusive.most_common(top):
        print(f"{100 * count / total:7.1f} {100 * own[frame] / total:7.1f}  {frame}")
    print(f"\n{'self %':>7}  function")
    for frame, count in own.most_common(top // 2):
        print(f"{100 * count / total:7.1f}  {frame}")


def _function(frame: str) -> str:
    # py-spy raw frames look like "name (path/to/file.py:123)"; group by function, not line.
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


if __name__ == "__main__":
    sys.exit(main())
