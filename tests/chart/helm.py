"""Rendering the chart (charts/podpreset) with a helm built by hack/build-helm.sh, and deploy/
with kubectl kustomize: shared by the chart tests and by the end-to-end suite's dry runs."""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

TOP = Path(__file__).resolve().parents[2]
CHART = TOP / "charts" / "podpreset"
RELEASE = "podpreset"
NAMESPACE = "podpreset-system"

HELM_LABELS = (
    "helm.sh/chart",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
)
"""The labels Helm's convention adds to what deploy/ has (the chart's _helpers.tpl)."""


TEST_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

RENDERINGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cert-manager": {"certificates": {"mode": "cert-manager"}},
    "external": {
        "certificates": {"mode": "external", "external": {"secretName": "my-tls", "caBundle": TEST_PEM}}
    },
    "optional-objects-off": {
        "podDisruptionBudget": {"enabled": False},
        "priorityClassName": "",
        "resources": None,
    },
    "every-value-set": {
        "replicaCount": 3,
        "image": {
            "repository": "registry.example/podpreset",
            "tag": "1.0",
            "digest": "sha256:" + "c" * 64,
            "pullPolicy": "Always",
        },
        "imagePullSecrets": [{"name": "regcred"}],
        "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": "50%"},
        "priorityClassName": "system-node-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "webhook"}},
                        },
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "webhook"}},
            }
        ],
        "podSecurityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "podLabels": {"team": "platform"},
        "podAnnotations": {"example.com/owner": "platform"},
        "namespace": {"create": True},
        "networkPolicy": {
            "enabled": True,
            "webhookFrom": [{"ipBlock": {"cidr": "10.0.0.0/28"}}],
            "metricsFrom": [{"podSelector": {"matchLabels": {"app": "prometheus"}}}],
        },
        "serviceMonitor": {
            "enabled": True,
            "labels": {"release": "prometheus"},
            "interval": "15s",
            "scrapeTimeout": "5s",
        },
        "webhook": {
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
            "reinvocationPolicy": "Never",
            "namespaceSelector": {"matchLabels": {"presets": "on"}},
            "objectSelector": {
                "matchExpressions": [{"key": "presets", "operator": "NotIn", "values": ["off"]}]
            },
        },
        "protected": ["KUBERNETES_*", "LD_PRELOAD", "ACME_TOKEN"],
        "logLevel": "DEBUG",
        "logFormat": "text",
        "extraArgs": ["--workers=4"],
        "certificates": {"mode": "helm", "helm": {"caDays": 365, "servingDays": 90}},
    },
}
"""Named value sets: each is linted, and applied with a server-side dry run by the e2e suite."""


class RenderError(AssertionError):
    """helm refused to render; the message is helm's stderr."""


@functools.cache
def helm() -> str:
    """The helm binary: $HELM (the Makefile sets it), else built or found by hack/build-helm.sh."""
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    done = subprocess.run(
        [str(TOP / "hack" / "build-helm.sh")], check=True, stdout=subprocess.PIPE, text=True
    )
    return done.stdout.strip().splitlines()[-1]


@functools.cache
def kubectl() -> str:
    """kubectl on PATH (make test puts kube-apiserver's own there), else hack/build-cluster.sh's."""
    found = shutil.which("kubectl")
    if found:
        return found
    done = subprocess.run(
        [str(TOP / "hack" / "build-cluster.sh"), "kubectl"], check=True, stdout=subprocess.PIPE, text=True
    )
    return str(Path(done.stdout.strip().splitlines()[-1]) / "kubectl")


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HELM_CACHE_HOME=tempfile.gettempdir() + "/podpreset-helm-cache")
    env.pop("KUBECONFIG", None)
    return subprocess.run([helm(), *args], capture_output=True, text=True, env=env, check=False)


@functools.cache
def scratch() -> Path:
    """A directory for values files, removed when the test process exits."""
    path = Path(tempfile.mkdtemp(prefix="podpreset-chart-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def values_file(values: dict[str, Any]) -> str:
    """``values`` as a YAML file for ``--values`` (one file per distinct content)."""
    text = yaml.safe_dump(values)
    path = scratch() / f"values-{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
    path.write_text(text)
    return str(path)


def template_args(
    values: dict[str, Any] | None, release: str, namespace: str, include_crds: bool
) -> list[str]:
    args = ["template", release, str(CHART), "--namespace", namespace]
    if include_crds:
        args.append("--include-crds")
    if values:
        args += ["--values", values_file(values)]
    return args


def render(
    values: dict[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    include_crds: bool = False,
) -> list[dict[str, Any]]:
    """``helm template`` of the chart: its objects. Raises RenderError with helm's message."""
    done = run_helm(*template_args(values, release, namespace, include_crds))
    if done.returncode != 0:
        raise RenderError(done.stderr.strip())
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def render_error(values: dict[str, Any]) -> str:
    """helm's message when it refuses ``values`` (fails the test when it renders)."""
    try:
        render(values)
    except RenderError as exc:
        return str(exc)
    raise AssertionError(f"helm rendered the chart with {values!r}; expected a refusal")


def kustomize(overlay: str = "self-signed") -> list[dict[str, Any]]:
    """``kubectl kustomize deploy/overlays/OVERLAY``: its objects."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(TOP / "deploy" / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
    )
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def key(doc: dict[str, Any]) -> tuple[str, str, str]:
    return (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])


def by_key(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for doc in docs:
        assert key(doc) not in out, f"two objects {key(doc)}"
        out[key(doc)] = doc
    return out


def find(
    docs: list[dict[str, Any]], kind: str, name: str | None = None, component: str | None = None
) -> dict[str, Any]:
    """The one object of ``kind`` (and ``name``, and for a Deployment or NetworkPolicy the
    ``component`` its pods are: webhook or controller); fails when there is none or several."""
    found = [
        d
        for d in docs
        if d["kind"] == kind
        and (name is None or d["metadata"]["name"] == name)
        and (component is None or component_of(d) == component)
    ]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in {[key(d) for d in docs]}"
    return found[0]


def component_of(doc: dict[str, Any]) -> str | None:
    """``app.kubernetes.io/component`` of the pods a Deployment or NetworkPolicy is about."""
    spec = doc.get("spec") or {}
    labels = (spec.get("selector") or spec.get("podSelector") or {}).get("matchLabels") or {}
    return labels.get("app.kubernetes.io/component")


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The webhook Deployment's container."""
    deployment = find(docs, "Deployment", component="webhook")
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = only
    return result
