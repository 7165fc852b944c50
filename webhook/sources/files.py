"""The file source: presets read from ``-f`` files and directories, reloaded when they change.

``start`` loads the paths (synchronously: they are local files) and starts a daemon thread that
checks ``fingerprint`` every ``interval`` seconds and reloads on any change. A load is all or
nothing: when any document is invalid or a file cannot be parsed, the last good presets keep
serving, each problem is logged with its file and field once when it starts and once when it
ends (by the source's health, which ``/readyz`` lists), and the snapshot's ``problems`` (and so
the metrics) show them until an edit fixes them. A load that fails unexpectedly (a bug, a
``RecursionError``, ``MemoryError``) is published the same way, and retried on every poll rather
than only after the next edit, since the files may well be fine. Presets without a namespace go
to ``default``. ``Namespace`` documents among the files give namespace labels (for cluster
presets' ``namespaceSelector``), published with the presets. Each gunicorn worker owns one
source, started after the fork.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from presets.admission import PresetIndex
from presets.limits import DEFAULT_MAX_PRESET_BYTES
from presets.namespaces import NamespaceLabels
from webhook.sources.documents import LoadResult, SourceError, fingerprint, load_presets
from webhook.sources.health import SourceHealth
from webhook.sources.snapshot import Snapshot

logger = logging.getLogger(__name__)


Preloaded = tuple[object, PresetIndex, NamespaceLabels]
"""The fingerprint taken before a load, and the index and namespace labels that load built."""


def preload(
    paths: Iterable[str],
    default_namespace: str = "default",
    *,
    max_preset_bytes: int = DEFAULT_MAX_PRESET_BYTES,
) -> tuple[Preloaded, LoadResult]:
    """Load once before gunicorn forks; the workers' sources start from it (shared pages)."""
    paths = tuple(paths)
    seen = fingerprint(paths)
    result = load_presets(paths, default_namespace, max_preset_bytes=max_preset_bytes)
    return (seen, PresetIndex.build(result.presets), result.namespaces), result


class FileSource:
    """A ``PresetSource`` over preset files, polled for changes."""

    def __init__(
        self,
        paths: Iterable[str],
        *,
        default_namespace: str = "default",
        interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        preloaded: Preloaded | None = None,
        max_preset_bytes: int = DEFAULT_MAX_PRESET_BYTES,
    ) -> None:
        self.paths = tuple(paths)
        self.max_preset_bytes = max_preset_bytes
        """A preset larger than this is a problem of its file, as an invalid one is."""
        self._preloaded = preloaded
        self.default_namespace = default_namespace
        self.interval = interval
        self._clock = clock
        self._snapshot = Snapshot()
        self._fingerprint: object = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.health = SourceHealth(clock)
        """Where each load's problems are reported, by file (``/readyz``, the log)."""

    def start(self) -> None:
        """Load now, then poll in a daemon thread. Calling it twice does nothing more."""
        with self._lock:
            if self._thread is not None:
                return
            if self._preloaded is not None:
                # Loaded and validated by ``serve`` before the fork: publish, do not read again.
                self._fingerprint, index, namespaces = self._preloaded
                self._preloaded = None
                self._publish(index, namespaces)
            else:
                self.reload()
            self._thread = threading.Thread(target=self._poll, name="podpreset-file-source", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(self.interval * 2, 1.0))

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def reload(self) -> Snapshot:
        """Read every path once and publish the result (or the last good set with the problems)."""
        # Taken before reading, so an edit made during the load triggers another one.
        seen: object = fingerprint(self.paths)
        current = self._snapshot
        index: PresetIndex | None = None
        namespaces: NamespaceLabels = {}
        by_file: dict[str, list[str]] = {}
        cause: BaseException | None = None
        try:
            result = load_presets(self.paths, self.default_namespace, max_preset_bytes=self.max_preset_bytes)
            problems = tuple(str(problem) for problem in result.problems)
            for found in result.problems:
                by_file.setdefault(found.source, []).append(str(found).removeprefix(found.source + ": "))
            if not problems:
                index, namespaces = PresetIndex.build(result.presets), result.namespaces
        except SourceError as exc:
            problems = (str(exc),)
            by_file["preset files"] = [str(exc)]
        except Exception as exc:
            problems = (f"loading the preset files failed unexpectedly: {type(exc).__name__}: {exc}",)
            cause = exc  # the health logs it with its traceback, once per distinct failure
            # Not the files' fault (as far as we know): load them again on the next poll.
            seen = None
            by_file["preset files"] = list(problems)
        self._fingerprint = seen
        # The one report of each problem: the health logs it when it starts and when it ends
        # (and lists it in /readyz), not this method on every reload.
        self.health.set_problems(
            "files", {source: "; ".join(lines) for source, lines in by_file.items()}, cause=cause
        )
        if index is None:
            self._snapshot = replace(current, problems=problems)
        else:
            self._publish(index, namespaces)
        return self._snapshot

    def _publish(self, index: PresetIndex, namespaces: NamespaceLabels) -> None:
        logger.info(
            "loaded %d presets from %s",
            len(index),
            ", ".join(self.paths),
            extra={"fields": {"presets": len(index), "paths": list(self.paths)}},
        )
        self._snapshot = Snapshot(
            index=index, namespaces=namespaces, synced=True, last_sync=self._clock(), problems=()
        )
        # The presets live until the next reload: keep the cyclic collector from walking them
        # on every full collection (with 10,000 presets that walk was the p99 of a request).
        # Frozen objects are still freed by reference counting once a reload drops them.
        gc.freeze()

    def _poll(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                if fingerprint(self.paths) != self._fingerprint:
                    self.reload()
            except Exception:
                # A bug here must not end reloading for the life of the worker.
                logger.exception("checking preset files for changes failed")
