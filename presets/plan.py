"""The plan step: walk the matching presets in order against the pod, building the result.

Per preset, in named steps: ``propose`` checks its items against the state of every place they go
(each targeted container's env, envFrom and volumeMounts; the pod's fields), with the rules of
``presets.merge``; ``settle`` reads its policy and conflicts off a table (``SETTLE``); ``commit``
records what it contributes, which counts as existing for later presets. Then ``derive_changes``
says what is added where. The plan is a plain value; ``PresetResult.added`` (``--explain``) is
derived from it.

The shortcuts sit beside the steps they speed up, never inside the rules, and
tests/unit/test_reference_walk.py compares the walk with one that takes none of them:

- a *lane*: containers that hold none of the presets' keys for a field, and that the same
  presets target, share one state (the walk is the same for each of them);
- *all new*: where no two preset items share a key and the pod holds none, every item is new
  whatever was accepted before: such a place has no state, and takes items unchecked;
- the *preset set* (``_PresetSet``): what the presets alone decide, derived once per combination
  of presets and protected names and remembered by the index snapshot (``PresetSets``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Literal

from presets.merge import (
    CONTAINER_FIELDS,
    FIELDS,
    POD_FIELDS,
    Conflict,
    Field,
    FieldRow,
    Places,
    PresetKeys,
    Shortcut,
    State,
)
from presets.model import ConflictPolicy, PodPreset, Protected, protected_items
from presets.selection import PresetSets

Status = Literal["applied", "kept-existing", "skipped-preset", "conflict"]
"""What the walk did with one matching preset: applied whole; applied without its conflicting
items (KeepExisting); left out (SkipPreset); conflicted under SkipAll or Reject."""
Path = tuple[str | int, ...]
Container = tuple[str, str, bool, str, dict[str, Any]]
"""A container of the pod: its label, name, whether it is an init container, its JSON pointer,
and itself."""
Held = tuple[bool, ...]
"""Per row of ``CONTAINER_FIELDS``, whether a container holds a key the presets inject there."""
_CONTAINER_LISTS = (("initContainers", "init container"), ("containers", "container"))
_CONTAINER = itemgetter(4)
"""A ``Container``'s dict."""
_POD: Places = (None,)


@dataclass(frozen=True, slots=True, kw_only=True)
class PresetResult:
    """What the walk did with one matching preset (for ``--explain``)."""

    preset: PodPreset
    status: Status
    conflicts: tuple[Conflict, ...] = ()
    skipped_containers: tuple[tuple[str, str], ...] = ()
    """``(container label, reason)`` for containers its containerSelector leaves out."""
    accepted: tuple[Sequence[Any], ...] = ()
    """What the walk accepted from this preset, a chunk per place (kept when counting)."""

    @property
    def added(self) -> Mapping[str, int]:
        """Per field, how many of its items the walk accepted (somewhere in the pod)."""
        ids = {id(item) for chunk in self.accepted for item in chunk}
        if not ids:
            return {}
        return {row.name: sum(id(i) in ids for i in row.items_of(self.preset)) for row in FIELDS}


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
    ops: tuple[dict[str, Any], ...] | None = None
    """The patch operations appending ``added`` to ``current`` (a list), rendered once per preset
    set, lane and container position (``_PresetSet.lane_lists``); None: ``render`` makes them.
    Shared between pods: never changed."""


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


SETTLE: Mapping[tuple[ConflictPolicy, bool], tuple[Status, bool]] = {
    **{(policy, False): ("applied", True) for policy in ("SkipAll", "SkipPreset", "KeepExisting", "Reject")},
    ("SkipAll", True): ("conflict", False),
    ("SkipPreset", True): ("skipped-preset", False),
    ("KeepExisting", True): ("kept-existing", True),
    ("Reject", True): ("conflict", False),
}
"""``(policy, whether the preset conflicted)`` → its status, and whether what it proposed is
committed. What a conflict then does to the whole pod is ``engine.decide``'s."""


def plan_presets(
    pod: Mapping[str, Any],
    presets: Sequence[PodPreset],
    *,
    protected: Protected,
    count: bool = False,
    preset_sets: PresetSets[Any] | None = None,
) -> Plan:
    """Walk ``presets`` in order against the pod: per preset, propose, settle, commit.

    ``count`` keeps what each preset contributed, for ``PresetResult.added`` (``--explain``);
    ``preset_sets`` remembers what the presets alone decide (the index snapshot's).
    """
    if preset_sets is None:
        walk = _PresetSet.build(tuple(presets), protected)
    else:
        walk = preset_sets.get(presets, protected, _PresetSet.build)
    containers = list(_containers(_mapping(pod.get("spec"))))
    held = hold_keys(containers, walk)
    if not count:
        unchecked = plan_unchecked(pod, containers, held, walk)
        if unchecked is not None:
            return unchecked
    pod_places = _pod_places(pod, walk)
    targets = _targets(containers)
    every_lane = _assign_lanes(targets, held, walk)
    results: list[PresetResult] = []
    for preset, (blocked, protected_conflicts) in zip(walk.presets, walk.blocked, strict=True):
        lanes, skipped = _lanes_of(preset, targets, every_lane)
        accepted, conflicts = propose(preset, [*pod_places, *lanes], blocked, protected_conflicts)
        status, committed = SETTLE[preset.on_conflict, bool(conflicts)]
        if committed:
            commit(preset, accepted)
        results.append(
            PresetResult(
                preset=preset,
                status=status,
                conflicts=tuple(conflicts),
                skipped_containers=skipped,
                accepted=tuple(items for _, items in accepted) if committed and count else (),
            )
        )
    lists, maps = derive_changes(pod, pod_places, targets)
    return Plan(results=tuple(results), lists=lists, maps=maps)


@dataclass(slots=True)
class _Target:
    """One container: where it is, and its lane for each container field."""

    label: str
    name: str
    init: bool
    pointer: str
    """Where the container is, as a JSON pointer: ``/spec/containers/0``."""
    container: dict[str, Any]
    lanes: list[_Place] = field(default_factory=list)
    """Per row of ``CONTAINER_FIELDS``, the place holding this container's state."""
    skipped_by: dict[int, str] = field(default_factory=dict)
    """Why each preset (by id) whose containerSelector leaves this container out does so."""


@dataclass(slots=True)
class _Place:
    """One list or map of the pod during the walk: a pod field, or a lane (a container field
    shared by the containers in ``members``)."""

    row: FieldRow
    state: State | None
    """None when every preset item is new here (*all new*): nothing to check or to hold."""
    members: list[_Target] = field(default_factory=list)
    added: list[Any] = field(default_factory=list)
    """What the walk adds here, in order."""

    def places(self) -> Places:
        """Who a conflict here is reported for: each member container, or the pod."""
        return [m.label for m in self.members] if self.row.level == "container" else _POD


def propose(
    preset: PodPreset,
    places: Sequence[_Place],
    blocked: frozenset[int],
    protected_conflicts: Sequence[Conflict],
) -> tuple[list[tuple[_Place, Sequence[Any]]], list[Conflict]]:
    """The items ``preset`` would add at each place, and its conflicts (its protected items
    first). Changes nothing."""
    conflicts = list(protected_conflicts)
    accepted: list[tuple[_Place, Sequence[Any]]] = []
    for place in places:
        row = place.row
        items = row.items_of(preset)
        if not items:
            continue
        if blocked and row.level == "container":
            items = tuple(i for i in items if id(i) not in blocked)
        if place.state is None:
            accepted.append((place, items))
            continue
        new = place.state.propose(items, preset, place.places(), conflicts)
        if new:
            accepted.append((place, new))
    return accepted, conflicts


def commit(preset: PodPreset, accepted: Sequence[tuple[_Place, Sequence[Any]]]) -> None:
    """Record what ``preset`` contributes: later presets find it as existing."""
    for place, items in accepted:
        if place.state is not None:
            place.state.commit(items, preset)
        place.added.extend(items)


def derive_changes(
    pod: Mapping[str, Any], pod_places: Sequence[_Place], targets: Sequence[_Target]
) -> tuple[tuple[ListChange, ...], tuple[MapChange, ...]]:
    """What the walk adds where: the pod's lists, each container's lists, the pod's maps."""
    lists: list[ListChange] = []
    maps: list[MapChange] = []
    for place in pod_places:
        if not place.added:
            continue
        row = place.row
        current = _mapping(pod.get(row.path[0])).get(row.path[1])
        if row.is_map:
            maps.append(MapChange(path=row.path, current=current, added=tuple(place.added)))
        else:
            pointer = "/" + "/".join(row.path)
            lists.append(
                ListChange(pointer=pointer, field=row.name, current=current, added=tuple(place.added))
            )
    shared: dict[int, tuple[Any, ...]] = {}  # a lane's items, made once for all its members
    for target in targets:
        for lane in target.lanes:
            if lane.added:
                name = lane.row.name
                added = shared.get(id(lane)) or shared.setdefault(id(lane), tuple(lane.added))
                lists.append(
                    ListChange(
                        pointer=f"{target.pointer}/{name}",
                        field=name,
                        current=target.container.get(name),
                        added=added,
                        container=target.label,
                    )
                )
    return tuple(lists), tuple(maps)


def plan_unchecked(
    pod: Mapping[str, Any], containers: Sequence[Container], held: Sequence[Held], walk: _PresetSet
) -> Plan | None:
    """The plan when every place takes the presets' items unchecked, or None when some place
    must check them (a shortcut of ``plan_presets``, most pods' case).

    Where no two preset items share a key, no pod field and no container holds one, and no
    preset fills a map, each place only appends what the presets it gets propose: nothing
    conflicts but protected items, so each preset's status, and what each place gets, follow from
    the presets alone (``_PresetSet.unchecked``, ``lane_added``). ``held`` (``hold_keys``) is
    shared with the walk, and everything is checked before anything is built, so a pod that must
    be walked loses little here."""
    if any(map(any, held)) or not all(keys.distinct for keys in walk.container_keys):
        return None
    currents = [_mapping(pod.get(row.path[0])).get(row.path[1]) for row, _ in walk.pod_fields]
    if not all(
        not row.is_map and shortcut.all_new(_items(current))
        for (row, shortcut), current in zip(walk.pod_fields, currents, strict=True)
    ):
        return None
    lists = [
        ListChange(pointer="/" + "/".join(row.path), field=row.name, current=current, added=added)
        for (row, _), current, added in zip(walk.pod_fields, currents, walk.unchecked_pod, strict=True)
        if added
    ]
    skipped: list[tuple[str, tuple[str | None, ...]]] = []
    for label, name, init, pointer, container in containers:
        signature, reasons = walk.skips(name, init)
        if not all(signature):
            skipped.append((label, reasons))
        for list_name, at, added, ops in walk.lane_lists(signature, pointer):
            current = container.get(list_name)
            lists.append(
                ListChange(
                    pointer=at,
                    field=list_name,
                    current=current,
                    added=added,
                    container=label,
                    ops=ops if isinstance(current, list) else None,
                )
            )
    return Plan(results=_with_skipped(walk, skipped), lists=tuple(lists), maps=())


def hold_keys(containers: Sequence[Container], walk: _PresetSet) -> list[Held]:
    """Per container, per row of ``CONTAINER_FIELDS``: whether it holds a key some preset injects
    there (such a container gets a state of its own for that field)."""
    checks = walk.key_checks
    dicts = list(map(_CONTAINER, containers))
    # First every container's items of a field at once: holding a key in any of them is holding
    # it in one of them, and most pods hold none (then each container's answer is no).
    if not any(keys.shared_by(_field_items(dicts, name)) for name, keys in checks):
        return [(False,) * len(checks)] * len(dicts)
    return [
        tuple(
            [
                bool(current := container.get(name)) and keys.shared_by(_items(current))
                for name, keys in checks
            ]
        )
        for container in dicts
    ]


def _field_items(containers: Sequence[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The objects of every container's list ``name``."""
    return [item for container in containers if (current := container.get(name)) for item in _items(current)]


def _with_skipped(
    walk: _PresetSet, skipped: Sequence[tuple[str, tuple[str | None, ...]]]
) -> tuple[PresetResult, ...]:
    """``walk.unchecked``, each selective preset's result naming the containers it left out."""
    if not skipped:
        return walk.unchecked
    reasons = {
        id(preset): tuple((label, why) for label, whys in skipped if (why := whys[n]))
        for n, preset in enumerate(walk.selective)
    }
    return tuple(
        PresetResult(
            preset=r.preset, status=r.status, conflicts=r.conflicts, skipped_containers=reasons[id(r.preset)]
        )
        if reasons.get(id(r.preset))
        else r
        for r in walk.unchecked
    )


def _pod_places(pod: Mapping[str, Any], walk: _PresetSet) -> list[_Place]:
    """A place per pod field some preset fills; without a state where every item is new."""
    places: list[_Place] = []
    for row, shortcut in walk.pod_fields:
        value = _mapping(pod.get(row.path[0])).get(row.path[1])
        existing = _mapping(value) if row.is_map else _items(value)
        places.append(_Place(row, None if shortcut.all_new(existing) else row.state(existing)))
    return places


def _lanes_of(
    preset: PodPreset, targets: Sequence[_Target], every_lane: list[_Place]
) -> tuple[list[_Place], tuple[tuple[str, str], ...]]:
    """The lanes of the containers ``preset`` targets, and why it skips the others."""
    if preset.container_selector.targets_all:
        return every_lane, ()
    targeted: dict[int, _Place] = {}
    skipped: list[tuple[str, str]] = []
    for target in targets:
        why = target.skipped_by.get(id(preset))
        if why:
            skipped.append((target.label, why))
            continue
        for lane in target.lanes:
            targeted.setdefault(id(lane), lane)
    return list(targeted.values()), tuple(skipped)


def _targets(containers: Sequence[Container]) -> list[_Target]:
    return [
        _Target(label=label, name=name, init=init, pointer=pointer, container=container)
        for label, name, init, pointer, container in containers
    ]


def _containers(spec: Mapping[str, Any]) -> Iterator[Container]:
    """Each container of the pod, init containers first."""
    for list_name, noun in _CONTAINER_LISTS:
        containers = spec.get(list_name)
        if not isinstance(containers, list):
            continue
        init = list_name == "initContainers"
        for index, container in enumerate(containers):
            if not isinstance(container, dict):
                continue
            name = container.get("name")
            label = f"{noun} {name!r}"
            yield label, name if isinstance(name, str) else "", init, f"/spec/{list_name}/{index}", container


def _assign_lanes(targets: Sequence[_Target], held: Sequence[Held], walk: _PresetSet) -> list[_Place]:
    """Give every container, per field, a lane: its own when it holds a key some preset injects
    there, else the one shared by the containers the same presets target. Returns every lane,
    by container then field."""
    selective = walk.selective
    signatures = []
    for target in targets:
        signature, reasons = walk.skips(target.name, target.init)
        for preset, why in zip(selective, reasons, strict=True):
            if why:
                target.skipped_by[id(preset)] = why
        signatures.append(signature)
    shared: dict[tuple[int, tuple[bool, ...]], _Place] = {}
    for index, (row, keys) in enumerate(zip(CONTAINER_FIELDS, walk.container_keys, strict=True)):
        for target, signature, holds in zip(targets, signatures, held, strict=True):
            if holds[index]:
                target.lanes.append(_Place(row, row.state(_items(target.container[row.name])), [target]))
                continue
            lane = shared.get((index, signature))
            if lane is None:
                lane = shared[index, signature] = _Place(row, None if keys.distinct else row.state(()))
            lane.members.append(target)
            target.lanes.append(lane)
    return list({id(lane): lane for target in targets for lane in target.lanes}.values())


MEMO_LIMIT = 256
"""Entries each of a preset set's small memos (skip reasons, unchecked lanes) keeps at most."""
LaneList = tuple[str, str, tuple[Any, ...], tuple[dict[str, Any], ...] | None]
"""A list a container of some lane gets items in: field, pointer, items, append operations."""
Signature = tuple[bool, ...]
"""Per selective preset of a preset set, whether it targets a container."""
_COMMITTED = frozenset({"applied", "kept-existing"})


@dataclass(frozen=True, slots=True)
class _PresetSet:
    """What the walk needs from the matching presets alone, derived once per combination of
    presets and protected names (``PresetSets``): pods of one workload match the same presets."""

    presets: tuple[PodPreset, ...]
    container_keys: tuple[PresetKeys, ...]
    """Per row of ``CONTAINER_FIELDS``: the keys its items hold (lanes are chosen by them)."""
    pod_fields: tuple[tuple[FieldRow, Shortcut], ...]
    """The pod fields some preset fills, each with what its items let the walk skip."""
    selective: tuple[PodPreset, ...]
    """The presets whose containerSelector leaves some containers out."""
    blocked: tuple[tuple[frozenset[int], tuple[Conflict, ...]], ...]
    """Per preset: the ids of its env and envFrom items ``protected`` forbids, and their conflicts."""
    unchecked: tuple[PresetResult, ...]
    """Each preset's result where every place takes items unchecked: only protected items
    conflict there (``plan_unchecked``)."""
    unchecked_pod: tuple[tuple[Any, ...], ...]
    """Per entry of ``pod_fields``, what the presets committed in ``unchecked`` add there."""
    key_checks: tuple[tuple[str, PresetKeys], ...]
    """``container_keys`` with each row's field name, as ``hold_keys`` reads them."""
    _skips: dict[tuple[str, bool], tuple[Signature, tuple[str | None, ...]]] = field(default_factory=dict)
    _lanes: dict[Signature, tuple[tuple[Any, ...], ...]] = field(default_factory=dict)
    _ops: dict[tuple[Signature, str], tuple[LaneList, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, presets: tuple[PodPreset, ...], protected: Protected) -> _PresetSet:
        container_keys = []
        for row in CONTAINER_FIELDS:
            keys = row.shortcut([item for p in presets for item in row.items_of(p)])
            assert isinstance(keys, PresetKeys)
            container_keys.append(keys)
        pod_fields = []
        for row in POD_FIELDS:
            items = [item for p in presets for item in row.items_of(p)]
            if items:
                pod_fields.append((row, row.shortcut(items)))
        blocked = tuple(_protected_items(p, protected) for p in presets)
        unchecked = tuple(
            PresetResult(preset=p, status=SETTLE[p.on_conflict, bool(c)][0], conflicts=c)
            for p, (_, c) in zip(presets, blocked, strict=True)
        )
        committed = [p for p, r in zip(presets, unchecked, strict=True) if r.status in _COMMITTED]
        return cls(
            presets,
            tuple(container_keys),
            tuple(pod_fields),
            tuple(p for p in presets if not p.container_selector.targets_all),
            blocked,
            unchecked,
            tuple(tuple(i for p in committed for i in row.items_of(p)) for row, _ in pod_fields),
            tuple((row.name, keys) for row, keys in zip(CONTAINER_FIELDS, container_keys, strict=True)),
        )

    def skips(self, name: str, init: bool) -> tuple[Signature, tuple[str | None, ...]]:
        """For a container of this name (an init container or not): whether each selective
        preset targets it, and why each that does not leaves it out. Remembered per name."""
        found = self._skips.get((name, init))
        if found is None:
            reasons = tuple(p.container_selector.skip_reason(name, init=init) for p in self.selective)
            found = (tuple(not why for why in reasons), reasons)
            if len(self._skips) >= MEMO_LIMIT:
                self._skips.clear()
            self._skips[name, init] = found
        return found

    def lane_added(self, signature: Signature) -> tuple[tuple[Any, ...], ...]:
        """Per row of ``CONTAINER_FIELDS``, what ``unchecked`` adds to a container of this
        signature. Remembered per signature."""
        found = self._lanes.get(signature)
        if found is None:
            targeted = {id(p) for p, hit in zip(self.selective, signature, strict=True) if hit}
            chosen = [
                (p, blocked)
                for p, (blocked, _), result in zip(self.presets, self.blocked, self.unchecked, strict=True)
                if result.status in _COMMITTED and (p.container_selector.targets_all or id(p) in targeted)
            ]
            found = tuple(
                tuple(i for p, blocked in chosen for i in row.items_of(p) if id(i) not in blocked)
                for row in CONTAINER_FIELDS
            )
            if len(self._lanes) >= MEMO_LIMIT:
                self._lanes.clear()
            self._lanes[signature] = found
        return found

    def lane_lists(self, signature: Signature, pointer: str) -> tuple[LaneList, ...]:
        """For the container at ``pointer`` with this signature, each list ``lane_added`` gives
        items: its field, its pointer, the items, and the patch operations appending them to
        an existing list (None for env items that may reference other vars: ``render`` orders
        those). Remembered per signature and container position: they decide it, whatever the
        pod."""
        key = (signature, pointer)
        found = self._ops.get(key)
        if found is None:
            found = tuple(
                _lane_list(row, f"{pointer}/{row.name}", added)
                for row, added in zip(CONTAINER_FIELDS, self.lane_added(signature), strict=True)
                if added
            )
            if len(self._ops) >= MEMO_LIMIT:
                self._ops.clear()
            self._ops[key] = found
        return found


def _lane_list(row: FieldRow, pointer: str, added: tuple[Any, ...]) -> LaneList:
    if row.name == "env" and any_reference(added):
        return row.name, pointer, added, None
    end = f"{pointer}/-"
    return row.name, pointer, added, tuple({"op": "add", "path": end, "value": item} for item in added)


def any_reference(env: Iterable[object]) -> bool:
    """Whether some var's value may hold a ``$(NAME)`` reference (one call per list: hot path)."""
    for var in env:
        if type(var) is dict:
            value = var.get("value")
            if type(value) is str and "$(" in value:
                return True
    return False


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
