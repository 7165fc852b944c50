"""Where presets come from: the ``PresetSource`` protocol and its immutable ``Snapshot``.

A source is owned by one gunicorn worker and started after the fork. It publishes presets as a
new ``Snapshot`` swapped in with one assignment; request handlers read ``snapshot()`` once per
request and never see a half-updated set. Implementations: ``StaticSource`` (a fixed list, for
tests and the CLI), the file source (``webhook.sources.files``) and the Kubernetes list+watch
source (``webhook.sources.kube``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from presets.admission import PresetIndex
from presets.model import PodPreset
from presets.namespaces import NamespaceLabels
from webhook.sources.health import SourceHealth


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """One consistent view of the presets; replaced as a whole, never mutated."""

    index: PresetIndex = field(default_factory=PresetIndex)
    """Presets of both kinds."""
    namespaces: NamespaceLabels = field(default_factory=dict)
    """Labels of each namespace by name; a namespace not listed has only
    ``kubernetes.io/metadata.name=<name>`` (the engine's rule)."""
    synced: bool = False
    """True once the first complete load (file read, or initial list) has landed."""
    last_sync: float | None = None
    """``time.time()`` of the last successful load."""
    problems: tuple[str, ...] = ()
    """Problems of the last load attempt, one line each (file, field, problem)."""


class PresetSource(Protocol):
    """What ``create_app`` needs from a preset source."""

    @property
    def health(self) -> SourceHealth | None:
        """What the source is living with, for ``/readyz``, ``/metrics`` and the log; None for a
        source that cannot fail (``StaticSource``)."""

    def start(self) -> None:
        """Begin loading (and watching); returns without waiting for the first load."""

    def stop(self) -> None:
        """Stop watching; idempotent."""

    def snapshot(self) -> Snapshot:
        """The current snapshot (a single attribute read)."""


class StaticSource:
    """A fixed set of presets, synced from the start: for tests and in-process use."""

    health: SourceHealth | None = None

    def __init__(self, presets: Iterable[PodPreset] = (), namespaces: NamespaceLabels | None = None) -> None:
        self._snapshot = Snapshot(index=PresetIndex.build(presets), namespaces=namespaces or {}, synced=True)

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def snapshot(self) -> Snapshot:
        return self._snapshot
