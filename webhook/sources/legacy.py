"""Listing other injectors' objects from a live cluster, for ``podpreset migrate --kubeconfig``.

Read-only: one paged list per resource (settings.k8s.io PodPresets, redhat-cop PodPresets,
Kubeflow PodDefaults), across all namespaces or in one. A resource the cluster does not serve
(its API group or CRD is not installed: 404) is reported as absent, not as an error: most
clusters have at most one of the three. Imported only with ``--kubeconfig``: the offline CLI
never loads the Kubernetes client.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webhook.sources.kube import Resource, describe_error, list_objects, make_api_client


class ClusterError(Exception):
    """The cluster could not be read: the message names the kubeconfig or resource and why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyResource:
    """One resource migrate reads: its API group, version, plural and kind."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"


LEGACY_RESOURCES = (
    LegacyResource(group="settings.k8s.io", version="v1alpha1", plural="podpresets", kind="PodPreset"),
    LegacyResource(group="redhatcop.redhat.io", version="v1alpha1", plural="podpresets", kind="PodPreset"),
    LegacyResource(group="kubeflow.org", version="v1alpha1", plural="poddefaults", kind="PodDefault"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Listed:
    """The objects of every resource the cluster serves, with ``apiVersion`` and ``kind`` filled
    in (list items leave them out), and the resources it does not serve."""

    objects: tuple[tuple[LegacyResource, dict[str, Any]], ...]
    absent: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Config:
    kubeconfig: str


def list_legacy(kubeconfig: str, context: str | None = None, namespace: str | None = None) -> Listed:
    """List the three resources with ``kubeconfig``; in ``namespace`` only when given."""
    if not os.path.isfile(kubeconfig):
        raise ClusterError(f"--kubeconfig {kubeconfig}: no such file")
    try:
        api_client = make_api_client(_Config(kubeconfig), context=context)
    except Exception as exc:  # the client's config errors have no common base class
        where = f" (context {context!r})" if context else ""
        raise ClusterError(f"--kubeconfig {kubeconfig}{where}: {exc}") from exc
    objects: list[tuple[LegacyResource, dict[str, Any]]] = []
    absent: list[str] = []
    try:
        for legacy in LEGACY_RESOURCES:
            resource: Resource[Any] = Resource(legacy.name, _lister(legacy, namespace), lambda o: (o, ()))
            try:
                for listing in list_objects(api_client, resource):
                    for item in listing.get("items") or ():
                        if isinstance(item, dict):
                            objects.append(
                                (legacy, {"apiVersion": legacy.api_version, "kind": legacy.kind, **item})
                            )
            except Exception as exc:
                if getattr(exc, "status", None) == 404:
                    absent.append(legacy.name)
                    continue
                raise ClusterError(f"listing {legacy.name}: {describe_error(exc)}") from exc
    finally:
        api_client.close()
    return Listed(objects=tuple(objects), absent=tuple(absent))


def _lister(legacy: LegacyResource, namespace: str | None) -> Callable[..., Any]:
    def call(api_client: Any, **options: Any) -> Any:
        from kubernetes import client

        api = client.CustomObjectsApi(api_client)
        if namespace:
            return api.list_namespaced_custom_object(
                legacy.group, legacy.version, namespace, legacy.plural, **options
            )
        return api.list_cluster_custom_object(legacy.group, legacy.version, legacy.plural, **options)

    return call
