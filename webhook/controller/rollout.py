"""Rollout of changed presets to opted-in workloads: one pass, for ``podpreset rollout`` and the controller.

A pass lists the presets, the namespaces and every Deployment, StatefulSet and DaemonSet (of one
namespace, or all), keeps those that opted in (``presets.rollout.opted_in``), fingerprints each
one's pod template with the engine and decides (``presets.rollout.decide``): a workload seen for
the first time, or whose template its owner changed, gets the fingerprint recorded in its own
metadata (which does not roll it); one whose presets changed gets ``podpreset.dev/presets-hash``
written into its template, exactly as ``kubectl rollout restart`` writes its timestamp there, so
its own controller rolls it, and a ``PodPresetRollout`` Event naming the preset change. Every
write is a JSON merge patch conditional on the resourceVersion read, so a workload changed in the
meantime (by its owner, or by another replica that led a moment ago) is left to the next pass.
Rolls are rate-limited (``RateLimit``, ``--rollout-per-minute``); the rest wait for a later pass.

The pass talks to the API server through ``Api`` (the controller's counted ``KubeApi``), raw JSON
only.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from presets.limits import DEFAULT_MAX_PRESET_BYTES
from presets.model import (
    CLUSTER_KIND,
    DEFAULT_PROTECTED,
    DEFAULT_VOLUME_TYPES,
    KIND,
    PodPreset,
    Protected,
    VolumeTypes,
    parse_api_object,
)
from presets.namespaces import NamespaceLabels, labels_of
from presets.rollout import Step, decide, fingerprint, opted_in, rollout_patch
from presets.selection import PresetIndex

logger = logging.getLogger(__name__)

REASON = "PodPresetRollout"
COMPONENT = "podpreset"
MERGE_PATCH = "application/merge-patch+json"
LIST_PAGE = 500
DEFAULT_PER_MINUTE = 10
DEFAULT_INTERVAL = 30.0
"""Seconds between the controller's rollout passes when nothing is waiting for the rate limit."""
WORKLOADS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}
PRESET_PATHS = {
    KIND: "/apis/podpreset.dev/v1/podpresets",
    CLUSTER_KIND: "/apis/podpreset.dev/v1/clusterpodpresets",
}

Verdict = Literal["rolled", "recorded", "held", "waiting", "unchanged", "skipped", "failed"]


class Api(Protocol):
    """One JSON request to the API server; a non-2xx answer raises an exception with ``status``."""

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any: ...


class RateLimit:
    """A token bucket: ``per_minute`` rolls a minute at most, up to ``per_minute`` at once."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError(f"--rollout-per-minute must be at least 1, got {per_minute}")
        self.per_minute = per_minute
        self._clock = clock
        self._tokens = float(per_minute)
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.per_minute), self._tokens + (now - self._at) * self.per_minute / 60.0)
        self._at = now

    def take(self) -> bool:
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def seconds_to_next(self) -> float:
        """Seconds until a roll may happen again."""
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) * 60.0 / self.per_minute


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """How presets are judged (the webhook's settings) and which workloads a pass looks at."""

    namespace: str | None = None
    """Only this namespace's workloads; None: every namespace."""
    protected: Protected = DEFAULT_PROTECTED
    namespaced_volume_types: VolumeTypes = DEFAULT_VOLUME_TYPES
    max_preset_bytes: int = DEFAULT_MAX_PRESET_BYTES


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """What the pass did (or, in a dry run, would do) with one opted-in workload."""

    kind: str
    namespace: str
    name: str
    verdict: Verdict
    reason: str
    changes: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.kind.lower()} {self.namespace}/{self.name}"

    def line(self, dry_run: bool) -> str:
        verb = _DRY_VERBS[self.verdict] if dry_run else self.verdict
        return f"{self.ref}: {verb}: {self.reason}"


_DRY_VERBS: dict[Verdict, str] = {
    "rolled": "would roll",
    "recorded": "would record",
    "held": "held",
    "waiting": "would wait",
    "unchanged": "unchanged",
    "skipped": "skipped",
    "failed": "failed",
}


@dataclass(slots=True)
class Report:
    """Every opted-in workload's result, and what the pass skipped while reading."""

    results: list[Result] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Presets skipped as invalid (the webhook skips them too), one line each."""
    workloads: int = 0
    """Workloads listed (opted in or not)."""

    def count(self, verdict: Verdict) -> int:
        return sum(r.verdict == verdict for r in self.results)

    def summary(self, dry_run: bool) -> str:
        opted = len(self.results)
        parts = [f"{opted} of {self.workloads} workload(s) opted in"]
        verdicts: tuple[Verdict, ...] = ("rolled", "recorded", "held", "waiting", "failed")
        for verdict in verdicts:
            n = self.count(verdict)
            if n:
                parts.append(f"{n} {_DRY_VERBS[verdict] if dry_run else verdict}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterState:
    """The presets (as the webhook parses them) and every namespace's labels."""

    index: PresetIndex
    namespaces: NamespaceLabels
    problems: tuple[str, ...] = ()


def read_state(api: Api, options: Options) -> ClusterState:
    """List both preset kinds and the namespaces."""
    presets: list[PodPreset] = []
    problems: list[str] = []
    for kind, path in PRESET_PATHS.items():
        for item in list_items(api, path):
            obj = (
                item
                if item.get("kind") and item.get("apiVersion")
                else {"apiVersion": "podpreset.dev/v1", "kind": kind, **item}
            )
            preset, why = parse_api_object(obj, max_bytes=options.max_preset_bytes)
            if preset is None:
                problems.extend(why)
            else:
                presets.append(preset)
    namespaces: dict[str, Mapping[str, str]] = {}
    for obj in list_items(api, "/api/v1/namespaces"):
        metadata = obj.get("metadata") or {}
        labels = metadata.get("labels") or {}
        namespaces[str(metadata.get("name") or "")] = {str(k): str(v) for k, v in labels.items()}
    return ClusterState(index=PresetIndex.build(presets), namespaces=namespaces, problems=tuple(problems))


def list_items(api: Api, path: str) -> Iterator[dict[str, Any]]:
    """Every item of a paged list (raw JSON)."""
    query: dict[str, Any] = {"limit": LIST_PAGE}
    while True:
        listing = api.request("GET", path, query=query)
        for item in listing.get("items") or ():
            if isinstance(item, dict):
                yield item
        token = (listing.get("metadata") or {}).get("continue")
        if not token:
            return
        query = {"limit": LIST_PAGE, "continue": token}


def list_workloads(api: Api, namespace: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(kind, object)`` of every Deployment, StatefulSet and DaemonSet (of ``namespace``)."""
    where = f"/namespaces/{namespace}" if namespace else ""
    for kind, plural in WORKLOADS.items():
        for obj in list_items(api, f"/apis/apps/v1{where}/{plural}"):
            yield kind, obj


def plan(
    workloads: Sequence[tuple[str, dict[str, Any]]], state: ClusterState, options: Options
) -> list[tuple[str, dict[str, Any], Step]]:
    """``(kind, workload, step)`` for every opted-in workload, in namespace, kind, name order."""
    planned: list[tuple[str, dict[str, Any], Step]] = []
    for kind, workload in sorted(workloads, key=_order):
        metadata = workload.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "")
        if not opted_in(workload, labels_of(state.namespaces, namespace)):
            continue
        template = (workload.get("spec") or {}).get("template")
        if not isinstance(template, dict):
            continue
        new = fingerprint(
            template,
            namespace,
            state.index,
            namespaces=state.namespaces,
            protected=options.protected,
            namespaced_volume_types=options.namespaced_volume_types,
        )
        planned.append((kind, workload, decide(workload, new)))
    return planned


def run_pass(
    api: Api,
    options: Options,
    limit: RateLimit,
    *,
    dry_run: bool = False,
    leading: Callable[[], bool] = lambda: True,
    instance: str = "",
) -> Report:
    """One pass: read, decide, and (unless ``dry_run``) write. ``leading`` is checked before each
    write: a controller that lost its Lease stops writing mid-pass."""
    state = read_state(api, options)
    workloads = list(list_workloads(api, options.namespace))
    report = Report(problems=list(state.problems), workloads=len(workloads))
    for kind, workload, step in plan(workloads, state, options):
        if step.action in ("none", "hold"):
            verdict: Verdict = "unchanged" if step.action == "none" else "held"
            report.results.append(_result(kind, workload, verdict, step.reason, step.changes))
            continue
        if step.action == "roll" and not limit.take():
            reason = f"rate limit ({limit.per_minute} a minute); a later pass rolls it: {step.reason}"
            report.results.append(_result(kind, workload, "waiting", reason, step.changes))
            continue
        verdict = "rolled" if step.action == "roll" else "recorded"
        if dry_run:
            report.results.append(_result(kind, workload, verdict, step.reason, step.changes))
            continue
        if not leading():
            break
        report.results.append(_write(api, kind, workload, step, instance=instance))
    return report


def _result(
    kind: str, workload: Mapping[str, Any], verdict: Verdict, reason: str, changes: tuple[str, ...] = ()
) -> Result:
    metadata = workload.get("metadata") or {}
    return Result(
        kind=kind,
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        verdict=verdict,
        reason=reason,
        changes=changes,
    )


def _write(api: Api, kind: str, workload: dict[str, Any], step: Step, *, instance: str) -> Result:
    """Patch the workload (record, or roll), and record the Event of a roll."""
    verdict: Verdict = "rolled" if step.action == "roll" else "recorded"
    metadata = workload["metadata"]
    namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
    patch = rollout_patch(step, str(metadata.get("resourceVersion") or ""))
    path = f"/apis/apps/v1/namespaces/{namespace}/{WORKLOADS[kind]}/{name}"
    try:
        api.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
    except Exception as exc:
        status = getattr(exc, "status", None)
        if status in (404, 409):
            why = "it was deleted" if status == 404 else "it changed since it was read"
            return _result(kind, workload, "skipped", f"{why}; the next pass decides again")
        return _result(kind, workload, "failed", f"patch refused: {exc}")
    logger.info("rollout: %s %s/%s %s: %s", kind, namespace, name, verdict, step.reason)
    if verdict == "rolled":
        event = rollout_event(kind, workload, step, instance)
        try:
            api.request("POST", f"/api/v1/namespaces/{namespace}/events", body=event)
        except Exception as exc:  # the roll happened; an Event lost is logged, never retried
            logger.warning("rollout: could not record a %s event for %s/%s: %s", REASON, namespace, name, exc)
    return _result(kind, workload, verdict, step.reason, step.changes)


def rollout_event(kind: str, workload: Mapping[str, Any], step: Step, instance: str = "") -> dict[str, Any]:
    """The Normal ``PodPresetRollout`` Event on a rolled workload, naming each preset change."""
    metadata = workload.get("metadata") or {}
    namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    hash_value = step.fingerprint.hash if step.fingerprint else ""
    message = f"rolled (podpreset.dev/presets-hash {hash_value}): " + "; ".join(step.changes)
    involved = {"apiVersion": "apps/v1", "kind": kind, "name": name, "namespace": namespace}
    if metadata.get("uid"):
        involved["uid"] = str(metadata["uid"])
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{name[:200]}.", "namespace": namespace},
        "involvedObject": involved,
        "reason": REASON,
        "type": "Normal",
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance or f"{socket.gethostname()}/{os.getpid()}",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def _order(item: tuple[str, dict[str, Any]]) -> tuple[str, str, str]:
    kind, obj = item
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), kind, str(metadata.get("name") or "")


class RolloutPass:
    """The controller's rollout pass: ``run_pass`` every ``interval`` seconds, sooner while
    workloads wait for the rate limit; one ``RateLimit`` across passes."""

    name = "rollout"

    def __init__(
        self,
        api: Api,
        options: Options,
        *,
        per_minute: int = DEFAULT_PER_MINUTE,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.options = options
        self.limit = RateLimit(per_minute, clock)
        self.interval = interval
        self.last: Report | None = None

    def run(self, context: Any) -> float:
        report = run_pass(self.api, self.options, self.limit, leading=context.leading)
        self.last = report
        if report.count("rolled") or report.count("waiting"):
            logger.info("rollout: %s", report.summary(dry_run=False))
        if report.count("waiting"):
            return max(1.0, min(self.interval, math.ceil(self.limit.seconds_to_next())))
        return self.interval

    def stop(self) -> None:
        """Nothing to release: the pass holds no threads or connections of its own."""


class ClusterError(Exception):
    """The cluster could not be read or reached: one line naming the kubeconfig or server and why."""


def connect(kubeconfig: str | None, context: str | None = None) -> tuple[Any, str]:
    """An ``ApiClient`` from ``kubeconfig`` (in-cluster configuration without one), and the
    server's address for messages. Raises ``ClusterError``."""
    from kubernetes import client, config

    try:
        if kubeconfig:
            if not os.path.isfile(kubeconfig):
                raise ClusterError(f"--kubeconfig {kubeconfig}: no such file")
            api_client = config.new_client_from_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
        else:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            api_client = client.ApiClient(configuration)
    except ClusterError:
        raise
    except Exception as exc:  # the client's configuration errors share no base class
        where = f"--kubeconfig {kubeconfig}" if kubeconfig else "in-cluster configuration (no --kubeconfig)"
        if context:
            where += f" (context {context!r})"
        raise ClusterError(f"{where}: {_one_line(exc)}") from None
    return api_client, str(api_client.configuration.host)


def describe_failure(exc: BaseException, server: str) -> str:
    """One line for a request that failed: the API's answer, or why the server was not reached."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status:
        return _one_line(exc)
    reason = getattr(exc, "reason", None) or exc
    return f"cannot reach the API server at {server}: {_one_line(reason)}"


def _one_line(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 300 else text[:300] + "..."
