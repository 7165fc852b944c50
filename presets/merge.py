"""The merge rules: one small state and one small pure function per field.

The engine's walk keeps one state per list or map of the pod (``KeyedList`` for env, envFrom,
volumeMounts and volumes; ``KeyedMap`` for nodeSelector, labels and annotations; ``UniqueList``
for tolerations and imagePullSecrets). ``check`` says whether an item is new, already present,
or clashes (and with whom) without changing the state; ``add`` records an accepted item, so it
counts as existing for later presets. ``merge_env`` and friends run one field alone against
presets in order and return ``Merged``. Items are compared modulo Kubernetes defaulting
(``presets.defaults``). Nothing is mutated; conflicts are returned, never raised.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Literal, Protocol

from presets.defaults import (
    Frozen,
    canonical_env_from,
    canonical_env_var,
    canonical_toleration,
    canonical_volume,
    canonical_volume_mount,
)
from presets.model import ConflictPolicy, Kind, PodPreset

Field = Literal["env", "envFrom", "volumeMounts", "volumes", "nodeSelector", "labels", "annotations"]
Reason = Literal["differs", "protected"]
POD_OWNER = ""
"""``Conflict.other`` when the item the preset disagrees with is the pod's own."""

_NOUNS: dict[Field, str] = {
    "env": "env var",
    "envFrom": "envFrom source",
    "volumeMounts": "volume mount",
    "volumes": "volume",
    "nodeSelector": "nodeSelector key",
    "labels": "label",
    "annotations": "annotation",
}
EFFECTS: dict[ConflictPolicy, str] = {
    "SkipAll": "no preset was applied (onConflict: SkipAll)",
    "SkipPreset": "this preset was not applied, the others were (onConflict: SkipPreset)",
    "KeepExisting": (
        "the existing definition was kept, the preset's other items applied (onConflict: KeepExisting)"
    ),
    "Reject": "the pod was rejected (onConflict: Reject)",
}
"""What each policy does with a conflict, for warnings, logs and Events."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Conflict:
    """A preset item that disagrees with an item of the same key, or that sets a protected env
    name. Never holds values."""

    preset: str
    field: Field
    key: str
    container: str | None = None
    """``container 'app'`` or ``init container 'setup'``; None for pod-level fields."""
    other: str = POD_OWNER
    """The preset that defined the key first, or ``POD_OWNER`` when the pod has it."""
    kind: Kind = "PodPreset"
    other_kind: Kind = "PodPreset"
    policy: ConflictPolicy = "SkipAll"
    """The ``onConflict`` of ``preset``: what happened because of this conflict."""
    reason: Reason = "differs"
    why: str = ""
    """For ``protected``: why the name is protected (e.g. ``is protected (prefix KUBERNETES_*)``)."""

    def describe(self) -> str:
        """One line for warnings, logs and events; names, never values."""
        where = f"{self.container}: " if self.container else ""
        who = f"{self.kind.lower()} {self.preset!r}"
        if self.reason == "protected":
            return f"{who} may not inject {_NOUNS[self.field]} {self.key}: it {self.why}"
        owner = (
            "the pod's own definition"
            if self.other == POD_OWNER
            else f"{self.other_kind.lower()} {self.other!r}"
        )
        return f"{who} conflicts on {where}{_NOUNS[self.field]} {self.key} which differs from {owner}"

    def warning(self) -> str:
        """``describe()`` and what the preset's policy did about it."""
        return f"{self.describe()}; {EFFECTS[self.policy]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Merged:
    """What a merge rule decided: items to append, in order, and conflicts."""

    added: tuple[dict[str, Any], ...] = ()
    conflicts: tuple[Conflict, ...] = ()


def env_from_key(item: dict[str, Any]) -> str:
    """The envFrom merge key (prefix, configMapRef.name, secretRef.name), rendered for messages."""
    parts = []
    for ref in ("configMapRef", "secretRef"):
        target = item.get(ref)
        if isinstance(target, dict) and target.get("name"):
            parts.append(f"{ref} {target['name']!r}")
    if item.get("prefix"):
        parts.append(f"prefix {item['prefix']!r}")
    return " with ".join(parts) if parts else "(empty)"


def _env_from_raw_key(item: dict[str, Any]) -> tuple[Hashable, ...]:
    config, secret = item.get("configMapRef"), item.get("secretRef")
    return (
        (
            _hashable(item.get("prefix") or ""),
            _hashable(config.get("name")) if isinstance(config, dict) else None,
            _hashable(secret.get("name")) if isinstance(secret, dict) else None,
        ),
    )


def _hashable(value: object) -> Hashable:
    """Strings as they are (by far the most common), anything else by its repr, apart from them."""
    return value if type(value) is str else ("repr", repr(value))


def _name_key(item: dict[str, Any]) -> tuple[Hashable, ...]:
    name = item.get("name")
    return (name if type(name) is str else _hashable(name),)


def _mount_keys(item: dict[str, Any]) -> tuple[Hashable, ...]:
    return (("name", _hashable(item.get("name"))), ("mountPath", _hashable(item.get("mountPath"))))


def _describe_name(key: Hashable, item: dict[str, Any]) -> str:
    return repr(item.get("name"))


def _describe_env_from(key: Hashable, item: dict[str, Any]) -> str:
    return env_from_key(item)


def _describe_mount(key: Hashable, item: dict[str, Any]) -> str:
    assert isinstance(key, tuple)
    return f"name {item.get('name')!r}" if key[0] == "name" else f"at mountPath {item.get('mountPath')!r}"


@dataclass(frozen=True, slots=True)
class KeyedRule:
    """How one keyed list merges: its keys and its canonical form (``FIELDS`` says where it is)."""

    field: Field
    keys_of: Callable[[dict[str, Any]], tuple[Hashable, ...]]
    """The item's keys: hashable, cheap, never formatted (that is ``describe_key``'s job)."""
    canonical: Callable[[dict[str, Any]], Frozen]
    describe_key: Callable[[Hashable, dict[str, Any]], str]
    key_fields: tuple[str, ...] = ()
    """Fields whose values are the keys, one key each (empty: keys are composite)."""


@dataclass(frozen=True, slots=True)
class PresetKeys:
    """The keys the presets' items of one rule have, to test a container against them at once."""

    rule: KeyedRule
    values: tuple[tuple[str, frozenset[Any]], ...]
    """Per field of ``rule.key_fields``, the values the items have there (empty: see ``keys``)."""
    keys: frozenset[Hashable]
    """Every key of the items, for rules without ``key_fields``."""
    distinct: bool
    """No two items share a key."""

    @classmethod
    def of(cls, rule: KeyedRule, items: Sequence[dict[str, Any]]) -> PresetKeys:
        if not items:
            return cls(rule, (), frozenset(), True)
        if rule.key_fields:
            values = tuple((f, frozenset(item.get(f) for item in items)) for f in rule.key_fields)
            return cls(rule, values, frozenset(), all(len(v) == len(items) for _, v in values))
        keys = [k for item in items for k in rule.keys_of(item)]
        unique = frozenset(keys)
        return cls(rule, (), unique, len(unique) == len(keys))

    def all_new(self, existing: Sequence[dict[str, Any]]) -> bool:
        """Whether every preset item is new in ``existing``, whatever the walk accepted before:
        no two items share a key, and ``existing`` holds none of them."""
        return self.distinct and not self.shared_by(existing)

    def shared_by(self, existing: Sequence[dict[str, Any]]) -> bool:
        """Whether an item of ``existing`` holds one of these keys: when none does, merging into
        ``existing`` is merging into an empty list."""
        if not existing:
            return False
        if self.values:
            # Preset values are validated strings; a pod's value of another type never equals
            # one, and one that is not hashable (a malformed pod) takes the item-by-item look.
            # ``map(dict.get, ...)`` reads every item's value without a Python-level loop.
            try:
                for name, values in self.values:
                    if not values.isdisjoint(map(dict.get, existing, repeat(name))):
                        return True
            except TypeError:
                return any(
                    type(value := item.get(name)) is str and value in values
                    for item in existing
                    for name, values in self.values
                )
            return False
        if not self.keys:
            return False
        keys_of = self.rule.keys_of
        for item in existing:
            for key in keys_of(item):
                if key in self.keys:
                    return True
        return False


ENV = KeyedRule("env", _name_key, canonical_env_var, _describe_name, ("name",))
ENV_FROM = KeyedRule("envFrom", _env_from_raw_key, canonical_env_from, _describe_env_from)
VOLUME_MOUNTS = KeyedRule(
    "volumeMounts", _mount_keys, canonical_volume_mount, _describe_mount, ("name", "mountPath")
)
VOLUMES = KeyedRule("volumes", _name_key, canonical_volume, _describe_name, ("name",))


@dataclass(frozen=True, slots=True)
class New:
    """The item's keys are not all there yet: add it."""


@dataclass(frozen=True, slots=True)
class Present:
    """An item of the same keys and the same content is there: skip it."""


@dataclass(frozen=True, slots=True)
class Clash:
    """Keys held by an item of other content: a conflict with ``owner`` (None: the pod)."""

    keys: str
    owner: PodPreset | None


Check = New | Present | Clash
NEW, PRESENT = New(), Present()
Places = Sequence[str | None]
"""The containers (their labels) one state stands for; ``(None,)`` for a pod field."""


class KeyedList:
    """One keyed list of the pod during the walk (a container's env, the pod's volumes).

    A key maps to every canonical form seen for it (a pod may mount one volume twice) and to who
    defined it first. Canonical forms are computed only for keys that two items share: a pod's
    own items and new keys wait in ``pending`` until a later item names the same key, so a walk
    that only adds new keys never canonicalizes anything (most containers, most env vars).
    ``check`` never changes what the list holds; ``add`` does.
    """

    __slots__ = ("_forms", "_pending", "owners", "rule")

    def __init__(self, rule: KeyedRule, existing: Sequence[dict[str, Any]]) -> None:
        self.rule = rule
        self.owners: dict[Hashable, PodPreset | None] = {}
        self._forms: dict[Hashable, set[Hashable]] = {}
        self._pending: dict[Hashable, list[dict[str, Any]]] = {}
        keys_of = rule.keys_of
        for item in existing:
            for key in keys_of(item):
                self._pending.setdefault(key, []).append(item)
                self.owners.setdefault(key, None)

    def _forms_of(self, key: Hashable) -> set[Hashable]:
        seen = self._forms.setdefault(key, set())
        waiting = self._pending.pop(key, None)
        if waiting:
            canonical = self.rule.canonical
            seen.update(canonical(i) for i in waiting)
        return seen

    def check(self, item: dict[str, Any]) -> Check:
        keys = self.rule.keys_of(item)
        owners = self.owners
        known = [k for k in keys if k in owners]
        if not known:
            return NEW
        form = self.rule.canonical(item)
        clashes = [k for k in known if form not in self._forms_of(k)]
        if clashes:
            # One conflict per item, naming every key it clashes on (a mount: name and path).
            described = " ".join(self.rule.describe_key(k, item) for k in clashes)
            return Clash(described, owners[clashes[0]])
        return PRESENT if len(known) == len(keys) else NEW

    def propose(
        self, items: Iterable[dict[str, Any]], preset: PodPreset, places: Places, conflicts: list[Conflict]
    ) -> list[dict[str, Any]]:
        """The items that are new here, in order; a clash is one conflict of ``preset`` per
        container the list stands for (``places``). Changes nothing."""
        new: list[dict[str, Any]] = []
        for item in items:
            check = self.check(item)
            if isinstance(check, Clash):
                conflicts.extend(conflict_of(preset, self.rule.field, check, place) for place in places)
            elif check is NEW:
                new.append(item)
        return new

    def commit(self, items: Iterable[dict[str, Any]], owner: PodPreset) -> None:
        for item in items:
            self.add(item, owner)

    def add(self, item: dict[str, Any], owner: PodPreset) -> None:
        for key in self.rule.keys_of(item):
            if key in self.owners:
                self._forms_of(key).add(self.rule.canonical(item))
            else:
                self._pending.setdefault(key, []).append(item)
                self.owners[key] = owner


class KeyedMap:
    """One map of the pod during the walk (nodeSelector, labels, annotations): same key, other
    value, is a conflict."""

    __slots__ = ("field", "owners", "values")

    def __init__(self, existing: Mapping[str, Any], field: Field = "nodeSelector") -> None:
        self.field = field
        self.values: dict[str, object] = dict(existing)
        self.owners: dict[str, PodPreset | None] = dict.fromkeys(existing)

    def propose(
        self, items: Iterable[tuple[str, str]], preset: PodPreset, places: Places, conflicts: list[Conflict]
    ) -> list[tuple[str, str]]:
        """The ``(key, value)`` pairs that are new here; a clash is a conflict. Changes nothing."""
        new: list[tuple[str, str]] = []
        for pair in items:
            check = self.check(*pair)
            if isinstance(check, Clash):
                conflicts.append(conflict_of(preset, self.field, check, None))
            elif check is NEW:
                new.append(pair)
        return new

    def commit(self, items: Iterable[tuple[str, str]], owner: PodPreset) -> None:
        for key, value in items:
            self.add(key, value, owner)

    def check(self, key: str, value: str) -> Check:
        if key not in self.values:
            return NEW
        if self.values[key] == value:
            return PRESENT
        return Clash(repr(key), self.owners[key])

    def add(self, key: str, value: str, owner: PodPreset) -> None:
        self.values[key] = value
        self.owners[key] = owner


class UniqueList:
    """Tolerations (whole-object equality) and imagePullSecrets (by name): never a conflict,
    never a duplicate.

    ``bucket`` (cheap) groups items that could be equal; ``identity`` (maybe costly: a canonical
    form) is computed only within a bucket that two items share, so a preset toleration whose key
    the pod does not have is added without canonicalizing anything.
    """

    __slots__ = ("_compared", "_pending", "bucket", "identity", "seen")

    def __init__(
        self,
        existing: Sequence[dict[str, Any]],
        identity: Callable[[dict[str, Any]], Hashable],
        bucket: Callable[[dict[str, Any]], Hashable] | None = None,
    ):
        self.identity = identity
        self.bucket = bucket or identity
        self.seen: set[Hashable] = set()
        self._pending: dict[Hashable, list[dict[str, Any]]] = {}
        self._compared: set[Hashable] = set()
        """Buckets whose items are in ``seen`` by identity."""
        for item in existing:
            self.add(item)

    def _bucket(self, item: dict[str, Any]) -> Hashable:
        if self.bucket is self.identity:
            return ("identity", self.identity(item))
        return _hashable(self.bucket(item))

    def holds(self, item: dict[str, Any]) -> bool:
        """Whether an item equal to ``item`` is there already."""
        bucket = self._bucket(item)
        if bucket in self._compared:
            return self.identity(item) in self.seen
        waiting = self._pending.get(bucket)
        if not waiting:
            return False
        del self._pending[bucket]
        self._compared.add(bucket)
        self.seen.update(self.identity(i) for i in waiting)
        return self.identity(item) in self.seen

    def check(self, item: dict[str, Any]) -> Check:
        return PRESENT if self.holds(item) else NEW

    def propose(
        self, items: Iterable[dict[str, Any]], preset: PodPreset, places: Places, conflicts: list[Conflict]
    ) -> list[dict[str, Any]]:
        """The items not here yet, each once (a preset may list one twice). Never a conflict."""
        mine = UniqueList((), self.identity, self.bucket)
        new: list[dict[str, Any]] = []
        for item in items:
            if not mine.holds(item) and not self.holds(item):
                mine.add(item)
                new.append(item)
        return new

    def commit(self, items: Iterable[dict[str, Any]], owner: PodPreset) -> None:
        for item in items:
            self.add(item)

    def add(self, item: dict[str, Any]) -> None:
        bucket = self._bucket(item)
        if bucket in self._compared:
            self.seen.add(self.identity(item))
        else:
            self._pending.setdefault(bucket, []).append(item)


def toleration_key(item: dict[str, Any]) -> Hashable:
    """The bucket of a toleration: its key (a canonical form is only needed within one)."""
    return item.get("key") or ""


def pull_secret_name(item: dict[str, Any]) -> Hashable:
    return _hashable(item.get("name"))


def conflict_of(preset: PodPreset, field: Field, clash: Clash, container: str | None) -> Conflict:
    other = clash.owner
    return Conflict(
        preset=preset.name,
        kind=preset.kind,
        field=field,
        key=clash.keys,
        container=container,
        other=POD_OWNER if other is None else other.name,
        other_kind=preset.kind if other is None else other.kind,
        policy=preset.on_conflict,
    )


@dataclass(frozen=True, slots=True)
class UniqueKeys:
    """The buckets of the presets' items of a ``UniqueList`` field, when no two share one."""

    keys: frozenset[Hashable] | None
    bucket: Callable[[dict[str, Any]], Hashable]

    @classmethod
    def of(cls, bucket: Callable[[dict[str, Any]], Hashable], items: Sequence[dict[str, Any]]) -> UniqueKeys:
        keys = [bucket(item) for item in items]
        unique = frozenset(keys)
        return cls(unique if len(unique) == len(keys) else None, bucket)

    def all_new(self, existing: Sequence[dict[str, Any]]) -> bool:
        """Whether every preset item is new in ``existing``: no two share a bucket, nor does one
        share it with an item there (buckets are compared as ``_hashable`` makes them)."""
        if self.keys is None:
            return False
        if not self.keys or not existing:
            return True
        for item in existing:
            key = self.bucket(item)
            if type(key) is not str or key in self.keys:  # another type: take the general path
                return False
        return True


@dataclass(frozen=True, slots=True)
class NoShortcut:
    """A field whose items are always checked (the maps: cheap, and rarely many)."""

    def all_new(self, existing: object) -> bool:
        return False


class Shortcut(Protocol):
    def all_new(self, existing: Any) -> bool: ...


State = KeyedList | UniqueList | KeyedMap
Level = Literal["container", "pod"]


@dataclass(frozen=True, slots=True)
class FieldRow:
    """One field presets inject: its name, where it is, where presets keep it, its state during
    the walk, and what the presets' items of it let the walk skip."""

    name: str
    level: Level
    """``container``: in every targeted container; ``pod``: once in the pod."""
    path: tuple[str, ...]
    """Within the container (``("env",)``) or the pod (``("spec", "volumes")``)."""
    items_of: Callable[[PodPreset], tuple[Any, ...]]
    state: Callable[[Any], State]
    """The field's state, from what the pod has there (a list of objects, or a map)."""
    shortcut: Callable[[Sequence[Any]], Shortcut]
    """From every item the matching presets have for the field: ``all_new(existing)``."""
    is_map: bool = False


def _keyed(
    rule: KeyedRule, level: Level, path: tuple[str, ...], items_of: Callable[[PodPreset], Any]
) -> FieldRow:
    return FieldRow(
        rule.field,
        level,
        path,
        items_of,
        lambda existing: KeyedList(rule, existing),
        lambda items: PresetKeys.of(rule, items),
    )


def _keyed_map(name: Field, path: tuple[str, ...], items_of: Callable[[PodPreset], Any]) -> FieldRow:
    return FieldRow(
        name, "pod", path, items_of, lambda existing: KeyedMap(existing, name), lambda _: NoShortcut(), True
    )


FIELDS: tuple[FieldRow, ...] = (
    _keyed(ENV, "container", ("env",), lambda p: p.env),
    _keyed(ENV_FROM, "container", ("envFrom",), lambda p: p.env_from),
    _keyed(VOLUME_MOUNTS, "container", ("volumeMounts",), lambda p: p.volume_mounts),
    _keyed(VOLUMES, "pod", ("spec", "volumes"), lambda p: p.volumes),
    FieldRow(
        "tolerations",
        "pod",
        ("spec", "tolerations"),
        lambda p: p.tolerations,
        lambda existing: UniqueList(existing, canonical_toleration, toleration_key),
        lambda items: UniqueKeys.of(toleration_key, items),
    ),
    FieldRow(
        "imagePullSecrets",
        "pod",
        ("spec", "imagePullSecrets"),
        lambda p: p.image_pull_secrets,
        lambda existing: UniqueList(existing, pull_secret_name),
        lambda items: UniqueKeys.of(pull_secret_name, items),
    ),
    _keyed_map("nodeSelector", ("spec", "nodeSelector"), lambda p: p.node_selector),
    _keyed_map("labels", ("metadata", "labels"), lambda p: p.labels),
    _keyed_map("annotations", ("metadata", "annotations"), lambda p: p.annotations),
)
"""Every field presets inject, once: container fields first, then the pod's in walk order."""
CONTAINER_FIELDS = tuple(row for row in FIELDS if row.level == "container")
POD_FIELDS = tuple(row for row in FIELDS if row.level == "pod")
_BY_NAME = {row.name: row for row in FIELDS}


def merge_env(
    existing: Sequence[dict[str, Any]], presets: Sequence[PodPreset], container: str | None = None
) -> Merged:
    """env: keyed by name; same content is skipped, different content conflicts."""
    return merge_field("env", existing, presets, container)


def merge_env_from(
    existing: Sequence[dict[str, Any]], presets: Sequence[PodPreset], container: str | None = None
) -> Merged:
    """envFrom: keyed by (prefix, configMapRef.name, secretRef.name). A deviation from the
    original, which silently dropped the container's envFrom here (its quirk Q1)."""
    return merge_field("envFrom", existing, presets, container)


def merge_volume_mounts(
    existing: Sequence[dict[str, Any]], presets: Sequence[PodPreset], container: str | None = None
) -> Merged:
    """volumeMounts: keyed by name and, separately, by mountPath, as the original was."""
    return merge_field("volumeMounts", existing, presets, container)


def merge_volumes(existing: Sequence[dict[str, Any]], presets: Sequence[PodPreset]) -> Merged:
    """volumes: keyed by name."""
    return merge_field("volumes", existing, presets, None)


def merge_tolerations(existing: Sequence[dict[str, Any]], presets: Sequence[PodPreset]) -> Merged:
    """tolerations: whole-object equality; an exact duplicate is never added; no conflicts."""
    return merge_field("tolerations", existing, presets, None)


def merge_field(
    name: str, existing: Sequence[dict[str, Any]], presets: Sequence[PodPreset], container: str | None
) -> Merged:
    """One field alone against presets in order, with the walk's own steps (``propose``, then
    ``commit``) and every preset kept as under ``KeepExisting``: new items added, present ones
    skipped, clashing ones conflicts (the walk decides per preset with its policy)."""
    row = _BY_NAME[name]
    state = row.state(existing)
    added: list[Any] = []
    conflicts: list[Conflict] = []
    for preset in presets:
        new = state.propose(row.items_of(preset), preset, (container,), conflicts)
        state.commit(new, preset)  # type: ignore[arg-type]
        added.extend(new)
    return Merged(added=tuple(added), conflicts=tuple(conflicts))
