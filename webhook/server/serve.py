"""``podpreset serve``: gunicorn, started from Python, serving ``create_app`` over TLS.

The shape of the process: a gunicorn arbiter and ``--workers`` gthread workers (``webhook.server.worker``:
the TLS handshake and request head of every connection are read on the worker's event loop,
bounded by ``--handshake-timeout``, before a thread takes the request) with keep-alive
(the API server reuses its connections; a TLS handshake per admission would cost more than the
admission). Nothing that owns a thread or a connection exists before the fork: each worker
builds its app and its own preset source when it loads, and starts the source in
``post_worker_init``. On SIGTERM a worker marks itself stopping (``/readyz`` turns 503) and
gunicorn's own graceful stop does the rest: it stops accepting, answers the requests in flight,
then exits, bounded by ``graceful_timeout``. We add nothing to how gunicorn treats idle kept-alive
connections (depending on its version it closes them at once or keeps them for a short linger):
a client may find one closed before its next request was read, and must retry on a new connection,
as HTTP clients do for a request the server never read.

Before the fork, the arbiter imports and warms up what the workers use (``webhook.server.prefork``) and,
in kube mode, lists presets, cluster presets and namespaces once and closes that connection
(``KubeSource.list_now``): each
worker's source is a copy of that listed source, so the presets are shared pages. A worker's log
lines are formatted on the request thread and written in batches by a writer thread
(``webhook.observe.logqueue``), started after the fork and drained first in the worker's exit hook.

The TLS ``--bind`` port serves ``POST /mutate`` only; ``/healthz``, ``/readyz`` and ``/metrics``
are on the plain-HTTP ``--health-bind`` port, a socket the arbiter opens before the fork and each
worker serves from a thread (``webhook.server.probes``). With ``--client-ca`` the TLS port requires a
client certificate that CA signed (the API server's, from its admission configuration).

``serve_app`` runs any app factory on exactly these gunicorn settings, so that the benchmark can
measure a no-op app on the same stack.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from gunicorn import sock as gunicorn_sock
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger as GunicornLogger

from webhook.observe.logs import configure_logging, logging_config
from webhook.server.app import health_only, mutate_only
from webhook.server.probes import HealthListenerError, HealthServer, open_health_socket
from webhook.server.tls import CertificateError, CertificateReloader
from webhook.settings import Settings, SettingsError, add_settings_arguments, settings_from_args

if TYPE_CHECKING:
    from flask import Flask

    from webhook.sources.files import Preloaded
    from webhook.sources.snapshot import PresetSource

logger = logging.getLogger(__name__)
AppFactory = Callable[[], "Flask"]


class StartupError(Exception):
    """``serve`` cannot start: bad settings, presets or certificate; the message says which."""


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``podpreset serve`` (each also read from a ``PODPRESET_*`` variable)."""
    add_settings_arguments(parser)


def run_serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT. Returns the exit status (2 for usage or input errors)."""
    try:
        settings = settings_from_args(args)
        preloaded = check_presets(settings)
    except (SettingsError, StartupError) as exc:
        print(f"podpreset serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    kube_source = _list_before_fork(settings)
    return _serve(lambda: create_webhook_app(settings, preloaded, kube_source), settings)


def serve_app(app_factory: AppFactory, settings: Settings) -> int:
    """Run ``app_factory`` (called once in each worker, after the fork) under production gunicorn,
    with logging configured as ``podpreset serve`` configures it (the benchmark's other apps)."""
    configure_logging(settings.log_format, settings.log_level)
    return _serve(app_factory, settings)


def _serve(app_factory: AppFactory, settings: Settings) -> int:
    """``serve_app`` once logging is configured (``run_serve`` configures it before it lists)."""
    reloader: CertificateReloader | None = None
    if not settings.insecure_http:
        assert settings.tls_cert is not None and settings.tls_key is not None
        try:
            reloader = CertificateReloader(
                settings.tls_cert,
                settings.tls_key,
                interval=settings.reload_interval,
                client_ca=settings.client_ca,
                min_version=settings.tls_min_version,
            )
        except CertificateError as exc:
            print(f"podpreset serve: {exc}", file=sys.stderr)
            return 2
    else:
        logger.warning("serving plain HTTP (--insecure-http): for local debugging only")
    try:
        health_socket = open_health_socket(settings.health_bind)
    except HealthListenerError as exc:
        print(f"podpreset serve: {exc}", file=sys.stderr)
        return 2
    _warm_up(settings, app_factory)  # before the metrics directory: its requests count nowhere
    try:
        _prepare_metrics(settings)
    except StartupError as exc:
        print(f"podpreset serve: {exc}", file=sys.stderr)
        return 2
    server = WebhookServer(
        app_factory,
        gunicorn_options(settings, reloader),
        settings=settings,
        reloader=reloader,
        health_socket=health_socket,
    )
    server.run()
    return 0


def _warm_up(settings: Settings, app_factory: AppFactory) -> None:
    """Import what the workers use, run a throwaway app's request path, and freeze it all, before
    the fork (see ``webhook.server.prefork``)."""
    from webhook.server.prefork import warm_up

    warm_up(kubernetes=settings.uses_kubernetes, app_factory=app_factory)


def gunicorn_options(settings: Settings, reloader: CertificateReloader | None) -> dict[str, Any]:
    """The gunicorn settings of every podpreset server."""
    options: dict[str, Any] = {
        "bind": [settings.bind],
        "workers": settings.workers,
        "worker_class": "webhook.server.worker.WebhookWorker",
        "threads": settings.threads,
        "keepalive": round(settings.keepalive),
        "graceful_timeout": max(1, round(settings.graceful_timeout)),
        "timeout": 30,
        "preload_app": False,
        "proc_name": "podpreset",
        "accesslog": None,
        "errorlog": "-",
        "logconfig_dict": logging_config(settings.log_format, settings.log_level),
        "logger_class": AccessLogOffLogger,
        "control_socket_disable": True,
        # One SO_REUSEPORT listening socket per worker slot, made and kept by the arbiter
        # (``SlotArbiter``): the kernel spreads new connections over the slots, and a connection
        # queued at a worker that dies waits for that slot's next worker instead of being reset.
        "reuse_port": True,
        "post_fork": _post_fork,
        "post_worker_init": _post_worker_init,
        "worker_exit": _worker_exit,
        "child_exit": _child_exit,
    }
    if os.path.isdir("/dev/shm"):
        options["worker_tmp_dir"] = "/dev/shm"  # works with a read-only root filesystem
    if reloader is not None:
        options["certfile"] = reloader.cert_file
        options["keyfile"] = reloader.key_file
        options["ssl_context"] = reloader.gunicorn_hook
    return options


class AccessLogOffLogger(GunicornLogger):  # type: ignore[misc]
    """gunicorn's logger without the access line it builds for every request and then drops.

    Given a ``logconfig_dict``, gunicorn formats every access-log atom of every request even
    with ``accesslog`` unset; the line then dies at the WARNING level of ``gunicorn.access``.
    That was 3% of a busy worker's time in the benchmark's profile (``bench.profile``).
    """

    def access(self, resp: object, req: object, environ: object, request_time: object) -> None:
        if self.cfg.accesslog:
            super().access(resp, req, environ, request_time)


class SlotArbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's arbiter with one listening socket per worker slot, which outlives its workers.

    Why: with one socket shared by all workers, a burst of new keep-alive connections (the API
    server's) often all land on one worker, which then serves alone at about half the replica's
    capacity (docs/performance.md: noop req/s x0.78 in a paired run). gunicorn's own
    ``reuse_port`` gives each worker a socket of its own, made in the worker; but when that worker
    dies (killed, out of memory, past gunicorn's timeout) the connections the kernel queued at its
    socket are reset, and those admissions are lost. Here the arbiter makes the sockets (with
    SO_REUSEPORT, one per slot) and keeps them open; a worker gets its slot's socket and closes
    the others in its copy; a dead worker's replacement takes the free slot, queue and all.
    """

    LISTENERS: list[Any]

    def start(self) -> None:
        super().start()  # with reuse_port set, gunicorn leaves the listening to the workers
        self.slots: dict[int, list[Any]] = {}
        self.slot_of: dict[int, int] = {}
        self.foreign_listeners: list[Any] = []
        if self.LISTENERS:  # inherited sockets (systemd, re-exec): one shared set as gunicorn does
            return
        for _ in range(self.num_workers):
            self._add_slot()
        self.log.info("Listening at: %s (%d slots)", self.slots[0][0], len(self.slots))

    def _add_slot(self) -> int:
        number = max(self.slots, default=-1) + 1
        self.cfg.set("reuse_port", True)
        try:
            self.slots[number] = gunicorn_sock.create_sockets(self.cfg, self.log)
        finally:
            self.cfg.set("reuse_port", False)  # workers use their slot's socket, never make one
        self._list_listeners()
        return number

    def _list_listeners(self) -> None:
        self.LISTENERS = [listener for slot in self.slots.values() for listener in slot]

    def _free_slots(self) -> list[int]:
        used = {self.slot_of[pid] for pid in self.WORKERS if pid in self.slot_of}
        return [number for number in self.slots if number not in used]

    def spawn_worker(self) -> int:
        if not self.slots:
            return int(super().spawn_worker())
        free = self._free_slots()
        number = free[0] if free else self._add_slot()  # more workers than slots (SIGTTIN)
        every = self.LISTENERS
        self.LISTENERS = self.slots[number]
        self.foreign_listeners = [
            sock for other, slot in self.slots.items() if other != number for sock in slot
        ]
        try:
            pid = int(super().spawn_worker())  # in the worker, this never returns
        finally:
            self.LISTENERS = every
        self.slot_of = {p: n for p, n in self.slot_of.items() if p in self.WORKERS}
        self.slot_of[pid] = number
        return pid

    def reap_workers(self) -> None:
        super().reap_workers()
        # Fewer workers than slots (SIGTTOU): a slot nobody serves would hold the connections the
        # kernel queues at it; close free slots once their workers are gone.
        free = self._free_slots()
        while self.slots and len(self.slots) > max(self.num_workers, 1) and free:
            for listener in self.slots.pop(free.pop()):
                listener.close()
            self._list_listeners()


class WebhookServer(BaseApplication):  # type: ignore[misc]
    """gunicorn's application API around an app factory; the hooks and the worker read the
    settings, the certificate reloader and the health socket from it (``worker.app``)."""

    def __init__(
        self,
        app_factory: AppFactory,
        options: dict[str, Any],
        *,
        settings: Settings,
        reloader: CertificateReloader | None = None,
        health_socket: socket.socket | None = None,
    ) -> None:
        self.app_factory = app_factory
        self.options = options
        self.settings = settings
        self.handshake_timeout = settings.handshake_timeout
        self.reloader = reloader
        self.health_socket = health_socket
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        """The TLS listener's app: ``/mutate`` only (``webhook.server.app.mutate_only``)."""
        return mutate_only(self.app_factory())

    def run(self) -> None:
        try:
            SlotArbiter(self).run()
        except RuntimeError as error:  # what gunicorn's own run does with a start-up error
            print(f"\nError: {error}\n", file=sys.stderr)
            sys.exit(1)


def create_webhook_app(
    settings: Settings, preloaded: Preloaded | None = None, kube_source: PresetSource | None = None
) -> Flask:
    """One worker's app with its own (not yet started) preset source: in kube mode the worker's
    copy of ``kube_source`` when ``serve`` listed before the fork."""
    from webhook.server.app import create_app

    if not settings.uses_kubernetes:
        return create_app(settings, make_source(settings, preloaded))
    from webhook.observe.events import EventRecorder

    recorder = EventRecorder(settings)
    source = kube_source or make_source(settings)
    app = create_app(settings, source, on_decision=recorder.record_conflicts)
    app.extensions["podpreset.events"] = recorder
    return app


def make_source(settings: Settings, preloaded: Preloaded | None = None) -> PresetSource:
    """The file source for ``-f`` paths (starting from ``preloaded`` when given); the Kubernetes
    watch source otherwise."""
    if settings.uses_kubernetes:
        from webhook.sources.kube import KubeSource

        source: PresetSource = KubeSource(settings)
        return source
    from webhook.sources.files import FileSource

    return FileSource(
        settings.preset_paths,
        interval=settings.reload_interval,
        preloaded=preloaded,
        max_preset_bytes=settings.max_preset_bytes,
    )


def check_presets(settings: Settings) -> Preloaded | None:
    """Load the preset files once, before the fork, and refuse to start on any problem (raises
    ``StartupError``). Returns what the workers' file sources start from."""
    if settings.uses_kubernetes:
        return None
    from webhook.sources.documents import SourceError
    from webhook.sources.files import preload

    try:
        preloaded, result = preload(settings.preset_paths, max_preset_bytes=settings.max_preset_bytes)
    except SourceError as exc:
        raise StartupError(str(exc)) from None
    if result.problems:
        raise StartupError("invalid presets:\n" + "\n".join(f"  {problem}" for problem in result.problems))
    return preloaded


def _list_before_fork(settings: Settings) -> PresetSource | None:
    """Kube mode: the watch source, having listed every preset, cluster preset and namespace once
    in the arbiter (``KubeSource.list_now``), so that the
    workers (each a copy of it after the fork) share those presets' pages instead of each listing
    and holding its own copy. None in file mode; a source that will list in each worker when that
    list failed."""
    if not settings.uses_kubernetes:
        return None
    from webhook.sources.kube import KubeSource

    source = KubeSource(settings)
    source.list_now()
    return source


def _prepare_metrics(settings: Settings) -> None:
    """Point the workers' metrics at a directory of our own. Raises ``StartupError``."""
    from webhook.observe.metrics import MULTIPROC_ENV, MetricsDirError, prepare_multiprocess_dir

    parent = settings.metrics_dir or tempfile.mkdtemp(prefix="podpreset-metrics-")
    try:
        os.environ[MULTIPROC_ENV] = prepare_multiprocess_dir(parent)
    except MetricsDirError as exc:
        raise StartupError(str(exc)) from None


# gunicorn server hooks. ``worker.wsgi`` is the app ``load`` returned.


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def _post_fork(server: object, _worker: object) -> None:
    for listener in getattr(server, "foreign_listeners", ()):
        listener.close()  # the other slots' sockets: only the arbiter keeps them
    # Until gunicorn installs the worker's own handlers (init_signals, a little later), the child
    # still has the arbiter's, which queue a signal for the arbiter's loop (SIG_QUEUE): a SIGTERM
    # that came then was lost, and the worker served on until the arbiter killed it after the
    # graceful timeout (25 s). From here the default action ends a worker that has not served
    # anything yet; one that came since the fork is in the copied queue: leave at once.
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    if any(signum in _STOP_SIGNALS for signum in _queued_signals(server)):
        sys.exit(0)
    _start_worker_logging()
    # prometheus_client picks its value class when first imported; make sure workers write files
    # even if something imported it before the variable was set.
    from prometheus_client import values

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def _queued_signals(server: object) -> list[object]:
    """The signals the arbiter's handler queued in this child's copy of the arbiter (a list in
    some gunicorn versions, a ``queue.SimpleQueue`` in others); never raises."""
    queued = getattr(server, "SIG_QUEUE", None)
    if isinstance(queued, list | tuple | collections.deque):
        return list(queued)
    found: list[object] = []
    take = getattr(queued, "get_nowait", None)
    while take is not None and len(found) < 64:
        try:
            found.append(take())
        except Exception:  # queue.Empty, or anything this check should not fail the boot for
            break
    return found


def _post_worker_init(worker: Any) -> None:
    server: WebhookServer = worker.app
    if server.health_socket is not None:
        health = HealthServer(
            server.health_socket, health_only(worker.wsgi.flask), timeout=server.handshake_timeout
        )
        health.start()
        worker.podpreset_health = health
    state = _state_of(worker.wsgi)
    if state is None:
        return
    state.source.start()
    recorder = worker.wsgi.extensions.get("podpreset.events")
    if recorder is not None:
        recorder.start()
    signal.signal(signal.SIGTERM, stop_on_first_sigterm(state.stopping, signal.getsignal(signal.SIGTERM)))
    interval = state.settings.reload_interval

    reloader = server.reloader

    def refresh_metrics() -> None:
        while True:
            try:
                state.metrics.observe_snapshot(state.source.snapshot(), state.source.health)
                if reloader is not None:
                    reloader.context()  # picks up a renewed certificate with no connection needed
                    state.metrics.observe_certificate(reloader.not_after)
            except Exception:
                logger.exception("updating the preset source metrics failed")
            if state.stopping.wait(interval):
                return

    threading.Thread(target=refresh_metrics, name="podpreset-metrics", daemon=True).start()


def stop_on_first_sigterm(
    stopping: threading.Event, previous: object
) -> Callable[[int, FrameType | None], None]:
    """A worker's SIGTERM handler: mark ``stopping`` (``/readyz`` turns 503), then call gunicorn's
    own handler ``previous``; every SIGTERM after the first is ignored.

    gunicorn's arbiter sends a worker it removes (SIGTTOU) SIGTERM on each pass of its loop until
    the worker is reaped: twice within microseconds after a SIGTTOU. Python runs a handler for the
    second signal inside the first, in the same thread; while the first held the Event's lock
    (``Event.set``), the second waited for that lock for ever, and the worker with it (it served
    nothing and never exited until the arbiter aborted it as silent, after gunicorn's 30 s
    timeout). The flag is set before any lock is taken, so a nested call returns at once."""
    received = False

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        nonlocal received
        if received:
            return
        received = True
        stopping.set()
        if callable(previous):
            previous(signum, frame)

    return on_sigterm


def _worker_exit(_server: object, worker: Any) -> None:
    _stop_worker_logging()  # first: what follows may hang until the arbiter kills the worker
    health = getattr(worker, "podpreset_health", None)
    if health is not None:
        health.stop()
    state = _state_of(getattr(worker, "wsgi", None))
    if state is not None:
        state.stopping.set()
        state.source.stop()
    recorder = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("podpreset.events")
    if recorder is not None:
        recorder.stop()


def _start_worker_logging() -> None:
    """Log lines are written in batches by a thread of the worker (``webhook.observe.logqueue``)."""
    from webhook.observe.logqueue import start_worker_logging

    start_worker_logging()


def _stop_worker_logging() -> None:
    """Write every queued log line before the worker exits."""
    from webhook.observe.logqueue import stop_worker_logging

    stop_worker_logging()


def _child_exit(_server: object, worker: Any) -> None:
    from webhook.observe.metrics import mark_worker_dead

    mark_worker_dead(worker.pid)


def _state_of(app: object) -> Any:
    extensions = getattr(app, "extensions", None)
    return extensions.get("podpreset") if isinstance(extensions, dict) else None


def main(argv: list[str] | None = None) -> int:
    """``python -m webhook.server.serve``: the same as ``podpreset serve``."""
    parser = argparse.ArgumentParser(
        prog="podpreset serve", description="Serve the PodPreset admission webhook."
    )
    add_serve_arguments(parser)
    return run_serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
