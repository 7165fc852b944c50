"""The pipeline for one pod: select → plan → decide → render.

``apply_presets`` takes the pod exactly as received and the candidate presets, and returns an
``Outcome``: the mutated pod, the RFC 6902 patch, what was applied, what conflicted, what each
preset's ``onConflict`` policy did, and why other presets did not match. Each step is a pure
function a test can call alone:

- ``select_presets``: which presets match (namespace selector, then pod selector), in the one
  preset order (``presets.model.order_key``);
- ``refuse_presets``: the matching PodPresets that inject a volume type namespaced presets may
  not (``VolumeTypes``) are left out, each with a warning;
- ``plan_presets``: walk them, building the result field by field (``presets.merge``), each
  preset's conflicts resolved by its policy; protected env names and container targeting apply
  here; the plan is a plain value;
- ``decide``: apply, skip all (the pod is admitted unchanged) or reject;
- ``render``: the patch (env inserted before its first reference), the applied annotations.

The input is never mutated; the mutated pod shares every subtree it did not change.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from jsonpointer import escape, unescape

from presets.defaults import canonical_toleration
from presets.merge import (
    ENV,
    ENV_FROM,
    NEW,
    VOLUME_MOUNTS,
    VOLUMES,
    Clash,
    Conflict,
    Field,
    KeyedList,
    KeyedMap,
    PresetKeys,
    UniqueList,
    conflict_of,
    pull_secret_name,
    toleration_key,
)
from presets.model import (
    ANNOTATION_NAME_PREFIXES,
    ANNOTATION_PREFIX,
    DEFAULT_PROTECTED,
    DEFAULT_VOLUME_TYPES,
    KIND,
    PodPreset,
    Protected,
    VolumeTypes,
    order_key,
    protected_items,
)
from presets.namespaces import NO_NAMESPACES, NamespaceLabels, labels_of
from presets.selector import describe_requirement

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
EXCLUDE_ANNOTATION = ANNOTATION_PREFIX + "exclude"
APPLIED_ANNOTATION_PREFIX = ANNOTATION_PREFIX + ANNOTATION_NAME_PREFIXES[KIND]
"""The applied annotations of PodPresets (``PodPreset.annotation_key`` covers both kinds)."""

Action = Literal["mutated", "unchanged", "conflict", "rejected", "skipped"]
Verdict = Literal["apply", "skip-all", "reject"]
Status = Literal["applied", "kept-existing", "skipped-preset", "conflict"]
"""What the walk did with one matching preset: applied whole; applied without its conflicting
items (KeepExisting); left out (SkipPreset); conflicted under SkipAll or Reject."""
PatchOp = dict[str, Any]
Path = tuple[str | int, ...]
_CONTAINER_LISTS = (("initContainers", "init container"), ("containers", "container"))
_CONTAINER_RULES = (ENV, ENV_FROM, VOLUME_MOUNTS)
_POD_MAPS: tuple[tuple[Literal["nodeSelector", "labels", "annotations"], tuple[str, str]], ...] = (
    ("nodeSelector", ("spec", "nodeSelector")),
    ("labels", ("metadata", "labels")),
    ("annotations", ("metadata", "annotations")),
)


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """A matching PodPreset left out because it injects volumes of types it may not."""

    preset: PodPreset
    volumes: tuple[tuple[str, str], ...]
    """``(volume name, type)`` of each such volume."""

    def warning(self) -> str:
        """One line for the admission warning and the log; names and types, never contents."""
        volumes = ", ".join(f"volume {name!r} is of type {kind}" for name, kind in self.volumes)
        return (
            f"podpreset {self.preset.name!r} is not applied: {volumes}, which a PodPreset may not "
            "inject (the webhook's --namespaced-volume-types); a ClusterPodPreset may"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PresetResult:
    """What the walk did with one matching preset (for ``--explain``)."""

    preset: PodPreset
    status: Status
    conflicts: tuple[Conflict, ...] = ()
    added: Mapping[str, int] = field(default_factory=dict)
    """Per field, how many of its items the walk accepted (somewhere in the pod)."""
    skipped_containers: tuple[tuple[str, str], ...] = ()
    """``(container label, reason)`` for containers its containerSelector leaves out."""


@dataclass(slots=True, kw_only=True)
class ListChange:
    """Items to add to one list of the pod (at ``pointer``); ``current`` is what the pod has there.

    Not frozen, unlike the other values here, and never changed once made: a plan holds one per
    container and list, made on every admission, and a frozen dataclass takes 2.4 times as long
    to construct."""

    pointer: str
    """Where the list is, as a JSON pointer: ``/spec/volumes``, ``/spec/containers/0/env``."""
    field: str
    """The list's field name: ``env``, ``volumes``..."""
    current: Any
    added: tuple[dict[str, Any], ...]
    container: str = ""
    """The container's label, for a container's list."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MapChange:
    """Keys to add to one map of the pod (nodeSelector, labels, annotations)."""

    path: Path
    current: Any
    added: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The walk's result: what would be added where, and what happened to each preset."""

    results: tuple[PresetResult, ...]
    lists: tuple[ListChange, ...]
    maps: tuple[MapChange, ...]

    @property
    def conflicts(self) -> tuple[Conflict, ...]:
        return tuple(c for r in self.results for c in r.conflicts)

    @property
    def applied(self) -> tuple[PodPreset, ...]:
        return tuple(r.preset for r in self.results if r.status in ("applied", "kept-existing"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """Everything decided for one pod. ``pod`` is the result (the input itself when unchanged)."""

    action: Action
    reason: str
    received: dict[str, Any]
    """The pod as it came in (never mutated)."""
    patch: tuple[PatchOp, ...] = ()
    applied: tuple[str, ...] = ()
    """``PodPreset.ref`` of each applied preset, in preset order."""
    conflicts: tuple[Conflict, ...] = ()
    mismatches: tuple[Mismatch, ...] = ()
    added: Mapping[str, Mapping[str, int]] | None = None
    """Per applied preset (by ref), per field, how many of its items were added (``--explain``)."""
    verdict: Verdict = "apply"
    results: tuple[PresetResult, ...] = ()
    notes: tuple[str, ...] = ()
    """Warnings that are not conflicts (env references forming a cycle)."""
    refusals: tuple[Refusal, ...] = ()
    """Matching PodPresets left out for the volume types they inject (``refuse_presets``)."""
    rejection: str = ""
    """When rejected: the message for the API server's refusal (names preset, container, key)."""

    @property
    def warnings(self) -> tuple[str, ...]:
        return (*(r.warning() for r in self.refusals), *(c.warning() for c in self.conflicts), *self.notes)

    @property
    def pod(self) -> dict[str, Any]:
        """The pod the patch makes: built when asked (the webhook needs only the patch)."""
        return patched(self.received, self.patch) if self.patch else self.received


def skip_reason(pod: Mapping[str, Any]) -> str | None:
    """Why a pod is never touched (mirror pod, opt-out annotation), or None."""
    annotations = _mapping(_mapping(pod.get("metadata")).get("annotations"))
    if MIRROR_ANNOTATION in annotations:
        return f"mirror pod (annotation {MIRROR_ANNOTATION})"
    if annotations.get(EXCLUDE_ANNOTATION) == "true":
        return f'excluded by annotation {EXCLUDE_ANNOTATION}: "true"'
    return None


# ----------------------------------------------------------------------------------------- select


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


def refuse_presets(
    matched: tuple[PodPreset, ...], volume_types: VolumeTypes
) -> tuple[tuple[PodPreset, ...], tuple[Refusal, ...]]:
    """``matched`` without the PodPresets that inject a volume type ``volume_types`` does not
    allow, and a ``Refusal`` for each of those. A refused preset is left out as if it had not
    matched: it is no conflict, its ``onConflict`` plays no part, and the others still apply."""
    refusals = tuple(
        Refusal(preset=preset, volumes=refused)
        for preset in matched
        if (refused := volume_types.refused(preset))
    )
    if not refusals:
        return matched, ()
    left_out = {id(r.preset) for r in refusals}
    return tuple(p for p in matched if id(p) not in left_out), refusals


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


# ------------------------------------------------------------------------------------------- plan


_Accepted = tuple[Any, Any, Any, Any]
"""An item the preset would add: (the state that checked it, its key there, where it is added,
the item or ``(key, value)`` pair itself)."""


@dataclass(slots=True)
class _Target:
    """One container: where its lists are, and what the walk adds to each (env, envFrom, mounts)."""

    label: str
    name: str
    init: bool
    pointer: str
    """Where the container is, as a JSON pointer: ``/spec/containers/0``."""
    container: dict[str, Any]
    lanes: list[_Lane] = field(default_factory=list)
    """Per rule of ``_CONTAINER_RULES``, the lane holding this container's state."""
    skipped_by: dict[int, str] = field(default_factory=dict)
    """Why each preset (by id) whose containerSelector leaves this container out does so."""


@dataclass(slots=True)
class _Lane:
    """The state of one container list during the walk, shared by every container that holds
    none of the presets' keys for that rule and is targeted by the same presets: for those, the
    walk is the same as for an empty list, so it runs once (most containers, most pods)."""

    state: KeyedList
    members: list[_Target]
    index: int
    """The rule's position in ``_CONTAINER_RULES``."""
    distinct: bool = False
    """No two preset items of the rule share a key, and no member holds one: every item is new
    for every preset, whatever was accepted before, so the walk skips checking (the common case)."""
    added: list[dict[str, Any]] = field(default_factory=list)
    """What the walk adds to every member's list, in order."""


def plan_presets(
    pod: Mapping[str, Any], presets: Sequence[PodPreset], *, protected: Protected, count: bool = False
) -> Plan:
    """Walk ``presets`` in order against the pod, building the result.

    Per preset, every item is checked against the pod and the items accepted so far; then its
    policy decides: no conflict, or ``KeepExisting``: its new items are accepted (and count as
    existing for later presets); otherwise nothing of it is accepted. Protected env names are
    conflicts of their preset; env, envFrom and volumeMounts go only to targeted containers.
    ``count`` fills ``PresetResult.added`` (for ``--explain``).
    """
    walk = _preset_set(presets, protected)
    spec = _mapping(pod.get("spec"))
    metadata = _mapping(pod.get("metadata"))
    volumes_of_pod = _items(spec.get("volumes"))
    tolerations_of_pod = _items(spec.get("tolerations"))
    secrets_of_pod = _items(spec.get("imagePullSecrets"))
    maps = (
        {
            name: KeyedMap(_mapping((spec if path[0] == "spec" else metadata).get(path[1])))
            for name, path in _POD_MAPS
        }
        if walk.pod_maps
        else {}
    )
    added_volumes: list[dict[str, Any]] = []
    added_tolerations: list[dict[str, Any]] = []
    added_secrets: list[dict[str, Any]] = []
    added_pairs: dict[str, list[tuple[str, str]]] = {name: [] for name, _ in _POD_MAPS}
    targets = _targets(spec)
    _assign_lanes(targets, walk)
    every_lane = list({id(lane): lane for target in targets for lane in target.lanes}.values())
    # As for a distinct lane: no two presets' items share a key, and the pod holds none of them.
    volumes_new = walk.volumes.distinct and not walk.volumes.shared_by(volumes_of_pod)
    tolerations_new = _all_new(walk.toleration_keys, tolerations_of_pod, toleration_key)
    secrets_new = _all_new(walk.secret_names, secrets_of_pod, pull_secret_name)
    # The states that check item by item, only where the fast path above does not hold.
    volumes = KeyedList(VOLUMES, () if volumes_new else volumes_of_pod)
    tolerations = UniqueList(
        () if tolerations_new else tolerations_of_pod, canonical_toleration, toleration_key
    )
    pull_secrets = UniqueList(() if secrets_new else secrets_of_pod, pull_secret_name)
    results: list[PresetResult] = []

    for preset, (blocked, protected_conflicts) in zip(walk.presets, walk.blocked, strict=True):
        conflicts: list[Conflict] = list(protected_conflicts)
        accepted: list[_Accepted] = []
        bulk: list[tuple[list[dict[str, Any]], tuple[dict[str, Any], ...]]] = []  # all new: no checks
        if preset.volumes and volumes_new:
            bulk.append((added_volumes, preset.volumes))
        elif preset.volumes:
            _check_items(
                preset,
                volumes,
                preset.volumes,
                into=added_volumes,
                labels=(None,),
                conflicts=conflicts,
                accepted=accepted,
            )
        for unique, items, into, new in (
            (tolerations, preset.tolerations, added_tolerations, tolerations_new),
            (pull_secrets, preset.image_pull_secrets, added_secrets, secrets_new),
        ):
            if not items:
                continue
            if new:
                bulk.append((into, items))
                continue
            mine = UniqueList((), unique.identity, unique.bucket)  # a preset may list one twice
            for item in items:
                if not mine.holds(item) and not unique.holds(item):
                    mine.add(item)
                    accepted.append((unique, item, into, item))
        if maps:
            for name, _ in _POD_MAPS:
                pod_map = maps[name]
                for pair in _pairs(preset, name):
                    check = pod_map.check(*pair)
                    if isinstance(check, Clash):
                        conflicts.append(conflict_of(preset, name, check, None))
                    elif check is NEW:
                        accepted.append((pod_map, pair, added_pairs[name], pair))
        skipped: list[tuple[str, str]] = []
        selector = preset.container_selector
        if selector.targets_all:
            lanes = every_lane
        else:
            targeted: dict[int, _Lane] = {}  # the lanes of the targeted containers, by identity
            for target in targets:
                why = target.skipped_by.get(id(preset))
                if why:
                    skipped.append((target.label, why))
                    continue
                for lane in target.lanes:
                    targeted.setdefault(id(lane), lane)
            lanes = list(targeted.values())
        for lane in lanes:
            items = _CONTAINER_RULES[lane.index].items_of(preset)
            if not items:
                continue
            if blocked:
                items = tuple(i for i in items if id(i) not in blocked)
            if lane.distinct:
                bulk.append((lane.added, items))
                continue
            _check_items(
                preset,
                lane.state,
                items,
                into=lane,
                labels=[m.label for m in lane.members],
                conflicts=conflicts,
                accepted=accepted,
            )

        if conflicts and preset.on_conflict != "KeepExisting":
            status: Status = "skipped-preset" if preset.on_conflict == "SkipPreset" else "conflict"
            accepted, bulk = [], []
        else:
            status = "kept-existing" if conflicts else "applied"
        for into_list, items in bulk:
            into_list.extend(items)
        for holder, key, into, item in accepted:
            if isinstance(holder, KeyedList):
                holder.add(item, preset)
            elif isinstance(holder, KeyedMap):
                holder.add(key[0], key[1], preset)
            else:
                holder.add(item)
            (into.added if isinstance(into, _Lane) else into).append(item)
        if count:
            accepted.extend((None, item, None, item) for _, items in bulk for item in items)
        results.append(
            PresetResult(
                preset=preset,
                status=status,
                conflicts=tuple(conflicts),
                added=_count(preset, accepted) if count else {},
                skipped_containers=tuple(skipped),
            )
        )

    lists: list[ListChange] = []
    for path, current, added in (
        (("spec", "volumes"), spec.get("volumes"), added_volumes),
        (("spec", "tolerations"), spec.get("tolerations"), added_tolerations),
        (("spec", "imagePullSecrets"), spec.get("imagePullSecrets"), added_secrets),
    ):
        if added:
            lists.append(
                ListChange(pointer="/" + "/".join(path), field=path[1], current=current, added=tuple(added))
            )
    lane_added = {id(lane): tuple(lane.added) for lane in every_lane if lane.added}
    for target in targets:
        for rule, lane in zip(_CONTAINER_RULES, target.lanes, strict=True):
            if lane.added:
                lists.append(
                    ListChange(
                        pointer=f"{target.pointer}/{rule.field}",
                        field=rule.field,
                        current=target.container.get(rule.field),
                        added=lane_added[id(lane)],
                        container=target.label,
                    )
                )
    map_changes = tuple(
        MapChange(
            path=path,
            current=(spec if path[0] == "spec" else metadata).get(path[1]),
            added=tuple(added_pairs[name]),
        )
        for name, path in _POD_MAPS
        if added_pairs[name]
    )
    return Plan(results=tuple(results), lists=tuple(lists), maps=map_changes)


def _check_items(
    preset: PodPreset,
    state: KeyedList,
    items: Iterable[dict[str, Any]],
    *,
    into: Any,
    labels: Sequence[str | None],
    conflicts: list[Conflict],
    accepted: list[_Accepted],
) -> None:
    """Check items against one state; a clash is one conflict per container the state stands for."""
    for item in items:
        check = state.check(item)
        if isinstance(check, Clash):
            conflicts.extend(conflict_of(preset, state.rule.field, check, label) for label in labels)
        elif check is NEW:
            accepted.append((state, item, into, item))


def _targets(spec: Mapping[str, Any]) -> list[_Target]:
    targets: list[_Target] = []
    for list_name, noun in _CONTAINER_LISTS:
        containers = spec.get(list_name)
        if not isinstance(containers, list):
            continue
        for index, container in enumerate(containers):
            if not isinstance(container, dict):
                continue
            name = container.get("name")
            targets.append(
                _Target(
                    label=f"{noun} {name!r}",
                    name=name if isinstance(name, str) else "",
                    init=list_name == "initContainers",
                    pointer=f"/spec/{list_name}/{index}",
                    container=container,
                )
            )
    return targets


def _assign_lanes(targets: Sequence[_Target], walk: _PresetSet) -> None:
    """Give every container, per rule, a lane: its own when it holds a key some preset injects
    there, else the one shared by containers targeted by the same presets."""
    selective = walk.selective
    signatures = []
    for target in targets:
        for preset in selective:
            why = preset.container_selector.skip_reason(target.name, init=target.init)
            if why:
                target.skipped_by[id(preset)] = why
        signatures.append(tuple(id(p) not in target.skipped_by for p in selective) if selective else ())
    shared: dict[tuple[int, tuple[bool, ...]], _Lane] = {}
    for index, (rule, keys) in enumerate(zip(_CONTAINER_RULES, walk.keys, strict=True)):
        for target, signature in zip(targets, signatures, strict=True):
            current = target.container.get(rule.field)
            existing = _items(current) if current else ()
            if existing and keys.shared_by(existing):
                target.lanes.append(_Lane(KeyedList(rule, existing), [target], index))
                continue
            lane = shared.get((index, signature))
            if lane is None:
                lane = shared[index, signature] = _Lane(KeyedList(rule, ()), [], index, keys.distinct)
            lane.members.append(target)
            target.lanes.append(lane)


@dataclass(frozen=True, slots=True)
class _PresetSet:
    """What the walk needs from the matching presets alone, computed once per combination of
    presets and protected names (``_preset_set``): pods of one workload match the same presets."""

    presets: tuple[PodPreset, ...]
    protected: Protected
    keys: tuple[PresetKeys, ...]
    """Per rule of ``_CONTAINER_RULES``."""
    volumes: PresetKeys
    toleration_keys: frozenset[Hashable] | None
    """The keys of the presets' tolerations, when no two share one (else None)."""
    secret_names: frozenset[Hashable] | None
    """The names of the presets' imagePullSecrets, when no two share one (else None)."""
    selective: tuple[PodPreset, ...]
    """The presets whose containerSelector leaves some containers out."""
    pod_maps: bool
    """Whether some preset sets nodeSelector, labels or annotations."""
    blocked: tuple[tuple[frozenset[int], tuple[Conflict, ...]], ...]
    """Per preset: the ids of its env and envFrom items ``protected`` forbids, and their conflicts."""

    @classmethod
    def build(cls, presets: tuple[PodPreset, ...], protected: Protected) -> _PresetSet:
        return cls(
            presets,
            protected,
            tuple(PresetKeys.of(rule, presets) for rule in _CONTAINER_RULES),
            PresetKeys.of(VOLUMES, presets),
            _distinct([toleration_key(t) for p in presets for t in p.tolerations]),
            _distinct([pull_secret_name(s) for p in presets for s in p.image_pull_secrets]),
            tuple(p for p in presets if not p.container_selector.targets_all),
            any(p.node_selector or p.labels or p.annotations for p in presets),
            tuple(_protected_items(p, protected) for p in presets),
        )


def _distinct(keys: list[Hashable]) -> frozenset[Hashable] | None:
    unique = frozenset(keys)
    return unique if len(unique) == len(keys) else None


def _all_new(
    keys: frozenset[Hashable] | None,
    existing: list[dict[str, Any]],
    key_of: Callable[[dict[str, Any]], Hashable],
) -> bool:
    """Whether every preset item is new for a ``UniqueList``: no two share a key, nor does one
    share it with the pod's items (keys are compared as ``_hashable`` makes them)."""
    if keys is None:
        return False
    if not keys or not existing:
        return True
    for item in existing:
        key = key_of(item)
        if type(key) is not str or key in keys:  # another type: take the general path
            return False
    return True


_PRESET_SETS: dict[tuple[int, ...], _PresetSet] = {}
_PRESET_SETS_MAX = 512


def _preset_set(presets: Sequence[PodPreset], protected: Protected) -> _PresetSet:
    """``_PresetSet.build``, remembered: a pure function's memo, keyed by the identity of its
    immutable arguments (held by the entry, so an id cannot be reused while it is there)."""
    key = (id(protected), *map(id, presets))
    found = _PRESET_SETS.get(key)
    if (
        found is not None
        and found.protected is protected
        and all(a is b for a, b in zip(found.presets, presets, strict=True))
    ):
        return found
    built = _PresetSet.build(tuple(presets), protected)
    if len(_PRESET_SETS) >= _PRESET_SETS_MAX:
        _PRESET_SETS.clear()
    _PRESET_SETS[key] = built
    return built


def _pairs(preset: PodPreset, name: str) -> tuple[tuple[str, str], ...]:
    if name == "nodeSelector":
        return preset.node_selector
    return preset.labels if name == "labels" else preset.annotations


def _protected_items(preset: PodPreset, protected: Protected) -> tuple[frozenset[int], tuple[Conflict, ...]]:
    """Ids of the preset's env and envFrom items that ``protected`` forbids; one conflict each."""
    if not (protected.names or protected.prefixes) or not (preset.env or preset.env_from):
        return frozenset(), ()
    blocked: set[int] = set()
    conflicts: list[Conflict] = []
    for field_name, _, item, why in protected_items(preset, protected):
        blocked.add(id(item))
        key = repr(item.get("name")) if field_name == "env" else f"prefix {item.get('prefix')!r}"
        conflicts.append(_protected_conflict(preset, field_name, key, why))
    return frozenset(blocked), tuple(conflicts)


def _protected_conflict(preset: PodPreset, field_name: Field, key: str, why: str) -> Conflict:
    return Conflict(
        preset=preset.name,
        kind=preset.kind,
        field=field_name,
        key=key,
        policy=preset.on_conflict,
        reason="protected",
        why=why,
    )


_FIELD_ITEMS: tuple[tuple[str, Callable[[PodPreset], tuple[dict[str, Any], ...]]], ...] = (
    ("env", lambda p: p.env),
    ("envFrom", lambda p: p.env_from),
    ("volumeMounts", lambda p: p.volume_mounts),
    ("volumes", lambda p: p.volumes),
    ("tolerations", lambda p: p.tolerations),
    ("imagePullSecrets", lambda p: p.image_pull_secrets),
)


def _count(preset: PodPreset, accepted: Sequence[_Accepted]) -> dict[str, int]:
    """How many of the preset's items were accepted somewhere, by field (identity of items)."""
    ids = {id(entry[3]) for entry in accepted}
    if not ids:
        return {}
    counts = {name: sum(id(i) in ids for i in items_of(preset)) for name, items_of in _FIELD_ITEMS}
    counts["nodeSelector"] = sum(id(p) in ids for p in preset.node_selector)
    counts["labels"] = sum(id(p) in ids for p in preset.labels)
    counts["annotations"] = sum(id(p) in ids for p in preset.annotations)
    return counts


# ----------------------------------------------------------------------------------------- decide


def decide(plan: Plan) -> Verdict:
    """Reject when a ``Reject`` preset conflicted; else skip all when a ``SkipAll`` preset did;
    else apply (``SkipPreset`` and ``KeepExisting`` conflicts were settled by the walk)."""
    statuses = [(r.preset.on_conflict, r.status) for r in plan.results]
    if ("Reject", "conflict") in statuses:
        return "reject"
    if ("SkipAll", "conflict") in statuses:
        return "skip-all"
    return "apply"


# ----------------------------------------------------------------------------------------- render


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendered:
    """The patch, and warnings the rendering found."""

    patch: tuple[PatchOp, ...]
    notes: tuple[str, ...] = ()


def render(pod: dict[str, Any], plan: Plan) -> Rendered:
    """The RFC 6902 patch for an applied plan (``patched`` gives the pod it makes)."""
    patch: list[PatchOp] = []
    notes: list[str] = []
    metadata = _mapping(pod.get("metadata"))
    needs_spec = bool(plan.lists) or any(m.path[0] == "spec" for m in plan.maps)  # every list is in spec
    if not isinstance(pod.get("spec"), dict) and needs_spec:
        # Only pod-level fields can be added without containers; their parent must exist first.
        patch.append({"op": "add", "path": "/spec", "value": {}})
    for change in plan.lists:
        if change.field == "env":
            _insert_env(patch, change, notes)
        else:
            _append(patch, change.pointer, change.current, change.added)
    wanted: dict[str, str] = {}
    for m in plan.maps:
        if m.path[1] == "annotations":
            wanted.update(m.added)
        elif m.path[0] == "spec":
            _add_pairs(patch, m.path, m.current, dict(m.added))
        else:
            _add_metadata_pairs(patch, pod, m.path, dict(m.added))
    annotations = metadata.get("annotations")
    current = annotations if isinstance(annotations, dict) else {}
    for preset in plan.applied:
        key = preset.annotation_key
        if current.get(key) != preset.resource_version:
            wanted[key] = preset.resource_version
    if wanted:
        _add_metadata_pairs(patch, pod, ("metadata", "annotations"), wanted)
    return Rendered(patch=tuple(patch), notes=tuple(notes))


def _add_metadata_pairs(
    patch: list[PatchOp], pod: Mapping[str, Any], path: Path, pairs: dict[str, str]
) -> None:
    if not isinstance(pod.get("metadata"), dict):
        # Absent metadata: add it whole, with what earlier metadata changes put there.
        existing = [op for op in patch if op["path"] == "/metadata"]
        if existing:
            existing[0]["value"][path[1]] = dict(pairs)
        else:
            patch.append({"op": "add", "path": "/metadata", "value": {path[1]: dict(pairs)}})
        return
    _add_pairs(patch, path, _mapping(pod.get("metadata")).get(str(path[1])), pairs)


def _add_pairs(patch: list[PatchOp], path: Path, current: Any, pairs: dict[str, str]) -> None:
    pointer = "/" + "/".join(map(str, path))
    if not isinstance(current, dict):
        patch.append({"op": "add", "path": pointer, "value": dict(pairs)})
        return
    if not pairs:
        return
    for key, value in pairs.items():
        patch.append({"op": "add", "path": pointer + "/" + escape(key), "value": value})


def _append(
    patch: list[PatchOp],
    pointer: str,
    current: Sequence[Any] | None,
    added: tuple[dict[str, Any], ...],
) -> None:
    if isinstance(current, list):
        end = pointer + "/-"
        patch.extend([{"op": "add", "path": end, "value": item} for item in added])
    else:
        patch.append({"op": "add", "path": pointer, "value": list(added)})


def _insert_env(patch: list[PatchOp], change: ListChange, notes: list[str]) -> None:
    """Injected env goes before the container's first env var that references it."""
    current: list[Any] = change.current if isinstance(change.current, list) else []
    if not _any_reference(change.added) and not _any_reference(current):
        _append(patch, change.pointer, change.current, change.added)  # nothing to order (most pods)
        return
    placed, stuck = order_env(current, change.added)
    if stuck:
        names = ", ".join(repr(v.get("name")) for v in stuck)
        notes.append(
            f"{change.container}: injected env var(s) {names} reference each other in a cycle, or "
            "against the container's own order; appended after the container's env, so some "
            "$(VAR) references will not expand"
        )
    end = len(current)
    pointer = change.pointer
    if all(slot == end for slot, _ in placed):
        _append(patch, pointer, change.current, tuple(item for _, item in placed))
        return
    at = 0  # the index in the list as the ops so far have made it
    length = len(current)
    slots: dict[int, list[dict[str, Any]]] = {}
    for slot, item in placed:
        slots.setdefault(slot, []).append(item)
    for index in range(length + 1):
        for item in slots.get(index, ()):
            path = pointer + ("/-" if index == length else f"/{at}")
            patch.append({"op": "add", "path": path, "value": item})
            at += 1
        at += 1


_REFERENCE_RE = re.compile(r"\$\$|\$\(([^)]*)\)")


def references(value: object) -> set[str]:
    """The names ``$(NAME)`` references in an env value (``$$`` escapes a ``$``)."""
    if not isinstance(value, str) or "$(" not in value:
        return set()
    return {m.group(1) for m in _REFERENCE_RE.finditer(value) if m.group(1)}


def _any_reference(env: Iterable[object]) -> bool:
    """Whether some var's value may hold a ``$(NAME)`` reference (one call per list: hot path)."""
    for var in env:
        if type(var) is dict:
            value = var.get("value")
            if type(value) is str and "$(" in value:
                return True
    return False


def order_env(
    existing: Sequence[Any], added: Sequence[dict[str, Any]]
) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
    """Where each injected env var goes: ``(slot, var)`` pairs, slot ``i`` meaning before the
    container's own ``existing[i]`` (``len(existing)``: appended), in final order; and the vars
    that could not be placed so every reference resolves (cycles), which are appended.

    A var goes before the first of the container's own vars that references it (directly, or
    through injected vars that reference it); injected vars that reference each other come in a
    valid order; otherwise walk order. The container's own vars keep their order.
    """
    end = len(existing)
    if not _any_reference(existing) and not _any_reference(added):
        return [(end, v) for v in added], []
    names = {str(v.get("name")): i for i, v in enumerate(added)}
    own_index: dict[str, int] = {}
    deadline = [end] * len(added)
    for i, var in enumerate(existing):
        if not isinstance(var, dict):
            continue
        own_index.setdefault(str(var.get("name")), i)
        for ref in references(var.get("value")):
            j = names.get(ref)
            if j is not None and deadline[j] == end:
                deadline[j] = i
    if all(d == end for d in deadline) and not any(references(v.get("value")) for v in added):
        return [(end, v) for v in added], []
    deps = [
        {names[r] for r in references(v.get("value")) if r in names and names[r] != i}
        for i, v in enumerate(added)
    ]
    low = [
        max(
            (own_index[r] + 1 for r in references(v.get("value")) if r in own_index and r not in names),
            default=0,
        )
        for v in added
    ]
    # Kahn's algorithm, walk order among the ready: what remains is in or behind a cycle.
    dependents: list[list[int]] = [[] for _ in added]
    waiting = [len(d) for d in deps]
    for i, d in enumerate(deps):
        for j in d:
            dependents[j].append(i)
    ready = [i for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    topo: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        topo.append(i)
        for k in dependents[i]:
            waiting[k] -= 1
            if waiting[k] == 0:
                heapq.heappush(ready, k)
    stuck = sorted(set(range(len(added))) - set(topo))
    for i in reversed(topo):  # a var must come no later than the vars that reference it
        for k in dependents[i]:
            if k not in stuck:
                deadline[i] = min(deadline[i], deadline[k])
    for i in topo:  # and no earlier than the container's vars it (or its dependencies) reference
        for j in deps[i]:
            low[i] = max(low[i], low[j])
    for i in topo:
        if low[i] > deadline[i]:
            stuck.append(i)
    rank = {i: n for n, i in enumerate(topo)}
    placed = sorted((i for i in topo if i not in stuck), key=lambda i: (deadline[i], rank[i]))
    result = [(deadline[i], added[i]) for i in placed]
    result.extend((end, added[i]) for i in sorted(stuck))
    return result, [added[i] for i in sorted(stuck)]


# -------------------------------------------------------------------------------------- the whole


def apply_presets(
    pod: dict[str, Any],
    presets: Iterable[PodPreset],
    *,
    namespace: str = "",
    namespaces: NamespaceLabels = NO_NAMESPACES,
    protected: Protected = DEFAULT_PROTECTED,
    namespaced_volume_types: VolumeTypes = DEFAULT_VOLUME_TYPES,
    explain: bool = False,
) -> Outcome:
    """Decide and build the mutation of ``pod`` (in ``namespace``) by ``presets``.

    ``presets`` may be every preset that could apply or only the candidates (see
    ``PresetIndex.candidates``); ClusterPodPresets' namespace selectors are checked against
    ``namespaces``; PodPresets that inject a volume type ``namespaced_volume_types`` does not
    allow are left out with a warning. ``explain`` also records why each other preset did not
    match, which only ``podpreset apply --explain`` reads.
    """
    reason = skip_reason(pod)
    if reason:
        return Outcome(action="skipped", reason=reason, received=pod)
    metadata = _mapping(pod.get("metadata"))
    labels = {k: v for k, v in _mapping(metadata.get("labels")).items() if isinstance(v, str)}
    presets = tuple(presets)
    labels = dict(arrival_labels(labels, _mapping(metadata.get("annotations")), presets))
    namespace_labels = labels_of(namespaces, namespace) if any(p.is_cluster for p in presets) else None
    selection = select_presets(labels, presets, namespace_labels=namespace_labels, explain=explain)
    matched, refusals = refuse_presets(selection.matched, namespaced_volume_types)
    if not matched:
        return Outcome(
            action="unchanged",
            reason="no preset selects this pod" if not refusals else "every preset selecting it was refused",
            received=pod,
            mismatches=selection.mismatches,
            refusals=refusals,
        )
    plan = plan_presets(pod, matched, protected=protected, count=explain)
    verdict = decide(plan)
    conflicts = plan.conflicts
    common = {
        "conflicts": conflicts,
        "mismatches": selection.mismatches,
        "verdict": verdict,
        "results": plan.results,
        "refusals": refusals,
    }
    if verdict == "reject":
        refusing = [c for c in conflicts if c.policy == "Reject"]
        message = "podpreset refused the pod: " + "; ".join(c.describe() for c in refusing)
        return Outcome(
            action="rejected",
            reason=f"{len(refusing)} conflict(s) of onConflict: Reject presets",
            received=pod,
            rejection=message,
            **common,  # type: ignore[arg-type]
        )
    if verdict == "skip-all":
        return Outcome(
            action="conflict",
            reason=f"{len(conflicts)} conflict(s); no preset applied",
            received=pod,
            **common,  # type: ignore[arg-type]
        )
    rendered = render(pod, plan)
    applied = plan.applied
    return Outcome(
        action="mutated" if rendered.patch else "unchanged",
        reason=f"applied {len(applied)} preset(s)" if rendered.patch else "already applied",
        received=pod,
        patch=rendered.patch,
        applied=tuple(p.ref for p in applied),
        added={r.preset.ref: r.added for r in plan.results} if explain else None,
        notes=rendered.notes,
        **common,  # type: ignore[arg-type]
    )


def patched(pod: dict[str, Any], patch: Iterable[PatchOp]) -> dict[str, Any]:
    """``pod`` with the engine's ``add`` operations applied, copy-on-write: the input is never
    changed, and every subtree no operation reaches is shared with it."""
    root = dict(pod)
    owned = {id(root)}  # the containers copied here, which later operations may change in place
    for op in patch:
        if op["op"] != "add":
            raise ValueError(f"patched: only 'add' operations, got {op['op']!r}")
        *parents, last = [unescape(part) for part in op["path"].split("/")[1:]]
        node: Any = root
        for part in parents:
            key: Any = int(part) if isinstance(node, list) else part
            child = node[key]
            if id(child) not in owned:
                child = list(child) if isinstance(child, list) else dict(child)
                owned.add(id(child))
                node[key] = child
            node = child
        if isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), op["value"])
        else:
            node[last] = op["value"]
    return root


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: object) -> list[dict[str, Any]]:
    """The objects of a list (the list itself when they all are: only read, never changed)."""
    if type(value) is not list:
        return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
    for item in value:
        if type(item) is not dict:
            return [v for v in value if isinstance(v, dict)]
    return value
