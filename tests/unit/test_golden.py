"""Golden cases: one folder per scenario under ``tests/golden``, driven through ``admit``.

Each folder holds ``pod.yaml`` (the pod as the API server sends it), ``presets.yaml`` (PodPreset
and ClusterPodPreset documents, and Namespace documents giving namespace labels) and
``expected.yaml`` (the pod after admission), and optionally ``request.yaml`` (overrides for the
AdmissionReview request) and ``conflicts.yaml`` (the conflicts the outcome must report, each a
mapping of ``preset``, ``field``, ``key`` and optionally ``container``/``other``), ``warnings.yaml``
(further admission warnings that are not conflicts, each a substring of one), and ``settings.yaml``
(server settings other than the defaults: ``namespacedVolumeTypes``, a list).

The expectations were written by hand from the original plugin's semantics
(``podpreset-semantics.md``) and DESIGN.md's deviations, never produced by the engine. Every case
also checks that the input is not mutated, that the outcome's pod is the patched pod, and that a
second admission of the result gives no patch (the webhook is reinvoked with ``IfNeeded``).
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml
from support.reviews import admission_review

from presets.admission import Decision, PresetIndex, admit
from presets.model import DEFAULT_VOLUME_TYPES, VolumeTypes
from presets.namespaces import NamespaceLabels
from webhook.sources.documents import load_presets

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
CASES = sorted(p for p in GOLDEN.iterdir() if p.is_dir())
DEFAULT_NAMESPACE = "namespace"
"""The original unit tests built their admission attributes with namespace "namespace"."""


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_index(case: Path) -> tuple[PresetIndex, NamespaceLabels]:
    """The case's presets and namespace labels through the same loader as the CLI and the file source."""
    result = load_presets([str(case / "presets.yaml")], DEFAULT_NAMESPACE)
    assert not result.problems, [str(p) for p in result.problems]
    return PresetIndex.build(result.presets), result.namespaces


def load_volume_types(case: Path) -> VolumeTypes:
    """``--namespaced-volume-types`` for the case: its ``settings.yaml``, else the server's default."""
    path = case / "settings.yaml"
    settings = load_yaml(path) if path.exists() else {}
    types = settings.get("namespacedVolumeTypes")
    return DEFAULT_VOLUME_TYPES if types is None else VolumeTypes.parse(types)


def make_review(pod: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    operation = overrides.get("operation", "CREATE")
    review = admission_review(
        pod, uid="0a1b2c3d-golden", namespace=DEFAULT_NAMESPACE, operation=operation, username="golden"
    )
    request = review["request"]
    request.update(overrides)
    if request["operation"] in ("DELETE", "CONNECT") and "object" not in overrides:
        request["object"], request["oldObject"] = None, pod
    return review


def decoded_patch(decision: Decision) -> list[dict[str, Any]]:
    response = decision.response["response"]
    if "patch" not in response:
        assert "patchType" not in response
        return []
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    assert ops, "a patch is only sent when it is non-empty"
    return ops


def conflict_fields(wanted: list[dict[str, Any]]) -> tuple[str, ...]:
    """Compared on preset, field, key and container; on ``other`` too when any entry names it."""
    fields = ("preset", "field", "key", "container")
    return (*fields, "other") if any("other" in w for w in wanted) else fields


def normalized(entries: list[dict[str, Any]], fields: tuple[str, ...]) -> list[str]:
    return sorted(repr(tuple(e.get(f) for f in fields)) for e in entries)


def env_values(index: PresetIndex) -> list[str]:
    return [
        var["value"]
        for group in (*index.by_namespace.values(), index.cluster_presets)
        for preset in group
        for var in preset.env
        if isinstance(var.get("value"), str) and len(var["value"]) > 3
    ]


@pytest.mark.parametrize("case", CASES, ids=[p.name for p in CASES])
def test_golden_case(case: Path) -> None:
    pod = load_yaml(case / "pod.yaml")
    expected = load_yaml(case / "expected.yaml")
    overrides = load_yaml(case / "request.yaml") if (case / "request.yaml").exists() else {}
    index, namespaces = load_index(case)
    volume_types = load_volume_types(case)
    review = make_review(pod, overrides)
    pristine = copy.deepcopy(review)

    decision = admit(review, index, namespaces=namespaces, namespaced_volume_types=volume_types)

    assert review == pristine, "admit must never mutate its input"
    assert decision.response["response"]["uid"] == "0a1b2c3d-golden"
    assert decision.response["response"]["allowed"] is True
    ops = decoded_patch(decision)
    result = jsonpatch.apply_patch(pod, ops) if ops else copy.deepcopy(pod)
    assert result == expected
    if decision.outcome is not None:
        assert decision.outcome.pod == result

    wanted_conflicts = load_yaml(case / "conflicts.yaml") if (case / "conflicts.yaml").exists() else []
    got = decision.outcome.conflicts if decision.outcome else ()
    fields = conflict_fields(wanted_conflicts)
    got_entries = [{f: getattr(c, f) for f in fields} for c in got]
    assert normalized(got_entries, fields) == normalized(wanted_conflicts, fields), [
        c.describe() for c in got
    ]
    wanted_warnings = load_yaml(case / "warnings.yaml") if (case / "warnings.yaml").exists() else []
    others = [w for w in decision.warnings if w not in {c.warning() for c in got}]
    assert len(others) == len(wanted_warnings), others
    for text in wanted_warnings:
        assert any(text in w for w in others), (text, others)
    assert len(decision.warnings) == len(wanted_conflicts) + len(wanted_warnings)
    if wanted_warnings and not wanted_conflicts:
        assert "warnings" in decision.response["response"]
    elif wanted_conflicts:
        assert decision.outcome is not None
        if decision.outcome.verdict == "skip-all":
            assert ops == [], "a conflict of a SkipAll preset leaves the pod unchanged"
        assert "warnings" in decision.response["response"]
        for warning in decision.warnings:
            assert "\n" not in warning
            for secret in env_values(index):
                assert secret not in warning, "a warning must never print an env value"
    else:
        assert "warnings" not in decision.response["response"]

    again = admit(
        make_review(result, overrides), index, namespaces=namespaces, namespaced_volume_types=volume_types
    )
    assert decoded_patch(again) == [], "admitting our own output again must change nothing"
