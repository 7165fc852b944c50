"""Rollout of changed presets: what a workload's pod template gets from the presets, as a hash.

A workload (Deployment, StatefulSet, DaemonSet) that opts in (annotation ``podpreset.dev/rollout:
"true"``, or the label on its namespace) is rolled when what its pods would get from the presets
changes. ``fingerprint`` admits the pod template as a pod of the workload's namespace would be
admitted, with the engine itself (``apply_presets``), and keeps, per matching preset, a digest of
the spec fields that decide what it injects and the outcome the engine gave it (applied, in
conflict, left out by its policy, refused for its volume types, not applied because another
preset's conflict skipped them all). Presets with ``spec.rollout: Never`` are recorded by name
only and left out of the hash. A preset that does not match, and every edit of a matching preset
that the digest does not cover (its metadata, labels, selector while it still matches,
``resourceVersion``), leave the fingerprint as it was.

``decide`` compares a workload's fingerprint with the one recorded in its own metadata
(``podpreset.dev/rollout-state``) and says what to do: record it (first sight, or the workload's
template changed, so it rolls or rolled with today's presets anyway), roll it (write
``podpreset.dev/presets-hash`` into the template, as ``kubectl rollout restart`` writes its
timestamp), hold it (its pods would be refused by an ``onConflict: Reject`` preset), or nothing.
``rollout_patch`` is the JSON merge patch that does it. docs/semantics.md says why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from presets.engine import apply_presets
from presets.model import DEFAULT_PROTECTED, DEFAULT_VOLUME_TYPES, PodPreset, Protected, VolumeTypes
from presets.namespaces import NO_NAMESPACES, NamespaceLabels, labels_of
from presets.selection import PresetIndex

OPT_IN = "podpreset.dev/rollout"
"""The workload annotation (or namespace label) that opts a workload in, with the value ``"true"``."""
HASH_ANNOTATION = "podpreset.dev/presets-hash"
"""The pod-template annotation a roll writes: changing it rolls the workload."""
STATE_ANNOTATION = "podpreset.dev/rollout-state"
"""The workload's own metadata annotation holding the recorded fingerprint (never rolls it)."""
IGNORE_LABEL = "podpreset.dev/ignore"
"""A namespace with this label is never sent to the webhook (deploy/'s webhook configuration)."""
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
NEVER = "never"
HASH_LENGTH = 16
DIGEST_LENGTH = 12

Effect = Literal["applied", "kept-existing", "skipped-preset", "conflict", "not-applied", "refused"]
"""What admission does with one matching preset: the engine's status, ``not-applied`` when
another preset's conflict left the pod unchanged or refused, ``refused`` for its volume types."""
Action = Literal["none", "record", "roll", "hold"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fingerprint:
    """What a pod template gets from the presets, per matching preset, and its hash."""

    entries: tuple[tuple[str, str], ...]
    """``(preset key, "<digest>/<effect>")`` sorted by key; ``"never"`` for ``rollout: Never``
    presets. The key is ``podpreset/<name>`` or ``clusterpodpreset/<name>``."""
    template: str
    """A digest of the pod template itself, without ``podpreset.dev/presets-hash``."""
    refused: bool = False
    """The pods would be refused (an ``onConflict: Reject`` preset conflicts)."""

    @property
    def hash(self) -> str:
        """The value for ``podpreset.dev/presets-hash``: the template's digest and every entry but
        the ``Never`` ones (the template's digest makes each roll write a value it never had)."""
        lines = [f"template={self.template}"]
        lines.extend(f"{key}={value}" for key, value in self.entries if value != NEVER)
        return _sha256("\n".join(lines))[:HASH_LENGTH]

    def record(self) -> str:
        """The ``podpreset.dev/rollout-state`` annotation value (compact JSON)."""
        return json.dumps(
            {"hash": self.hash, "template": self.template, "presets": dict(self.entries)},
            separators=(",", ":"),
            sort_keys=True,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What to do with one workload, why, and the fingerprint it leads to."""

    action: Action
    reason: str
    changes: tuple[str, ...] = ()
    """One line per preset whose entry changed: ``podpreset db changed``, ``... now matches``."""
    fingerprint: Fingerprint | None = None


def preset_key(preset: PodPreset) -> str:
    return f"{preset.kind.lower()}/{preset.name}"


def preset_digest(preset: PodPreset) -> str:
    """A digest of what decides what the preset injects and how: every spec field but the
    selectors (whether it matches is the entry's presence) and ``rollout``."""
    selector = preset.container_selector
    spec = {
        "env": preset.env,
        "envFrom": preset.env_from,
        "volumes": preset.volumes,
        "volumeMounts": preset.volume_mounts,
        "tolerations": preset.tolerations,
        "imagePullSecrets": preset.image_pull_secrets,
        "containerSelector": [selector.include, selector.exclude, selector.init_containers],
        "nodeSelector": preset.node_selector,
        "podMetadata": [preset.labels, preset.annotations],
        "priority": preset.priority,
        "onConflict": preset.on_conflict,
    }
    return _sha256(json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str))[:DIGEST_LENGTH]


def template_digest(template: Mapping[str, Any]) -> str:
    """A digest of the pod template as stored, leaving out the annotation a roll writes."""
    metadata = template.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("annotations"), dict):
        annotations = {k: v for k, v in metadata["annotations"].items() if k != HASH_ANNOTATION}
        trimmed = {k: v for k, v in metadata.items() if k != "annotations"}
        if annotations:  # no annotations left is the template as it was before the first roll
            trimmed["annotations"] = annotations
        template = {**template, "metadata": trimmed}
    return _sha256(json.dumps(template, sort_keys=True, separators=(",", ":"), default=str))[:DIGEST_LENGTH]


def fingerprint(
    template: Mapping[str, Any],
    namespace: str,
    index: PresetIndex,
    *,
    namespaces: NamespaceLabels = NO_NAMESPACES,
    protected: Protected = DEFAULT_PROTECTED,
    namespaced_volume_types: VolumeTypes = DEFAULT_VOLUME_TYPES,
) -> Fingerprint:
    """Admit ``template`` as a pod of ``namespace`` with the engine, and fingerprint the outcome.

    ``protected`` and ``namespaced_volume_types`` must be the webhook's settings, so the
    outcome is the one its pods get."""
    digest = template_digest(template)
    if IGNORE_LABEL in labels_of(namespaces, namespace):
        return Fingerprint(entries=(), template=digest)
    pod = {"metadata": template.get("metadata") or {}, "spec": template.get("spec") or {}}
    outcome = apply_presets(
        pod,
        index.relevant(namespace),
        namespace=namespace,
        namespaces=namespaces,
        protected=protected,
        namespaced_volume_types=namespaced_volume_types,
    )
    effects: dict[str, tuple[PodPreset, Effect]] = {}
    for refusal in outcome.refusals:
        effects[preset_key(refusal.preset)] = (refusal.preset, "refused")
    for result in outcome.results:
        effect: Effect = result.status
        if outcome.verdict != "apply" and effect in ("applied", "kept-existing"):
            effect = "not-applied"
        effects[preset_key(result.preset)] = (result.preset, effect)
    entries = tuple(
        sorted(
            (key, NEVER if preset.rollout == "Never" else f"{preset_digest(preset)}/{effect}")
            for key, (preset, effect) in effects.items()
        )
    )
    return Fingerprint(entries=entries, template=digest, refused=outcome.action == "rejected")


def read_record(text: object) -> Fingerprint | None:
    """The fingerprint recorded in ``podpreset.dev/rollout-state``; None when absent or unreadable
    (treated as first sight)."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    presets, template = value.get("presets"), value.get("template")
    if not isinstance(presets, dict) or not isinstance(template, str):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in presets.items()):
        return None
    return Fingerprint(entries=tuple(sorted(presets.items())), template=template)


def changes(old: Fingerprint, new: Fingerprint) -> tuple[str, ...]:
    """One line per preset whose entry changed, leaving out moves to and from ``rollout: Never``
    (a preset that opts out never rolls, and neither does opting out or back in)."""
    before, after = dict(old.entries), dict(new.entries)
    found: list[str] = []
    for key in sorted(before.keys() | after.keys()):
        was, now = before.get(key), after.get(key)
        if was == now or NEVER in (was, now):
            continue
        name = key.replace("/", " ", 1)
        if was is None:
            found.append(f"{name} now applies to it ({_effect(now)})")
        elif now is None:
            found.append(f"{name} no longer matches it (or was deleted)")
        else:
            (old_digest, old_effect), (new_digest, new_effect) = _split(was), _split(now)
            parts = ["changed"] if old_digest != new_digest else []
            if old_effect != new_effect:
                parts.append(f"{old_effect} -> {new_effect}")
            found.append(f"{name} {', '.join(parts)}")
    return tuple(found)


def decide(workload: Mapping[str, Any], new: Fingerprint) -> Step:
    """What to do with ``workload`` (its metadata holds what was recorded) given its fingerprint now."""
    metadata = workload.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    recorded = read_record(
        (annotations or {}).get(STATE_ANNOTATION) if isinstance(annotations, dict) else None
    )
    if recorded is None:
        return Step(
            action="record",
            reason="first sight: its pods were admitted with today's presets; recorded, not rolled",
            fingerprint=new,
        )
    if recorded.template != new.template:
        return Step(
            action="record",
            reason="its pod template changed, so it rolls with today's presets anyway; recorded",
            fingerprint=new,
        )
    found = changes(recorded, new)
    if not found:
        if recorded.entries == new.entries:
            return Step(action="none", reason="no preset change affects it", fingerprint=new)
        return Step(
            action="record", reason="only presets with rollout: Never changed; recorded", fingerprint=new
        )
    if new.refused:
        return Step(
            action="hold",
            reason="not rolled: its new pods would be refused (an onConflict: Reject preset conflicts)",
            changes=found,
            fingerprint=new,
        )
    return Step(action="roll", reason="; ".join(found), changes=found, fingerprint=new)


def rollout_patch(step: Step, resource_version: str) -> dict[str, Any] | None:
    """The JSON merge patch for ``step`` (None when it writes nothing). ``resource_version`` makes
    it conditional: a workload changed since it was read (by someone else, or another pass) is
    not patched (409), and the next pass decides again."""
    if step.fingerprint is None or step.action not in ("record", "roll"):
        return None
    patch: dict[str, Any] = {
        "metadata": {
            "resourceVersion": resource_version,
            "annotations": {STATE_ANNOTATION: step.fingerprint.record()},
        }
    }
    if step.action == "roll":
        patch["spec"] = {"template": {"metadata": {"annotations": {HASH_ANNOTATION: step.fingerprint.hash}}}}
    return patch


def opted_in(workload: Mapping[str, Any], namespace_labels: Mapping[str, str]) -> bool:
    """The workload's own annotation decides when set (``"true"`` in, anything else out); else
    its namespace's label."""
    metadata = workload.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if isinstance(annotations, dict) and OPT_IN in annotations:
        return bool(annotations[OPT_IN] == "true")
    return namespace_labels.get(OPT_IN) == "true"


def _effect(entry: str | None) -> str:
    return _split(entry or "")[1]


def _split(entry: str) -> tuple[str, str]:
    digest, _, effect = entry.partition("/")
    return digest, effect


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
