"""Preset status: what ``podpreset controller`` writes, computed from lists (pure).

The controller watches presets, namespaces, workloads, pods (metadata only) and the webhook's
conflict Events, and hands what it holds to ``compute_statuses``; this module decides, with the
webhook's own code, what each preset's ``status`` is, and ``status_change`` whether it differs
from what is stored. Nothing here talks to the API server.

- ``judge_preset``: the ``Valid`` condition: the same checks, in the same order, by which the
  webhook skips or refuses a preset (``preset_size_problem`` and ``parse_preset``, as
  ``parse_api_object`` runs them; ``protected_problems``; ``VolumeTypes.refused``).
- ``count_matches``: workloads whose pod template a preset selects, by the index and selection
  code admission uses (``PresetIndex.candidates``, ``select_presets``, ``skip_reason``).
- ``count_injected``: pods by the applied annotation they carry.
- ``conflict_field``: how a conflict's place is written on its Event, so that the status can
  show it without parsing messages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from presets.engine import skip_reason
from presets.limits import preset_size_problem
from presets.merge import Conflict
from presets.model import (
    ANNOTATION_NAME_PREFIXES,
    ANNOTATION_PREFIX,
    CLUSTER_KIND,
    KIND,
    InvalidPreset,
    Kind,
    PodPreset,
    Protected,
    VolumeTypes,
    parse_preset,
    protected_problems,
    volume_type_problems,
)
from presets.namespaces import NamespaceLabels, labels_of
from presets.selection import PresetIndex, select_presets

PresetKey = tuple[Kind, str, str]
"""(kind, namespace, name) of a preset; namespace "" for a ClusterPodPreset."""

WORKLOAD_TEMPLATES: Mapping[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
"""The workloads ``matchedWorkloads`` counts, and where each keeps its pod template."""

IGNORE_LABEL = "podpreset.dev/ignore"
"""A namespace with this label is left out by the webhook configuration: its pods are never sent."""
VALID = "Valid"
MAX_MESSAGE = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class Validity:
    """The ``Valid`` condition: True, or False with the reason the webhook skips or refuses it."""

    valid: bool
    reason: str
    message: str


ACCEPTED = Validity(
    valid=True, reason="Accepted", message="the webhook applies this preset to the pods it selects"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PresetState:
    """One preset object as the controller holds it."""

    key: PresetKey
    generation: int
    preset: PodPreset | None
    """Parsed as the webhook parses it; None when the webhook skips it as invalid."""
    validity: Validity
    status: Mapping[str, Any]
    """The status stored now (``{}`` before the controller first wrote one)."""

    @property
    def annotation_key(self) -> str:
        kind, _, name = self.key
        return ANNOTATION_PREFIX + ANNOTATION_NAME_PREFIXES[kind] + name


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """A workload's pod template, reduced to what selection reads."""

    namespace: str
    labels: Mapping[str, str]
    skipped: bool = False
    """The template carries the exclude (or mirror) annotation: the webhook leaves its pods alone."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConflictRecord:
    """One PodPresetConflict Event, as the webhook wrote it."""

    preset: PresetKey
    time: str
    pod: str
    field: str


def judge_preset(
    obj: Mapping[str, Any], *, max_bytes: int, protected: Protected, volume_types: VolumeTypes
) -> tuple[PodPreset | None, Validity]:
    """The preset the webhook would serve from ``obj`` (or None), and the ``Valid`` condition.

    In the webhook's order: too large (never parsed), invalid (``parse_preset``'s problems; the
    reason names the first problem's kind), then, for a preset it serves, a protected env name
    (every pod it selects gets a conflict) and a refused volume type (a PodPreset is left out)."""
    too_large = preset_size_problem(obj, max_bytes)
    if too_large:
        return None, Validity(valid=False, reason="TooLarge", message=f"the preset {too_large}")
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    namespace = str(metadata.get("namespace") or "")
    try:
        preset = parse_preset(dict(obj), source="", document=1, default_namespace=namespace)
    except InvalidPreset as exc:
        fields = [p.field for p in exc.problems]
        message = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in exc.problems)
        return None, Validity(valid=False, reason=_invalid_reason(fields), message=_clip(message))
    checks = (
        ("ProtectedEnvName", protected_problems(preset, protected),
         "the webhook treats it as a conflict in every pod it selects"),
        ("RefusedVolumeType", volume_type_problems(preset, volume_types),
         "the webhook leaves this preset out of every pod"),
    )  # fmt: skip
    for reason, found, effect in checks:
        if found:
            message = "; ".join(f"{f}: {m}" for f, m in found)
            return preset, Validity(valid=False, reason=reason, message=_clip(f"{message} ({effect})"))
    return preset, ACCEPTED


def _invalid_reason(fields: list[str]) -> str:
    first = fields[0] if fields else ""
    if first.startswith("metadata.name"):
        return "InvalidName"
    if first.startswith(("spec.selector", "spec.namespaceSelector")):
        return "InvalidSelector"
    return "InvalidSpec"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def admitted_namespace(namespace: str, labels: Mapping[str, str], left_out: frozenset[str]) -> bool:
    """Whether the webhook configuration sends this namespace's pods at all (deploy/: every
    namespace but ``left_out`` — kube-system and the webhook's own — and those labelled
    ``podpreset.dev/ignore``)."""
    return namespace not in left_out and IGNORE_LABEL not in labels


def count_matches(
    index: PresetIndex,
    workloads: Iterable[Workload],
    namespaces: NamespaceLabels,
    *,
    left_out: frozenset[str] = frozenset(),
) -> Counter[PresetKey]:
    """How many workloads' pod templates each preset selects, as admission would select them
    for a pod created from that template."""
    counts: Counter[PresetKey] = Counter()
    cluster = bool(index.cluster.presets)
    for workload in workloads:
        if workload.skipped:
            continue
        namespace_labels = labels_of(namespaces, workload.namespace)
        if not admitted_namespace(workload.namespace, namespace_labels, left_out):
            continue
        candidates = index.candidates(
            workload.namespace, workload.labels, namespace_labels if cluster else None
        )
        if not candidates:
            continue
        selection = select_presets(workload.labels, candidates, namespace_labels=namespace_labels)
        for preset in selection.matched:
            counts[(preset.kind, preset.namespace, preset.name)] += 1
    return counts


def workload_of(kind: str, obj: Mapping[str, Any]) -> Workload | None:
    """A workload object's template as ``count_matches`` reads it; None when it has none."""
    template: Any = obj
    for part in WORKLOAD_TEMPLATES.get(kind, ("-",)):
        template = template.get(part) if isinstance(template, Mapping) else None
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    if not isinstance(template, Mapping):
        return None
    template_metadata = template.get("metadata") if isinstance(template.get("metadata"), Mapping) else {}
    assert isinstance(template_metadata, Mapping)
    labels = template_metadata.get("labels")
    return Workload(
        namespace=str(metadata.get("namespace") or ""),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {},
        skipped=skip_reason(template) is not None,
    )


def applied_keys(annotations: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The applied annotations among a pod's annotations (the keys only; values are resourceVersions)."""
    if not annotations:
        return ()
    prefixes = tuple(ANNOTATION_PREFIX + p for p in ANNOTATION_NAME_PREFIXES.values())
    return tuple(sorted(k for k in annotations if k.startswith(prefixes)))


def count_injected(pods: Iterable[tuple[str, tuple[str, ...]]]) -> Counter[tuple[str, str]]:
    """(namespace, applied annotation key) → pods, from each pod's namespace and applied keys."""
    counts: Counter[tuple[str, str]] = Counter()
    for namespace, keys in pods:
        for key in keys:
            counts[(namespace, key)] += 1
    return counts


def injected_pods(state: PresetState, injected: Counter[tuple[str, str]], by_key: Mapping[str, int]) -> int:
    """Pods carrying the preset's annotation: in its namespace, or (ClusterPodPreset) anywhere."""
    kind, namespace, _ = state.key
    if kind == KIND:
        return injected.get((namespace, state.annotation_key), 0)
    return by_key.get(state.annotation_key, 0)


def conflict_field(conflict: Conflict) -> str:
    """Where a conflict is, for its Event and ``status.lastConflict.field``:
    ``container 'app': env 'LOG_LEVEL'``; names only, never values."""
    where = f"{conflict.container}: " if conflict.container else ""
    return f"{where}{conflict.field} {conflict.key}"


def preset_ref(kind: str, namespace: str, name: str) -> PresetKey | None:
    """A preset key from an Event's ``related`` reference; None when it names no preset."""
    if kind == KIND and namespace and name:
        return (KIND, namespace, name)
    if kind == CLUSTER_KIND and name:
        return (CLUSTER_KIND, "", name)
    return None


def summarize_conflicts(
    records: Iterable[ConflictRecord],
) -> tuple[Counter[PresetKey], dict[PresetKey, ConflictRecord]]:
    """Conflicts per preset, and the newest of each (by time, then pod and field, for a stable pick)."""
    counts: Counter[PresetKey] = Counter()
    newest: dict[PresetKey, ConflictRecord] = {}
    for record in records:
        counts[record.preset] += 1
        best = newest.get(record.preset)
        if best is None or (record.time, record.pod, record.field) > (best.time, best.pod, best.field):
            newest[record.preset] = record
    return counts, newest


def desired_status(
    state: PresetState,
    *,
    matched: int,
    injected: int,
    conflicts: int,
    last_conflict: ConflictRecord | None,
    now: str,
) -> dict[str, Any]:
    """The status to store, keeping the ``Valid`` condition's lastTransitionTime when its status
    has not changed (as Kubernetes conditions do)."""
    validity = state.validity
    status = "True" if validity.valid else "False"
    previous = _condition(state.status, VALID)
    since = previous.get("lastTransitionTime") if previous.get("status") == status else None
    condition = {
        "type": VALID,
        "status": status,
        "reason": validity.reason,
        "message": validity.message,
        "lastTransitionTime": since or now,
        "observedGeneration": state.generation,
    }
    return {
        "observedGeneration": state.generation,
        "conditions": [condition],
        "matchedWorkloads": matched,
        "injectedPods": injected,
        "conflicts": conflicts,
        "lastConflict": (
            {"time": last_conflict.time, "pod": last_conflict.pod, "field": last_conflict.field}
            if last_conflict is not None
            else None
        ),
    }


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return {}


def status_change(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether writing ``desired`` changes anything (an absent ``lastConflict`` equals null)."""
    keys = set(current) | set(desired)
    return any(current.get(k) != desired.get(k) for k in keys)


def compute_statuses(
    states: Iterable[PresetState],
    workloads: Iterable[Workload],
    pods: Iterable[tuple[str, tuple[str, ...]]],
    conflicts: Iterable[ConflictRecord],
    namespaces: NamespaceLabels,
    *,
    now: str,
    left_out: frozenset[str] = frozenset(),
) -> dict[PresetKey, dict[str, Any]]:
    """The status of every preset whose stored status differs from what it should be now."""
    held = list(states)
    index = PresetIndex.build(s.preset for s in held if s.preset is not None)
    matches = count_matches(index, workloads, namespaces, left_out=left_out)
    injected = count_injected(pods)
    by_key: Counter[str] = Counter()
    for (_, key), count in injected.items():
        by_key[key] += count
    conflict_counts, newest = summarize_conflicts(conflicts)
    changed: dict[PresetKey, dict[str, Any]] = {}
    for state in held:
        desired = desired_status(
            state,
            matched=matches.get(state.key, 0),
            injected=injected_pods(state, injected, by_key),
            conflicts=conflict_counts.get(state.key, 0),
            last_conflict=newest.get(state.key),
            now=now,
        )
        if status_change(state.status, desired):
            changed[state.key] = desired
    return changed
