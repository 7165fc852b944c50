"""Presets created, changed and deleted in the cluster affect the next pod within
``NORMAL_BOUND`` (2 s) of the write: these waits are bounds the tests assert, not patience."""

from __future__ import annotations

from .conftest import (
    ANNOTATION_PREFIX,
    NORMAL_BOUND,
    annotations_of,
    create_pod,
    create_preset,
    env_of,
    pod_body,
    wait_for_pods_to,
)
from .rest import Kube

KEY = ANNOTATION_PREFIX + "tuning"


def test_a_created_changed_and_deleted_preset_affects_the_next_pod(admin: Kube, namespace: str) -> None:
    probe = pod_body("probe", labels={"app": "web"})
    path = f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets/tuning"

    created = create_preset(
        admin,
        namespace,
        "tuning",
        {"selector": {"matchLabels": {"app": "web"}}, "env": [{"name": "WORKERS", "value": "2"}]},
    )
    seen = wait_for_pods_to(
        admin,
        namespace,
        probe,
        "the created preset",
        lambda p: annotations_of(p).get(KEY) == created["metadata"]["resourceVersion"],
        timeout=NORMAL_BOUND,
    )
    assert env_of(seen["spec"]["containers"][0]) == {"WORKERS": "2"}

    changed = dict(created, spec=dict(created["spec"], env=[{"name": "WORKERS", "value": "8"}]))
    reply = admin.request("PUT", path, changed)
    assert reply.status == 200, reply
    version = reply.body["metadata"]["resourceVersion"]
    wait_for_pods_to(
        admin,
        namespace,
        probe,
        "the changed preset",
        lambda p: annotations_of(p).get(KEY) == version,
        timeout=NORMAL_BOUND,
    )
    create_pod(admin, namespace, pod_body("after-change", labels={"app": "web"}))
    pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/after-change")
    assert env_of(pod["spec"]["containers"][0]) == {"WORKERS": "8"}
    assert annotations_of(pod)[KEY] == version

    assert admin.delete(path).status == 200
    wait_for_pods_to(
        admin,
        namespace,
        probe,
        "the deleted preset to be gone",
        lambda p: KEY not in annotations_of(p),
        timeout=NORMAL_BOUND,
    )
    create_pod(admin, namespace, pod_body("after-delete", labels={"app": "web"}))
    pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/after-delete")
    assert "env" not in pod["spec"]["containers"][0]
    assert KEY not in annotations_of(pod)


def test_a_preset_applies_only_in_its_own_namespace(admin: Kube, namespace: str) -> None:
    other = namespace + "-other"
    from .conftest import ensure_namespace

    ensure_namespace(admin, other)
    create_preset(admin, other, "tuning", {"env": [{"name": "WORKERS", "value": "2"}]})
    create_preset(admin, namespace, "marker", {"env": [{"name": "MARK", "value": "1"}]})
    wait_for_pods_to(
        admin,
        other,
        pod_body("probe"),
        "the preset in the other namespace",
        lambda p: KEY in annotations_of(p),
    )
    wait_for_pods_to(
        admin,
        namespace,
        pod_body("probe"),
        "this namespace's marker preset",
        lambda p: ANNOTATION_PREFIX + "marker" in annotations_of(p),
    )

    create_pod(admin, namespace, pod_body("here"))
    pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/here")

    assert env_of(pod["spec"]["containers"][0]) == {"MARK": "1"}
    assert KEY not in annotations_of(pod)
