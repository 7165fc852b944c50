"""Equality of injected items modulo Kubernetes defaulting.

The API server defaults a pod before it reaches us and again after our patch, so an item we
injected comes back with defaults filled in (``defaultMode: 420``, ``fieldRef.apiVersion: v1``,
``divisor: "0"``...) and with zero values dropped (``readOnly: false``). Two items are "the same"
when their canonical forms are equal: defaults applied, then null, false, empty-string and
empty-list members removed. Empty mappings are kept: ``emptyDir: {}`` names a volume type.
"""

from __future__ import annotations

from typing import Any

Frozen = Any
"""A hashable, order-insensitive (for mappings) rendering of a JSON value."""

_DEFAULT_MODE_SOURCES = ("secret", "configMap", "downwardAPI", "projected")
_VOLUME_SOURCE_DEFAULTS: dict[str, dict[str, object]] = {
    "iscsi": {"iscsiInterface": "default"},
    "rbd": {"pool": "rbd", "user": "admin", "keyring": "/etc/ceph/keyring"},
    "azureDisk": {"cachingMode": "ReadWrite", "fsType": "ext4", "kind": "Shared"},
    "scaleIO": {"storageMode": "ThinProvisioned", "fsType": "xfs"},
}


def canonical_env_var(item: dict[str, Any]) -> Frozen:
    return freeze(_default_env_var(item))


def canonical_env_from(item: dict[str, Any]) -> Frozen:
    return freeze(item)


def canonical_volume_mount(item: dict[str, Any]) -> Frozen:
    return freeze(item)


def canonical_volume(item: dict[str, Any]) -> Frozen:
    return freeze(_default_volume(item))


def canonical_toleration(item: dict[str, Any]) -> Frozen:
    if item.get("operator") == "Equal":
        item = {k: v for k, v in item.items() if k != "operator"}
    return freeze(item)


def freeze(value: object) -> Frozen:
    """Render ``value`` hashable, dropping members that Kubernetes treats as unset."""
    if isinstance(value, dict):
        return frozenset((k, freeze(v)) for k, v in value.items() if not _is_unset(v))
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    if isinstance(value, bool):
        return ("bool", value)
    return value


def _is_unset(value: object) -> bool:
    return value is None or value is False or value in ("", [])


def _default_env_var(item: dict[str, Any]) -> dict[str, Any]:
    value_from = item.get("valueFrom")
    if not isinstance(value_from, dict):
        return item
    return {**item, "valueFrom": _default_object_refs(value_from)}


def _default_object_refs(holder: dict[str, Any]) -> dict[str, Any]:
    """Default ``fieldRef.apiVersion`` and ``resourceFieldRef.divisor`` inside ``holder``."""
    out = dict(holder)
    field_ref = holder.get("fieldRef")
    if isinstance(field_ref, dict) and not field_ref.get("apiVersion"):
        out["fieldRef"] = {**field_ref, "apiVersion": "v1"}
    resource_ref = holder.get("resourceFieldRef")
    if isinstance(resource_ref, dict) and resource_ref.get("divisor") in ("0", 0):
        out["resourceFieldRef"] = {k: v for k, v in resource_ref.items() if k != "divisor"}
    return out


def _default_volume(item: dict[str, Any]) -> dict[str, Any]:
    sources = [k for k in item if k != "name" and item[k] is not None]
    if not sources:
        return {**item, "emptyDir": {}}
    out = dict(item)
    for key in sources:
        source = item[key]
        if not isinstance(source, dict):
            continue
        if key in _DEFAULT_MODE_SOURCES and source.get("defaultMode") is None:
            source = {**source, "defaultMode": 420}
        if key in _VOLUME_SOURCE_DEFAULTS:
            source = {
                **_VOLUME_SOURCE_DEFAULTS[key],
                **{k: v for k, v in source.items() if v not in (None, "")},
            }
        if key == "downwardAPI":
            source = _default_items(source)
        if key == "projected":
            source = _default_projected(source)
        out[key] = source
    return out


def _default_items(source: dict[str, Any]) -> dict[str, Any]:
    items = source.get("items")
    if not isinstance(items, list):
        return source
    return {**source, "items": [_default_object_refs(i) if isinstance(i, dict) else i for i in items]}


def _default_projected(source: dict[str, Any]) -> dict[str, Any]:
    projections = source.get("sources")
    if not isinstance(projections, list):
        return source
    out: list[object] = []
    for raw in projections:
        if not isinstance(raw, dict):
            out.append(raw)
            continue
        projection = dict(raw)
        downward = projection.get("downwardAPI")
        if isinstance(downward, dict):
            projection["downwardAPI"] = _default_items(downward)
        token = projection.get("serviceAccountToken")
        if isinstance(token, dict) and token.get("expirationSeconds") is None:
            projection["serviceAccountToken"] = {**token, "expirationSeconds": 3600}
        out.append(projection)
    return {**source, "sources": out}
