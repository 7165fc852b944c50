"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Every replica runs a ``LeaderElector``. Each ``retry_period`` it reads the Lease: when nobody
holds it, or the holder has not renewed it for ``leaseDurationSeconds`` *as this replica's own
clock has seen it* (the time the record last changed here, never the holder's timestamps, so
clocks need not agree), it writes itself in as holder; the write carries the resourceVersion it
read, so of two replicas trying at once the API server lets exactly one win (409 for the other).
The holder renews every ``retry_period``; if no renewal has succeeded for ``renew_deadline``
seconds it stops leading at once, before ``lease_duration`` lets anyone else in. A replica that
stops (SIGTERM) while leading gives the Lease up (holder cleared), so another takes over on its
next try instead of waiting out the lease.

The decisions are the pure functions ``next_record`` and ``still_leading``; ``LeaderElector`` only
does the reads and writes.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from webhook.controller.api import ApiError, KubeApi

logger = logging.getLogger(__name__)

LEASE_NAME = "podpreset-controller"


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRecord:
    """The spec of a Lease: who holds it, for how long, since when."""

    holder: str = ""
    lease_duration_seconds: int = 15
    acquire_time: str = ""
    renew_time: str = ""
    transitions: int = 0

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder or None,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec


def record_of(lease: Mapping[str, Any]) -> LeaseRecord:
    """The ``LeaseRecord`` of a Lease object as the API returns it (missing fields: defaults)."""
    spec = lease.get("spec") or {}
    duration = spec.get("leaseDurationSeconds")
    transitions = spec.get("leaseTransitions")
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        lease_duration_seconds=duration if isinstance(duration, int) and duration > 0 else 15,
        acquire_time=str(spec.get("acquireTime") or ""),
        renew_time=str(spec.get("renewTime") or ""),
        transitions=transitions if isinstance(transitions, int) and transitions >= 0 else 0,
    )


Action = Literal["create", "update", "wait"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """What one try decided: write ``record`` (create the Lease, or update it), or wait."""

    action: Action
    record: LeaseRecord | None = None
    reason: str = ""


def next_record(
    current: LeaseRecord | None,
    *,
    identity: str,
    observed_at: float,
    now: float,
    now_text: str,
    lease_duration: int,
) -> Attempt:
    """The next step of ``identity`` given the Lease's ``current`` record (None: no Lease yet).

    ``observed_at`` is when (on this replica's monotonic clock) ``current`` was first seen with its
    present content, ``now`` the same clock's time, ``now_text`` the wall-clock time to write
    (RFC 3339, microseconds). Another holder's lease has expired only when ``lease_duration``
    of the *record's* seconds have passed here since it last changed.
    """

    def taken(transitions: int) -> LeaseRecord:
        return LeaseRecord(
            holder=identity,
            lease_duration_seconds=lease_duration,
            acquire_time=now_text,
            renew_time=now_text,
            transitions=transitions,
        )

    if current is None:
        return Attempt(action="create", record=taken(0), reason="no lease yet")
    if current.holder == identity:
        return Attempt(
            action="update",
            record=replace(current, renew_time=now_text, lease_duration_seconds=lease_duration),
            reason="renew",
        )
    if current.holder and now < observed_at + current.lease_duration_seconds:
        return Attempt(action="wait", reason=f"held by {current.holder}")
    return Attempt(
        action="update",
        record=taken(current.transitions + 1),
        reason="released" if not current.holder else f"expired (held by {current.holder})",
    )


def still_leading(last_renewed: float | None, now: float, renew_deadline: float) -> bool:
    """Whether a holder whose last successful write was at ``last_renewed`` may still act."""
    return last_renewed is not None and now - last_renewed < renew_deadline


def released(record: LeaseRecord, now_text: str) -> LeaseRecord:
    """The record a holder writes when it stops: no holder, a one-second lease (as client-go)."""
    return replace(record, holder="", lease_duration_seconds=1, renew_time=now_text)


def rfc3339_micro(when: float | None = None) -> str:
    """A Lease's MicroTime: ``2026-12-06T22:47:29.123456Z``."""
    moment = datetime.datetime.fromtimestamp(time.time() if when is None else when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True, kw_only=True)
class ElectionConfig:
    namespace: str
    identity: str
    name: str = LEASE_NAME
    lease_duration: int = 15
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def check(self) -> None:
        """Raise ``ValueError`` for timings that cannot keep two leaders apart (client-go's rules)."""
        if not self.lease_duration > self.renew_deadline:
            raise ValueError(
                f"--lease-duration ({self.lease_duration}) must be greater than --renew-deadline "
                f"({self.renew_deadline})"
            )
        if not self.renew_deadline > self.retry_period * 1.2:
            raise ValueError(
                f"--renew-deadline ({self.renew_deadline}) must be greater than 1.2 x --retry-period "
                f"({self.retry_period})"
            )
        if self.retry_period <= 0:
            raise ValueError(f"--retry-period must be positive, got {self.retry_period}")


class LeaderElector:
    """Runs the election in a daemon thread; ``leading()`` says whether this replica may act now.

    ``on_change(leading)`` is called (from the election thread) whenever that changes.
    """

    def __init__(
        self,
        api: KubeApi,
        config: ElectionConfig,
        *,
        on_change: Callable[[bool], None] = lambda leading: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self.config = config
        self._on_change = on_change
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observed: tuple[LeaseRecord | None, float] = (None, 0.0)
        self._last_renewed: float | None = None
        self._resource_version: str | None = None
        self._was_leading = False
        self.holder = ""
        """The holder this replica last saw (itself when leading)."""

    @property
    def _timeout(self) -> tuple[float, float]:
        """A Lease request may not outlast the renew deadline: a leader whose renewal hangs has
        stopped acting by then anyway, and the next try must start."""
        seconds = max(1.0, self.config.renew_deadline - self.config.retry_period)
        return (min(5.0, seconds), seconds)

    @property
    def _path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.config.namespace}/leases"

    def leading(self) -> bool:
        """True while this replica holds the Lease and its last renewal is within the deadline."""
        return still_leading(self._last_renewed, self._clock(), self.config.renew_deadline)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="podpreset-election", daemon=True)
            self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop trying; when leading and ``release``, give the Lease up first."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.config.retry_period + 5)
        was_leading = self.leading()
        self._last_renewed = None
        self._changed()
        if release and was_leading:
            self._release()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.try_once()
            except Exception as exc:  # any API or network failure: leadership lapses at the deadline
                logger.warning("leader election: %s", exc)
            self._changed()
            self._stop.wait(self.config.retry_period)

    def try_once(self) -> bool:
        """One read and, when due, one write. True when this replica holds the Lease after it."""
        current = self._read()
        now = self._clock()
        attempt = next_record(
            current,
            identity=self.config.identity,
            observed_at=self._observed[1],
            now=now,
            now_text=rfc3339_micro(),
            lease_duration=self.config.lease_duration,
        )
        if attempt.action == "wait" or attempt.record is None:
            return False
        metadata: dict[str, Any] = {"name": self.config.name, "namespace": self.config.namespace}
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": attempt.record.to_spec(),
        }
        try:
            if attempt.action == "create":
                written = self._api.request("POST", self._path, body=body, timeout=self._timeout)
            else:
                metadata["resourceVersion"] = self._resource_version
                written = self._api.request(
                    "PUT", f"{self._path}/{self.config.name}", body=body, timeout=self._timeout
                )
        except ApiError as exc:
            if exc.status == 409:  # another replica wrote first: read again next time
                return False
            raise
        self._resource_version = str((written.get("metadata") or {}).get("resourceVersion") or "")
        self._observed = (attempt.record, now)
        self.holder = self.config.identity
        if not self._was_leading or attempt.reason != "renew":
            logger.info(
                "leader election: %s holds lease %s/%s (%s)",
                self.config.identity,
                self.config.namespace,
                self.config.name,
                attempt.reason,
            )
        self._last_renewed = now
        return True

    def _read(self) -> LeaseRecord | None:
        try:
            lease = self._api.request("GET", f"{self._path}/{self.config.name}", timeout=self._timeout)
        except ApiError as exc:
            if exc.status == 404:
                self._resource_version = None
                return None
            raise
        self._resource_version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        record = record_of(lease)
        if record.holder != self.config.identity:
            self._last_renewed = None  # someone else holds it: stop acting now, not at the deadline
        if record != self._observed[0]:
            self._observed = (record, self._clock())
            if record.holder != self.holder:
                logger.info("leader election: lease %s is held by %r", self.config.name, record.holder)
            self.holder = record.holder
        return record

    def _changed(self) -> None:
        leading = self.leading()
        if leading != self._was_leading:
            self._was_leading = leading
            if not leading:
                level = logging.INFO if self._stop.is_set() else logging.WARNING
                logger.log(level, "leader election: %s stopped leading", self.config.identity)
            self._on_change(leading)

    def _release(self) -> None:
        record = self._observed[0]
        if record is None or record.holder != self.config.identity or not self._resource_version:
            return
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.config.name,
                "namespace": self.config.namespace,
                "resourceVersion": self._resource_version,
            },
            "spec": released(record, rfc3339_micro()).to_spec(),
        }
        try:
            self._api.request("PUT", f"{self._path}/{self.config.name}", body=body, timeout=self._timeout)
            logger.info("leader election: released lease %s", self.config.name)
        except Exception as exc:  # best effort: the lease then expires on its own
            logger.warning("leader election: could not release the lease: %s", exc)
