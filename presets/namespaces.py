"""Namespace labels, which a ClusterPodPreset's ``namespaceSelector`` is matched against.

The engine takes them as a plain mapping from namespace name to labels, passed in by the caller
(the webhook's Namespace watch, or ``Namespace`` documents among the CLI's ``-f`` inputs). A
namespace missing from the mapping has only the label every namespace carries in a cluster,
``kubernetes.io/metadata.name=<name>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from presets.names import is_dns_label, json_type
from presets.selector import label_key_problem, label_value_problem

NamespaceLabels = Mapping[str, Mapping[str, str]]
"""Namespace name to its labels."""
NAME_LABEL = "kubernetes.io/metadata.name"
NO_NAMESPACES: NamespaceLabels = {}


def labels_of(namespaces: NamespaceLabels, name: str) -> Mapping[str, str]:
    """The labels of namespace ``name``; ``kubernetes.io/metadata.name`` is always among them."""
    labels = namespaces.get(name)
    if labels is None:
        return {NAME_LABEL: name}
    if labels.get(NAME_LABEL) == name:
        return labels
    return {**labels, NAME_LABEL: name}


def parse_namespace(doc: Mapping[str, Any]) -> tuple[str, dict[str, str], list[tuple[str, str]]]:
    """A ``v1`` Namespace document: its name, its labels and ``(field, problem)`` pairs.

    The API server sets ``kubernetes.io/metadata.name`` on every namespace; it is added here too.
    """
    problems: list[tuple[str, str]] = []
    if doc.get("apiVersion") != "v1":
        problems.append(("apiVersion", f"a Namespace is v1, got {doc.get('apiVersion')!r}"))
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        return "", {}, [*problems, ("metadata", "required: a mapping with at least a name")]
    name = metadata.get("name")
    if not is_dns_label(name):
        problems.append(("metadata.name", f"must be a DNS label (a namespace name), got {name!r}"))
        name = ""
    raw = metadata.get("labels")
    labels: dict[str, str] = {}
    if raw is not None and not isinstance(raw, dict):
        problems.append(("metadata.labels", f"expected a mapping, got {json_type(raw)}"))
    elif raw:
        for key, value in raw.items():
            problem = label_key_problem(key) or label_value_problem(value)
            if problem:
                problems.append((f"metadata.labels[{key}]", problem))
            else:
                labels[key] = value
    if name:
        labels[NAME_LABEL] = str(name)
    return str(name or ""), labels, problems
