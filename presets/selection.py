"""Selection: which presets may apply to a pod, in the one preset order.

``PresetIndex`` holds one snapshot of every preset (PodPresets by namespace, ClusterPodPresets),
built once per snapshot, and narrows them to the candidates for a pod by one label each requires;
``select_presets`` checks the candidates' selectors exactly; ``arrival_labels`` is what they are
checked against. The index also owns ``PresetSets``: what the walk derives from one combination of
presets, kept for as long as the snapshot (``presets.plan``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import is_
from typing import Any, Generic, Literal, TypeVar

from presets.model import PodPreset, order_key
from presets.selector import Selector, describe_requirement

T = TypeVar("T")
S = TypeVar("S")


class PresetSets(Generic[T]):
    """A memo of a pure function of (presets, a setting: the protected names, the volume types),
    keyed by the identity of its immutable arguments and holding them, so an id cannot be reused
    while its entry is there.

    One per ``PresetIndex`` snapshot: dropped with it, so replaced presets are not kept alive.
    Request threads share it; a lookup and an insertion are each one dict operation, and a lost
    race only builds an entry twice.
    """

    __slots__ = ("_entries", "limit")

    def __init__(self, limit: int = 512) -> None:
        self.limit = limit
        self._entries: dict[tuple[int, ...], tuple[tuple[PodPreset, ...], object, T]] = {}

    def get(
        self, presets: Sequence[PodPreset], setting: S, build: Callable[[tuple[PodPreset, ...], S], T]
    ) -> T:
        key = (id(setting), *map(id, presets))
        found = self._entries.get(key)
        if (
            found is not None
            and found[1] is setting
            and len(found[0]) == len(presets)
            and all(map(is_, found[0], presets))
        ):
            return found[2]
        held = tuple(presets)
        built = build(held, setting)
        if len(self._entries) >= self.limit:
            self._entries.clear()
        self._entries[key] = (held, setting, built)
        return built


@dataclass(frozen=True, slots=True, kw_only=True)
class Mismatch:
    """A preset that did not select the pod, and the requirements it missed."""

    preset: str
    """``PodPreset.ref``: the name, or ``clusterpodpreset/<name>``."""
    unmet: tuple[str, ...]
    failed: Literal["selector", "namespaceSelector"] = "selector"
    """Which selector failed: a ClusterPodPreset's namespace selector is checked first."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """The matching presets in preset order, and (when explaining) the others."""

    matched: tuple[PodPreset, ...]
    mismatches: tuple[Mismatch, ...] = ()


def select_presets(
    labels: Mapping[str, str],
    presets: Iterable[PodPreset],
    *,
    namespace_labels: Mapping[str, str] | None = None,
    explain: bool = False,
) -> Selection:
    """The presets whose selectors hold, in preset order: a ClusterPodPreset's namespace
    selector against ``namespace_labels`` (None: not checked), then the pod selector against
    ``labels``. With ``explain``, also why each other preset did not match."""
    matched: list[PodPreset] = []
    mismatches: list[Mismatch] = []
    for preset in sorted(presets, key=order_key):
        ns_selector = preset.namespace_selector
        if ns_selector is not None and namespace_labels is not None and ns_selector.requirements:
            if explain:
                unmet_ns = ns_selector.unmet(namespace_labels)
                if unmet_ns:
                    mismatches.append(_mismatch(preset, unmet_ns, "namespaceSelector"))
                    continue
            elif not ns_selector.matches(namespace_labels):
                continue
        if explain:
            unmet = preset.selector.unmet(labels)
            if unmet:
                mismatches.append(_mismatch(preset, unmet, "selector"))
                continue
        elif not preset.selector.matches(labels):
            continue
        matched.append(preset)
    return Selection(matched=tuple(matched), mismatches=tuple(mismatches))


def _mismatch(
    preset: PodPreset, unmet: Sequence[Any], failed: Literal["selector", "namespaceSelector"]
) -> Mismatch:
    return Mismatch(preset=preset.ref, unmet=tuple(describe_requirement(r) for r in unmet), failed=failed)


def arrival_labels(
    labels: Mapping[str, str], annotations: Mapping[str, Any], presets: Iterable[PodPreset]
) -> Mapping[str, str]:
    """The labels to match on: the pod's, less those an applied preset (its annotation is on the
    pod) added. Added labels never change which presets match, on reinvocation too."""
    removed = [
        key
        for preset in presets
        if preset.labels and preset.annotation_key in annotations
        for key, value in preset.labels
        if labels.get(key) == value
    ]
    if not removed:
        return labels
    return {k: v for k, v in labels.items() if k not in removed}


@dataclass(frozen=True, slots=True)
class _Namespace:
    """One namespace's presets (or the cluster's), and an index of them by one label each requires."""

    presets: tuple[PodPreset, ...]
    by_label: Mapping[tuple[str, str], tuple[PodPreset, ...]]
    """Presets that require ``key=value`` (a matchLabels pair), under their first such pair."""
    unindexed: tuple[PodPreset, ...]
    """Presets that require no single label value: checked for every pod."""
    by_namespace_label: Mapping[tuple[str, str], tuple[PodPreset, ...]] = field(default_factory=dict)
    """ClusterPodPresets whose pod selector requires no single value but whose namespace
    selector does, under that namespace label pair."""

    @classmethod
    def build(cls, presets: Iterable[PodPreset]) -> _Namespace:
        ordered = tuple(sorted(presets, key=order_key))
        by_label: dict[tuple[str, str], list[PodPreset]] = {}
        by_namespace_label: dict[tuple[str, str], list[PodPreset]] = {}
        unindexed: list[PodPreset] = []
        for preset in ordered:
            pair = _required_pair(preset.selector)
            if pair is not None:
                by_label.setdefault(pair, []).append(preset)
                continue
            namespace_pair = _required_pair(preset.namespace_selector)
            if namespace_pair is not None:
                by_namespace_label.setdefault(namespace_pair, []).append(preset)
            else:
                unindexed.append(preset)
        return cls(
            ordered,
            {k: tuple(v) for k, v in by_label.items()},
            tuple(unindexed),
            {k: tuple(v) for k, v in by_namespace_label.items()},
        )


_EMPTY_NAMESPACE = _Namespace((), {}, ())


def _required_pair(selector: Selector | None) -> tuple[str, str] | None:
    for requirement in selector.requirements if selector is not None else ():
        if requirement.operator == "In" and len(requirement.values) == 1:
            return requirement.key, next(iter(requirement.values))
    return None


@dataclass(frozen=True, slots=True)
class PresetIndex:
    """PodPresets grouped by namespace, and the ClusterPodPresets, built once per snapshot.

    ``candidates`` narrows them to those that can select a pod, using one required pod label per
    preset, so a pod's cost grows with the presets that could match it, not with every preset of
    its namespace or of the cluster. ClusterPodPresets are one group looked up for every
    namespace; their namespace selectors are checked by the engine, for the candidates only.
    """

    namespaces: Mapping[str, _Namespace] = field(default_factory=dict)
    cluster: _Namespace = _EMPTY_NAMESPACE
    preset_sets: PresetSets[Any] = field(default_factory=PresetSets, compare=False, repr=False)
    """What the walk derived from each combination of presets it saw (``presets.plan``)."""
    refusal_sets: PresetSets[Any] = field(default_factory=PresetSets, compare=False, repr=False)
    """Which of each combination of matching presets the volume types refuse
    (``presets.engine.refuse_presets``)."""

    @classmethod
    def build(cls, presets: Iterable[PodPreset]) -> PresetIndex:
        groups: dict[str, list[PodPreset]] = {}
        cluster: list[PodPreset] = []
        for preset in presets:
            if preset.is_cluster:
                cluster.append(preset)
            else:
                groups.setdefault(preset.namespace, []).append(preset)
        return cls({ns: _Namespace.build(group) for ns, group in groups.items()}, _Namespace.build(cluster))

    @property
    def by_namespace(self) -> Mapping[str, tuple[PodPreset, ...]]:
        """The PodPresets of each namespace (ClusterPodPresets are in ``cluster_presets``)."""
        return {ns: group.presets for ns, group in self.namespaces.items()}

    @property
    def cluster_presets(self) -> tuple[PodPreset, ...]:
        return self.cluster.presets

    def with_namespace(self, namespace: str, presets: Iterable[PodPreset]) -> PresetIndex:
        """A new index with one namespace's PodPresets replaced (a watch event changes one)."""
        namespaces = dict(self.namespaces)
        group = _Namespace.build(presets)
        if group.presets:
            namespaces[namespace] = group
        else:
            namespaces.pop(namespace, None)
        return PresetIndex(namespaces, self.cluster)

    def with_cluster(self, presets: Iterable[PodPreset]) -> PresetIndex:
        """A new index with the ClusterPodPresets replaced."""
        return PresetIndex(self.namespaces, _Namespace.build(presets))

    def for_namespace(self, namespace: str) -> tuple[PodPreset, ...]:
        """The PodPresets of ``namespace``, in preset order."""
        return self.namespaces.get(namespace, _EMPTY_NAMESPACE).presets

    def relevant(self, namespace: str) -> tuple[PodPreset, ...]:
        """Every preset that could apply in ``namespace``: its PodPresets and every
        ClusterPodPreset, in preset order (for ``--explain``)."""
        return tuple(sorted((*self.cluster.presets, *self.for_namespace(namespace)), key=order_key))

    def candidates(
        self, namespace: str, labels: Mapping[str, object], namespace_labels: Mapping[str, str] | None = None
    ) -> list[PodPreset]:
        """The presets that may select a pod of ``namespace`` with ``labels`` (a superset).

        ClusterPodPresets are narrowed by ``namespace_labels`` too when given; without them,
        every ClusterPodPreset that the pod's labels allow is a candidate."""
        found = _candidates(self.namespaces.get(namespace, _EMPTY_NAMESPACE), labels)
        cluster = self.cluster
        if cluster.presets:
            found.extend(_candidates(cluster, labels))
            if namespace_labels is None:
                found.extend(p for group in cluster.by_namespace_label.values() for p in group)
            elif cluster.by_namespace_label:
                for key, value in namespace_labels.items():
                    found.extend(cluster.by_namespace_label.get((key, value), ()))
        return found

    def __len__(self) -> int:
        return sum(len(group.presets) for group in self.namespaces.values()) + len(self.cluster.presets)


def _candidates(group: _Namespace, labels: Mapping[str, object]) -> list[PodPreset]:
    found = list(group.unindexed)
    if group.by_label:
        for key, value in labels.items():
            if isinstance(value, str):
                found.extend(group.by_label.get((key, value), ()))
    return found
