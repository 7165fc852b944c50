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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from jsonpointer import escape, unescape

from presets.merge import Conflict
from presets.model import (
    ANNOTATION_NAME_PREFIXES,
    ANNOTATION_PREFIX,
    DEFAULT_PROTECTED,
    DEFAULT_VOLUME_TYPES,
    KIND,
    PodPreset,
    Protected,
    VolumeTypes,
)
from presets.namespaces import NO_NAMESPACES, NamespaceLabels, labels_of
from presets.plan import ListChange, MapChange, Path, Plan, PresetResult, Status, any_reference, plan_presets
from presets.selection import Mismatch, PresetSets, Selection, arrival_labels, select_presets

__all__ = [  # the pipeline's names, and those of its steps' modules it is read through
    "APPLIED_ANNOTATION_PREFIX",
    "ListChange",
    "MapChange",
    "Mismatch",
    "Outcome",
    "Plan",
    "PresetResult",
    "Refusal",
    "Selection",
    "Status",
    "apply_presets",
    "arrival_labels",
    "decide",
    "order_env",
    "patched",
    "plan_presets",
    "references",
    "refuse_presets",
    "render",
    "select_presets",
    "skip_reason",
]

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
EXCLUDE_ANNOTATION = ANNOTATION_PREFIX + "exclude"
APPLIED_ANNOTATION_PREFIX = ANNOTATION_PREFIX + ANNOTATION_NAME_PREFIXES[KIND]
"""The applied annotations of PodPresets (``PodPreset.annotation_key`` covers both kinds)."""

Action = Literal["mutated", "unchanged", "conflict", "rejected", "skipped"]
Verdict = Literal["apply", "skip-all", "reject"]
PatchOp = dict[str, Any]


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


def skip_reason(pod: Mapping[str, Any]) -> str | None:
    """Why a pod is never touched (mirror pod, opt-out annotation), or None."""
    annotations = _mapping(_mapping(pod.get("metadata")).get("annotations"))
    if MIRROR_ANNOTATION in annotations:
        return f"mirror pod (annotation {MIRROR_ANNOTATION})"
    if annotations.get(EXCLUDE_ANNOTATION) == "true":
        return f'excluded by annotation {EXCLUDE_ANNOTATION}: "true"'
    return None


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
        ops = change.ops
        if ops is not None and (change.field != "env" or not any_reference(change.current)):
            patch.extend(ops)  # appended as rendered for the lane (the env has nothing to order)
        elif change.field == "env":
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
    if not any_reference(change.added) and not any_reference(current):
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
    if not any_reference(existing) and not any_reference(added):
        return [(end, v) for v in added], []
    names = {str(v.get("name")): i for i, v in enumerate(added)}
    own_index, deadline = _first_references(existing, names)
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
    dependents: list[list[int]] = [[] for _ in added]
    for i, d in enumerate(deps):
        for j in d:
            dependents[j].append(i)
    topo = _topological(deps, dependents)
    stuck = sorted(set(range(len(added))) - set(topo))
    for i in reversed(topo):  # a var must come no later than the vars that reference it
        for k in dependents[i]:
            if k not in stuck:
                deadline[i] = min(deadline[i], deadline[k])
    for i in topo:  # and no earlier than the container's vars it (or its dependencies) reference
        for j in deps[i]:
            low[i] = max(low[i], low[j])
    stuck.extend(i for i in topo if low[i] > deadline[i])
    rank = {i: n for n, i in enumerate(topo)}
    placed = sorted((i for i in topo if i not in stuck), key=lambda i: (deadline[i], rank[i]))
    result = [(deadline[i], added[i]) for i in placed]
    result.extend((end, added[i]) for i in sorted(stuck))
    return result, [added[i] for i in sorted(stuck)]


def _first_references(existing: Sequence[Any], names: Mapping[str, int]) -> tuple[dict[str, int], list[int]]:
    """Where each of the container's own vars first stands, and per injected var (by index in
    ``names``) the first own var that references it (``len(existing)``: none)."""
    end = len(existing)
    own_index: dict[str, int] = {}
    deadline = [end] * len(names)
    for i, var in enumerate(existing):
        if not isinstance(var, dict):
            continue
        own_index.setdefault(str(var.get("name")), i)
        for ref in references(var.get("value")):
            j = names.get(ref)
            if j is not None and deadline[j] == end:
                deadline[j] = i
    return own_index, deadline


def _topological(deps: Sequence[set[int]], dependents: Sequence[list[int]]) -> list[int]:
    """Kahn's algorithm, walk order among the ready: what it leaves out is in or behind a cycle."""
    waiting = [len(d) for d in deps]
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
    return topo


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
    preset_sets: PresetSets[Any] | None = None,
    refusal_sets: PresetSets[Any] | None = None,
) -> Outcome:
    """Decide and build the mutation of ``pod`` (in ``namespace``) by ``presets``.

    ``presets`` may be every preset that could apply or only the candidates (see
    ``PresetIndex.candidates``); ClusterPodPresets' namespace selectors are checked against
    ``namespaces``; PodPresets that inject a volume type ``namespaced_volume_types`` does not
    allow are left out with a warning. ``explain`` also records why each other preset did not
    match, which only ``podpreset apply --explain`` reads. ``preset_sets`` is the index
    snapshot's memo of what the walk derives from a combination of presets
    (``PresetIndex.preset_sets``), ``refusal_sets`` its memo of ``refuse_presets``.
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
    if refusal_sets is None:
        matched, refusals = refuse_presets(selection.matched, namespaced_volume_types)
    else:
        matched, refusals = refusal_sets.get(selection.matched, namespaced_volume_types, refuse_presets)
    if not matched:
        return Outcome(
            action="unchanged",
            reason="no preset selects this pod" if not refusals else "every preset selecting it was refused",
            received=pod,
            mismatches=selection.mismatches,
            refusals=refusals,
        )
    plan = plan_presets(pod, matched, protected=protected, count=explain, preset_sets=preset_sets)
    return _outcome(pod, selection, plan, refusals, explain=explain)


def _outcome(
    pod: dict[str, Any], selection: Selection, plan: Plan, refusals: tuple[Refusal, ...], *, explain: bool
) -> Outcome:
    """Decide on the plan, and render it when it applies."""
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
