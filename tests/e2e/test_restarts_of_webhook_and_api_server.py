"""The webhook stopped and restarted, the API server restarted.

Runs last (conftest.RUN_LAST): it disturbs the session's cluster, then leaves it working again.
"""

from __future__ import annotations

import time

import pytest

from .conftest import (
    ANNOTATION_PREFIX,
    RECOVERY_BOUND,
    Cluster,
    annotations_of,
    create_pod,
    create_preset,
    env_of,
    pod_body,
    wait_for_pods_to,
)
from .rest import Kube, eventually

KEY = ANNOTATION_PREFIX + "defaults"


def test_with_the_webhook_down_pods_are_still_created_unmutated_and_it_recovers_when_back(
    cluster: Cluster, admin: Kube, namespace: str
) -> None:
    create_preset(admin, namespace, "defaults", {"env": [{"name": "REGION", "value": "eu"}]})
    wait_for_pods_to(admin, namespace, pod_body("probe"), "the preset", lambda p: KEY in annotations_of(p))

    cluster.stop_webhook()
    try:
        create_pod(admin, namespace, pod_body("while-down"))
        pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/while-down")
        assert "env" not in pod["spec"]["containers"][0]
        assert KEY not in annotations_of(pod)
    finally:
        cluster.start_webhook()

    wait_for_pods_to(
        admin, namespace, pod_body("probe"), "the restarted webhook", lambda p: KEY in annotations_of(p)
    )
    create_pod(admin, namespace, pod_body("after-restart"))
    pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/after-restart")
    assert env_of(pod["spec"]["containers"][0]) == {"REGION": "eu"}


def test_after_an_api_server_restart_the_watch_resumes_and_new_presets_are_seen(
    cluster: Cluster, admin: Kube, namespace: str
) -> None:
    if not cluster.can_restart_apiserver:
        pytest.skip(
            "restarting the API server needs the local control plane or PODPRESET_E2E_RESTART_APISERVER "
            "(make e2e-cluster sets it; kind: not from the tests)"
        )
    create_preset(admin, namespace, "before", {"env": [{"name": "BEFORE", "value": "1"}]})
    wait_for_pods_to(
        admin,
        namespace,
        pod_body("probe"),
        "the first preset",
        lambda p: ANNOTATION_PREFIX + "before" in annotations_of(p),
    )

    cluster.restart_apiserver()
    eventually(
        "the API server to serve presets again",
        lambda: admin.get(f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets"),
        timeout=60,
    )
    create_preset(admin, namespace, "after", {"env": [{"name": "AFTER", "value": "1"}]})
    created = time.monotonic()

    wait_for_pods_to(
        admin,
        namespace,
        pod_body("probe"),
        "the preset created after the restart",
        lambda p: ANNOTATION_PREFIX + "after" in annotations_of(p),
        timeout=RECOVERY_BOUND,
    )
    print(f"after an API server restart: in effect {time.monotonic() - created:.2f}s after its creation")
    create_pod(admin, namespace, pod_body("after-api-restart"))
    pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/after-api-restart")
    assert env_of(pod["spec"]["containers"][0]) == {"BEFORE": "1", "AFTER": "1"}
