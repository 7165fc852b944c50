"""The engine's walk against a plain walk written from docs/semantics.md.

``plan_presets`` takes shortcuts: containers that hold none of the presets' keys share one state
(a lane), items that are all new are added without checks (a lane or pod field with no state),
canonical forms are computed only for keys two items share, protected items are found once per
preset set, and what the presets alone decide is remembered per preset set (``PresetSets``). The
reference walk below takes none of them: per preset, every item is checked against fresh
per-field states (one per container and list, one per pod field) holding the pod's items and the
items accepted so far; then the preset's ``onConflict`` decides. It must give the same statuses,
conflicts, added items and counts as the engine, on the same pods and presets as the property
suites, with ``plan_presets`` called twice on one memo shared by every example (the second call
reuses what the first derived).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from test_properties import pods, preset_lists
from test_properties_every_field import PROTECTED, rich_pods, rich_preset_lists

from presets.defaults import (
    canonical_env_from,
    canonical_env_var,
    canonical_toleration,
    canonical_volume,
    canonical_volume_mount,
)
from presets.merge import POD_OWNER, Conflict, env_from_key
from presets.model import DEFAULT_PROTECTED, PodPreset, Protected, order_key, protected_items
from presets.plan import plan_presets
from presets.selection import PresetSets

MEMO: PresetSets[Any] = PresetSets()
"""Shared by every example, as an index snapshot's is by every pod: a stale entry would show."""
WALKS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The rules, one row per keyed list: its keys (tagged, so a mount's name and path never meet), how
# a key is named in a conflict, and what "equal content" means (modulo defaulting).
KEYED = {
    "env": (lambda i: [("name", i.get("name"))], lambda k, i: repr(i.get("name")), canonical_env_var),
    "envFrom": (
        lambda i: [
            (
                "source",
                (
                    i.get("prefix") or "",
                    (i.get("configMapRef") or {}).get("name"),
                    (i.get("secretRef") or {}).get("name"),
                ),
            )
        ],
        lambda k, i: env_from_key(i),
        canonical_env_from,
    ),
    "volumeMounts": (
        lambda i: [("name", i.get("name")), ("mountPath", i.get("mountPath"))],
        lambda k, i: f"name {i.get('name')!r}" if k[0] == "name" else f"at mountPath {i.get('mountPath')!r}",
        canonical_volume_mount,
    ),
    "volumes": (lambda i: [("name", i.get("name"))], lambda k, i: repr(i.get("name")), canonical_volume),
}
CONTAINER_FIELDS = ("env", "envFrom", "volumeMounts")
UNIQUE = {"tolerations": canonical_toleration, "imagePullSecrets": lambda i: i.get("name")}
MAPS = {"nodeSelector": ("spec", "nodeSelector"), "labels": ("metadata", "labels")}
MAPS["annotations"] = ("metadata", "annotations")


@dataclass
class Keyed:
    """A keyed list: every item it holds, with its keys, canonical form and who defined it."""

    rule: str
    entries: list[tuple[list[Any], Any, PodPreset | None]] = field(default_factory=list)

    def hold(self, item: dict[str, Any], owner: PodPreset | None) -> None:
        keys_of, _, canonical = KEYED[self.rule]
        self.entries.append((keys_of(item), canonical(item), owner))

    def check(self, item: dict[str, Any]) -> tuple[str, str | PodPreset | None]:
        """``("new", None)``, ``("present", None)`` or ``("clash", (described keys, owner))``."""
        keys_of, describe, canonical = KEYED[self.rule]
        keys = keys_of(item)
        known = [k for k in keys if any(k in e[0] for e in self.entries)]
        if not known:
            return "new", None
        form = canonical(item)
        clashes = [k for k in known if all(e[1] != form for e in self.entries if k in e[0])]
        if clashes:
            owner = next(e[2] for e in self.entries if clashes[0] in e[0])
            return "clash", (" ".join(describe(k, item) for k in clashes), owner)
        return ("present" if len(known) == len(keys) else "new"), None


def conflict(
    preset: PodPreset, field_name: str, key: str, owner: PodPreset | None, container: Any
) -> Conflict:
    return Conflict(
        preset=preset.name,
        kind=preset.kind,
        field=field_name,  # type: ignore[arg-type]
        key=key,
        container=container,
        other=POD_OWNER if owner is None else owner.name,
        other_kind=preset.kind if owner is None else owner.kind,
        policy=preset.on_conflict,
    )


def items_of(preset: PodPreset, name: str) -> tuple[Any, ...]:
    return {
        "env": preset.env,
        "envFrom": preset.env_from,
        "volumeMounts": preset.volume_mounts,
        "volumes": preset.volumes,
        "tolerations": preset.tolerations,
        "imagePullSecrets": preset.image_pull_secrets,
        "nodeSelector": preset.node_selector,
        "labels": preset.labels,
        "annotations": preset.annotations,
    }[name]


def reference_walk(pod: dict[str, Any], presets: list[PodPreset], protected: Protected) -> dict[str, Any]:
    """The rules of docs/semantics.md ("The walk"), as plainly as they read."""
    spec = pod.get("spec") or {}
    containers = [
        (f"{noun} {c.get('name')!r}", c.get("name"), key == "initContainers", f"/spec/{key}/{i}", c)
        for key, noun in (("initContainers", "init container"), ("containers", "container"))
        for i, c in enumerate(spec.get(key) or ())
    ]
    states: dict[str, Any] = {}
    added: dict[Any, list[Any]] = {}
    for _, _, _, pointer, c in containers:
        for name in CONTAINER_FIELDS:
            states[f"{pointer}/{name}"] = Keyed(name)
            for item in c.get(name) or ():
                states[f"{pointer}/{name}"].hold(item, None)
    states["/spec/volumes"] = Keyed("volumes")
    for item in spec.get("volumes") or ():
        states["/spec/volumes"].hold(item, None)
    for name, identity in UNIQUE.items():
        states[f"/spec/{name}"] = [identity(i) for i in spec.get(name) or ()]
    for name, (part, key) in MAPS.items():
        states[name] = {k: (v, None) for k, v in ((pod.get(part) or {}).get(key) or {}).items()}

    results = []
    for preset in presets:
        conflicts: list[Conflict] = []
        accepted: list[tuple[Any, Any, Any]] = []  # (where, item, how to hold it)
        blocked = []
        for field_name, _, item, why in protected_items(preset, protected):
            blocked.append(id(item))
            key = repr(item.get("name")) if field_name == "env" else f"prefix {item.get('prefix')!r}"
            conflicts.append(
                Conflict(
                    preset=preset.name,
                    kind=preset.kind,
                    field=field_name,
                    key=key,
                    policy=preset.on_conflict,
                    reason="protected",
                    why=why,
                )
            )
        skipped = []
        places: list[tuple[str, str, str | None]] = [("/spec/volumes", "volumes", None)]
        for label, name, init, pointer, _ in containers:
            why = preset.container_selector.skip_reason(name if isinstance(name, str) else "", init=init)
            if why:
                if not preset.container_selector.targets_all:
                    skipped.append((label, why))
                continue
            places.extend((f"{pointer}/{f}", f, label) for f in CONTAINER_FIELDS)
        for where, rule, label in places:
            for item in items_of(preset, rule):
                if id(item) in blocked:
                    continue
                verdict, detail = states[where].check(item)
                if verdict == "clash":
                    conflicts.append(conflict(preset, rule, detail[0], detail[1], label))
                elif verdict == "new":
                    accepted.append((where, item, "keyed"))
        for name, identity in UNIQUE.items():
            mine: list[Any] = []
            for item in items_of(preset, name):
                form = identity(item)
                if form not in mine and form not in states[f"/spec/{name}"]:
                    mine.append(form)
                    accepted.append((f"/spec/{name}", item, "unique"))
        for name in MAPS:
            for pair in items_of(preset, name):
                key, value = pair
                if key not in states[name]:
                    accepted.append((name, pair, "map"))
                elif states[name][key][0] != value:
                    conflicts.append(conflict(preset, name, repr(key), states[name][key][1], None))

        if conflicts and preset.on_conflict != "KeepExisting":
            status = "skipped-preset" if preset.on_conflict == "SkipPreset" else "conflict"
            accepted = []
        else:
            status = "kept-existing" if conflicts else "applied"
        for where, item, how in accepted:
            if how == "keyed":
                states[where].hold(item, preset)
            elif how == "unique":
                states[where].append(UNIQUE[where.rsplit("/", 1)[1]](item))
            else:
                states[where][item[0]] = (item[1], preset)
            added.setdefault(MAPS.get(where, where), []).append(item)
        ids = {id(item) for _, item, _ in accepted}
        counts = {
            name: sum(id(i) in ids for i in items_of(preset, name)) for name in (*KEYED, *UNIQUE, *MAPS)
        }
        results.append(
            (preset.ref, status, Counter(conflicts), {k: n for k, n in counts.items() if n}, skipped)
        )
    return {"results": results, "added": {k: tuple(v) for k, v in added.items()}}


def engine_walk(
    pod: dict[str, Any], presets: list[PodPreset], protected: Protected, count: bool, memo: PresetSets[Any]
) -> dict[str, Any]:
    plan = plan_presets(pod, presets, protected=protected, count=count, preset_sets=memo)
    added: dict[Any, tuple[Any, ...]] = {change.pointer: change.added for change in plan.lists}
    added.update({change.path: change.added for change in plan.maps})
    results = [
        (
            r.preset.ref,
            r.status,
            Counter(r.conflicts),
            {k: n for k, n in r.added.items() if n},
            list(r.skipped_containers),
        )
        for r in plan.results
    ]
    return {"results": results, "added": added}


def assert_walks_agree(pod: dict[str, Any], presets: list[PodPreset], protected: Protected) -> None:
    ordered = sorted(presets, key=order_key)
    expected = reference_walk(pod, ordered, protected)
    uncounted = engine_walk(pod, ordered, protected, count=False, memo=MEMO)
    assert uncounted["added"] == expected["added"]
    assert [r[:3] + r[4:] for r in uncounted["results"]] == [r[:3] + r[4:] for r in expected["results"]]
    counted = engine_walk(pod, ordered, protected, count=True, memo=MEMO)  # memo hit: derived once
    assert counted == expected


@WALKS
@given(pod=pods(), presets=preset_lists())
def test_the_walk_of_plain_presets_matches_the_reference_walk(pod, presets):
    assert_walks_agree(pod, presets, DEFAULT_PROTECTED)


@WALKS
@given(pod=rich_pods(), presets=rich_preset_lists())
def test_the_walk_of_richer_presets_matches_the_reference_walk(pod, presets):
    assert_walks_agree(pod, presets, PROTECTED)
