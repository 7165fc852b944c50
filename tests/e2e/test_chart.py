"""The Helm chart against the suite's real kube-apiserver: every rendering of tests/chart applied
with a server-side dry run (the API server's own schemas and validation judge each object), and a
real ``helm install``/``upgrade``/``uninstall`` showing that ``lookup`` keeps the certificates.

Local mode only: ``make e2e-cluster`` installs and upgrades the chart on the node cluster itself
(hack/e2e-cluster.sh). The ServiceMonitor and the cert-manager objects are judged against minimal
CRDs of ours (tests/chart/crds/), not the Prometheus operator's and cert-manager's own.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart.helm import CHART, RENDERINGS, kubectl, render, run_helm, values_file

from .conftest import Cluster, ensure_namespace, manifests
from .rest import eventually

pytestmark = pytest.mark.local_only

TEST_CRDS = Path(__file__).resolve().parents[1] / "chart" / "crds"


@pytest.fixture(scope="module")
def third_party_crds(cluster: Cluster) -> Cluster:
    """The stand-in ServiceMonitor, Issuer and Certificate CRDs, established and served."""
    for path in sorted(TEST_CRDS.glob("*.yaml")):
        for doc in manifests(path):
            cluster.admin.apply_manifest(doc)
            group, plural = doc["spec"]["group"], doc["spec"]["names"]["plural"]
            eventually(
                f"{plural}.{group} to be served",
                lambda g=group, p=plural: cluster.admin.get(f"/apis/{g}/v1/{p}"),
            )
    return cluster


def server_dry_run(cluster: Cluster, docs: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            kubectl(),
            "--kubeconfig",
            str(cluster.admin.kubeconfig),
            "apply",
            "--server-side",
            "--dry-run=server",
            "--force-conflicts",
            "--field-manager=chart-dry-run",
            "-f",
            "-",
        ],
        input=yaml.safe_dump_all(docs),
        capture_output=True,
        text=True,
        check=False,
    )


DRY_RUN_RELEASE, DRY_RUN_NAMESPACE = "dry-run", "e2e-chart-dry-run"
"""Not the suite's own names: its webhook configuration "podpreset" has a url where the chart's has
a service, and one object cannot have both."""


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_every_rendering_passes_a_server_side_dry_run(third_party_crds: Cluster, rendering: str) -> None:
    ensure_namespace(third_party_crds.admin, DRY_RUN_NAMESPACE)
    docs = render(
        RENDERINGS[rendering], release=DRY_RUN_RELEASE, namespace=DRY_RUN_NAMESPACE, include_crds=True
    )
    done = server_dry_run(third_party_crds, docs)
    assert done.returncode == 0, done.stderr
    applied = [line for line in done.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(docs), done.stdout


def test_the_api_server_refuses_what_the_schema_lets_through_when_it_is_wrong(
    third_party_crds: Cluster,
) -> None:
    """The dry run is a real judge: an object the API server must refuse fails it."""
    ensure_namespace(third_party_crds.admin, DRY_RUN_NAMESPACE)
    docs = render(release=DRY_RUN_RELEASE, namespace=DRY_RUN_NAMESPACE)
    for doc in docs:
        if doc["kind"] == "Deployment":
            doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 70000
    done = server_dry_run(third_party_crds, docs)
    assert done.returncode != 0
    assert "containerPort" in done.stderr


# A real release, to see `lookup` at work (helm template cannot look anything up).

RELEASE, RELEASE_NAMESPACE = "chart-upgrade", "e2e-chart-upgrade"
NEVER_CALLED = {"webhook": {"objectSelector": {"matchLabels": {"podpreset.dev/chart-test": "never-matches"}}}}
"""The release's webhook configuration must not send the suite's pods to a Service with no pods."""


def helm_in(cluster: Cluster, *args: str) -> str:
    done = run_helm(*args, "--kubeconfig", str(cluster.admin.kubeconfig), "--namespace", RELEASE_NAMESPACE)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def certificate_state(cluster: Cluster) -> dict[str, str]:
    ns = f"/api/v1/namespaces/{RELEASE_NAMESPACE}/secrets"
    name = "chart-upgrade-podpreset-webhook"
    tls = cluster.admin.get(f"{ns}/{name}-tls")["data"]
    ca = cluster.admin.get(f"{ns}/{name}-ca")["data"]
    mwc = cluster.admin.get(
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/chart-upgrade-podpreset"
    )
    return {
        "ca": ca["tls.crt"],
        "ca key": ca["tls.key"],
        "serving": tls["tls.crt"],
        "serving key": tls["tls.key"],
        "caBundle": mwc["webhooks"][0]["clientConfig"]["caBundle"],
    }


@pytest.fixture
def release(cluster: Cluster) -> Iterator[Cluster]:
    yield cluster
    run_helm(
        "uninstall", RELEASE, "--kubeconfig", str(cluster.admin.kubeconfig), "--namespace", RELEASE_NAMESPACE
    )


def test_helm_upgrades_keep_the_ca_bundle_and_the_certificate_and_renew_keeps_the_ca(
    release: Cluster,
) -> None:
    values = values_file(NEVER_CALLED)
    notes = helm_in(
        release, "install", RELEASE, str(CHART), "--create-namespace", "--skip-crds", "--values", values
    )
    assert (
        f"kubectl -n {RELEASE_NAMESPACE} rollout status deployment/chart-upgrade-podpreset-webhook" in notes
    )
    first = certificate_state(release)
    assert first["caBundle"] == first["ca"]

    helm_in(release, "upgrade", RELEASE, str(CHART), "--values", values, "--set", "replicaCount=3")
    assert certificate_state(release) == first
    deployment = release.admin.get(
        f"/apis/apps/v1/namespaces/{RELEASE_NAMESPACE}/deployments/chart-upgrade-podpreset-webhook"
    )
    assert deployment["spec"]["replicas"] == 3

    helm_in(
        release, "upgrade", RELEASE, str(CHART), "--values", values, "--set", "certificates.helm.renew=true"
    )
    renewed = certificate_state(release)
    assert renewed["serving"] != first["serving"] and renewed["serving key"] != first["serving key"]
    assert {k: renewed[k] for k in ("ca", "ca key", "caBundle")} == {
        k: first[k] for k in ("ca", "ca key", "caBundle")
    }

    # A rollback applies revision 1's stored manifest: its serving certificate, from the same CA.
    helm_in(release, "rollback", RELEASE, "1")
    assert certificate_state(release) == first

    helm_in(release, "uninstall", RELEASE)
    left = release.admin.get(f"/api/v1/namespaces/{RELEASE_NAMESPACE}/secrets")["items"]
    assert [s["metadata"]["name"] for s in left if s["metadata"]["name"].startswith("chart-upgrade")] == []
