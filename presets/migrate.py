"""Turning other injectors' objects into ``podpreset.dev/v1`` PodPresets (``podpreset migrate``).

Three kinds are read: the in-tree ``settings.k8s.io/v1alpha1`` PodPreset, redhat-cop's
``redhatcop.redhat.io/v1alpha1`` PodPreset and Kubeflow's ``kubeflow.org/v1alpha1`` PodDefault
(their field lists come from their published Go types and CRDs; docs/semantics.md has the table).
``migrate_document`` takes one object and gives back the converted object and, as data, every
field it could not carry over and why; nothing here reads files or talks to a cluster. What it
gives back always passes ``parse_preset``: an item the new API cannot hold is dropped and named,
never passed on. An object already in ``podpreset.dev/v1`` comes back unchanged, so migrating
migrated output changes nothing.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from presets.model import (
    API_VERSION,
    CLUSTER_KIND,
    KIND,
    LEGACY_API_VERSION,
    LIST_FIELDS,
    SPEC_FIELDS,
    InvalidPreset,
    parse_preset,
)
from presets.names import json_type

REDHAT_API_VERSION: Final = "redhatcop.redhat.io/v1alpha1"
KUBEFLOW_API_VERSION: Final = "kubeflow.org/v1alpha1"
PODDEFAULT_KIND: Final = "PodDefault"
DESCRIPTION_ANNOTATION: Final = "podpreset.dev/description"
"""Where a PodDefault's ``desc`` (shown by Kubeflow's UI) is kept on the converted object."""
SOURCE_KINDS: Final = (
    (LEGACY_API_VERSION, KIND),
    (REDHAT_API_VERSION, KIND),
    (KUBEFLOW_API_VERSION, PODDEFAULT_KIND),
)
"""``(apiVersion, kind)`` of every object ``migrate_document`` converts."""

_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
)
"""Set by the API server for the old object; the new object gets its own."""
_ITEM_PATH = re.compile(r"spec\.(?P<field>[A-Za-z]+)\[(?P<index>\d+)\]")
_MAP_PATH = re.compile(
    r"spec\.(?P<field>nodeSelector|podMetadata\.labels|podMetadata\.annotations)\[(?P<key>.*?)\]"
)
_MAX_ROUNDS = 8
"""Dropping an item can make another invalid (a mount of a dropped volume); a few rounds settle it."""

_SELECTOR_AND_LISTS = ("selector", "env", "envFrom", "volumes", "volumeMounts")
"""The spec of settings.k8s.io/v1alpha1 and redhatcop.redhat.io/v1alpha1 PodPresets (both)."""
_NOT_CONTAINERS = (
    "a PodPreset adds items to containers and the pod, never containers themselves; "
    "add {what} to the workload's pod template"
)
_PODDEFAULT_DROPPED: Mapping[str, str] = {
    "serviceAccountName": (
        "a PodPreset never changes which ServiceAccount a pod runs as; set "
        "spec.serviceAccountName in the workload's pod template"
    ),
    "automountServiceAccountToken": (
        "a PodPreset never changes pod spec settings; set automountServiceAccountToken in the "
        "pod template or on the ServiceAccount"
    ),
    "command": (
        "a PodPreset never sets a container's entrypoint; set command in the workload's pod template"
    ),
    "args": "a PodPreset never sets a container's arguments; set args in the workload's pod template",
    "sidecars": _NOT_CONTAINERS.format(what="the container(s)"),
    "initContainers": _NOT_CONTAINERS.format(what="the init container(s)"),
}
"""PodDefault fields with no podpreset.dev/v1 counterpart, and what to do instead."""
_PODDEFAULT_FIELDS = (
    "selector",
    "desc",
    "env",
    "envFrom",
    "volumes",
    "volumeMounts",
    "tolerations",
    "imagePullSecrets",
    "labels",
    "annotations",
    *_PODDEFAULT_DROPPED,
)
"""Every field of PodDefaultSpec (kubeflow components/admission-webhook, poddefault_types.go)."""


class MigrationError(Exception):
    """One object cannot be converted at all; ``problems`` are ``(field, problem)`` pairs."""

    def __init__(self, name: str, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" if f else m for f, m in problems))
        self.name = name
        self.problems = problems


@dataclass(frozen=True, slots=True, kw_only=True)
class Dropped:
    """A field (or one item of a list or map) of the original that the new object does not hold."""

    field: str
    """Where it was in the original, e.g. ``spec.sidecars`` or ``spec.volumeMounts[2]``."""
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Migrated:
    """One original object and what became of it."""

    source_kind: str
    """``apiVersion kind`` of the original."""
    name: str
    namespace: str
    """The original's namespace, ``-n``'s when it named none, or ``""``."""
    converted: dict[str, Any] | None
    """The ``podpreset.dev/v1`` object; None when nothing of the original could be expressed."""
    dropped: tuple[Dropped, ...] = ()


def migrate_document(doc: object, *, namespace: str | None = None) -> Migrated:
    """Convert one object. ``namespace`` places an object that names none (``-n``); without it the
    converted object names none either. Raises ``MigrationError`` for input that is not one of the
    source kinds or is malformed, and for an object whose name or selector the new API refuses."""
    if not isinstance(doc, dict):
        raise MigrationError("", [("", f"expected an object (a mapping), got {json_type(doc)}")])
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    shown_name = name if isinstance(name, str) else ""
    if api_version == API_VERSION and kind in (KIND, CLUSTER_KIND):
        return _already_migrated(doc, shown_name, namespace)
    convert = _CONVERTERS.get((str(api_version), str(kind)))
    if convert is None:
        kinds = ", ".join(f"{v} {k}" for v, k in SOURCE_KINDS)
        raise MigrationError(
            shown_name,
            [("", f"apiVersion {api_version!r} kind {kind!r} is not one migrate reads (it reads {kinds})")],
        )
    problems: list[tuple[str, str]] = []
    if not isinstance(metadata, dict):
        problems.append(("metadata", f"required: a mapping with a name, got {json_type(metadata)}"))
        metadata = {}
    if not isinstance(name, str) or not name:
        problems.append(("metadata.name", "required: a non-empty string"))
    spec = doc.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        problems.append(("spec", f"expected a mapping, got {json_type(spec)}"))
        spec = {}
    raw_namespace = metadata.get("namespace")
    if raw_namespace is not None and not isinstance(raw_namespace, str):
        problems.append(("metadata.namespace", f"expected a string, got {json_type(raw_namespace)}"))
    dropped: list[Dropped] = []
    new_metadata = _metadata(metadata, raw_namespace or namespace, problems, dropped)
    new_spec, renamed = convert(spec, problems, dropped, new_metadata)
    if problems:
        raise MigrationError(shown_name, problems)
    converted = {"apiVersion": API_VERSION, "kind": KIND, "metadata": new_metadata, "spec": new_spec}
    source_kind = f"{api_version} {kind}"
    result = _settle(converted, renamed, dropped, shown_name)
    return Migrated(
        source_kind=source_kind,
        name=shown_name,
        namespace=str(new_metadata.get("namespace", "")),
        converted=result,
        dropped=tuple(dropped),
    )


def _already_migrated(doc: dict[str, Any], name: str, namespace: str | None) -> Migrated:
    """A podpreset.dev/v1 object passes through as it is, once it is known to be valid."""
    try:
        parse_preset(copy.deepcopy(doc), source="", document=0, default_namespace=namespace or "default")
    except InvalidPreset as exc:
        raise MigrationError(name, [(p.field, p.message) for p in exc.problems]) from None
    metadata = doc.get("metadata") or {}
    converted = doc
    if namespace and doc.get("kind") == KIND and not metadata.get("namespace"):
        converted = {**doc, "metadata": {**metadata, "namespace": namespace}}
    return Migrated(
        source_kind=f"{API_VERSION} {doc['kind']}",
        name=name,
        namespace=str(converted["metadata"].get("namespace") or ""),
        converted=converted,
    )


def _metadata(
    metadata: dict[str, Any],
    namespace: object,
    problems: list[tuple[str, str]],
    dropped: list[Dropped],
) -> dict[str, Any]:
    """Name, namespace, labels and annotations carry over; what the API server set for the old
    object does not; owner references and finalizers belong to the old object's owner."""
    new: dict[str, Any] = {"name": metadata.get("name")}
    if isinstance(namespace, str) and namespace:
        new["namespace"] = namespace
    for key in ("labels", "annotations"):
        value = metadata.get(key)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            problems.append((f"metadata.{key}", "expected a mapping of strings"))
            continue
        kept = {k: v for k, v in value.items() if k != _LAST_APPLIED}
        if kept:
            new[key] = kept
    for key in ("ownerReferences", "finalizers"):
        if metadata.get(key):
            dropped.append(
                Dropped(
                    field=f"metadata.{key}",
                    why="belongs to the original object (its owner or controller acts on that one); "
                    "set it on the new object yourself if it still applies",
                )
            )
    return new


Converter = Callable[
    [dict[str, Any], list[tuple[str, str]], list[Dropped], dict[str, Any]],
    tuple[dict[str, Any], dict[str, str]],
]
"""``(spec, problems, dropped, new metadata) -> (new spec, {new field: original field})``."""


def _typed(spec: dict[str, Any], key: str, problems: list[tuple[str, str]]) -> bool:
    """Whether ``spec[key]`` has the JSON type its schema gives it (a wrong one is bad input)."""
    value: Any = spec[key]
    expected: type | tuple[type, ...]
    if key in ("selector", "labels", "annotations", "nodeSelector", "podMetadata", "containerSelector"):
        expected, noun = dict, "a mapping"
    elif key in ("desc", "serviceAccountName", "onConflict"):
        expected, noun = str, "a string"
    elif key == "automountServiceAccountToken":
        expected, noun = bool, "true or false"
    elif key == "priority":
        expected, noun = int, "an integer"
    else:
        expected, noun = list, "a list"
    if not isinstance(value, expected):
        problems.append((f"spec.{key}", f"expected {noun}, got {json_type(value)}"))
        return False
    if isinstance(value, dict) and key in ("labels", "annotations") and not _all_strings(value.values()):
        problems.append((f"spec.{key}", "expected a mapping of strings (quote the values in YAML)"))
        return False
    if isinstance(value, list) and key in ("command", "args") and not _all_strings(value):
        problems.append((f"spec.{key}", "expected a list of strings"))
        return False
    return True


def _all_strings(values: Iterable[object]) -> bool:
    return all(isinstance(v, str) for v in values)


def _unknown(spec: dict[str, Any], known: tuple[str, ...], what: str, dropped: list[Dropped]) -> None:
    for key in spec:
        if key not in known:
            dropped.append(
                Dropped(
                    field=f"spec.{key}",
                    why=f"not a field of {what} (its API server would have pruned it); check the spelling",
                )
            )


def _convert_settings(
    spec: dict[str, Any], problems: list[tuple[str, str]], dropped: list[Dropped], _: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """settings.k8s.io/v1alpha1: the same fields with the same meaning. podpreset's own
    additions are accepted in files of this apiVersion too, so they carry over as they are."""
    new: dict[str, Any] = {}
    for key, value in spec.items():
        if key in SPEC_FIELDS and value is not None and _typed(spec, key, problems):
            new[key] = copy.deepcopy(value)
    _unknown(spec, SPEC_FIELDS, f"{LEGACY_API_VERSION} {KIND} nor of {API_VERSION}", dropped)
    return new, {}


def _convert_redhat(
    spec: dict[str, Any], problems: list[tuple[str, str]], dropped: list[Dropped], _: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """redhatcop.redhat.io/v1alpha1: selector, env, envFrom, volumes, volumeMounts; each into
    every container and init container, as there."""
    new: dict[str, Any] = {}
    for key in _SELECTOR_AND_LISTS:
        if spec.get(key) is not None and _typed(spec, key, problems):
            new[key] = copy.deepcopy(spec[key])
    _unknown(spec, _SELECTOR_AND_LISTS, f"{REDHAT_API_VERSION} {KIND}", dropped)
    return new, {}


def _convert_poddefault(
    spec: dict[str, Any], problems: list[tuple[str, str]], dropped: list[Dropped], metadata: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """kubeflow.org/v1alpha1 PodDefault. Its env, envFrom and volumeMounts go to the pod's
    containers, not its init containers; it refuses a pod on any conflict."""
    new: dict[str, Any] = {}
    renamed: dict[str, str] = {}
    present = {
        key: value
        for key, value in spec.items()
        if key in _PODDEFAULT_FIELDS and value is not None and _typed(spec, key, problems)
    }
    for key in ("selector", "env", "envFrom", "volumes", "volumeMounts", "tolerations", "imagePullSecrets"):
        if key in present and (present[key] or key == "selector"):
            new[key] = copy.deepcopy(present[key])
    if any(new.get(key) for key in ("env", "envFrom", "volumeMounts")):
        new["containerSelector"] = {"initContainers": False}
    pod_metadata = {key: dict(present[key]) for key in ("labels", "annotations") if present.get(key)}
    if pod_metadata:
        new["podMetadata"] = pod_metadata
        renamed.update({f"podMetadata.{key}": key for key in pod_metadata})
    if present.get("desc"):
        metadata.setdefault("annotations", {})[DESCRIPTION_ANNOTATION] = present["desc"]
    for key, why in _PODDEFAULT_DROPPED.items():
        value = present.get(key)
        if value in (None, "", []):
            continue  # omitempty in the Go type: an empty value does nothing there either
        if key in ("sidecars", "initContainers"):
            names = [c.get("name") for c in value if isinstance(c, dict) and isinstance(c.get("name"), str)]
            noun = "container" if key == "sidecars" else "init container"
            what = f"the {noun}{'s' if len(names) != 1 else ''} {', '.join(map(repr, names))}"
            dropped.append(
                Dropped(field=f"spec.{key}", why=why.replace(f"the {noun}(s)", what) if names else why)
            )
            continue
        dropped.append(Dropped(field=f"spec.{key}", why=why))
    new["onConflict"] = "Reject"
    _unknown(spec, _PODDEFAULT_FIELDS, f"{KUBEFLOW_API_VERSION} {PODDEFAULT_KIND}", dropped)
    return new, renamed


def _reworded(message: str) -> str:
    """The validator's advice is for someone writing a preset; say what migrate did instead."""
    if "is not declared in spec.volumes of this preset" in message:
        return message.replace(
            "is not declared in spec.volumes of this preset; add it there",
            "is not declared by the original (a volume of the pod itself?); a podpreset.dev/v1 "
            "preset mounts only volumes it declares",
        )
    return message.replace("; keep one definition", "; the first is kept").replace(
        "; keep one", "; the first is kept"
    )


_CONVERTERS: dict[tuple[str, str], Converter] = {
    (LEGACY_API_VERSION, KIND): _convert_settings,
    (REDHAT_API_VERSION, KIND): _convert_redhat,
    (KUBEFLOW_API_VERSION, PODDEFAULT_KIND): _convert_poddefault,
}


def _settle(
    converted: dict[str, Any], renamed: dict[str, str], dropped: list[Dropped], name: str
) -> dict[str, Any] | None:
    """Validate the converted object as ``podpreset validate`` would; drop each list item or map
    entry it refuses (naming it), until it is valid. Problems elsewhere (the name, the selector)
    cannot be fixed by dropping: ``MigrationError``. None when nothing is left to inject."""
    spec = converted["spec"]
    origins: dict[str, list[int]] = {
        key: list(range(len(spec[key]))) for key in LIST_FIELDS if isinstance(spec.get(key), list)
    }
    for _ in range(_MAX_ROUNDS):
        try:
            parse_preset(copy.deepcopy(converted), source="", document=0, default_namespace="default")
        except InvalidPreset as exc:
            problems = [(p.field, p.message) for p in exc.problems]
        else:
            return converted
        if any(f == "spec" and m.startswith("injects nothing") for f, m in problems):
            return None
        refused = _sort_problems(problems, origins, renamed, dropped)
        if refused.fatal:
            raise MigrationError(name, [(f, f"cannot be converted: {m}") for f, m in refused.fatal])
        _drop_items(spec, origins, refused.items)
        _drop_entries(spec, refused.entries)
    raise MigrationError(
        name, [("spec", "cannot be converted: still invalid after dropping what was refused")]
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Refused:
    """One validation round's problems: list items and map entries to drop, and what cannot be."""

    items: dict[str, set[int]]
    entries: dict[str, set[str]]
    fatal: list[tuple[str, str]]


def _sort_problems(
    problems: list[tuple[str, str]],
    origins: dict[str, list[int]],
    renamed: dict[str, str],
    dropped: list[Dropped],
) -> _Refused:
    """Sort a round's problems into droppable items and entries (each named once in ``dropped``,
    by its place in the original) and fatal ones."""
    refused = _Refused(items={}, entries={}, fatal=[])
    for field, message in problems:
        item, entry = _ITEM_PATH.match(field), _MAP_PATH.fullmatch(field)
        if item and item["field"] in origins and int(item["index"]) < len(origins[item["field"]]):
            key, index = item["field"], int(item["index"])
            if index not in refused.items.setdefault(key, set()):
                refused.items[key].add(index)
                rest = field[item.end() :].lstrip(".")
                why = f"{rest}: {_reworded(message)}" if rest else _reworded(message)
                dropped.append(Dropped(field=f"spec.{key}[{origins[key][index]}]", why=why))
        elif entry:
            path, key = entry["field"], entry["key"]
            refused.entries.setdefault(path, set()).add(key)
            dropped.append(Dropped(field=f"spec.{renamed.get(path, path)}[{key}]", why=message))
        else:
            refused.fatal.append((field, message))
    return refused


def _drop_items(spec: dict[str, Any], origins: dict[str, list[int]], items: dict[str, set[int]]) -> None:
    """Remove the refused list items (and a list left empty), keeping ``origins`` in step."""
    for key, indexes in items.items():
        spec[key] = [v for i, v in enumerate(spec[key]) if i not in indexes]
        origins[key] = [o for i, o in enumerate(origins[key]) if i not in indexes]
        if not spec[key]:
            del spec[key]


def _drop_entries(spec: dict[str, Any], entries: dict[str, set[str]]) -> None:
    """Remove the refused map entries (and a map, or podMetadata, left empty)."""
    for path, keys in entries.items():
        holder = spec
        *parents, last = path.split(".")
        for part in parents:
            holder = holder[part]
        holder[last] = {k: v for k, v in holder[last].items() if k not in keys}
        if not holder[last]:
            del holder[last]
    if "podMetadata" in spec and not spec["podMetadata"]:
        del spec["podMetadata"]
