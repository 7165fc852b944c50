"""Conflicts (warning + Event), exclusion, UPDATE, server-side dry run."""

from __future__ import annotations

from typing import Any

from .conftest import (
    ANNOTATION_PREFIX,
    annotations_of,
    create_pod,
    create_preset,
    env_of,
    pod_body,
    wait_for_pods_to,
)
from .rest import Kube, eventually

PRESET = {"selector": {"matchLabels": {"app": "web"}}, "env": [{"name": "LOG_LEVEL", "value": "info"}]}
KEY = ANNOTATION_PREFIX + "logging"


def conflicting_pod(name: str, **metadata: Any) -> dict[str, Any]:
    pod = pod_body(
        name,
        labels={"app": "web"},
        containers=[
            {
                "name": "app",
                "image": "registry.k8s.io/pause:3.10",
                "env": [{"name": "LOG_LEVEL", "value": "debug"}],
            }
        ],
    )
    pod["metadata"].update(metadata)
    return pod


def preset_known(admin: Kube, namespace: str) -> None:
    create_preset(admin, namespace, "logging", PRESET)
    wait_for_pods_to(
        admin,
        namespace,
        pod_body("probe", labels={"app": "web"}),
        "the webhook to know the preset",
        lambda p: KEY in annotations_of(p),
    )


def conflict_events(admin: Kube, namespace: str) -> list[dict[str, Any]]:
    events = admin.get(f"/api/v1/namespaces/{namespace}/events")["items"]
    return [e for e in events if e.get("reason") == "PodPresetConflict"]


def test_a_conflict_leaves_the_pod_unchanged_warns_the_client_and_records_an_event_on_the_pod(
    admin: Kube, namespace: str
) -> None:
    preset_known(admin, namespace)

    sent = conflicting_pod("web-1")
    reply = create_pod(admin, namespace, sent)
    pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/web-1")

    assert env_of(pod["spec"]["containers"][0]) == {"LOG_LEVEL": "debug"}
    assert KEY not in annotations_of(pod)
    assert len(reply.warnings) == 1
    assert "logging" in reply.warnings[0] and "LOG_LEVEL" in reply.warnings[0]
    assert "info" not in reply.warnings[0] and "debug" not in reply.warnings[0]  # never values
    (event,) = eventually("the conflict Event", lambda: conflict_events(admin, namespace))
    assert event["type"] == "Warning"
    assert event["involvedObject"]["kind"] == "Pod"
    assert event["involvedObject"]["name"] == "web-1"
    assert "logging" in event["message"] and "LOG_LEVEL" in event["message"]


def test_the_conflict_event_of_a_controlled_pod_is_recorded_on_its_controller(
    admin: Kube, namespace: str
) -> None:
    preset_known(admin, namespace)
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "web-7d9f",
        "uid": "4b1c4f0e-0000-4000-8000-000000000001",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    body = conflicting_pod("", generateName="web-7d9f-", ownerReferences=[owner])

    create_pod(admin, namespace, body)

    (event,) = eventually("the conflict Event", lambda: conflict_events(admin, namespace))
    assert event["involvedObject"]["kind"] == "ReplicaSet"
    assert event["involvedObject"]["name"] == "web-7d9f"
    assert event["involvedObject"]["uid"] == owner["uid"]
    assert event["involvedObject"]["namespace"] == namespace
    assert "web-7d9f-" in event["message"]


def test_the_exclusion_annotation_keeps_a_matching_pod_unchanged(admin: Kube, namespace: str) -> None:
    preset_known(admin, namespace)
    body = pod_body(
        "excluded", labels={"app": "web"}, annotations={"podpreset.admission.kubernetes.io/exclude": "true"}
    )

    create_pod(admin, namespace, body)
    pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/excluded")

    assert "env" not in pod["spec"]["containers"][0]
    assert KEY not in annotations_of(pod)


def test_an_update_never_mutates_the_pod(admin: Kube, namespace: str) -> None:
    create_pod(admin, namespace, pod_body("web-1", labels={"app": "other"}))
    preset_known(admin, namespace)

    # The pod now matches the preset, through an UPDATE: it must stay as it is.
    path = f"/api/v1/namespaces/{namespace}/pods/web-1"
    reply = admin.request(
        "PATCH", path, {"metadata": {"labels": {"app": "web"}}}, content_type="application/merge-patch+json"
    )
    assert reply.status == 200, reply
    updated = admin.get(path)

    assert updated["metadata"]["labels"] == {"app": "web"}
    assert "env" not in updated["spec"]["containers"][0]
    assert KEY not in annotations_of(updated)


def test_a_server_side_dry_run_returns_the_mutated_pod_stores_nothing_and_records_no_event(
    admin: Kube, namespace: str
) -> None:
    preset_known(admin, namespace)

    mutated = create_pod(admin, namespace, pod_body("dry", labels={"app": "web"}), dry_run=True).body
    dry_conflict = create_pod(admin, namespace, conflicting_pod("dry-conflict"), dry_run=True)
    # A real conflict afterwards: once its Event is there, a dry-run Event would have been too.
    create_pod(admin, namespace, conflicting_pod("real-conflict"))

    assert env_of(mutated["spec"]["containers"][0]) == {"LOG_LEVEL": "info"}
    assert KEY in annotations_of(mutated)
    assert admin.request("GET", f"/api/v1/namespaces/{namespace}/pods/dry").status == 404
    assert len(dry_conflict.warnings) == 1  # the dry run still warns the client
    events = eventually("the real conflict's Event", lambda: conflict_events(admin, namespace))
    assert [e["involvedObject"]["name"] for e in events] == ["real-conflict"]
