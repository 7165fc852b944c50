"""The merge rules: one small pure function per list.

Each takes the items the pod (or container) already has and the matching presets in order, and
returns ``Merged``: the items to append and the conflicts found, in a single pass. An item added
by an earlier preset counts as existing for later ones. Items are compared modulo Kubernetes
defaulting (``presets.defaults``). Nothing is mutated; conflicts are returned, never raised.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from presets.defaults import (
    Frozen,
    canonical_env_from,
    canonical_env_var,
    canonical_toleration,
    canonical_volume,
    canonical_volume_mount,
)
from presets.model import PodPreset

Field = Literal["env", "envFrom", "volumeMounts", "volumes"]
POD_OWNER = ""
"""``Conflict.other`` when the item the preset disagrees with is the pod's own."""

_NOUNS: dict[Field, str] = {
    "env": "env var",
    "envFrom": "envFrom source",
    "volumeMounts": "volume mount",
    "volumes": "volume",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Conflict:
    """A preset item that disagrees with an item of the same key. Never holds values."""

    preset: str
    field: Field
    key: str
    container: str | None = None
    """``container "app"`` or ``init container "setup"``; None for pod-level lists."""
    other: str = POD_OWNER
    """The preset that defined the key first, or ``POD_OWNER`` when the pod has it."""

    def describe(self) -> str:
        """One line for warnings, logs and events; names, never values."""
        where = f"{self.container}: " if self.container else ""
        owner = "the pod's own definition" if self.other == POD_OWNER else f"podpreset {self.other!r}"
        return (
            f"podpreset {self.preset!r} conflicts on {where}{_NOUNS[self.field]} {self.key} "
            f"which differs from {owner}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Merged:
    """What a merge rule decided: items to append, in order, and conflicts."""

    added: tuple[dict[str, Any], ...] = ()
    conflicts: tuple[Conflict, ...] = ()


_NOTHING = Merged()


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


@dataclass(frozen=True, slots=True)
class KeyedRule:
    """How one keyed list merges: where presets keep it, its keys, its canonical form."""

    field: Field
    items_of: Callable[[PodPreset], tuple[dict[str, Any], ...]]
    keys_of: Callable[[dict[str, Any]], tuple[str, ...]]
    canonical: Callable[[dict[str, Any]], Frozen]
    key_fields: tuple[str, ...] = ()
    """Fields whose string values are the keys, one key each (empty: keys are composite)."""


ENV = KeyedRule("env", lambda p: p.env, lambda i: (repr(i.get("name")),), canonical_env_var, ("name",))
ENV_FROM = KeyedRule("envFrom", lambda p: p.env_from, lambda i: (env_from_key(i),), canonical_env_from)
VOLUME_MOUNTS = KeyedRule(
    "volumeMounts",
    lambda p: p.volume_mounts,
    lambda i: (f"name {i.get('name')!r}", f"at mountPath {i.get('mountPath')!r}"),
    canonical_volume_mount,
    ("name", "mountPath"),
)
VOLUMES = KeyedRule(
    "volumes", lambda p: p.volumes, lambda i: (repr(i.get("name")),), canonical_volume, ("name",)
)


def merge_env(
    existing: Sequence[dict[str, Any]], presets: Sequence[PodPreset], container: str | None = None
) -> Merged:
    """env: keyed by name; same content is skipped, different content conflicts."""
    return merge_keyed(ENV, existing, presets, container)


def merge_env_from(
    existing: Sequence[dict[str, Any]], presets: Sequence[PodPreset], container: str | None = None
) -> Merged:
    """envFrom: keyed by (prefix, configMapRef.name, secretRef.name). A deviation from the
    original, which silently dropped the container's envFrom here (its quirk Q1)."""
    return merge_keyed(ENV_FROM, existing, presets, container)


def merge_volume_mounts(
    existing: Sequence[dict[str, Any]], presets: Sequence[PodPreset], container: str | None = None
) -> Merged:
    """volumeMounts: keyed by name and, separately, by mountPath, as the original was."""
    return merge_keyed(VOLUME_MOUNTS, existing, presets, container)


def merge_volumes(existing: Sequence[dict[str, Any]], presets: Sequence[PodPreset]) -> Merged:
    """volumes: keyed by name."""
    return merge_keyed(VOLUMES, existing, presets, None)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A rule's items of the matching presets, merged among themselves once per pod.

    Every container is merged against the same presets; when a container shares no key with
    them, its merge is exactly the presets' own (nothing of the container is ever compared), so
    ``merge_prepared`` reuses it instead of running the pass again.
    """

    rule: KeyedRule
    presets: tuple[PodPreset, ...]
    keys: frozenset[str]
    alone: Merged
    values: tuple[frozenset[object], ...]
    """Per ``rule.key_fields``, the values the presets' items have there."""


def prepare(rule: KeyedRule, presets: Sequence[PodPreset]) -> Prepared:
    items = [item for p in presets for item in rule.items_of(p)]
    keys = frozenset(k for item in items for k in rule.keys_of(item))
    values = tuple(frozenset(item.get(f) for item in items) for f in rule.key_fields)
    return Prepared(rule, tuple(presets), keys, merge_keyed(rule, (), presets, None), values)


def merge_prepared(prepared: Prepared, existing: Sequence[dict[str, Any]], container: str | None) -> Merged:
    """The same as ``merge_keyed(prepared.rule, existing, prepared.presets, container)``."""
    if not prepared.keys:
        return _NOTHING
    if not prepared.alone.conflicts and not _shares_a_key(prepared, existing):
        return prepared.alone
    return merge_keyed(prepared.rule, existing, prepared.presets, container)


def _shares_a_key(prepared: Prepared, existing: Sequence[dict[str, Any]]) -> bool:
    rule = prepared.rule
    if rule.key_fields:
        # Preset values are validated strings; a pod's non-string value can never equal one.
        try:
            return any(
                not values.isdisjoint({item.get(f) for item in existing})
                for f, values in zip(rule.key_fields, prepared.values, strict=True)
            )
        except TypeError:  # an unhashable value in a malformed pod: take the general path
            pass
    keys, keys_of = prepared.keys, rule.keys_of
    return any(k in keys for item in existing for k in keys_of(item))


def merge_tolerations(existing: Sequence[dict[str, Any]], presets: Sequence[PodPreset]) -> Merged:
    """tolerations: whole-object equality; an exact duplicate is never added; no conflicts."""
    seen: set[Hashable] = {canonical_toleration(t) for t in existing if isinstance(t, dict)}
    added: list[dict[str, Any]] = []
    for preset in presets:
        for toleration in preset.tolerations:
            form = canonical_toleration(toleration)
            if form not in seen:
                seen.add(form)
                added.append(toleration)
    return Merged(added=tuple(added))


def merge_keyed(
    rule: KeyedRule, existing: Sequence[dict[str, Any]], presets: Sequence[PodPreset], container: str | None
) -> Merged:
    """The shared single pass: a map per key, seeded from ``existing``, grown with each addition.

    A key maps to every canonical form seen for it (a pod may mount one volume twice) and to who
    defined it first. An item whose keys all hold its exact form is a duplicate and is skipped.
    Canonical forms are computed only for keys that two items share: a pod's own items and a
    preset's new keys wait in ``pending`` until a later item names the same key, so a merge that
    only adds new keys never canonicalizes anything (most containers, most env vars of a big pod).
    """
    field, items_of, keys_of, canonical = rule.field, rule.items_of, rule.keys_of, rule.canonical
    pending: dict[str, list[dict[str, Any]]] = {}
    forms: dict[str, set[Hashable]] = {}
    owners: dict[str, str] = {}

    def forms_of(key: str) -> set[Hashable]:
        seen = forms.setdefault(key, set())
        waiting = pending.pop(key, None)
        if waiting:
            seen.update(canonical(i) for i in waiting)
        return seen

    for item in existing:
        for key in keys_of(item):
            pending.setdefault(key, []).append(item)
            owners.setdefault(key, POD_OWNER)
    added: list[dict[str, Any]] = []
    conflicts: list[Conflict] = []
    for preset in presets:
        for item in items_of(preset):
            keys = keys_of(item)
            known = [k for k in keys if k in owners]
            if not known:
                for key in keys:
                    pending.setdefault(key, []).append(item)
                    owners[key] = preset.name
                added.append(item)
                continue
            form = canonical(item)
            clashes = [k for k in known if form not in forms_of(k)]
            if clashes:
                # One conflict per item, naming every key it clashes on (a mount: name and path).
                conflicts.append(
                    Conflict(
                        preset=preset.name,
                        field=field,
                        key=" ".join(clashes),
                        container=container,
                        other=owners[clashes[0]],
                    )
                )
                continue
            if len(known) == len(keys):
                continue
            for key in keys:
                forms_of(key).add(form)
                owners.setdefault(key, preset.name)
            added.append(item)
    return Merged(added=tuple(added), conflicts=tuple(conflicts))
