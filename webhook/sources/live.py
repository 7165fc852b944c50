"""Presets and namespace labels read from a live cluster, for ``podpreset apply --kubeconfig``.

Read-only: one list call per resource (PodPresets, ClusterPodPresets, Namespaces), the same
requests and the same parsing as the webhook's watch source, so a preview sees what the webhook
sees. Imported only when ``--kubeconfig`` is given: the offline CLI never loads the Kubernetes
client.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from presets.limits import DEFAULT_MAX_PRESET_BYTES
from presets.model import PodPreset
from presets.namespaces import NamespaceLabels
from webhook.sources.kube import (
    NAMESPACES,
    Key,
    Resource,
    T,
    describe_error,
    list_all,
    make_api_client,
    preset_resources,
)


class ClusterError(Exception):
    """The cluster could not be read: the message names the kubeconfig or resource and why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterState:
    """What the webhook would use for a pod: the valid presets of both kinds and the namespaces' labels."""

    presets: tuple[PodPreset, ...]
    namespaces: NamespaceLabels
    problems: tuple[str, ...]
    """Objects skipped because they are invalid (the webhook skips them too), one line each."""
    context_namespace: str | None = None
    """The kubeconfig context's namespace, as kubectl uses it for objects that name none."""


@dataclass(frozen=True, slots=True)
class _Config:
    kubeconfig: str


def read_cluster(
    kubeconfig: str, context: str | None = None, *, max_preset_bytes: int = DEFAULT_MAX_PRESET_BYTES
) -> ClusterState:
    """List the presets and namespaces with ``kubeconfig`` (and ``context``); a preset over
    ``max_preset_bytes`` is skipped as invalid, as the webhook skips it. Raises ``ClusterError``."""
    if not os.path.isfile(kubeconfig):
        raise ClusterError(f"--kubeconfig {kubeconfig}: no such file")
    try:
        api_client = make_api_client(_Config(kubeconfig), context=context)
        context_namespace = _context_namespace(kubeconfig, context)
    except Exception as exc:  # the client's config errors have no common base class
        where = f" (context {context!r})" if context else ""
        raise ClusterError(f"--kubeconfig {kubeconfig}{where}: {exc}") from exc
    problems: list[str] = []
    podpresets, clusterpodpresets = preset_resources(max_preset_bytes)
    try:
        presets = [
            *_listed(api_client, podpresets, problems).values(),
            *_listed(api_client, clusterpodpresets, problems).values(),
        ]
        namespaces = {name: labels for (_, name), labels in _listed(api_client, NAMESPACES, problems).items()}
    finally:
        api_client.close()
    return ClusterState(
        presets=tuple(presets),
        namespaces=namespaces,
        problems=tuple(problems),
        context_namespace=context_namespace,
    )


def _context_namespace(kubeconfig: str, context: str | None) -> str | None:
    from kubernetes import config

    contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else None


def _listed(api_client: Any, resource: Resource[T], problems: list[str]) -> dict[Key, T]:
    """The valid objects of ``resource`` by key; the invalid ones' problems go to ``problems``."""
    try:
        listed = list_all(api_client, resource)
    except Exception as exc:
        raise ClusterError(f"listing {resource.name}: {describe_error(exc)}") from exc
    problems.extend(line for lines in listed.problems.values() for line in lines)
    return listed.items
