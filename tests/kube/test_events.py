"""Conflict Events: what they say, what they are about, and that recording never blocks."""

from __future__ import annotations

import threading
from typing import Any

from support.presets import cluster_preset
from support.reviews import admission_review

from presets.admission import PresetIndex, admit
from presets.model import parse_preset
from webhook.observe.events import EventRecorder, conflict_events

PRESET = parse_preset(
    {
        "apiVersion": "podpreset.dev/v1",
        "kind": "PodPreset",
        "metadata": {"name": "logging", "namespace": "team-a", "resourceVersion": "3"},
        "spec": {"env": [{"name": "LOG_LEVEL", "value": "info"}]},
    },
    source="t",
    document=1,
    default_namespace="team-a",
)
INDEX = PresetIndex.build([PRESET])


def review(*, dry_run: bool = False, env_value: str = "debug", **metadata: Any) -> dict[str, Any]:
    pod = {
        "metadata": metadata,
        "spec": {
            "containers": [{"name": "app", "image": "x", "env": [{"name": "LOG_LEVEL", "value": env_value}]}]
        },
    }
    return admission_review(pod, uid="u1", namespace="team-a", dry_run=dry_run)


def test_a_conflict_of_a_named_pod_is_an_event_on_that_pod_without_values() -> None:
    (event,) = conflict_events(admit(review(name="web-1"), INDEX))
    assert event["type"] == "Warning"
    assert event["reason"] == "PodPresetConflict"
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "web-1",
        "namespace": "team-a",
    }
    assert event["metadata"] == {
        "generateName": "web-1.",
        "namespace": "team-a",
        "annotations": {
            "podpreset.dev/pod": "web-1",
            "podpreset.dev/field": "container 'app': env 'LOG_LEVEL'",
        },
    }
    assert event["related"] == {
        "apiVersion": "podpreset.dev/v1",
        "kind": "PodPreset",
        "name": "logging",
        "namespace": "team-a",
    }
    assert "logging" in event["message"] and "LOG_LEVEL" in event["message"]
    assert "debug" not in event["message"] and "info" not in event["message"]


def test_a_conflict_of_a_controlled_pod_is_an_event_on_its_controller_naming_the_pod() -> None:
    owners = [
        {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "x"},
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web-7d9f",
            "uid": "u-rs",
            "controller": True,
        },
    ]
    (event,) = conflict_events(admit(review(generateName="web-7d9f-", ownerReferences=owners), INDEX))
    assert event["involvedObject"] == {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "web-7d9f",
        "namespace": "team-a",
        "uid": "u-rs",
    }
    assert event["message"].startswith("pod web-7d9f-: ")
    assert event["metadata"]["generateName"] == "web-7d9f."


def test_a_pod_with_only_a_generate_name_gets_a_valid_event_name() -> None:
    (event,) = conflict_events(admit(review(generateName="web-"), INDEX))
    assert event["involvedObject"]["name"] == "web-"
    assert event["metadata"]["generateName"] == "web."


def test_no_events_for_dry_runs_or_without_conflicts() -> None:
    assert conflict_events(admit(review(name="web-1", dry_run=True), INDEX)) == []
    assert conflict_events(admit(review(name="web-1", env_value="info"), INDEX)) == []


def test_a_full_queue_drops_and_counts_and_never_blocks_the_caller() -> None:
    release = threading.Event()

    def stuck_client() -> Any:
        release.wait(10)  # an API server that does not answer
        raise ConnectionError("unreachable")

    recorder = EventRecorder(client_factory=stuck_client, capacity=2)
    decision = admit(review(name="web-1"), INDEX)
    for _ in range(10):  # would hang here if recording waited for the API server
        recorder.record_conflicts(decision)
    release.set()
    recorder.stop()

    # One taken by the stuck thread (at most), two queued, the rest dropped.
    assert 7 <= recorder.dropped <= 8


def test_a_refusal_by_a_reject_preset_is_an_event_saying_so_but_not_in_a_dry_run() -> None:
    strict = cluster_preset(
        "strict-logging", onConflict="Reject", env=[{"name": "LOG_LEVEL", "value": "info"}]
    )
    index = PresetIndex.build([strict])
    decision = admit(review(name="web-1"), index)
    assert decision.response["response"]["allowed"] is False
    (event,) = conflict_events(decision)
    assert "clusterpodpreset 'strict-logging'" in event["message"]
    assert "the pod was rejected (onConflict: Reject)" in event["message"]
    assert "debug" not in event["message"] and "info" not in event["message"]
    assert conflict_events(admit(review(name="web-1", dry_run=True), index)) == []
