"""What is wrong with a preset source, since when: ``SourceHealth``, the one object sources report to.

The sources keep serving their last good presets through failures; this object says what they
are living with. A source calls it from its own thread (``watch_*`` for a Kubernetes watch,
``set_problems`` for whole groups of problems such as invalid presets or unreadable files); the
app reads ``problems()`` for ``/readyz`` and ``counters()`` for ``/metrics``. Each problem
carries the source it concerns, the error, and when it began; a problem that goes away is logged
once, as is one that begins. The Kubernetes watch code only calls into this object, so that the
readiness body, the log and the metrics say the same thing without the watch knowing any of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

ERROR_KINDS = ("network", "api", "expired", "watch", "other")
"""Kinds of watch failure: the connection (refused, reset, timed out), an API error status,
an expired resourceVersion (410: a relist follows), an ERROR event in the stream, anything else."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong: ``source`` names what (``kubernetes watch podpresets``, ``podpreset ns/name``,
    a file), ``error`` says what, ``since`` is when it began (``time.time()``)."""

    source: str
    error: str
    since: float

    def as_json(self) -> dict[str, str]:
        return {
            "source": self.source,
            "error": self.error,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since)),
        }


@dataclass(slots=True)
class WatchState:
    """One watch's connection state and counters (only ever increased)."""

    connected: bool = False
    last_event: float | None = None
    lists: int = 0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0))

    @property
    def relists(self) -> int:
        return max(0, self.lists - 1)


class SourceHealth:
    """Problems and watch state of one worker's preset source; safe to read from any thread."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._groups: dict[str, dict[str, Problem]] = {}
        self._watches: dict[str, WatchState] = {}

    # Reported by the sources.
    def set_problems(
        self, group: str, problems: Mapping[str, str], *, cause: BaseException | None = None
    ) -> None:
        """Replace the problems of ``group`` (source name → error); a source already listed keeps
        its ``since`` while it stays in trouble. ``cause``, an unexpected exception behind them,
        is logged with its traceback when a problem begins (or changes)."""
        now = self._clock()
        with self._lock:
            before = self._groups.get(group, {})
            after = {
                source: Problem(source, error, before[source].since if source in before else now)
                for source, error in problems.items()
            }
            self._groups[group] = after
        for source, problem in after.items():
            previous = before.get(source)
            if previous is None or previous.error != problem.error:
                logger.warning(
                    "preset source problem: %s: %s (since %s)",
                    source,
                    problem.error,
                    problem.as_json()["since"],
                    exc_info=cause,
                    extra={"fields": {"problem_source": source, "error": problem.error}},
                )
        for source, problem in before.items():
            if source not in after:
                logger.info(
                    "preset source problem resolved: %s, after %.1fs",
                    source,
                    now - problem.since,
                    extra={"fields": {"problem_source": source}},
                )

    def watch_listed(self, watch: str = "podpresets") -> None:
        """A (re)list of ``watch``'s resource succeeded."""
        with self._lock:
            state = self._watch(watch)
            state.lists += 1
            state.connected = True
        self._clear_watch_problem(watch)

    def watch_connected(self, watch: str = "podpresets") -> None:
        """The watch request was answered: events flow from now on."""
        with self._lock:
            self._watch(watch).connected = True
        self._clear_watch_problem(watch)

    def watch_event(self, watch: str = "podpresets") -> None:
        """An event (bookmarks included) arrived."""
        now = self._clock()
        with self._lock:
            self._watch(watch).last_event = now

    def watch_failed(self, kind: str, error: str, watch: str = "podpresets") -> None:
        """The watch (or list) failed with an error of ``kind`` (one of ``ERROR_KINDS``)."""
        with self._lock:
            state = self._watch(watch)
            state.connected = False
            state.errors[kind if kind in state.errors else "other"] += 1
        if kind != "expired":  # an expired watch relists at once: not a problem to report
            self.set_problems(f"watch {watch}", {f"kubernetes watch {watch}": error})

    def forget_watch(self, watch: str) -> None:
        """``watch`` never listed after all (a list made before the fork, dropped): its state and
        problems go, without a log line."""
        with self._lock:
            self._watches.pop(watch, None)
            self._groups.pop(f"watch {watch}", None)

    def forget(self, group: str) -> None:
        """Drop the problems of ``group`` without a log line (they were never served)."""
        with self._lock:
            self._groups.pop(group, None)

    # Read by the app.
    def problems(self) -> tuple[Problem, ...]:
        with self._lock:
            found = [problem for group in self._groups.values() for problem in group.values()]
        return tuple(sorted(found, key=lambda p: (p.since, p.source)))

    def watches(self) -> dict[str, WatchState]:
        """A copy of every watch's state."""
        with self._lock:
            return {
                name: WatchState(s.connected, s.last_event, s.lists, dict(s.errors))
                for name, s in self._watches.items()
            }

    def invalid_presets(self) -> int:
        """Presets skipped because they are invalid (the ``invalid`` group)."""
        with self._lock:
            return len(self._groups.get("invalid", {}))

    def _watch(self, watch: str) -> WatchState:
        return self._watches.setdefault(watch, WatchState())

    def _clear_watch_problem(self, watch: str) -> None:
        with self._lock:
            present = bool(self._groups.get(f"watch {watch}"))
        if present:
            self.set_problems(f"watch {watch}", {})
