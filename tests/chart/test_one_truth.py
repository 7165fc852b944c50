"""One truth: the chart at its defaults renders what ``kubectl kustomize deploy/overlays/self-signed``
renders, object for object, field for field. Allowed differences, each named here and nowhere else:
Helm's own labels; the certificate objects (certificates.mode=helm makes the Secrets and the caBundle
that hack/bootstrap-certs.sh makes for deploy/); the Namespace, which the chart makes only with
namespace.create=true (Helm's way is --create-namespace), checked on its own below; and the two
labels kustomize puts on the CRDs, which Helm installs from crds/ as they are. With
certificates.mode=cert-manager the chart is compared with deploy/overlays/cert-manager, certificate
objects included (bar the two labels the overlay's own objects lack).
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

import yaml

from .helm import HELM_LABELS, by_key, find, kustomize, render

CERTIFICATE_SECRETS = ("podpreset-webhook-ca", "podpreset-webhook-tls")
KUSTOMIZE_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/part-of")


def without_labels(labels: dict[str, str] | None, names: tuple[str, ...]) -> dict[str, str] | None:
    kept = {k: v for k, v in (labels or {}).items() if k not in names}
    return kept or None


def normalized_chart(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for meta in (doc["metadata"], doc.get("spec", {}).get("template", {}).get("metadata")):
        if meta is not None:
            labels = without_labels(meta.get("labels"), HELM_LABELS)
            meta.pop("labels", None)
            if labels:
                meta["labels"] = labels
    if doc["kind"] == "MutatingWebhookConfiguration":
        for hook in doc["webhooks"]:
            hook["clientConfig"].pop("caBundle", None)
    return doc


def normalized_kustomize(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    if doc["kind"] == "CustomResourceDefinition":
        labels = without_labels(doc["metadata"].pop("labels", None), KUSTOMIZE_LABELS)
        if labels:
            doc["metadata"]["labels"] = labels
    return doc


def diff(a: Any, b: Any) -> str:
    left = yaml.safe_dump(a, sort_keys=True).splitlines()
    right = yaml.safe_dump(b, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(left, right, "kustomize", "chart", lineterm=""))


def compare(chart_docs: list[dict[str, Any]], deploy_docs: list[dict[str, Any]]) -> None:
    chart = {
        k: normalized_chart(d)
        for k, d in by_key(chart_docs).items()
        if not (d["kind"] == "Secret" and d["metadata"]["name"] in CERTIFICATE_SECRETS)
    }
    deploy = {k: normalized_kustomize(d) for k, d in by_key(deploy_docs).items() if d["kind"] != "Namespace"}
    assert sorted(chart) == sorted(deploy), (
        f"only in the chart: {sorted(set(chart) - set(deploy))}; "
        f"only in deploy/: {sorted(set(deploy) - set(chart))}"
    )
    differences = {k: diff(deploy[k], chart[k]) for k in deploy if deploy[k] != chart[k]}
    assert not differences, "\n\n".join(f"{k}:\n{text}" for k, text in differences.items())


def test_the_chart_at_its_defaults_renders_what_kustomize_renders() -> None:
    compare(render(include_crds=True), kustomize("self-signed"))


def test_the_charts_cert_manager_mode_renders_what_the_cert_manager_overlay_renders() -> None:
    """The same comparison with cert-manager making the certificates: here the chart's certificate
    objects (the Issuers and Certificates, the caBundle's injection) are compared too."""
    docs = render({"certificates": {"mode": "cert-manager"}}, include_crds=True)
    assert [d for d in docs if d["kind"] == "Secret"] == []
    for doc in docs:
        # The overlay adds them beside the base, whose labels they do not get; the chart labels
        # every object it makes.
        if doc["apiVersion"] == "cert-manager.io/v1":
            doc["metadata"]["labels"] = without_labels(doc["metadata"]["labels"], KUSTOMIZE_LABELS)
    compare(docs, kustomize("cert-manager"))


def test_the_namespace_the_chart_makes_is_deploys() -> None:
    made = normalized_chart(find(render({"namespace": {"create": True}}), "Namespace"))
    assert made == find(kustomize(), "Namespace"), diff(find(kustomize(), "Namespace"), made)


def test_the_defaults_leave_out_exactly_the_namespace_and_make_the_certificate_secrets() -> None:
    """What the comparison above sets aside is there (or absent) for the reason it gives."""
    docs = render()
    assert [d for d in docs if d["kind"] == "Namespace"] == []
    secrets = sorted(d["metadata"]["name"] for d in docs if d["kind"] == "Secret")
    assert secrets == sorted(CERTIFICATE_SECRETS)
    hook = find(docs, "MutatingWebhookConfiguration")["webhooks"][0]
    assert hook["clientConfig"]["caBundle"]
