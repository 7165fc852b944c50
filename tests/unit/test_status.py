"""Preset status from lists: validity as the webhook judges it, matches, injected pods, conflicts."""

from __future__ import annotations

from typing import Any

import pytest

from presets.admission import PresetIndex
from presets.merge import Conflict
from presets.model import (
    ANY_VOLUME_TYPES,
    DEFAULT_PROTECTED,
    DEFAULT_VOLUME_TYPES,
    parse_api_object,
)
from presets.status import (
    ConflictRecord,
    PresetState,
    Workload,
    applied_keys,
    compute_statuses,
    conflict_field,
    count_matches,
    desired_status,
    judge_preset,
    summarize_conflicts,
    workload_of,
)

JUDGED = {"max_bytes": 256 * 1024, "protected": DEFAULT_PROTECTED, "volume_types": DEFAULT_VOLUME_TYPES}


def obj(
    name: str, spec: dict[str, Any], *, kind: str = "PodPreset", namespace: str = "team", generation: int = 1
):
    metadata: dict[str, Any] = {"name": name, "generation": generation}
    if kind == "PodPreset":
        metadata["namespace"] = namespace
    return {"apiVersion": "podpreset.dev/v1", "kind": kind, "metadata": metadata, "spec": spec}


ENV = [{"name": "LOG_LEVEL", "value": "info"}]


@pytest.mark.parametrize(
    ("document", "max_bytes", "reason", "words"),
    [
        pytest.param(obj("ok", {"env": ENV}), None, "Accepted", "applies", id="valid"),
        pytest.param(obj("ok", {"env": ENV}), 50, "TooLarge", "over the limit", id="too-large"),
        pytest.param(obj("x" * 54, {"env": ENV}), None, "InvalidName", "metadata.name", id="name-too-long"),
        pytest.param(
            obj("sel", {"selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}, "env": ENV}),
            None,
            "InvalidSelector",
            "spec.selector",
            id="bad-selector",
        ),
        pytest.param(obj("empty", {}), None, "InvalidSpec", "spec", id="injects-nothing"),
        pytest.param(
            obj("pre", {"env": [{"name": "LD_PRELOAD", "value": "x"}]}),
            None,
            "ProtectedEnvName",
            "LD_PRELOAD",
            id="protected-name",
        ),
        pytest.param(
            obj("host", {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}),
            None,
            "RefusedVolumeType",
            "hostPath",
            id="refused-volume-type",
        ),
        pytest.param(
            obj("host", {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, kind="ClusterPodPreset"),
            None,
            "Accepted",
            "applies",
            id="cluster-preset-may-inject-hostPath",
        ),
    ],
)
def test_the_valid_condition_names_why_the_webhook_skips_a_preset(document, max_bytes, reason, words) -> None:
    judged = {**JUDGED, "max_bytes": max_bytes or JUDGED["max_bytes"]}
    preset, validity = judge_preset(document, **judged)
    assert validity.reason == reason
    assert validity.valid is (reason == "Accepted")
    assert words in validity.message
    # The webhook serves exactly the presets the judge parses (the same code, in the same order).
    served, _ = parse_api_object(document, max_bytes=judged["max_bytes"])
    assert (served is None) is (preset is None)


def test_volume_types_allowed_by_the_setting_are_accepted() -> None:
    document = obj("host", {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]})
    _, validity = judge_preset(document, **{**JUDGED, "volume_types": ANY_VOLUME_TYPES})
    assert validity.reason == "Accepted"


def state(document: dict[str, Any], status: dict[str, Any] | None = None) -> PresetState:
    preset, validity = judge_preset(document, **JUDGED)
    metadata = document["metadata"]
    kind = document["kind"]
    return PresetState(
        key=(kind, metadata.get("namespace", ""), metadata["name"]),
        generation=metadata["generation"],
        preset=preset,
        validity=validity,
        status=status or {},
    )


def deployment(namespace: str, labels: dict[str, str], annotations: dict[str, str] | None = None):
    return {
        "metadata": {"name": "d", "namespace": namespace},
        "spec": {"template": {"metadata": {"labels": labels, "annotations": annotations or {}}}},
    }


def test_workloads_are_read_from_their_pod_templates() -> None:
    cron = {
        "metadata": {"namespace": "team"},
        "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"app": "batch"}}}}}},
    }
    assert workload_of("CronJob", cron) == Workload(namespace="team", labels={"app": "batch"})
    excluded = workload_of(
        "Deployment",
        deployment("team", {"app": "web"}, {"podpreset.admission.kubernetes.io/exclude": "true"}),
    )
    assert excluded is not None and excluded.skipped
    assert workload_of("Deployment", {"metadata": {}, "spec": {}}) is None


def test_matches_use_admissions_selection_namespaces_and_skip_rules() -> None:
    web = state(obj("web", {"selector": {"matchLabels": {"app": "web"}}, "env": ENV}))
    everything = state(
        obj(
            "blue",
            {"namespaceSelector": {"matchLabels": {"team": "blue"}}, "env": ENV},
            kind="ClusterPodPreset",
        )
    )
    index = PresetIndex.build([s.preset for s in (web, everything) if s.preset is not None])
    workloads = [
        Workload(namespace="team", labels={"app": "web"}),
        Workload(namespace="team", labels={"app": "web"}, skipped=True),
        Workload(namespace="team", labels={"app": "db"}),
        Workload(namespace="other", labels={"app": "web"}),
        Workload(namespace="quiet", labels={"app": "web"}),
        Workload(namespace="kube-system", labels={}),
    ]
    namespaces = {
        "team": {"team": "blue"},
        "other": {"team": "red"},
        "quiet": {"team": "blue", "podpreset.dev/ignore": ""},
        "kube-system": {"team": "blue"},
    }
    counts = count_matches(index, workloads, namespaces, left_out=frozenset({"kube-system"}))
    assert counts[("PodPreset", "team", "web")] == 1
    assert counts[("ClusterPodPreset", "", "blue")] == 2


def test_applied_keys_are_the_preset_annotations_only() -> None:
    annotations = {
        "podpreset.admission.kubernetes.io/podpreset-web": "12",
        "podpreset.admission.kubernetes.io/clusterpodpreset-blue": "3",
        "podpreset.admission.kubernetes.io/exclude": "false",
        "other": "x",
    }
    assert applied_keys(annotations) == (
        "podpreset.admission.kubernetes.io/clusterpodpreset-blue",
        "podpreset.admission.kubernetes.io/podpreset-web",
    )
    assert applied_keys(None) == ()


def test_injected_pods_count_a_podpreset_in_its_namespace_and_a_cluster_preset_everywhere() -> None:
    web = state(obj("web", {"env": ENV}))
    blue = state(obj("blue", {"env": ENV}, kind="ClusterPodPreset"))
    pods = [
        ("team", ("podpreset.admission.kubernetes.io/podpreset-web",)),
        (
            "team",
            (
                "podpreset.admission.kubernetes.io/podpreset-web",
                "podpreset.admission.kubernetes.io/clusterpodpreset-blue",
            ),
        ),
        (
            "other",
            (
                "podpreset.admission.kubernetes.io/podpreset-web",
                "podpreset.admission.kubernetes.io/clusterpodpreset-blue",
            ),
        ),
    ]
    changed = compute_statuses([web, blue], [], pods, [], {}, now="2026-12-06T00:00:00Z")
    assert changed[web.key]["injectedPods"] == 2
    assert changed[blue.key]["injectedPods"] == 2


def record(preset: str, time: str, pod: str) -> ConflictRecord:
    return ConflictRecord(
        preset=("PodPreset", "team", preset), time=time, pod=pod, field="container 'app': env 'A'"
    )


def test_conflicts_are_counted_per_preset_and_the_newest_kept() -> None:
    counts, newest = summarize_conflicts(
        [
            record("web", "2026-12-06T10:00:00Z", "a"),
            record("web", "2026-12-06T11:00:00Z", "b"),
            record("db", "2026-12-06T09:00:00Z", "c"),
        ]
    )
    assert counts[("PodPreset", "team", "web")] == 2
    assert newest[("PodPreset", "team", "web")].pod == "b"
    assert counts[("PodPreset", "team", "db")] == 1


def test_conflict_field_names_container_field_and_key() -> None:
    conflict = Conflict(preset="web", field="env", key="'LOG_LEVEL'", container="init container 'setup'")
    assert conflict_field(conflict) == "init container 'setup': env 'LOG_LEVEL'"
    assert conflict_field(Conflict(preset="web", field="volumes", key="'data'")) == "volumes 'data'"


def test_the_condition_keeps_its_transition_time_until_its_status_flips() -> None:
    valid = state(obj("web", {"env": ENV}))
    first = desired_status(valid, matched=0, injected=0, conflicts=0, last_conflict=None, now="T1")
    assert first["conditions"][0]["lastTransitionTime"] == "T1"
    again = desired_status(
        state(obj("web", {"env": ENV}, generation=2), first),
        matched=1,
        injected=0,
        conflicts=0,
        last_conflict=None,
        now="T2",
    )
    assert again["conditions"][0]["lastTransitionTime"] == "T1"
    assert again["conditions"][0]["observedGeneration"] == 2
    flipped = desired_status(
        state(obj("web", {"env": [{"name": "LD_PRELOAD", "value": "x"}]}, generation=3), again),
        matched=1,
        injected=0,
        conflicts=0,
        last_conflict=None,
        now="T3",
    )
    assert flipped["conditions"][0]["lastTransitionTime"] == "T3"
    assert flipped["conditions"][0]["status"] == "False"


def test_only_presets_whose_status_differs_are_written() -> None:
    web = state(obj("web", {"env": ENV}))
    changed = compute_statuses([web], [], [], [], {}, now="T1")
    assert set(changed) == {web.key}
    stored = state(obj("web", {"env": ENV}), changed[web.key])
    assert compute_statuses([stored], [], [], [], {}, now="T2") == {}
    assert compute_statuses(
        [stored], [], [("team", ("podpreset.admission.kubernetes.io/podpreset-web",))], [], {}, now="T2"
    )
