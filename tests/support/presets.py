"""Presets and pods for the tests: validated presets of both kinds from camelCase spec fields."""

from typing import Any

from presets.model import PodPreset, parse_preset


def preset(
    name: str = "p", namespace: str = "namespace", rv: str = "", selector: Any = None, **spec: Any
) -> PodPreset:
    """A validated preset; ``spec`` keys use the API's camelCase names."""
    doc = {
        "apiVersion": "podpreset.dev/v1",
        "kind": "PodPreset",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": rv},
        "spec": {"selector": selector, **spec},
    }
    return parse_preset(doc, source="test.yaml", document=1, default_namespace="default")


def cluster_preset(name: str = "c", rv: str = "", selector: Any = None, **spec: Any) -> PodPreset:
    """A validated ClusterPodPreset; ``spec`` keys use the API's camelCase names."""
    doc = {
        "apiVersion": "podpreset.dev/v1",
        "kind": "ClusterPodPreset",
        "metadata": {"name": name, "resourceVersion": rv},
        "spec": {"selector": selector, **spec},
    }
    return parse_preset(doc, source="test.yaml", document=1, default_namespace="default")


def pod(
    labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None, **container: Any
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "mypod", "namespace": "namespace", "labels": labels or {}}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": {"containers": [{"name": "ctr", "image": "img", **container}]}}
