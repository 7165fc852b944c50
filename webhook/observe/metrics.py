"""Prometheus metrics of the webhook, correct across gunicorn workers.

Under gunicorn, ``serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a directory of its own (the
``podpreset-metrics`` subdirectory of ``--metrics-dir``, emptied of a previous run's files) before
the workers fork; each worker writes its values there, ``/metrics`` on any worker aggregates all of
them, and the arbiter marks a dead worker's gauges gone. Without that variable (tests, the Flask
development server) the values live in the ``Metrics`` object's own registry.

Gauges describing the preset source use the ``live*`` modes: ``synced`` is the minimum across live
workers (0 when any worker has not synced), presets loaded and problems the maximum, and the last
successful load time the minimum (the stalest worker).
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from presets.admission import Decision
from presets.engine import Outcome
from webhook.sources.health import ERROR_KINDS, SourceHealth, WatchState
from webhook.sources.snapshot import Snapshot

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
OUTCOMES = ("mutated", "unchanged", "conflict", "rejected", "skipped", "error")
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The webhook's metric families, registered in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.admissions = Counter(
            "podpreset_admissions",
            "Admission reviews answered, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.conflicts = Counter(
            "podpreset_conflicts",
            "Preset conflicts that left a pod unchanged, by preset (namespace: the preset's own, "
            "empty for a ClusterPodPreset).",
            ["namespace", "preset"],
            registry=self.registry,
        )
        self.refused = Counter(
            "podpreset_presets_refused",
            "Selected PodPresets not applied because they inject a volume type PodPresets may not "
            "(--namespaced-volume-types), by preset.",
            ["namespace", "preset"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "podpreset_admission_duration_seconds",
            "Time to answer one POST /mutate, from decoding to encoding.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.presets_loaded = Gauge(
            "podpreset_presets_loaded",
            "Presets in the snapshot being served.",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.source_synced = Gauge(
            "podpreset_source_synced",
            "1 when the preset source has completed its first load (every worker).",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.last_sync = Gauge(
            "podpreset_source_last_success_timestamp_seconds",
            "Unix time of the last successful preset load (the stalest worker).",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.source_problems = Gauge(
            "podpreset_source_problems",
            "Problems found by the last preset load attempt; 0 when it was clean.",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.presets_invalid = Gauge(
            "podpreset_presets_invalid",
            "Presets skipped because they are invalid (listed in /readyz's problems).",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.watch_connected = Gauge(
            "podpreset_watch_connected",
            "1 while the watch of the resource is connected (0 when any worker's is not).",
            ["resource"],
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.watch_last_event = Gauge(
            "podpreset_watch_last_event_timestamp_seconds",
            "Unix time of the last watch event, bookmarks included (the stalest worker).",
            ["resource"],
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.watch_relists = Counter(
            "podpreset_watch_relists",
            "Lists of the resource after the first (an expired or failed watch), all workers.",
            ["resource"],
            registry=self.registry,
        )
        self.watch_errors = Counter(
            "podpreset_watch_errors",
            "Failed lists and watches, by kind: network, api, expired, watch (an ERROR event), other.",
            ["resource", "kind"],
            registry=self.registry,
        )
        self.certificate_expiry = Gauge(
            "podpreset_certificate_expiry_timestamp_seconds",
            "Unix time at which the serving certificate expires (the worker serving the oldest).",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self._health_lock = threading.Lock()
        self._counted: dict[str, WatchState] = {}
        """The watch counters already added to the metric counters, per resource."""
        self._admitted = {outcome: self.admissions.labels(outcome) for outcome in OUTCOMES}
        """Each outcome's child, resolved once: ``labels()`` costs a lookup per request."""
        self._observed: Snapshot | None = None

    def record_decision(self, decision: Decision, seconds: float) -> None:
        """Count one answered review and its conflicts."""
        outcome = decision.outcome
        self._admitted[outcome.action if outcome is not None else "skipped"].inc()
        if outcome is not None:
            # Labels come from the presets (objects the cluster holds), never from the review: a
            # made-up review can name any namespace, and each name would be a new series.
            if outcome.conflicts:  # each preset result's conflicts are among the outcome's
                for namespace, name in conflicting_presets(outcome):
                    self.conflicts.labels(namespace, name).inc()
            for refusal in outcome.refusals:
                self.refused.labels(refusal.preset.namespace, refusal.preset.name).inc()
        self.latency.observe(seconds)

    def record_error(self) -> None:
        """Count one review that got a 4xx or 5xx."""
        self._admitted["error"].inc()

    def observe_snapshot(self, snapshot: Snapshot, health: SourceHealth | None = None) -> None:
        """Mirror the source's state into the gauges; cheap when the snapshot has not changed."""
        if health is not None:
            self.observe_health(health)
        if snapshot is self._observed:
            return
        self._observed = snapshot
        self.presets_loaded.set(len(snapshot.index))
        self.source_synced.set(1 if snapshot.synced else 0)
        self.source_problems.set(len(snapshot.problems))
        if snapshot.last_sync is not None:
            self.last_sync.set(snapshot.last_sync)

    def observe_certificate(self, not_after: float) -> None:
        """The serving certificate's expiry, as the worker's TLS context holds it."""
        self.certificate_expiry.set(not_after)

    def observe_health(self, health: SourceHealth) -> None:
        """Mirror the watches' state: gauges set, counters advanced by what is new since last time."""
        with self._health_lock:
            self.presets_invalid.set(health.invalid_presets())
            for resource, state in health.watches().items():
                counted = self._counted.get(resource) or WatchState()
                self.watch_connected.labels(resource).set(1 if state.connected else 0)
                if state.last_event is not None:
                    self.watch_last_event.labels(resource).set(state.last_event)
                if state.relists > counted.relists:
                    self.watch_relists.labels(resource).inc(state.relists - counted.relists)
                for kind in ERROR_KINDS:
                    new = state.errors.get(kind, 0) - counted.errors.get(kind, 0)
                    if new > 0 or resource not in self._counted:
                        self.watch_errors.labels(resource, kind).inc(max(new, 0))
                self._counted[resource] = state

    def exposition(self) -> bytes:
        """The text format of every worker's metrics (or of this registry outside gunicorn)."""
        if multiprocess_dir() is not None:
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


def conflicting_presets(outcome: Outcome) -> list[tuple[str, str]]:
    """``(namespace, name)`` of each preset with a conflict, namespace ``""`` for a ClusterPodPreset."""
    return sorted({(r.preset.namespace, r.preset.name) for r in outcome.results if r.conflicts})


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


SUBDIRECTORY = "podpreset-metrics"


class MetricsDirError(Exception):
    """The multiprocess metrics directory cannot be used; the message says why."""


def prepare_multiprocess_dir(parent: str) -> str:
    """Make ``parent/podpreset-metrics`` for the workers' files and return it; call before they fork.

    Only that subdirectory is ours, and only its metric files (``*.db``, prometheus_client's) are
    removed, a previous run's: ``parent`` may be any directory (``/tmp``), and nothing else in it,
    nor anything else that ends up in the subdirectory, is ever touched.
    """
    directory = Path(parent) / SUBDIRECTORY
    try:
        Path(parent).mkdir(parents=True, exist_ok=True)
        directory.mkdir(mode=0o700, exist_ok=True)
        info = directory.lstat()
        if not stat.S_ISDIR(info.st_mode):
            raise MetricsDirError(f"{directory} exists and is not a directory (a file or a symlink)")
        if info.st_uid != os.getuid():
            raise MetricsDirError(f"{directory} belongs to another user; choose another --metrics-dir")
        for entry in directory.iterdir():
            if entry.suffix == ".db" and entry.is_file() and not entry.is_symlink():
                entry.unlink()
    except OSError as exc:
        raise MetricsDirError(f"metrics directory {directory}: {exc.strerror or exc}") from None
    return str(directory)


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (called by the arbiter when a worker exits)."""
    if multiprocess_dir() is not None:
        prometheus_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
