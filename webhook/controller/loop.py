"""The controller's loop: run the registered reconcile passes, only while this replica leads.

A pass is any object with a ``name`` and ``run(context) -> float``: it does one round of work and
returns how many seconds it wants to wait before its next round (it is woken earlier when
``context.wake()`` is called, e.g. by its own watches). Passes run one after another in the loop's
thread, never two at once. Before every write a pass checks ``context.leading()``: the moment the
Lease is lost (or its renewal is overdue) that turns False, the loop stops calling passes, and a
pass in the middle of a round returns without writing more. ``stop()`` (SIGTERM) ends the loop
after the round in progress and calls each pass's ``stop()``.

How a pass joins the controller: ``webhook.controller.passes.build_passes`` lists them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

logger = logging.getLogger(__name__)

IDLE_SECONDS = 30.0
"""The longest the loop sleeps when no pass asked for sooner."""
FAILURE_BACKOFF = (1.0, 30.0)
"""A pass that raises is retried after 1 s, doubling per failure in a row, at most 30 s."""


@dataclass(slots=True)
class PassContext:
    """What a pass may ask of the loop."""

    leading: Callable[[], bool]
    """True while this replica may act; check it right before every write."""
    wake: Callable[[], None]
    """Run the passes again now (watches call it when something changed)."""
    stopping: threading.Event = field(default_factory=threading.Event)
    """Set when the process is shutting down."""
    term: int = 0
    """How many times this replica has gained the Lease: a pass that remembers what it wrote
    forgets it when this changes (another replica may have written meanwhile)."""


class ReconcilePass(Protocol):
    """One kind of work the leader does (status, rollout...)."""

    @property
    def name(self) -> str: ...

    def run(self, context: PassContext) -> float:
        """One round; returns the seconds until the pass wants its next round."""
        ...

    def stop(self) -> None:
        """Release what the pass holds (watch threads); called once, at shutdown."""
        ...


@dataclass(slots=True)
class _Schedule:
    due: float = 0.0
    failures: int = 0


class Controller:
    """Runs ``passes`` while ``leading()``; ``wake()`` makes every pass due now."""

    def __init__(
        self,
        passes: Sequence[ReconcilePass],
        leading: Callable[[], bool],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.passes = tuple(passes)
        self._leading = leading
        self._clock = clock
        self._wakeup = threading.Event()
        self._stop = threading.Event()
        self._schedules = {p.name: _Schedule() for p in self.passes}
        self.context = PassContext(leading=leading, wake=self.wake, stopping=self._stop)
        self.rounds = 0
        """Pass rounds run (all passes), for tests and the log."""

    def wake(self) -> None:
        for schedule in self._schedules.values():
            schedule.due = 0.0
        self._wakeup.set()

    def leadership_changed(self, leading: bool) -> None:
        """The elector's callback: on gaining the Lease every pass is due at once."""
        if leading:
            self.context.term += 1
            self.wake()
        else:
            self._wakeup.set()

    def stop(self) -> None:
        self._stop.set()
        self._wakeup.set()

    def run(self) -> None:
        """Until ``stop()``: wait to lead, then run each due pass; then stop every pass."""
        try:
            while not self._stop.is_set():
                self._wakeup.clear()
                wait = IDLE_SECONDS
                if self._leading():
                    wait = self.run_due()
                self._wakeup.wait(max(0.05, wait))
        finally:
            for reconcile in self.passes:
                try:
                    reconcile.stop()
                except Exception:  # shutting down: log and carry on with the others
                    logger.exception("controller: pass %s did not stop cleanly", reconcile.name)

    def run_due(self) -> float:
        """Run every pass that is due (while still leading); the seconds until the next is due."""
        for reconcile in self.passes:
            schedule = self._schedules[reconcile.name]
            if self._stop.is_set() or not self._leading():
                break
            if self._clock() < schedule.due:
                continue
            try:
                delay = reconcile.run(self.context)
                schedule.failures = 0
            except Exception:  # one pass failing must not stop the others; back off and retry it
                schedule.failures += 1
                delay = min(FAILURE_BACKOFF[1], FAILURE_BACKOFF[0] * 2 ** (schedule.failures - 1))
                logger.exception("controller: pass %s failed; retrying in %.0fs", reconcile.name, delay)
            schedule.due = self._clock() + max(0.0, delay)
        self.rounds += 1
        now = self._clock()
        return min((s.due - now for s in self._schedules.values()), default=IDLE_SECONDS)
