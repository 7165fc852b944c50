"""``podpreset controller``: flags, settings, and the process (election, loop, probes, signals).

Every flag has a ``PODPRESET_*`` variable (``--lease-duration`` ↔ ``PODPRESET_LEASE_DURATION``);
the flag wins. ``--protected``, ``--namespaced-volume-types`` and ``--max-preset-bytes`` read the
same variables as ``serve``: the controller must judge presets exactly as the webhook does, so
the Deployments set them alike. The process: one election thread, one loop thread running the
passes while leading, a plain-HTTP listener (``/healthz``, ``/readyz``, ``/metrics``), and on
SIGTERM or SIGINT it finishes the round in progress, stops the passes, gives the Lease up and
exits 0.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from presets.limits import DEFAULT_MAX_PRESET_BYTES
from presets.model import DEFAULT_PROTECTED_ENTRIES, RESTRICTED_VOLUME_TYPES
from webhook.controller.election import LEASE_NAME, ElectionConfig, LeaderElector
from webhook.controller.loop import Controller
from webhook.settings import (
    Flags,
    SettingsError,
    check_host_port,
    parse_boolean,
    parse_log_format,
    protected_entries,
    volume_type_entries,
)

logger = logging.getLogger(__name__)

IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
DEFAULT_NAMESPACE = "podpreset-system"


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerSettings:
    """Everything ``podpreset controller`` reads, built once from flags and variables."""

    kubeconfig: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    """Where the Lease lives: the controller's own namespace."""
    identity: str = ""
    leader_elect: bool = True
    lease_duration: int = 15
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    health_bind: str = "0.0.0.0:8080"
    log_format: str = "text"
    log_level: str = "INFO"
    status_interval: float = 5.0
    """Seconds between status rounds at most: changes within one interval are written together."""
    status_writes_per_second: float = 5.0
    """Status writes per second at most (a token bucket; a round's remaining writes wait)."""
    protected: tuple[str, ...] = DEFAULT_PROTECTED_ENTRIES
    namespaced_volume_types: tuple[str, ...] = RESTRICTED_VOLUME_TYPES
    max_preset_bytes: int = DEFAULT_MAX_PRESET_BYTES
    rollout_per_minute: int = 10
    """Workloads rolled a minute at most (a token bucket across rollout passes)."""
    rollout_interval: float = 30.0
    """Seconds between rollout passes (sooner while workloads wait for the rate limit)."""


_FLAGS = Flags(
    {
        "kubeconfig": "PODPRESET_KUBECONFIG",
        "namespace": "PODPRESET_CONTROLLER_NAMESPACE",
        "identity": "PODPRESET_CONTROLLER_IDENTITY",
        "leader_elect": "PODPRESET_LEADER_ELECT",
        "lease_duration": "PODPRESET_LEASE_DURATION",
        "renew_deadline": "PODPRESET_RENEW_DEADLINE",
        "retry_period": "PODPRESET_RETRY_PERIOD",
        "health_bind": "PODPRESET_HEALTH_BIND",
        "log_format": "PODPRESET_LOG_FORMAT",
        "log_level": "PODPRESET_LOG_LEVEL",
        "status_interval": "PODPRESET_STATUS_INTERVAL",
        "status_writes_per_second": "PODPRESET_STATUS_WRITES_PER_SECOND",
        "rollout_per_minute": "PODPRESET_ROLLOUT_PER_MINUTE",
        "rollout_interval": "PODPRESET_ROLLOUT_INTERVAL",
        "protected": "PODPRESET_PROTECTED",
        "namespaced_volume_types": "PODPRESET_NAMESPACED_VOLUME_TYPES",
        "max_preset_bytes": "PODPRESET_MAX_PRESET_BYTES",
    }
)
"""Each flag's variable; ``--protected``, ``--namespaced-volume-types`` and ``--max-preset-bytes``
share ``serve``'s."""


def add_controller_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``podpreset controller``; defaults None so that variables fill the gaps."""
    d = ControllerSettings()
    add = partial(_FLAGS.add, parser)
    add("kubeconfig", "instead of in-cluster config", metavar="PATH")
    add(
        "namespace",
        f"the controller's namespace, where its Lease {LEASE_NAME} lives; default the pod's "
        f"own (in cluster), else {DEFAULT_NAMESPACE}",
        metavar="NS",
    )
    add(
        "identity",
        "this replica's name in the Lease; default the pod name (POD_NAME), else hostname_pid",
        metavar="NAME",
    )
    add(
        "leader_elect",
        "take part in leader election and act only while holding the Lease (default on; off: "
        "act at once, for a single replica)",
        action=argparse.BooleanOptionalAction,
        default=None,
    )
    add(
        "lease_duration",
        f"how long a Lease not renewed keeps others out, default {d.lease_duration}",
        metavar="SECONDS",
    )
    add(
        "renew_deadline",
        f"the leader stops acting when it has not renewed for this long, default {d.renew_deadline:g}",
        metavar="SECONDS",
    )
    add(
        "retry_period",
        f"time between tries to acquire or renew, default {d.retry_period:g}",
        metavar="SECONDS",
    )
    add(
        "health_bind",
        f"plain-HTTP /healthz, /readyz and /metrics, default {d.health_bind}",
        metavar="HOST:PORT",
    )
    add("log_format", "default text", choices=("text", "json"))
    add("log_level", "default INFO", metavar="LEVEL")
    add(
        "status_interval",
        f"at most one status round per interval; the changes of an interval are written "
        f"together, default {d.status_interval:g}",
        metavar="SECONDS",
    )
    add(
        "status_writes_per_second",
        f"status writes per second at most, default {d.status_writes_per_second:g}",
        metavar="N",
    )
    add(
        "rollout_per_minute",
        f"roll at most N opted-in workloads a minute; the rest wait for a later pass, default "
        f"{d.rollout_per_minute}",
        metavar="N",
    )
    add(
        "rollout_interval",
        f"seconds between rollout passes, default {d.rollout_interval:g}",
        metavar="SECONDS",
    )
    add(
        "protected",
        "as for serve: env names no preset may inject (set it as the webhook's)",
        action="append",
        metavar="NAME_OR_PREFIX*",
    )
    add(
        "namespaced_volume_types",
        "as for serve: volume types a PodPreset may inject",
        action="append",
        metavar="TYPE",
    )
    add("max_preset_bytes", "as for serve: a larger preset is skipped as invalid", metavar="N")


def settings_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ControllerSettings:
    """Flags, then ``PODPRESET_*`` variables, then defaults. Raises ``SettingsError``."""
    environ = os.environ if environ is None else environ

    raw = _FLAGS.reader(args, environ)

    def number(dest: str, minimum: float, integer: bool = False) -> Any:
        value = raw(dest)
        if value is None:
            return None
        try:
            result = int(str(value)) if integer else float(str(value))
        except ValueError:
            raise SettingsError(f"{_FLAGS.where(dest)}: expected a number, got {value!r}") from None
        if not math.isfinite(result) or result < minimum:
            raise SettingsError(
                f"{_FLAGS.where(dest)}: must be a finite number of at least {minimum:g}, got {value!r}"
            )
        return result

    leader_elect = parse_boolean(raw("leader_elect"), _FLAGS.where("leader_elect"))
    log_format = parse_log_format(raw("log_format"), _FLAGS.where("log_format"))
    protected = protected_entries(raw("protected"))
    volume_types = volume_type_entries(raw("namespaced_volume_types"))
    health_bind = raw("health_bind")
    if health_bind is not None:
        check_host_port(health_bind, _FLAGS.where("health_bind"))
    values: dict[str, Any] = {
        "kubeconfig": raw("kubeconfig"),
        "namespace": raw("namespace") or own_namespace(),
        "identity": raw("identity") or default_identity(environ),
        "leader_elect": leader_elect,
        "lease_duration": number("lease_duration", 1, integer=True),
        "renew_deadline": number("renew_deadline", 0.1),
        "retry_period": number("retry_period", 0.05),
        "health_bind": health_bind,
        "log_format": log_format,
        "log_level": str(raw("log_level") or "INFO").upper(),
        "status_interval": number("status_interval", 0.1),
        "status_writes_per_second": number("status_writes_per_second", 0.1),
        "protected": protected,
        "namespaced_volume_types": volume_types,
        "max_preset_bytes": number("max_preset_bytes", 1, integer=True),
        "rollout_per_minute": number("rollout_per_minute", 1, integer=True),
        "rollout_interval": number("rollout_interval", 0.1),
    }
    settings = ControllerSettings(**{k: v for k, v in values.items() if v is not None})
    try:
        election_config(settings).check()
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return settings


def own_namespace() -> str:
    """The pod's namespace in a cluster (its ServiceAccount's), else ``podpreset-system``."""
    try:
        with open(IN_CLUSTER_NAMESPACE, encoding="utf-8") as f:
            return f.read().strip() or DEFAULT_NAMESPACE
    except OSError:
        return DEFAULT_NAMESPACE


def default_identity(environ: Mapping[str, str]) -> str:
    """The pod name (``POD_NAME``, from the downward API), else ``hostname_pid``."""
    return environ.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}"


def election_config(settings: ControllerSettings) -> ElectionConfig:
    return ElectionConfig(
        namespace=settings.namespace,
        identity=settings.identity,
        lease_duration=settings.lease_duration,
        renew_deadline=settings.renew_deadline,
        retry_period=settings.retry_period,
    )


class _Probes(BaseHTTPRequestHandler):
    """``/healthz`` (the loop is alive), ``/readyz`` (started), ``/metrics``; no log line per probe."""

    server: _ProbeServer
    timeout = 10

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/readyz"):
            alive = self.server.alive()
            self._send(200 if alive else 503, b"ok\n" if alive else b"stopped\n", "text/plain")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ProbeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry, alive: Any) -> None:
        super().__init__(address, _Probes)
        self.registry = registry
        self.alive = alive


def run_controller(args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT; exit 0 then, 2 for bad settings or an unusable kubeconfig."""
    import sys

    from webhook.observe.logs import configure_logging

    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        print(f"podpreset controller: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    from webhook.controller.api import KubeApi
    from webhook.controller.passes import build_passes
    from webhook.sources.kube import make_api_client

    try:
        api_client = make_api_client(settings)
    except Exception as exc:  # a missing or broken kubeconfig, no in-cluster config
        print(f"podpreset controller: cannot configure the Kubernetes client: {exc}", file=sys.stderr)
        return 2
    registry = CollectorRegistry()
    api = KubeApi(api_client, registry)
    leader_gauge = Gauge(
        "podpreset_controller_leader", "1 while this replica holds the Lease and acts.", registry=registry
    )
    passes = build_passes(settings, api, registry)
    elector: LeaderElector | None = None

    def leading() -> bool:
        return elector.leading() if elector is not None else True

    controller = Controller(passes, leading)

    def changed(now_leading: bool) -> None:
        leader_gauge.set(1 if now_leading else 0)
        controller.leadership_changed(now_leading)

    if settings.leader_elect:
        elector = LeaderElector(api, election_config(settings), on_change=changed)
    else:
        leader_gauge.set(1)
    loop = threading.Thread(target=controller.run, name="podpreset-controller", daemon=True)
    host, _, port = settings.health_bind.rpartition(":")
    try:
        probes = _ProbeServer((host.strip("[]"), int(port)), registry, loop.is_alive)
    except OSError as exc:
        print(
            f"podpreset controller: --health-bind {settings.health_bind}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        controller.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    threading.Thread(target=probes.serve_forever, name="podpreset-probes", daemon=True).start()
    logger.info(
        "controller %s starting (namespace %s, leader election %s, passes: %s)",
        settings.identity,
        settings.namespace,
        "on" if elector is not None else "off",
        ", ".join(p.name for p in passes) or "none",
    )
    if elector is not None:
        elector.start()
    loop.start()
    while loop.is_alive() and not stopping.is_set():
        stopping.wait(1.0)
    controller.stop()
    loop.join(timeout=30)
    if elector is not None:
        elector.stop(release=True)
    probes.shutdown()
    probes.server_close()
    logger.info("controller %s stopped", settings.identity)
    return 0
