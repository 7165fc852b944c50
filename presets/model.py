"""PodPreset documents: parsing and validation into frozen values.

Accepts ``podpreset.dev/v1`` and the legacy ``settings.k8s.io/v1alpha1`` (same fields, same
meaning). Items stay raw camelCase JSON (never Kubernetes client models, which lose unknown
fields); validation checks what can never work and says where, in the form
``FILE: document N (NAME): FIELD: problem``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from presets.names import is_dns_label, is_dns_subdomain, json_type
from presets.selector import EVERYTHING, Selector, parse_selector

API_VERSIONS = ("podpreset.dev/v1", "settings.k8s.io/v1alpha1")
KIND = "PodPreset"
MAX_NAME_LENGTH = 53
"""``podpreset-<name>`` is the name part of an annotation key, at most 63 characters."""

SPEC_FIELDS = ("selector", "env", "envFrom", "volumes", "volumeMounts", "tolerations")
INJECTION_FIELDS = ("env", "envFrom", "volumes", "volumeMounts", "tolerations")

_ENV_FROM_SOURCES = ("configMapRef", "secretRef")
_VALUE_FROM_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef")
_TOLERATION_OPERATORS = ("Exists", "Equal")
_TOP_FIELDS = "apiVersion, kind, metadata, spec"
_ENV_VAR_FIELDS = ("name", "value", "valueFrom")
_VOLUME_MOUNT_FIELDS = (
    "name",
    "mountPath",
    "subPath",
    "subPathExpr",
    "readOnly",
    "recursiveReadOnly",
    "mountPropagation",
)
VOLUME_SOURCES = (
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
)
"""The volume types of core/v1 ``Volume`` (Kubernetes 1.34)."""
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


class PresetError(Exception):
    """Base class for errors about preset documents."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One thing wrong with one preset document."""

    source: str
    document: int
    name: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: document {self.document}"
        if self.name:
            where += f" ({self.name})"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class InvalidPreset(PresetError):
    """A preset document failed validation; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True, kw_only=True)
class PodPreset:
    """A validated preset. Item tuples hold raw JSON mappings that must not be mutated."""

    name: str
    namespace: str
    resource_version: str = ""
    selector: Selector = EVERYTHING
    env: tuple[dict[str, Any], ...] = ()
    env_from: tuple[dict[str, Any], ...] = ()
    volumes: tuple[dict[str, Any], ...] = ()
    volume_mounts: tuple[dict[str, Any], ...] = ()
    tolerations: tuple[dict[str, Any], ...] = ()
    source: str = field(default="", compare=False)
    """Where the preset came from, for messages: a file path or ``namespace/name``."""


def parse_preset(doc: object, *, source: str, document: int, default_namespace: str) -> PodPreset:
    """Validate one preset document; raises :class:`InvalidPreset` listing every problem."""
    found: list[tuple[str, str]] = []
    name = ""
    if not isinstance(doc, dict):
        raise InvalidPreset(
            [
                Problem(
                    source=source,
                    document=document,
                    name="",
                    field="",
                    message=f"expected a PodPreset (a mapping of {_TOP_FIELDS}), got {json_type(doc)}",
                )
            ]
        )
    raw_name = doc.get("metadata", {}).get("name") if isinstance(doc.get("metadata"), dict) else None
    if isinstance(raw_name, str):
        name = raw_name

    if doc.get("kind") != KIND:
        found.append(("kind", f"must be {KIND}, got {doc.get('kind')!r}"))
    if doc.get("apiVersion") not in API_VERSIONS:
        found.append(
            ("apiVersion", f"must be one of {', '.join(API_VERSIONS)}, got {doc.get('apiVersion')!r}")
        )

    metadata = doc.get("metadata")
    namespace = default_namespace
    resource_version = ""
    if not isinstance(metadata, dict):
        found.append(("metadata", "required: a mapping with at least a name"))
    else:
        found.extend(_check_name(metadata.get("name")))
        raw_ns = metadata.get("namespace")
        if raw_ns is not None and raw_ns != "":
            if not is_dns_label(raw_ns):
                found.append(
                    (
                        "metadata.namespace",
                        f"must be a DNS label (lowercase letters, digits, '-'), got {raw_ns!r}",
                    )
                )
            else:
                namespace = raw_ns
        rv = metadata.get("resourceVersion")
        if rv is not None:
            resource_version = str(rv)

    spec = doc.get("spec")
    selector = EVERYTHING
    items: dict[str, tuple[dict[str, Any], ...]] = dict.fromkeys(INJECTION_FIELDS, ())
    if not isinstance(spec, dict):
        found.append(
            ("spec", "required: a mapping with a selector and at least one of " + ", ".join(INJECTION_FIELDS))
        )
    else:
        for key in spec:
            if key not in SPEC_FIELDS:
                found.append(
                    (f"spec.{key}", f"unknown field (a PodPreset spec has {', '.join(SPEC_FIELDS)})")
                )
        selector, selector_problems = parse_selector(spec.get("selector"), "spec.selector")
        found.extend(selector_problems)
        for key in INJECTION_FIELDS:
            raw = spec.get(key)
            if raw is None:
                continue
            if not isinstance(raw, list):
                found.append((f"spec.{key}", f"expected a list, got {json_type(raw)}"))
                continue
            good = []
            for i, item in enumerate(raw):
                if not isinstance(item, dict):
                    found.append((f"spec.{key}[{i}]", f"expected a mapping, got {json_type(item)}"))
                else:
                    good.append(item)
            items[key] = tuple(good)
        if not any(items[k] for k in INJECTION_FIELDS) and not any(p.startswith("spec.") for p, _ in found):
            found.append(("spec", "injects nothing: set at least one of " + ", ".join(INJECTION_FIELDS)))
        found.extend(_check_env(items["env"]))
        found.extend(_check_env_from(items["envFrom"]))
        found.extend(_check_volumes(items["volumes"]))
        found.extend(_check_volume_mounts(items["volumeMounts"], items["volumes"]))
        found.extend(_check_tolerations(items["tolerations"]))

    if found:
        raise InvalidPreset(
            [
                Problem(
                    source=source, document=document, name=_shown(name), field=_shown(f), message=_shown(m)
                )
                for f, m in found
            ]
        )
    return PodPreset(
        name=name,
        namespace=namespace,
        resource_version=resource_version,
        selector=selector,
        env=items["env"],
        env_from=items["envFrom"],
        volumes=items["volumes"],
        volume_mounts=items["volumeMounts"],
        tolerations=items["tolerations"],
        source=source,
    )


MAX_SHOWN = 200
"""Characters of a message (or name) shown; longer ones echo a value the document made huge."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _shown(text: str) -> str:
    """``text`` on one line, cut at ``MAX_SHOWN`` characters saying how many more there were: a
    message that quotes a 300,000-character value, or a key holding a newline, would otherwise
    flood the log and /readyz, or break the one-line-per-problem output of ``validate``."""
    text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    if len(text) <= MAX_SHOWN:
        return text
    return f"{text[:MAX_SHOWN]}... ({len(text) - MAX_SHOWN} more characters)"


def _check_name(name: object) -> list[tuple[str, str]]:
    if not isinstance(name, str) or not name:
        return [("metadata.name", "required: the preset needs a name")]
    if len(name) > MAX_NAME_LENGTH:
        return [
            (
                "metadata.name",
                f"is {len(name)} characters; at most {MAX_NAME_LENGTH} are allowed, because "
                f"the pod annotation key podpreset-<name> must fit in 63 characters",
            )
        ]
    if not is_dns_subdomain(name):
        return [
            (
                "metadata.name",
                f"{name!r} is not a DNS subdomain: use lowercase letters, digits, '-' and '.', "
                "starting and ending with a letter or digit",
            )
        ]
    return []


def _require_string(item: dict[str, Any], key: str, path: str) -> list[tuple[str, str]]:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        return [(f"{path}.{key}", "required: a non-empty string")]
    return []


def _check_env(env: tuple[dict[str, Any], ...]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for i, var in enumerate(env):
        path = f"spec.env[{i}]"
        found.extend(_unknown_fields(var, _ENV_VAR_FIELDS, path))
        name_problems = _require_string(var, "name", path)
        found.extend(name_problems)
        name = var.get("name")
        if not name_problems and isinstance(name, str):
            if "=" in name:
                found.append((f"{path}.name", f"{name!r} must not contain '='"))
            if name in seen:
                found.append(
                    (
                        f"{path}.name",
                        f"duplicate env var {name!r} (also spec.env[{seen[name]}]); keep one definition",
                    )
                )
            seen.setdefault(name, i)
        if "value" in var and var["value"] is not None and not isinstance(var["value"], str):
            found.append(
                (f"{path}.value", f"expected a string, got {json_type(var['value'])} (quote it in YAML)")
            )
        value_from = var.get("valueFrom")
        if value_from is not None:
            if not isinstance(value_from, dict):
                found.append((f"{path}.valueFrom", f"expected a mapping, got {json_type(value_from)}"))
            else:
                if var.get("value"):
                    found.append((f"{path}.valueFrom", "may not be set together with value"))
                sources = [k for k in _VALUE_FROM_SOURCES if value_from.get(k) is not None]
                unknown = [k for k in value_from if k not in _VALUE_FROM_SOURCES]
                if unknown:
                    found.append(
                        (
                            f"{path}.valueFrom.{unknown[0]}",
                            "unknown field (expected one of " + ", ".join(_VALUE_FROM_SOURCES) + ")",
                        )
                    )
                elif len(sources) != 1:
                    found.append(
                        (f"{path}.valueFrom", "must set exactly one of " + ", ".join(_VALUE_FROM_SOURCES))
                    )
                else:
                    ref = value_from[sources[0]]
                    if not isinstance(ref, dict):
                        found.append(
                            (f"{path}.valueFrom.{sources[0]}", f"expected a mapping, got {json_type(ref)}")
                        )
                    elif sources[0] == "fieldRef":
                        found.extend(_require_string(ref, "fieldPath", f"{path}.valueFrom.fieldRef"))
                    elif sources[0] == "resourceFieldRef":
                        found.extend(_require_string(ref, "resource", f"{path}.valueFrom.resourceFieldRef"))
                    elif sources[0] in ("configMapKeyRef", "secretKeyRef"):
                        found.extend(_require_string(ref, "key", f"{path}.valueFrom.{sources[0]}"))
    return found


def _check_env_from(env_from: tuple[dict[str, Any], ...]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    seen: dict[tuple[object, ...], int] = {}
    for i, item in enumerate(env_from):
        path = f"spec.envFrom[{i}]"
        sources = [k for k in _ENV_FROM_SOURCES if item.get(k) is not None]
        unknown = [k for k in item if k not in (*_ENV_FROM_SOURCES, "prefix")]
        if unknown:
            found.append(
                (f"{path}.{unknown[0]}", "unknown field (expected configMapRef, secretRef or prefix)")
            )
        if len(sources) != 1:
            found.append((path, "must set exactly one of configMapRef or secretRef"))
            continue
        ref = item[sources[0]]
        if not isinstance(ref, dict):
            found.append((f"{path}.{sources[0]}", f"expected a mapping, got {json_type(ref)}"))
        else:
            found.extend(_require_string(ref, "name", f"{path}.{sources[0]}"))
        prefix = item.get("prefix")
        if prefix is not None and not isinstance(prefix, str):
            found.append((f"{path}.prefix", f"expected a string, got {json_type(prefix)}"))
        elif isinstance(ref, dict) and isinstance(ref.get("name"), str):
            key = (prefix or "", sources[0], ref["name"])
            if key in seen:
                found.append((path, f"duplicate envFrom source (also spec.envFrom[{seen[key]}]); keep one"))
            seen.setdefault(key, i)
    return found


def _check_volumes(volumes: tuple[dict[str, Any], ...]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for i, volume in enumerate(volumes):
        path = f"spec.volumes[{i}]"
        name = volume.get("name")
        if not isinstance(name, str) or not name:
            found.append((f"{path}.name", "required: a non-empty string"))
        else:
            if not is_dns_label(name):
                found.append(
                    (
                        f"{path}.name",
                        f"{name!r} must be a DNS label (lowercase letters, digits and '-', "
                        "at most 63 characters)",
                    )
                )
            if name in seen:
                found.append(
                    (
                        f"{path}.name",
                        f"duplicate volume {name!r} (also spec.volumes[{seen[name]}]); keep one definition",
                    )
                )
            seen.setdefault(name, i)
        found.extend(_unknown_fields(volume, ("name", *VOLUME_SOURCES), path, "volume type"))
        sources = [k for k in volume if k in VOLUME_SOURCES and volume[k] is not None]
        if len(sources) > 1:
            found.append((path, f"may specify only one volume type, got {', '.join(sources)}"))
        for key in sources:
            if not isinstance(volume[key], dict):
                found.append((f"{path}.{key}", f"expected a mapping, got {json_type(volume[key])}"))
    return found


def _check_volume_mounts(
    mounts: tuple[dict[str, Any], ...], volumes: tuple[dict[str, Any], ...]
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    declared = {v.get("name") for v in volumes if isinstance(v.get("name"), str)}
    names: dict[str, int] = {}
    paths: dict[str, int] = {}
    for i, mount in enumerate(mounts):
        path = f"spec.volumeMounts[{i}]"
        found.extend(_unknown_fields(mount, _VOLUME_MOUNT_FIELDS, path))
        name_problems = _require_string(mount, "name", path)
        path_problems = _require_string(mount, "mountPath", path)
        found.extend(name_problems + path_problems)
        name = mount.get("name")
        if not name_problems and isinstance(name, str):
            if name not in declared:
                found.append(
                    (
                        f"{path}.name",
                        f"volume {name!r} is not declared in spec.volumes of this preset; add it there",
                    )
                )
            if name in names:
                found.append(
                    (
                        f"{path}.name",
                        f"volume {name!r} is already mounted by spec.volumeMounts[{names[name]}]; "
                        "a preset may mount each of its volumes once",
                    )
                )
            names.setdefault(name, i)
        mount_path = mount.get("mountPath")
        if not path_problems and isinstance(mount_path, str):
            if mount_path in paths:
                found.append(
                    (
                        f"{path}.mountPath",
                        f"{mount_path!r} is already used by spec.volumeMounts[{paths[mount_path]}]",
                    )
                )
            paths.setdefault(mount_path, i)
        for flag in ("readOnly",):
            if flag in mount and mount[flag] is not None and not isinstance(mount[flag], bool):
                found.append((f"{path}.{flag}", f"expected true or false, got {json_type(mount[flag])}"))
    return found


def _check_tolerations(tolerations: tuple[dict[str, Any], ...]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for i, toleration in enumerate(tolerations):
        path = f"spec.tolerations[{i}]"
        operator = toleration.get("operator") or "Equal"
        key = toleration.get("key") or ""
        if operator not in _TOLERATION_OPERATORS:
            found.append((f"{path}.operator", f"must be Exists or Equal, got {operator!r}"))
        if not isinstance(key, str):
            found.append((f"{path}.key", f"expected a string, got {json_type(key)}"))
        elif not key and operator != "Exists":
            found.append(
                (f"{path}.operator", "must be Exists when key is empty (an empty key tolerates every taint)")
            )
        value = toleration.get("value")
        if value is not None and not isinstance(value, str):
            found.append((f"{path}.value", f"expected a string, got {json_type(value)} (quote it in YAML)"))
        elif operator == "Exists" and value:
            found.append((f"{path}.value", "must be empty when operator is Exists"))
        effect = toleration.get("effect")
        if effect not in (None, "", *_TAINT_EFFECTS):
            found.append(
                (
                    f"{path}.effect",
                    f"must be one of {', '.join(_TAINT_EFFECTS)} (or empty for all), got {effect!r}",
                )
            )
        seconds = toleration.get("tolerationSeconds")
        if seconds is not None:
            if not isinstance(seconds, int) or isinstance(seconds, bool):
                found.append((f"{path}.tolerationSeconds", f"expected an integer, got {json_type(seconds)}"))
            elif effect != "NoExecute":
                found.append((f"{path}.tolerationSeconds", "only applies with effect NoExecute"))
        unknown = [
            k for k in toleration if k not in ("key", "operator", "value", "effect", "tolerationSeconds")
        ]
        if unknown:
            found.append(
                (
                    f"{path}.{unknown[0]}",
                    "unknown field (expected key, operator, value, effect, tolerationSeconds)",
                )
            )
    return found


def _unknown_fields(
    item: dict[str, Any], known: tuple[str, ...], path: str, noun: str = "field"
) -> list[tuple[str, str]]:
    """Misspelt keys would be dropped by the API server, silently changing what is injected."""
    found: list[tuple[str, str]] = []
    for key in item:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        by_case = [k for k in known if k.lower() == str(key).lower()]
        hint = f"; did you mean {(by_case or close)[0]}?" if by_case or close else ""
        found.append((f"{path}.{key}", f"unknown {noun}{hint}"))
    return found
