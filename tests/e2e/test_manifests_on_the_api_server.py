"""deploy/'s overlays and components as the API server reads them (issue 16): each rendered with
``kubectl kustomize`` and applied with a server-side dry run, so every field is checked against the
real schemas (cert-manager's from its own CRDs, fetched by hack/cert-manager-crds.sh), and the
parts that carry a security decision read back from the result.

Local mode only: the dry runs would meet the field managers of the installed copy in a cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import DEPLOY, TOP, Cluster
from .rest import eventually

pytestmark = pytest.mark.local_only
DRY_RUN_PREFIX = "e2e-dry-run-"
CIDR_PATH = "/spec/ingress/0/from/1/ipBlock/cidr"


def kustomize(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(["kubectl", "kustomize", str(path)], check=True, capture_output=True, text=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def server_dry_run(cluster: Cluster, docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each document as the API server would store it (server-side apply, dry run), by kind and name.

    The webhook configuration is sent under another name: the suite's own copy (pointed at a URL)
    would otherwise be merged into it."""
    docs = [
        dict(d, metadata=dict(d["metadata"], name=DRY_RUN_PREFIX + d["metadata"]["name"]))
        if d["kind"] == "MutatingWebhookConfiguration"
        else d
        for d in docs
    ]
    done = subprocess.run(
        [
            # --force-conflicts: the chart's e2e test may have applied its minimal stand-ins of
            # these CRDs to this API server first; cert-manager's own ones replace them here.
            *("kubectl", "--kubeconfig", str(cluster.admin.kubeconfig), "apply", "--server-side"),
            "--force-conflicts",
            *(
                "--dry-run=server",
                "--field-manager=e2e-dry-run",
                "--force-conflicts",
                "-o",
                "json",
                "-f",
                "-",
            ),
        ],
        input=yaml.safe_dump_all(docs),
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    items = out["items"] if out.get("kind") == "List" else [out]
    return {(i["kind"], i["metadata"]["name"].removeprefix(DRY_RUN_PREFIX)): i for i in items}


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_the_network_policy_admits_only_kube_system_to_the_tls_port_and_readers_to_metrics(
    cluster: Cluster,
) -> None:
    docs = kustomize(DEPLOY / "overlays" / "self-signed")
    stored = server_dry_run(cluster, docs)
    policy = stored[("NetworkPolicy", "podpreset-webhook")]["spec"]
    deployment = by_kind(docs, "Deployment")["podpreset-webhook"]

    assert policy["podSelector"] == deployment["spec"]["selector"]
    assert policy["policyTypes"] == ["Ingress"]
    rules = {rule["ports"][0]["port"]: rule for rule in policy["ingress"]}
    assert set(rules) == {"https", "metrics"}
    assert all(len(rule["ports"]) == 1 and rule["ports"][0]["protocol"] == "TCP" for rule in rules.values())
    assert rules["https"]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    ]
    assert rules["metrics"]["from"] == [
        {"namespaceSelector": {"matchLabels": {"podpreset.dev/metrics-reader": "true"}}}
    ]
    # The policy names the ports as the Deployment does, and the probes use the metrics port.
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named == {"https": 8443, "metrics": 8080}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "metrics", probe


def test_the_apiserver_ipblock_component_adds_the_control_planes_addresses_to_the_tls_port(
    cluster: Cluster, tmp_path: Path
) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize takes only relative paths.
                "resources": [os.path.relpath(DEPLOY / "overlays" / "self-signed", overlay)],
                "components": [os.path.relpath(DEPLOY / "components" / "apiserver-ipblock", overlay)],
                "patches": [
                    {
                        "target": {"kind": "NetworkPolicy", "name": "podpreset-webhook"},
                        "patch": yaml.safe_dump(
                            [{"op": "replace", "path": CIDR_PATH, "value": "10.0.0.0/28"}]
                        ),
                    }
                ],
            }
        )
    )
    stored = server_dry_run(cluster, kustomize(overlay))
    rule = stored[("NetworkPolicy", "podpreset-webhook")]["spec"]["ingress"][0]
    assert rule["ports"] == [{"port": "https", "protocol": "TCP"}]
    assert rule["from"][1] == {"ipBlock": {"cidr": "10.0.0.0/28"}}


def test_the_webhook_configuration_leaves_out_ignored_namespaces_mirror_and_excluded_pods(
    cluster: Cluster,
) -> None:
    stored = server_dry_run(cluster, kustomize(DEPLOY / "overlays" / "fail-closed"))
    config = stored[("MutatingWebhookConfiguration", "podpreset")]
    (hook,) = config["webhooks"]
    assert config["metadata"]["labels"]["podpreset.dev/apply-last"] == "true"
    assert hook["failurePolicy"] == "Fail"
    assert {"key": "podpreset.dev/ignore", "operator": "DoesNotExist"} in hook["namespaceSelector"][
        "matchExpressions"
    ]
    assert [c["name"] for c in hook["matchConditions"]] == ["not-a-mirror-pod", "not-excluded"]


@pytest.fixture(scope="module")
def cert_manager_crds(cluster: Cluster) -> Path:
    done = subprocess.run(
        [str(TOP / "hack" / "cert-manager-crds.sh")], check=True, stdout=subprocess.PIPE, text=True
    )
    crds = Path(done.stdout.strip().splitlines()[-1])
    assert sorted(p.name for p in crds.glob("cert-manager.io_*.yaml")) == [
        "cert-manager.io_certificaterequests.yaml",
        "cert-manager.io_certificates.yaml",
        "cert-manager.io_clusterissuers.yaml",
        "cert-manager.io_issuers.yaml",
    ]
    subprocess.run(
        [
            # --force-conflicts: the chart's e2e test may have applied its minimal stand-ins of
            # these CRDs to this API server first; cert-manager's own ones replace them here.
            *("kubectl", "--kubeconfig", str(cluster.admin.kubeconfig), "apply", "--server-side"),
            "--force-conflicts",
            *(
                "-f",
                str(crds / "cert-manager.io_certificates.yaml"),
                "-f",
                str(crds / "cert-manager.io_issuers.yaml"),
            ),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    for name in ("certificates.cert-manager.io", "issuers.cert-manager.io"):
        eventually(
            f"the {name} CRD to be established",
            lambda name=name: any(
                c["type"] == "Established" and c["status"] == "True"
                for c in cluster.admin.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                .get("status", {})
                .get("conditions")
                or ()
            ),
            timeout=60,
        )
    return crds


def test_the_cert_manager_overlay_chains_a_ca_so_that_renewals_keep_the_ca_bundle(
    cluster: Cluster, cert_manager_crds: Path
) -> None:
    stored = server_dry_run(cluster, kustomize(DEPLOY / "overlays" / "cert-manager"))
    issuers = {name: o["spec"] for (kind, name), o in stored.items() if kind == "Issuer"}
    certificates = {name: o["spec"] for (kind, name), o in stored.items() if kind == "Certificate"}
    config = stored[("MutatingWebhookConfiguration", "podpreset")]
    deployment = stored[("Deployment", "podpreset-webhook")]

    # SelfSigned Issuer -> CA Certificate -> CA Issuer -> serving Certificate.
    ca, serving = certificates["podpreset-ca"], certificates["podpreset-webhook"]
    assert issuers[ca["issuerRef"]["name"]] == {"selfSigned": {}}
    assert ca["isCA"] is True
    assert ca["privateKey"]["rotationPolicy"] == "Never"
    assert issuers[serving["issuerRef"]["name"]] == {"ca": {"secretName": ca["secretName"]}}
    assert serving.get("isCA") is not True
    assert serving["privateKey"]["rotationPolicy"] == "Always"
    assert set(serving["dnsNames"]) == {
        "podpreset-webhook.podpreset-system.svc",
        "podpreset-webhook.podpreset-system.svc.cluster.local",
    }
    # The Deployment mounts the serving certificate's Secret; the caBundle comes from the CA's.
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == serving["secretName"]
    assert (
        config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "podpreset-system/podpreset-ca"
    )
