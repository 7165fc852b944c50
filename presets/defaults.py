"""Equality of injected items modulo Kubernetes defaulting.

The API server defaults a pod before it reaches us and again after our patch, so an item we
injected comes back with defaults filled in (``defaultMode: 420``, ``fieldRef.apiVersion: v1``,
``divisor: "0"``...) and with zero values dropped (``readOnly: false``). Two items are "the same"
when their canonical forms are equal: defaults applied, then null, false, empty-string and
empty-list members removed, and resource quantities compared by value (the API server writes
``1024Mi`` back as ``1Gi``). Empty mappings are kept: ``emptyDir: {}`` names a volume type.
"""

from __future__ import annotations

import re
from fractions import Fraction
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


_QUANTITY_RE = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def quantity(value: object) -> object:
    """A resource quantity by its value (``1Gi`` == ``1024Mi``), as the API server re-renders it.

    Anything that does not parse as a quantity is returned unchanged (and so compared as is).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return ("quantity", Fraction(value))
    if not isinstance(value, str):
        return value
    match = _QUANTITY_RE.fullmatch(value.strip())
    if not match:
        return value
    number, exponent, suffix = match.groups()
    amount = Fraction(number)
    if exponent:
        amount *= Fraction(10) ** int(exponent[1:])
    elif suffix in _BINARY:
        amount *= 1024 ** _BINARY[suffix]
    elif suffix:
        amount *= Fraction(10) ** _DECIMAL[suffix]
    return ("quantity", amount)


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
    if isinstance(resource_ref, dict) and "divisor" in resource_ref:
        divisor = quantity(resource_ref["divisor"])
        rest = {k: v for k, v in resource_ref.items() if k != "divisor"}
        out["resourceFieldRef"] = rest if divisor == ("quantity", 0) else {**rest, "divisor": divisor}
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
        if key == "emptyDir" and source.get("sizeLimit") is not None:
            source = {**source, "sizeLimit": quantity(source["sizeLimit"])}
        if key == "ephemeral":
            source = _default_ephemeral(source)
        if key == "image" and not source.get("pullPolicy"):
            source = {**source, "pullPolicy": _image_pull_policy(source.get("reference"))}
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


def _default_ephemeral(source: dict[str, Any]) -> dict[str, Any]:
    """``volumeMode: Filesystem`` and quantities by value in the claim template's spec."""
    template = source.get("volumeClaimTemplate")
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        return source
    spec = dict(template["spec"])
    spec.setdefault("volumeMode", "Filesystem")
    resources = spec.get("resources")
    if isinstance(resources, dict):
        spec["resources"] = {
            k: {name: quantity(q) for name, q in v.items()}
            if k in ("requests", "limits") and isinstance(v, dict)
            else v
            for k, v in resources.items()
        }
    return {**source, "volumeClaimTemplate": {**template, "spec": spec}}


def _image_pull_policy(reference: object) -> str:
    """The API server's default: Always for ``:latest`` or an untagged image, else IfNotPresent."""
    if not isinstance(reference, str) or "@" in reference:
        return "IfNotPresent"
    last = reference.rsplit("/", 1)[-1]
    tag = last.rpartition(":")[2] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"
