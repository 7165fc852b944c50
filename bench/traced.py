"""``podpreset serve`` with a recorder of where each ``/mutate`` request's time goes.

``python -m bench.traced --trace-dir DIR [serve flags]`` runs ``webhook.cli serve`` after
installing, in the arbiter (so every forked worker inherits them):

- a ``gc.callbacks`` hook timing every collection, in whichever thread it runs;
- a WSGI wrapper around each worker's app that records, per ``/mutate`` request, its wall time,
  the CPU time of its thread (``time.thread_time``; wall minus CPU is time the thread waited), the
  CPU time the worker's other threads used meanwhile (``time.process_time`` minus its own: while
  they ran Python this thread could not, so that part of the wait is the GIL; the rest is waiting
  for a core), the collections that ran while it was in flight, and the wall and CPU time of the
  decision's log call.

Each worker writes ``DIR/trace-PID.json`` in its exit hook. Used by ``bench.e2e_latency`` to say what
the slowest requests are made of; the recording itself costs a few microseconds per request.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_requests: list[dict[str, float]] = []
_gc_pauses: list[tuple[float, float]] = []
"""(start, end) perf_counter seconds of every collection in this process."""
_gc_started: dict[int, float] = {}
_log_time = threading.local()


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    now = time.perf_counter()
    if phase == "start":
        _gc_started[threading.get_ident()] = now
    else:
        start = _gc_started.pop(threading.get_ident(), None)
        if start is not None:
            _gc_pauses.append((start, now))


def _gc_within(start: float, end: float) -> float:
    total = 0.0
    for a, b in reversed(_gc_pauses):
        if b < start:
            break
        total += max(0.0, min(b, end) - max(a, start))
    return total


def _wrap_app(app: Any) -> Any:
    inner = app.wsgi_app

    def traced(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/mutate":
            return inner(environ, start_response)  # type: ignore[no-any-return]
        _log_time.seconds = 0.0
        _log_time.cpu = 0.0
        wall, cpu, process = time.perf_counter(), time.thread_time(), time.process_time()
        body = list(inner(environ, start_response))
        end = time.perf_counter()
        own = time.thread_time() - cpu
        _requests.append(
            {
                "wall_ms": (end - wall) * 1000,
                "cpu_ms": own * 1000,
                # CPU the worker's other threads used meanwhile: with the GIL, time this thread
                # could not run Python. The rest of the waiting is waiting for a core.
                "others_cpu_ms": max(0.0, time.process_time() - process - own) * 1000,
                "gc_ms": _gc_within(wall, end) * 1000,
                "log_ms": _log_time.seconds * 1000,
                "log_cpu_ms": _log_time.cpu * 1000,
            }
        )
        return body

    app.wsgi_app = traced
    return app


def _dump(directory: Path) -> None:
    if not _requests:
        return
    pauses = [(b - a) * 1000 for a, b in _gc_pauses]
    (directory / f"trace-{os.getpid()}.json").write_text(
        json.dumps({"requests": _requests, "gc_pauses_ms": pauses})
    )


def install(directory: Path) -> None:
    import webhook.server.app
    import webhook.server.serve

    gc.callbacks.append(_on_gc)
    original_log = webhook.server.app._log_decision

    def timed_log(decision: Any) -> None:
        started, cpu = time.perf_counter(), time.thread_time()
        original_log(decision)
        _log_time.seconds = getattr(_log_time, "seconds", 0.0) + time.perf_counter() - started
        _log_time.cpu = getattr(_log_time, "cpu", 0.0) + time.thread_time() - cpu

    webhook.server.app._log_decision = timed_log
    original_factory = webhook.server.serve.create_webhook_app

    def factory(*args: Any, **kwargs: Any) -> Any:
        return _wrap_app(original_factory(*args, **kwargs))

    webhook.server.serve.create_webhook_app = factory
    original_exit = webhook.server.serve._worker_exit

    def worker_exit(_server: object, worker: Any) -> None:
        _dump(directory)
        original_exit(_server, worker)

    webhook.server.serve._worker_exit = worker_exit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.traced", add_help=False)
    parser.add_argument("--trace-dir", required=True)
    known, rest = parser.parse_known_args(argv)
    install(Path(known.trace_dir))
    from webhook.cli import main as cli_main

    return cli_main(["serve", *rest])


if __name__ == "__main__":
    sys.exit(main())
