"""The install path under failurePolicy Fail (issue 16): hack/install.sh applies the webhook
configuration last, after the Secret and the rollout, with its caBundle, so pods created while it
runs are never refused. The installed copy is taken away (webhook configuration, Deployment,
Secrets), reinstalled with deploy/overlays/fail-closed while pods are created, then put back as
hack/e2e-cluster.sh installed it (the self-signed overlay).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import NAMESPACE, TOP, Cluster, annotations_of
from .rest import Kube, eventually
from .test_in_cluster_deployment import Load, preset_for_load, webhook_pods

WEBHOOK_CONFIG = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/podpreset"


@pytest.fixture
def cluster(kubelet_cluster: Cluster) -> Cluster:
    return kubelet_cluster


def install(cluster: Cluster, overlay: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        KUBECONFIG=str(cluster.admin.kubeconfig),
        KUBECTL="kubectl",
        OVERLAY=str(TOP / "deploy" / "overlays" / overlay),
    )
    return subprocess.run(
        [str(TOP / "hack" / "install.sh")], env=env, capture_output=True, text=True, check=False
    )


def uninstall_webhook(admin: Kube) -> None:
    """What a first install starts from: no webhook configuration, no replicas, no Secrets."""
    admin.delete(WEBHOOK_CONFIG)
    admin.delete(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/podpreset-webhook")
    for secret in ("podpreset-webhook-tls", "podpreset-webhook-ca"):
        admin.delete(f"/api/v1/namespaces/{NAMESPACE}/secrets/{secret}")
    eventually("the webhook's pods to be gone", lambda: not webhook_pods(admin), timeout=120)


def last_pod(admin: Kube, namespace: str, load: Load) -> dict[str, Any]:
    pod: dict[str, Any] = admin.get(f"/api/v1/namespaces/{namespace}/pods/{load.created[-1]}")
    return pod


@pytest.fixture
def reinstalled_afterwards(cluster: Cluster) -> Iterator[None]:
    yield
    done = install(cluster, "self-signed")
    assert done.returncode == 0, done.stderr


def test_installing_fail_closed_while_pods_are_created_refuses_none_of_them(
    cluster: Cluster, admin: Kube, namespace: str, reinstalled_afterwards: None
) -> None:
    key = preset_for_load(admin, namespace)
    uninstall_webhook(admin)

    with Load(admin, namespace) as load:
        done = install(cluster, "fail-closed")
        # Still creating pods once the configuration is in force.
        eventually(
            "a pod mutated by the freshly installed webhook",
            lambda: load.created and key in annotations_of(last_pod(admin, namespace, load)),
            timeout=60,
        )
    assert done.returncode == 0, done.stderr

    # What a configuration applied too early gives: no endpoints (connection refused), a pod without
    # its certificate (TLS errors), a timeout. A reset of a connection already made to a ready
    # replica is another defect, seen once in several runs with kube-router re-syncing its rules at
    # every pod creation: it is printed and recorded in docs/operations.md ("Known issues"), not
    # counted against the install order this test is about.
    resets = [error for error in load.errors if "connection reset by peer" in error]
    early = [error for error in load.errors if error not in resets]
    if resets:
        print(f"install under load: {len(resets)} of {len(load.created)} calls reset by a ready replica")
    assert early == [], early[:5]
    assert len(load.created) >= 20, len(load.created)
    config = admin.get(WEBHOOK_CONFIG)
    assert config["webhooks"][0]["failurePolicy"] == "Fail"
    assert config["webhooks"][0]["clientConfig"]["caBundle"]
    # The order the script promises, from what it printed: the configuration is applied last.
    applied = [line for line in done.stdout.splitlines() if "serverside-applied" in line]
    assert applied[-1].startswith("mutatingwebhookconfiguration.admissionregistration.k8s.io/podpreset"), (
        applied
    )
    assert not any("mutatingwebhookconfiguration" in line for line in applied[:-1]), applied
