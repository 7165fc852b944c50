"""The server's configuration: one frozen ``Settings`` built from ``serve`` flags and ``PODPRESET_*``.

Every flag has an environment variable (``--tls-cert`` ↔ ``PODPRESET_TLS_CERT``); a flag given on
the command line wins over the variable, the variable over the default. ``create_app``, the
sources and the gunicorn configuration all read this one object and nothing else.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, TypeVar

from presets.limits import DEFAULT_MAX_PRESET_BYTES
from presets.model import DEFAULT_PROTECTED_ENTRIES, PROTECTED_ENTRY, RESTRICTED_VOLUME_TYPES, VolumeTypes
from webhook.server import cpus

LogFormat = Literal["text", "json"]
ENV_PREFIX = "PODPRESET_"
DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024
DEFAULT_MAX_DECODING_BYTES = DEFAULT_MAX_BODY_BYTES + 1024 * 1024
TLS_VERSIONS = ("1.2", "1.3")
_N = TypeVar("_N", int, float)


class SettingsError(ValueError):
    """A flag or ``PODPRESET_*`` variable has an invalid value, or a required one is missing."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the server needs to know; built once, before gunicorn forks."""

    bind: str = "0.0.0.0:8443"
    """The TLS listener: ``POST /mutate`` only."""
    health_bind: str = "0.0.0.0:8080"
    """The plain-HTTP listener for probes and scraping: ``/healthz``, ``/readyz``, ``/metrics``."""
    workers: int = field(default_factory=cpus.default_workers)
    """One per CPU the process may use (cgroup quota, affinity), at most 2: ``webhook.server.cpus``."""
    threads: int = 8
    tls_cert: str | None = None
    tls_key: str | None = None
    insecure_http: bool = False
    """Serve plain HTTP (local debugging only); TLS is required otherwise."""
    client_ca: str | None = None
    """When set, the TLS listener requires a client certificate signed by this CA (PEM)."""
    tls_min_version: Literal["1.2", "1.3"] = "1.3"
    handshake_timeout: float = 5.0
    """Seconds a new (or newly readable kept-alive) connection gets to finish its TLS handshake
    and send a whole request head; also the longest wait for each read of a request body."""
    preset_paths: tuple[str, ...] = ()
    kubeconfig: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_decoding_bytes: int = DEFAULT_MAX_DECODING_BYTES
    """Bytes of request bodies one worker reads and decodes at once; a request that would pass
    it is answered 429. At least ``max_body_bytes``, so that one body of any allowed size passes."""
    log_format: LogFormat = "text"
    log_level: str = "INFO"
    metrics_dir: str | None = None
    """Where ``serve`` makes the workers' PROMETHEUS_MULTIPROC_DIR (its ``podpreset-metrics``
    subdirectory); a fresh temporary directory when None."""
    graceful_timeout: float = 25.0
    """Seconds in-flight requests get to finish after SIGTERM (below the pod's 30 s grace)."""
    keepalive: float = 120.0
    """Idle keep-alive seconds; above the API server's 90 s idle timeout so that it, not we, closes."""
    reload_interval: float = 1.0
    """How often (seconds) preset files and the TLS certificate are checked for changes."""
    protected: tuple[str, ...] = DEFAULT_PROTECTED_ENTRIES
    """Env names (``NAME``) and prefixes (``PREFIX*``) no preset may inject; a preset that
    would is treated as in conflict. Given entries replace the default."""
    max_preset_bytes: int = DEFAULT_MAX_PRESET_BYTES
    """A preset larger than this (``presets.limits.preset_bytes``) is skipped as invalid."""
    namespaced_volume_types: tuple[str, ...] = RESTRICTED_VOLUME_TYPES
    """Volume types a PodPreset may inject (``*``: any); ClusterPodPresets may inject any."""

    @property
    def uses_kubernetes(self) -> bool:
        """The Kubernetes watch source serves presets (``--kubeconfig``, or no ``-f`` paths)."""
        return self.kubeconfig is not None or not self.preset_paths


# (flag dest, environment variable suffix, help) for each serve option; the CLI and the docs use it.
_OPTIONS: tuple[tuple[str, str], ...] = (
    ("preset_paths", "PRESETS"),
    ("kubeconfig", "KUBECONFIG"),
    ("tls_cert", "TLS_CERT"),
    ("tls_key", "TLS_KEY"),
    ("insecure_http", "INSECURE_HTTP"),
    ("bind", "BIND"),
    ("health_bind", "HEALTH_BIND"),
    ("client_ca", "CLIENT_CA"),
    ("tls_min_version", "TLS_MIN_VERSION"),
    ("handshake_timeout", "HANDSHAKE_TIMEOUT"),
    ("workers", "WORKERS"),
    ("threads", "THREADS"),
    ("max_body_bytes", "MAX_BODY_BYTES"),
    ("max_decoding_bytes", "MAX_DECODING_BYTES"),
    ("log_format", "LOG_FORMAT"),
    ("log_level", "LOG_LEVEL"),
    ("metrics_dir", "METRICS_DIR"),
    ("graceful_timeout", "GRACEFUL_TIMEOUT"),
    ("keepalive", "KEEPALIVE"),
    ("reload_interval", "RELOAD_INTERVAL"),
    ("protected", "PROTECTED"),
    ("max_preset_bytes", "MAX_PRESET_BYTES"),
    ("namespaced_volume_types", "NAMESPACED_VOLUME_TYPES"),
)
ENV_VARS: Mapping[str, str] = {dest: ENV_PREFIX + suffix for dest, suffix in _OPTIONS}


class Flags:
    """One command's flags, each with a ``PODPRESET_*`` variable (``serve``'s here, ``podpreset
    controller``'s in ``webhook.controller.command``): declared with their variable named at the
    end of their help and no default, read as the flag, else the variable, else None (the settings'
    own default)."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        self.variables = variables
        """Flag dest -> its variable."""

    def add(self, parser: argparse.ArgumentParser, dest: str, help: str, **options: Any) -> None:
        """Declares ``--DEST`` (dashes for underscores), its help ending with its variable."""
        flag = f"--{dest.replace('_', '-')}"
        parser.add_argument(flag, dest=dest, help=f"{help} (env {self.variables[dest]})", **options)

    def reader(self, args: argparse.Namespace, environ: Mapping[str, str]) -> Callable[[str], Any]:
        """The value of a dest: the flag's, else the variable's unless empty, else None."""

        def read(dest: str) -> Any:
            value = getattr(args, dest, None)
            if value is not None:
                return value
            text = environ.get(self.variables[dest])
            return text if text not in (None, "") else None

        return read

    def where(self, dest: str) -> str:
        """How an error names a setting: ``--flag/PODPRESET_VARIABLE``."""
        return f"--{dest.replace('_', '-')}/{self.variables[dest]}"


FLAGS = Flags(ENV_VARS)


def parse_boolean(value: object, where: str) -> object:
    """A variable's text (1/true/yes, 0/false/no, any case) as a bool; a flag's value, or None, as it is."""
    if not isinstance(value, str):
        return value
    if value.lower() not in ("1", "true", "yes", "0", "false", "no"):
        raise SettingsError(f"{where}: expected true or false, got {value!r}")
    return value.lower() in ("1", "true", "yes")


def parse_log_format(value: object, where: str) -> LogFormat:
    """``text`` (also when unset) or ``json``."""
    log_format = value or "text"
    if log_format not in ("text", "json"):
        raise SettingsError(f"{where}: expected text or json, got {log_format!r}")
    return log_format


def check_host_port(address: object, where: str) -> None:
    """Raises ``SettingsError`` unless ADDRESS is ``HOST:PORT`` with a port from 1 to 65535."""
    host, sep, port = str(address).rpartition(":")
    if not sep or not port.isdigit() or not host or not 0 < int(port) < 65536:
        raise SettingsError(f"{where}: expected HOST:PORT, got {address!r}")


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve`` flags. Defaults are None here so that env variables can fill the gaps."""

    defaults = Settings()
    add = partial(FLAGS.add, parser)
    parser.add_argument(
        "-f",
        "--presets",
        dest="preset_paths",
        action="append",
        metavar="PRESETS",
        help=f"preset file or directory, repeatable; without any, presets are watched in the "
        f"cluster (env {ENV_VARS['preset_paths']}), several separated by '{os.pathsep}'",
    )
    add(
        "kubeconfig",
        "watch PodPresets with this kubeconfig instead of in-cluster config",
        metavar="PATH",
    )
    add("tls_cert", "serving certificate (PEM), re-read when it changes", metavar="FILE")
    add("tls_key", "its private key (PEM)", metavar="FILE")
    add(
        "insecure_http",
        "serve plain HTTP without TLS, for local debugging only",
        action="store_const",
        const=True,
        default=None,
    )
    add("bind", f"listen address, default {defaults.bind}", metavar="HOST:PORT")
    add(
        "health_bind",
        f"plain-HTTP listen address of /healthz, /readyz and /metrics (the TLS --bind serves "
        f"only POST /mutate), default {defaults.health_bind}",
        metavar="HOST:PORT",
    )
    add(
        "client_ca",
        "require a client certificate signed by this CA (PEM) on the TLS listener, re-read when it changes",
        metavar="FILE",
    )
    add(
        "tls_min_version",
        f"oldest TLS version accepted, default {defaults.tls_min_version}",
        choices=TLS_VERSIONS,
    )
    add(
        "handshake_timeout",
        f"time a connection gets for its TLS handshake and request head (and for each read of "
        f"a body), default {defaults.handshake_timeout}",
        metavar="SECONDS",
    )
    add(
        "workers",
        f"gunicorn worker processes, default one per usable CPU, at most 2 (here {defaults.workers})",
        metavar="N",
    )
    add("threads", f"threads per worker, default {defaults.threads}", metavar="N")
    add("max_body_bytes", f"largest accepted request body, default {defaults.max_body_bytes}", metavar="N")
    add(
        "max_decoding_bytes",
        f"request body bytes one worker decodes at once, more is answered 429; at least "
        f"--max-body-bytes, default {defaults.max_decoding_bytes}",
        metavar="N",
    )
    add("log_format", f"log line format, default {defaults.log_format}", choices=("text", "json"))
    add("log_level", f"default {defaults.log_level}", metavar="LEVEL")
    add(
        "metrics_dir",
        "directory in which a podpreset-metrics subdirectory holds the workers' metrics (its "
        "metric files are removed at start; nothing else is touched); default a temporary "
        "directory",
        metavar="DIR",
    )
    add(
        "graceful_timeout",
        f"time in-flight requests get after SIGTERM, default {defaults.graceful_timeout}",
        metavar="SECONDS",
    )
    add("keepalive", f"idle keep-alive time, default {defaults.keepalive}", metavar="SECONDS")
    add(
        "reload_interval",
        f"how often preset files and the certificate are checked, default {defaults.reload_interval}",
        metavar="SECONDS",
    )
    add(
        "protected",
        f"env names no preset may inject, a trailing * makes a prefix; repeatable or comma "
        f"separated, replaces the default {','.join(defaults.protected)}; --protected= protects "
        f"nothing",
        action="append",
        metavar="NAME_OR_PREFIX*",
    )
    add(
        "max_preset_bytes",
        f"a preset larger than this (compact JSON, without managedFields and kubectl's "
        f"last-applied annotation) is skipped as invalid, default {defaults.max_preset_bytes}",
        metavar="N",
    )
    add(
        "namespaced_volume_types",
        f"volume types a PodPreset may inject (ClusterPodPresets: any); repeatable or comma "
        f"separated, '*' for any, default {','.join(defaults.namespaced_volume_types)}",
        action="append",
        metavar="TYPE",
    )


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Flags, then ``PODPRESET_*`` variables, then defaults. Raises ``SettingsError``."""
    environ = os.environ if environ is None else environ

    raw = FLAGS.reader(args, environ)

    def number(dest: str, convert: Callable[[str], _N], minimum: _N) -> _N | None:
        value = raw(dest)
        if value is None:
            return None
        try:
            result = convert(str(value))
        except ValueError:
            raise SettingsError(f"{FLAGS.where(dest)}: expected a number, got {value!r}") from None
        if not math.isfinite(result):
            raise SettingsError(f"{FLAGS.where(dest)}: expected a finite number, got {value!r}")
        if result < minimum:
            raise SettingsError(f"{FLAGS.where(dest)}: must be at least {minimum}, got {value!r}")
        return result

    paths_value = raw("preset_paths")
    if isinstance(paths_value, list):
        paths = tuple(paths_value)
    elif isinstance(paths_value, str):
        paths = tuple(p for p in paths_value.split(os.pathsep) if p)
    else:
        paths = ()
    # A text value can only be the variable's, so the error names the variable alone.
    insecure = parse_boolean(raw("insecure_http"), ENV_VARS["insecure_http"])
    log_format = parse_log_format(raw("log_format"), FLAGS.where("log_format"))
    tls_min_version = raw("tls_min_version")
    if tls_min_version is not None and tls_min_version not in TLS_VERSIONS:
        raise SettingsError(f"{FLAGS.where('tls_min_version')}: expected 1.2 or 1.3, got {tls_min_version!r}")

    values: dict[str, object] = {
        "protected": protected_entries(raw("protected")),
        "namespaced_volume_types": volume_type_entries(raw("namespaced_volume_types")),
        "max_preset_bytes": number("max_preset_bytes", int, 1),
        "preset_paths": paths,
        "insecure_http": bool(insecure),
        "log_format": log_format,
        "kubeconfig": raw("kubeconfig"),
        "tls_cert": raw("tls_cert"),
        "tls_key": raw("tls_key"),
        "bind": raw("bind"),
        "health_bind": raw("health_bind"),
        "client_ca": raw("client_ca"),
        "tls_min_version": tls_min_version,
        "handshake_timeout": number("handshake_timeout", float, 0.1),
        "max_decoding_bytes": number("max_decoding_bytes", int, 1),
        "log_level": str(raw("log_level") or "INFO").upper(),
        "metrics_dir": raw("metrics_dir"),
        "workers": number("workers", int, 1),
        "threads": number("threads", int, 1),
        "max_body_bytes": number("max_body_bytes", int, 1),
        "graceful_timeout": number("graceful_timeout", float, 0.0),
        "keepalive": number("keepalive", float, 0.0),
        "reload_interval": number("reload_interval", float, 0.05),
    }
    settings = Settings(**{k: v for k, v in values.items() if v is not None})  # type: ignore[arg-type]
    check_settings(settings)
    return settings


def protected_entries(value: object) -> tuple[str, ...] | None:
    """``--protected`` values (each possibly a comma list) or ``PODPRESET_PROTECTED``; None when unset.

    Raises ``SettingsError`` naming an entry that is not an env name, or a prefix with ``*``.
    """
    if value is None:
        return None
    parts = value if isinstance(value, list) else [value]
    entries = tuple(e.strip() for part in parts for e in str(part).split(",") if e.strip())
    for entry in entries:
        if not PROTECTED_ENTRY.fullmatch(entry):
            raise SettingsError(
                f"{FLAGS.where('protected')}: {entry!r} is not an env name (letters, digits, '_', '-', '.', "
                f"not starting with a digit), optionally ending in '*' for a prefix"
            )
    return tuple(dict.fromkeys(entries))


def volume_type_entries(value: object) -> tuple[str, ...] | None:
    """``--namespaced-volume-types`` values (each possibly a comma list) or
    ``PODPRESET_NAMESPACED_VOLUME_TYPES``; None when unset. Raises ``SettingsError`` naming an
    entry that is no volume type."""
    if value is None:
        return None
    parts = value if isinstance(value, list) else [value]
    entries = tuple(e.strip() for part in parts for e in str(part).split(",") if e.strip())
    try:
        VolumeTypes.parse(entries)
    except ValueError as exc:
        raise SettingsError(f"{FLAGS.where('namespaced_volume_types')}: {exc}") from None
    return tuple(dict.fromkeys(entries))


def check_settings(settings: Settings) -> None:
    """Reject combinations that can never serve. Raises ``SettingsError``."""
    if not settings.insecure_http:
        if not settings.tls_cert or not settings.tls_key:
            raise SettingsError(
                "--tls-cert and --tls-key are required (or --insecure-http for local debugging)"
            )
        files = (("--tls-cert", settings.tls_cert), ("--tls-key", settings.tls_key))
        for flag, path in (*files, ("--client-ca", settings.client_ca)):
            if path is not None and not os.path.isfile(path):
                raise SettingsError(f"{flag}: {path!r}: no such file")
    elif settings.client_ca is not None:
        raise SettingsError("--client-ca needs TLS: it cannot be combined with --insecure-http")
    for dest in ("bind", "health_bind"):
        check_host_port(getattr(settings, dest), FLAGS.where(dest))
    if settings.bind == settings.health_bind:
        raise SettingsError(f"{FLAGS.where('health_bind')}: must differ from --bind ({settings.bind})")
    if settings.max_decoding_bytes < settings.max_body_bytes:
        raise SettingsError(
            f"{FLAGS.where('max_decoding_bytes')}: must be at least --max-body-bytes "
            f"({settings.max_body_bytes}), got {settings.max_decoding_bytes}"
        )
