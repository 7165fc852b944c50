"""The status pass: keep every preset's ``status`` true to what the cluster holds.

While leading, the pass keeps watches (``webhook.sources.kube.Watch``: list, then watch, resuming and
relisting as the webhook's own do) on PodPresets, ClusterPodPresets, Namespaces (metadata only),
the five workload kinds, Pods (metadata only: ``PartialObjectMetadata``, and each pod kept as the
tuple of its applied annotation keys, so 10,000 pods cost little) and the webhook's
``PodPresetConflict`` Events. Every ``--status-interval`` seconds, if anything changed, one round
computes every preset's status with ``presets.status.compute_statuses`` and writes those that
differ (a merge patch of the status subresource), at most ``--status-writes-per-second``,
checking before each write that this replica still leads: a round writes at most
``ceil(rate x interval)`` statuses and leaves the rest to the next round. Watches started by a leader keep
running after it loses the Lease (a warm standby), but nothing is written then.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from presets.model import CLUSTER_KIND, KIND, VolumeTypes
from presets.model import Protected as ProtectedNames
from presets.status import (
    WORKLOAD_TEMPLATES,
    ConflictRecord,
    PresetKey,
    PresetState,
    Workload,
    applied_keys,
    compute_statuses,
    judge_preset,
    preset_ref,
    workload_of,
)
from webhook.controller.api import MERGE_PATCH, METADATA_LIST, METADATA_ONE, ApiError, KubeApi
from webhook.controller.election import rfc3339_micro
from webhook.controller.loop import PassContext
from webhook.observe.events import FIELD_ANNOTATION, POD_ANNOTATION, REASON
from webhook.sources.health import SourceHealth
from webhook.sources.kube import Labels, Parsed, Resource, Watch, namespace_labels

if TYPE_CHECKING:
    from webhook.controller.command import ControllerSettings

logger = logging.getLogger(__name__)

RESYNC_SECONDS = 600.0
"""A round runs at least this often even when no watch reported a change (it also forgets
which statuses it wrote, so one changed by hand is put right)."""
GROUP_PATH = "/apis/podpreset.dev/v1"
WORKLOAD_PATHS: Mapping[str, str] = {
    "Deployment": "/apis/apps/v1/deployments",
    "StatefulSet": "/apis/apps/v1/statefulsets",
    "DaemonSet": "/apis/apps/v1/daemonsets",
    "Job": "/apis/batch/v1/jobs",
    "CronJob": "/apis/batch/v1/cronjobs",
}
assert set(WORKLOAD_PATHS) == set(WORKLOAD_TEMPLATES)
_QUERY = {
    "limit": "limit",
    "_continue": "continue",
    "watch": "watch",
    "allow_watch_bookmarks": "allowWatchBookmarks",
    "resource_version": "resourceVersion",
    "timeout_seconds": "timeoutSeconds",
}


def api_call(path: str, *, metadata_only: bool = False, **fixed: str) -> Callable[..., Any]:
    """A ``Resource.call`` over ``KubeApi``: the options ``webhook.sources.kube`` passes become the query;
    the answer is the open response, as ``list_objects`` and ``Watch`` read it."""

    def call(api: KubeApi, **options: Any) -> Any:
        query: dict[str, Any] = dict(fixed)
        for option, value in options.items():
            if option in _QUERY and value is not None:
                query[_QUERY[option]] = value
        watch = bool(options.get("watch"))
        accept = (METADATA_ONE if watch else METADATA_LIST) if metadata_only else "application/json"
        timeout = options.get("_request_timeout") or (10.0, 60.0)
        return api.request("GET", path, query=query, accept=accept, timeout=timeout, stream=True)

    return call


class _QuietWatch(Watch[Any]):
    """A watch whose per-event lines are debug lines: a pod watch sees every pod's changes."""

    def _log(self, level: int, message: str, *args: object) -> None:
        super()._log(
            logging.DEBUG if level == logging.INFO and "listed" not in message else level, message, *args
        )


def preset_parser(
    kind: str, *, max_bytes: int, protected: ProtectedNames, volume_types: VolumeTypes
) -> Callable[[Mapping[str, Any]], Parsed[PresetState]]:
    """Each preset object as a ``PresetState``: always an item, valid or not (an invalid preset
    gets a status too: Valid False and why)."""

    def parse(obj: Mapping[str, Any]) -> Parsed[PresetState]:
        if not obj.get("kind") or not obj.get("apiVersion"):
            obj = {"apiVersion": "podpreset.dev/v1", "kind": kind, **obj}
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
        assert isinstance(metadata, Mapping)
        preset, validity = judge_preset(
            obj, max_bytes=max_bytes, protected=protected, volume_types=volume_types
        )
        generation = metadata.get("generation")
        status = obj.get("status")
        key: PresetKey = (
            (CLUSTER_KIND, "", str(metadata.get("name") or ""))
            if kind == CLUSTER_KIND
            else (KIND, str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
        )
        state = PresetState(
            key=key,
            generation=generation if isinstance(generation, int) else 0,
            preset=preset,
            validity=validity,
            status=status if isinstance(status, Mapping) else {},
        )
        return state, ()

    return parse


def parse_pod(obj: Mapping[str, Any]) -> Parsed[tuple[str, ...]]:
    """A pod (metadata only) as the applied annotation keys it carries, interned: thousands of
    pods share a handful of key strings."""
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    annotations = metadata.get("annotations")
    keys = applied_keys(annotations if isinstance(annotations, Mapping) else None)
    return tuple(sys.intern(k) for k in keys), ()


def workload_parser(kind: str) -> Callable[[Mapping[str, Any]], Parsed[Workload]]:
    def parse(obj: Mapping[str, Any]) -> Parsed[Workload]:
        return workload_of(kind, obj), ()

    return parse


def parse_conflict_event(obj: Mapping[str, Any]) -> Parsed[ConflictRecord]:
    """A PodPresetConflict Event as the webhook writes it (``related`` names the preset); None
    for an Event without that reference (written by an older webhook)."""
    if obj.get("reason") != REASON:
        return None, ()
    related = obj.get("related") if isinstance(obj.get("related"), Mapping) else {}
    assert isinstance(related, Mapping)
    key = preset_ref(
        str(related.get("kind") or ""), str(related.get("namespace") or ""), str(related.get("name") or "")
    )
    if key is None:
        return None, ()
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    annotations = metadata.get("annotations") if isinstance(metadata.get("annotations"), Mapping) else {}
    assert isinstance(annotations, Mapping)
    when = obj.get("lastTimestamp") or obj.get("eventTime") or metadata.get("creationTimestamp") or ""
    return (
        ConflictRecord(
            preset=key,
            time=str(when),
            pod=str(annotations.get(POD_ANNOTATION) or ""),
            field=str(annotations.get(FIELD_ANNOTATION) or ""),
        ),
        (),
    )


def status_path(key: PresetKey) -> str:
    kind, namespace, name = key
    if kind == CLUSTER_KIND:
        return f"{GROUP_PATH}/clusterpodpresets/{name}/status"
    return f"{GROUP_PATH}/namespaces/{namespace}/podpresets/{name}/status"


class StatusPass:
    """Writes ``status`` on PodPresets and ClusterPodPresets (see the module's docstring)."""

    name = "status"

    def __init__(self, settings: ControllerSettings, api: KubeApi, registry: CollectorRegistry) -> None:
        self._settings = settings
        self._api = api
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._changed = threading.Event()
        self._health = SourceHealth()
        self._last_round = 0.0
        self._written: dict[PresetKey, dict[str, Any]] = {}
        """What this replica wrote last per preset, until the watch shows it (or the resync)."""
        self._left_out = frozenset({"kube-system", settings.namespace})
        self.writes = Counter(
            "podpreset_controller_status_writes",
            "Preset status writes, by result.",
            ["result"],
            registry=registry,
        )
        self.rounds = Counter(
            "podpreset_controller_status_rounds", "Status rounds computed.", registry=registry
        )
        self.pods = Gauge(
            "podpreset_controller_pods_watched", "Pods in the metadata-only cache.", registry=registry
        )
        protected = ProtectedNames.parse(settings.protected)
        volume_types = VolumeTypes.parse(settings.namespaced_volume_types)
        judged = {
            "max_bytes": settings.max_preset_bytes,
            "protected": protected,
            "volume_types": volume_types,
        }
        self.presets = self._watch(
            Resource("podpresets", api_call(f"{GROUP_PATH}/podpresets"), preset_parser(KIND, **judged))  # type: ignore[arg-type]
        )
        self.cluster_presets = self._watch(
            Resource(
                "clusterpodpresets",
                api_call(f"{GROUP_PATH}/clusterpodpresets"),
                preset_parser(CLUSTER_KIND, **judged),  # type: ignore[arg-type]
            )
        )
        self.namespaces: Watch[Labels] = self._watch(
            Resource("namespaces", api_call("/api/v1/namespaces", metadata_only=True), namespace_labels)
        )
        self.workloads = {
            kind: self._watch(Resource(kind.lower() + "s", api_call(path), workload_parser(kind)))
            for kind, path in WORKLOAD_PATHS.items()
        }
        self.pod_watch = self._watch(
            Resource("pods", api_call("/api/v1/pods", metadata_only=True), parse_pod)
        )
        self.events = self._watch(
            Resource(
                "events",
                api_call("/api/v1/events", fieldSelector=f"reason={REASON}"),
                parse_conflict_event,
            )
        )
        self.watches: tuple[Watch[Any], ...] = (
            self.presets,
            self.cluster_presets,
            self.namespaces,
            *self.workloads.values(),
            self.pod_watch,
            self.events,
        )
        self._started = False
        self._term = -1

    def _watch(self, resource: Resource[Any]) -> Watch[Any]:
        return _QuietWatch(
            resource,
            self._on_change,
            lambda: self._api,
            stop=self._stop,
            lock=self._lock,
            health=self._health,
        )

    def _on_change(self, watch: Watch[Any], changed: tuple[str, ...] | None) -> None:
        if changed != ():
            self._changed.set()

    def run(self, context: PassContext) -> float:
        interval = self._settings.status_interval
        if context.term != self._term:
            self._term = context.term  # another replica may have written meanwhile
            self._written.clear()
        if not self._started:
            self._started = True
            for watch in self.watches:
                watch.start()
            logger.info(
                "status: watching presets, namespaces, workloads, pods (metadata only) and conflict events"
            )
        if not all(w.synced for w in self.watches):
            return min(interval, 1.0)
        now = time.monotonic()
        if not self._changed.is_set() and now - self._last_round < RESYNC_SECONDS:
            return interval
        if now - self._last_round >= RESYNC_SECONDS:
            self._written.clear()
        self._changed.clear()
        self._last_round = now
        self.round(context)
        return interval

    def round(self, context: PassContext) -> int:
        """Compute every status and write those that changed; returns the writes made."""
        with self._lock:
            states = [*self.presets.items.values(), *self.cluster_presets.items.values()]
            workloads = [w for watch in self.workloads.values() for w in watch.items.values()]
            pods = [(namespace, keys) for (namespace, _), keys in self.pod_watch.items.items() if keys]
            self.pods.set(len(self.pod_watch.items))
            conflicts = list(self.events.items.values())
            namespaces = {name: labels for (_, name), labels in self.namespaces.items.items()}
        changed = compute_statuses(
            states,
            workloads,
            pods,
            conflicts,
            namespaces,
            now=rfc3339_micro()[:19] + "Z",
            left_out=self._left_out,
        )
        self.rounds.inc()
        budget = max(1, math.ceil(self._settings.status_writes_per_second * self._settings.status_interval))
        written = 0
        for key, status in sorted(changed.items()):
            if _comparable(self._written.get(key)) == _comparable(status):
                continue  # written already; the watch has not shown it yet
            if written >= budget:
                self._changed.set()  # the rest next round: at most the rate, on average
                break
            if context.stopping.is_set() or not context.leading():
                logger.info("status: no longer leading; status writes left undone")
                break
            try:
                self._api.request(
                    "PATCH", status_path(key), body={"status": status}, content_type=MERGE_PATCH
                )
            except ApiError as exc:
                if exc.status == 404:  # deleted meanwhile
                    self.writes.labels("gone").inc()
                    continue
                self.writes.labels("failed").inc()
                logger.warning("status: could not write %s: %s", "/".join(filter(None, key[1:])), exc)
                self._changed.set()  # try again next round
                continue
            self._written[key] = status
            self.writes.labels("written").inc()
            written += 1
        if written:
            logger.info("status: wrote %d of %d preset status(es) that changed", written, len(changed))
        return written

    def stop(self) -> None:
        self._stop.set()
        for watch in self.watches:
            watch.stop()
        for watch in self.watches:
            watch.join(timeout=1.0)


def _comparable(status: Mapping[str, Any] | None) -> Any:
    """A status without its conditions' lastTransitionTime (recomputed each round until seen)."""
    if status is None:
        return None
    conditions = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions") or ()
    ]
    return {**status, "conditions": conditions}
