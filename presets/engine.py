"""The pipeline for one pod: skip rules, matching, order, merge, conflicts, annotations, patch.

``apply_presets`` takes the pod exactly as received and the presets of its namespace, and
returns an ``Outcome``: the mutated pod, the RFC 6902 patch, what was applied, what conflicted
and why each other preset did not match. All or nothing: on any conflict the pod is unchanged.
The input is never mutated; the mutated pod shares every subtree it did not change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from jsonpointer import escape

from presets.merge import (
    ENV,
    ENV_FROM,
    VOLUME_MOUNTS,
    Conflict,
    Merged,
    merge_prepared,
    merge_tolerations,
    merge_volumes,
    prepare,
)
from presets.model import PodPreset
from presets.selector import describe_requirement

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
EXCLUDE_ANNOTATION = "podpreset.admission.kubernetes.io/exclude"
APPLIED_ANNOTATION_PREFIX = "podpreset.admission.kubernetes.io/podpreset-"

Action = Literal["mutated", "unchanged", "conflict", "skipped"]
PatchOp = dict[str, Any]
_CONTAINER_LISTS = (("initContainers", "init container"), ("containers", "container"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Mismatch:
    """A preset of the namespace that did not select the pod, and the requirements it missed."""

    preset: str
    unmet: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """Everything decided for one pod. ``pod`` is the result (the input itself when unchanged)."""

    action: Action
    reason: str
    pod: dict[str, Any]
    patch: tuple[PatchOp, ...] = ()
    applied: tuple[str, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    mismatches: tuple[Mismatch, ...] = ()
    added: Mapping[str, Mapping[str, int]] | None = None
    """Per applied preset, per field, how many of its items were added (for ``--explain``)."""


def annotation_key(preset_name: str) -> str:
    return APPLIED_ANNOTATION_PREFIX + preset_name


def skip_reason(pod: Mapping[str, Any]) -> str | None:
    """Why a pod is never touched (mirror pod, opt-out annotation), or None."""
    annotations = _mapping(_mapping(pod.get("metadata")).get("annotations"))
    if MIRROR_ANNOTATION in annotations:
        return f"mirror pod (annotation {MIRROR_ANNOTATION})"
    if annotations.get(EXCLUDE_ANNOTATION) == "true":
        return f'excluded by annotation {EXCLUDE_ANNOTATION}: "true"'
    return None


def select_presets(
    labels: Mapping[str, str], presets: Iterable[PodPreset]
) -> tuple[list[PodPreset], list[Mismatch]]:
    """Split presets into those whose selector matches ``labels`` (by name) and the rest."""
    matched: list[PodPreset] = []
    mismatches: list[Mismatch] = []
    for preset in sorted(presets, key=_by_name):
        unmet = preset.selector.unmet(labels)
        if unmet:
            mismatches.append(
                Mismatch(preset=preset.name, unmet=tuple(describe_requirement(r) for r in unmet))
            )
        else:
            matched.append(preset)
    return matched, mismatches


def apply_presets(pod: dict[str, Any], presets: Iterable[PodPreset], *, explain: bool = False) -> Outcome:
    """Decide and build the mutation of ``pod`` by the presets of its namespace.

    ``presets`` may be every preset of the namespace or only those that can match (see
    ``PresetIndex.candidates``); ``explain`` also records why each other preset did not match
    and what each applied one added, which only ``podpreset apply --explain`` reads.
    """
    reason = skip_reason(pod)
    if reason:
        return Outcome(action="skipped", reason=reason, pod=pod)
    metadata = _mapping(pod.get("metadata"))
    labels = {k: v for k, v in _mapping(metadata.get("labels")).items() if isinstance(v, str)}
    if explain:
        matched, mismatches = select_presets(labels, presets)
    else:
        matched = sorted((p for p in presets if p.selector.matches(labels)), key=_by_name)
        mismatches = []
    if not matched:
        return Outcome(
            action="unchanged", reason="no preset selects this pod", pod=pod, mismatches=tuple(mismatches)
        )

    spec = _mapping(pod.get("spec"))
    merges: list[tuple[tuple[str | int, ...], Sequence[Any] | None, Merged]] = []
    volumes = spec.get("volumes")
    merges.append((("spec", "volumes"), volumes, merge_volumes(_items(volumes), matched)))
    tolerations = spec.get("tolerations")
    merges.append((("spec", "tolerations"), tolerations, merge_tolerations(_items(tolerations), matched)))
    per_container = [(rule.field, prepare(rule, matched)) for rule in (ENV, ENV_FROM, VOLUME_MOUNTS)]
    for list_name, noun in _CONTAINER_LISTS:
        containers = spec.get(list_name)
        if not isinstance(containers, list):
            continue
        for index, container in enumerate(containers):
            if not isinstance(container, dict):
                continue
            label = f"{noun} {container.get('name')!r}"
            for field, prepared in per_container:
                current = container.get(field)
                merged = merge_prepared(prepared, _items(current), label)
                if merged.added or merged.conflicts:
                    merges.append((("spec", list_name, index, field), current, merged))

    conflicts = tuple(c for _, _, merged in merges for c in merged.conflicts)
    if conflicts:
        return Outcome(
            action="conflict",
            reason=f"{len(conflicts)} conflict(s); no preset applied",
            pod=pod,
            conflicts=conflicts,
            mismatches=tuple(mismatches),
        )

    patch: list[PatchOp] = []
    mutated = _Copier(pod)
    if not isinstance(pod.get("spec"), dict) and any(m.added for _, _, m in merges):
        # Only pod-level lists can be added without containers; their parent must exist first.
        patch.append({"op": "add", "path": "/spec", "value": {}})  # the copier makes the {} itself
    for path, current, merged in merges:
        if merged.added:
            _append(patch, mutated, path, current, merged.added)
    annotations = metadata.get("annotations")
    wanted = {annotation_key(p.name): p.resource_version for p in matched}
    if not isinstance(annotations, dict):
        if not isinstance(pod.get("metadata"), dict):
            patch.append({"op": "add", "path": "/metadata", "value": {"annotations": wanted}})
        else:
            patch.append({"op": "add", "path": "/metadata/annotations", "value": wanted})
        mutated.set(("metadata", "annotations"), dict(wanted))
    else:
        changed = {k: v for k, v in wanted.items() if annotations.get(k) != v}
        for key, value in changed.items():
            patch.append({"op": "add", "path": "/metadata/annotations/" + escape(key), "value": value})
        if changed:
            mutated.set(("metadata", "annotations"), {**annotations, **changed})

    return Outcome(
        action="mutated" if patch else "unchanged",
        reason=f"applied {len(matched)} preset(s)" if patch else "already applied",
        pod=mutated.root if patch else pod,
        patch=tuple(patch),
        applied=tuple(p.name for p in matched),
        mismatches=tuple(mismatches),
        added=_count_added(matched, merges) if explain else None,
    )


def _by_name(preset: PodPreset) -> str:
    return preset.name


def _append(
    patch: list[PatchOp],
    mutated: _Copier,
    path: tuple[str | int, ...],
    current: Sequence[Any] | None,
    added: tuple[dict[str, Any], ...],
) -> None:
    # The parts are our own field names and list indices, never user data: nothing to escape.
    pointer = "/" + "/".join(map(str, path))
    if isinstance(current, list):
        patch.extend({"op": "add", "path": pointer + "/-", "value": item} for item in added)
        mutated.set(path, [*current, *added])
    else:
        patch.append({"op": "add", "path": pointer, "value": list(added)})
        mutated.set(path, list(added))


def _count_added(
    matched: Sequence[PodPreset], merges: Sequence[tuple[tuple[str | int, ...], Sequence[Any] | None, Merged]]
) -> dict[str, dict[str, int]]:
    """How many items of each preset were injected somewhere, by field (identity of items)."""
    added_ids = {id(item) for _, _, merged in merges for item in merged.added}
    counts: dict[str, dict[str, int]] = {}
    for preset in matched:
        per_field = {
            "env": sum(id(i) in added_ids for i in preset.env),
            "envFrom": sum(id(i) in added_ids for i in preset.env_from),
            "volumeMounts": sum(id(i) in added_ids for i in preset.volume_mounts),
            "volumes": sum(id(i) in added_ids for i in preset.volumes),
            "tolerations": sum(id(i) in added_ids for i in preset.tolerations),
        }
        counts[preset.name] = per_field
    return counts


class _Copier:
    """Copy-on-write of the pod along the paths we change; untouched subtrees are shared."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root: dict[str, Any] = dict(root)
        self._copies: dict[tuple[str | int, ...], Any] = {(): self.root}
        """Every node already copied, by path: a container's second list finds it at once."""

    def set(self, path: tuple[str | int, ...], value: object) -> None:
        self._node(path[:-1])[path[-1]] = value

    def _node(self, path: tuple[str | int, ...]) -> Any:
        node = self._copies.get(path)
        if node is None:
            parent = self._node(path[:-1])
            part = path[-1]
            child = parent.get(part) if isinstance(parent, dict) else parent[part]
            node = list(child) if isinstance(child, list) else dict(child) if isinstance(child, dict) else {}
            parent[part] = node
            self._copies[path] = node
        return node


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
