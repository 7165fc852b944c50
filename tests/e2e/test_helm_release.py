"""The chart's release on the node cluster (``make e2e-cluster``'s Helm phase): hack/e2e-cluster.sh
has replaced the kustomize install with ``helm install podpreset charts/podpreset`` (certificates
made by the chart) and runs the webhook scenarios against it, then these: ``helm upgrade`` to
tests/e2e/helm/upgrade-values.yaml under pod-creation load, ``helm rollback``, ``helm uninstall``.

Deselected unless ``PODPRESET_E2E_HELM_RELEASE`` names the release (conftest.py).
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import pytest
from chart.helm import CHART, run_helm

from .conftest import (
    ANNOTATION_PREFIX,
    NAMESPACE,
    TOP,
    Cluster,
    annotations_of,
    create_preset,
    env_of,
    pod_body,
    wait_for_pods_to,
)
from .rest import Kube, eventually
from .test_in_cluster_deployment import Load, ca_bundle, preset_for_load, ready, rolled_out, webhook_pods

pytestmark = pytest.mark.helm_release

RELEASE = "podpreset"
UPGRADE_VALUES = TOP / "tests" / "e2e" / "helm" / "upgrade-values.yaml"
GUARDED = "PODPRESET_E2E_GUARDED"
FAIL_OPEN = re.compile(
    r'^apiserver_admission_webhook_fail_open_count\{[^}]*name="podpresets\.podpreset\.dev"[^}]*\} (\S+)$',
    re.M,
)


@pytest.fixture
def cluster(kubelet_cluster: Cluster) -> Cluster:
    return kubelet_cluster


def helm(cluster: Cluster, *args: str) -> str:
    done = run_helm(*args, "--kubeconfig", str(cluster.admin.kubeconfig), "--namespace", NAMESPACE)
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def failed_open(admin: Kube) -> float:
    """Calls to the webhook the API server let through after a failure (TLS, timeout, refused)."""
    reply = admin.request("GET", "/metrics", accept="text/plain")
    assert reply.status == 200, reply
    return sum(float(v) for v in FAIL_OPEN.findall(str(reply.body)))


def ready_replicas(admin: Kube, count: int) -> None:
    eventually(
        f"{count} ready webhook replicas and no other",
        lambda: len(pods := webhook_pods(admin)) == count and all(ready(p) for p in pods),
        timeout=180,
    )


def guarded_injected(pod: dict[str, Any]) -> bool:
    return GUARDED in env_of(pod["spec"]["containers"][0])


def test_the_webhook_runs_from_the_charts_release_with_the_charts_certificates(
    admin: Kube, cluster: Cluster
) -> None:
    assert '"status":"deployed"' in helm(cluster, "status", RELEASE, "-o", "json").replace(" ", "")
    deployment = admin.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/podpreset-webhook")
    assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    made_ca = admin.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/podpreset-webhook-ca")
    assert made_ca["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert ca_bundle(admin) == base64.b64decode(made_ca["data"]["tls.crt"]).decode()


def test_upgrade_under_load_then_rollback_then_uninstall(
    cluster: Cluster, admin: Kube, namespace: str
) -> None:
    key = preset_for_load(admin, namespace)
    create_preset(
        admin,
        namespace,
        "guarded",
        {"selector": {"matchLabels": {"guarded": "yes"}}, "env": [{"name": GUARDED, "value": "1"}]},
    )
    guarded = pod_body("guarded", labels={"guarded": "yes"})
    wait_for_pods_to(admin, namespace, guarded, f"the webhook to inject {GUARDED}", guarded_injected)
    bundle, failed_before = ca_bundle(admin), failed_open(admin)

    # The upgrade: a third replica, and every replica replaced (its arguments change).
    with Load(admin, namespace) as load:
        time.sleep(2)
        helm(
            cluster,
            "upgrade",
            RELEASE,
            str(CHART),
            "--values",
            str(UPGRADE_VALUES),
            "--wait",
            "--timeout=240s",
        )
        rolled_out(cluster)
        time.sleep(2)
    unmutated = load.unmutated(key)
    print(f"\nhelm upgrade: {len(load.created)} pods created under load, {len(unmutated)} unmutated")
    assert not load.errors, load.errors[:3]
    assert len(load.created) >= 20, len(load.created)
    assert unmutated == [], (
        f"{len(unmutated)} of {len(load.created)} pods created during the upgrade unmutated"
    )
    assert failed_open(admin) == failed_before, (
        "the API server failed calls to the webhook open (TLS or other)"
    )
    assert ca_bundle(admin) == bundle, "the upgrade changed the caBundle"
    ready_replicas(admin, 3)
    refused = wait_for_pods_to(
        admin, namespace, guarded, f"{GUARDED} to be protected", lambda p: not guarded_injected(p)
    )
    assert ANNOTATION_PREFIX + "guarded" not in annotations_of(refused)

    # The rollback: back to two replicas and the default protected names.
    with Load(admin, namespace) as back:
        time.sleep(2)
        helm(cluster, "rollback", RELEASE, "1", "--wait", "--timeout=240s")
        rolled_out(cluster)
        time.sleep(2)
    unmutated = back.unmutated(key)
    print(f"helm rollback: {len(back.created)} pods created under load, {len(unmutated)} unmutated")
    assert not back.errors, back.errors[:3]
    assert unmutated == [], (
        f"{len(unmutated)} of {len(back.created)} pods created during the rollback unmutated"
    )
    assert failed_open(admin) == failed_before, (
        "the API server failed calls to the webhook open (TLS or other)"
    )
    assert ca_bundle(admin) == bundle
    ready_replicas(admin, 2)
    wait_for_pods_to(admin, namespace, guarded, f"{GUARDED} to be injected again", guarded_injected)

    # The uninstall: nothing of the release is left but the CRDs and the presets.
    helm(cluster, "uninstall", RELEASE, "--wait", "--timeout=180s")
    instance = "app.kubernetes.io/instance=podpreset"
    for path in (
        f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
        f"/api/v1/namespaces/{NAMESPACE}/services",
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts",
        f"/api/v1/namespaces/{NAMESPACE}/secrets",
        f"/apis/policy/v1/namespaces/{NAMESPACE}/poddisruptionbudgets",
        f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/networkpolicies",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/roles",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/rolebindings",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    ):
        left = [o["metadata"]["name"] for o in admin.get(path, labelSelector=instance)["items"]]
        assert left == [], f"{path}: {left} left after helm uninstall"
    assert (
        admin.request(
            "GET", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/podpreset"
        ).status
        == 404
    )
    eventually("the webhook's pods to be gone", lambda: webhook_pods(admin) == [], timeout=120)
    for plural in ("podpresets", "clusterpodpresets"):
        admin.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.podpreset.dev")
    presets = admin.get(f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets")["items"]
    assert sorted(p["metadata"]["name"] for p in presets) == ["guarded", "load"]
