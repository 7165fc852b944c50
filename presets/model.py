"""PodPreset and ClusterPodPreset documents: parsing and validation into frozen values.

Accepts ``podpreset.dev/v1`` PodPresets and ClusterPodPresets, and the legacy
``settings.k8s.io/v1alpha1`` PodPreset (same fields, same meaning). Both kinds parse into one
``PodPreset`` value whose ``kind`` says which it is; a ClusterPodPreset has ``namespace == ""``.
Items stay raw camelCase JSON (never Kubernetes client models, which lose unknown
fields); validation checks what can never work and says where, in the form
``FILE: document N (NAME): FIELD: problem``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Final, Literal, cast

from presets.limits import DEFAULT_MAX_PRESET_BYTES, preset_size_problem
from presets.names import is_dns_label, is_dns_subdomain, json_type
from presets.selector import EVERYTHING, Selector, label_key_problem, label_value_problem, parse_selector

API_VERSION = "podpreset.dev/v1"
LEGACY_API_VERSION = "settings.k8s.io/v1alpha1"
API_VERSIONS = (API_VERSION, LEGACY_API_VERSION)
Kind = Literal["PodPreset", "ClusterPodPreset"]
KIND: Final = "PodPreset"
CLUSTER_KIND: Final = "ClusterPodPreset"
KINDS: tuple[Kind, ...] = (KIND, CLUSTER_KIND)
ConflictPolicy = Literal["SkipAll", "SkipPreset", "KeepExisting", "Reject"]
POLICIES: tuple[ConflictPolicy, ...] = ("SkipAll", "SkipPreset", "KeepExisting", "Reject")
RolloutPolicy = Literal["OnChange", "Never"]
ROLLOUT_POLICIES: tuple[RolloutPolicy, ...] = ("OnChange", "Never")
"""``spec.rollout``: whether an edit of the preset rolls the opted-in workloads it matches
(``presets.rollout``); ``Never`` leaves the preset out of their hash."""
ANNOTATION_PREFIX = "podpreset.admission.kubernetes.io/"
"""Reserved: the engine's own annotations live here; presets may not set keys under it."""
ANNOTATION_NAME_PREFIXES: dict[Kind, str] = {KIND: "podpreset-", CLUSTER_KIND: "clusterpodpreset-"}
MAX_NAME_LENGTH = 53
"""``podpreset-<name>`` is the name part of an annotation key, at most 63 characters."""
MAX_CLUSTER_NAME_LENGTH = 46
"""``clusterpodpreset-<name>`` must fit in 63 characters too."""
MAX_NAME_LENGTHS: dict[Kind, int] = {KIND: MAX_NAME_LENGTH, CLUSTER_KIND: MAX_CLUSTER_NAME_LENGTH}
PRIORITY_RANGE = (-(2**31), 2**31 - 1)
"""``priority`` is an int32, as Kubernetes' own priorities are."""

SPEC_FIELDS = (
    "selector",
    "env",
    "envFrom",
    "volumes",
    "volumeMounts",
    "tolerations",
    "containerSelector",
    "nodeSelector",
    "imagePullSecrets",
    "podMetadata",
    "priority",
    "onConflict",
    "rollout",
)
CLUSTER_SPEC_FIELDS = ("namespaceSelector", *SPEC_FIELDS)
LIST_FIELDS = ("env", "envFrom", "volumes", "volumeMounts", "tolerations", "imagePullSecrets")
INJECTION_FIELDS = (*LIST_FIELDS, "nodeSelector", "podMetadata")
GLOB_RE = re.compile(r"(?:[a-z0-9-]|\*|\?|\[!?(?:[a-z0-9]-[a-z0-9]|[a-z0-9-])+\])+")
"""A container-name glob: name characters, ``*``, ``?`` and classes such as ``[a-z]``, ``[!0-9]``."""

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
class ContainerSelector:
    """Which containers receive a preset's env, envFrom and volumeMounts (glob patterns on names)."""

    include: tuple[str, ...] = ()
    """Empty: every container."""
    exclude: tuple[str, ...] = ()
    init_containers: bool = True

    def skip_reason(self, name: str, *, init: bool) -> str | None:
        """Why the container named ``name`` is not targeted, or None when it is."""
        if init and not self.init_containers:
            return "initContainers: false"
        if self.include and not any(fnmatchcase(name, g) for g in self.include):
            return "matches no include pattern (" + ", ".join(self.include) + ")"
        for glob in self.exclude:
            if fnmatchcase(name, glob):
                return f"excluded by {glob!r}"
        return None

    @property
    def targets_all(self) -> bool:
        return not self.include and not self.exclude and self.init_containers


ALL_CONTAINERS = ContainerSelector()


@dataclass(frozen=True, slots=True, kw_only=True)
class PodPreset:
    """A validated PodPreset or ClusterPodPreset. Item tuples hold raw JSON mappings that must
    not be mutated; maps are tuples of ``(key, value)`` pairs in document order."""

    name: str
    namespace: str
    """The preset's namespace; ``""`` for a ClusterPodPreset."""
    kind: Kind = KIND
    resource_version: str = ""
    selector: Selector = EVERYTHING
    namespace_selector: Selector | None = None
    """A ClusterPodPreset's selector over namespace labels (absent or ``{}``: every namespace);
    always None for a PodPreset."""
    env: tuple[dict[str, Any], ...] = ()
    env_from: tuple[dict[str, Any], ...] = ()
    volumes: tuple[dict[str, Any], ...] = ()
    volume_mounts: tuple[dict[str, Any], ...] = ()
    tolerations: tuple[dict[str, Any], ...] = ()
    container_selector: ContainerSelector = ALL_CONTAINERS
    node_selector: tuple[tuple[str, str], ...] = ()
    image_pull_secrets: tuple[dict[str, Any], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    """``podMetadata.labels``."""
    annotations: tuple[tuple[str, str], ...] = ()
    """``podMetadata.annotations``."""
    priority: int = 0
    on_conflict: ConflictPolicy = "SkipAll"
    rollout: RolloutPolicy = "OnChange"
    source: str = field(default="", compare=False)
    """Where the preset came from, for messages: a file path or ``namespace/name``."""

    @property
    def is_cluster(self) -> bool:
        return self.kind == CLUSTER_KIND

    @property
    def annotation_key(self) -> str:
        """The pod annotation that records this preset was applied."""
        return ANNOTATION_PREFIX + ANNOTATION_NAME_PREFIXES[self.kind] + self.name

    @property
    def ref(self) -> str:
        """How messages and ``Outcome.applied`` name it: ``name`` for a PodPreset (as always),
        ``clusterpodpreset/name`` for a ClusterPodPreset."""
        return f"clusterpodpreset/{self.name}" if self.is_cluster else self.name


def order_key(preset: PodPreset) -> tuple[int, int, str]:
    """THE preset order, used everywhere: priority descending, then ClusterPodPresets before
    PodPresets, then by name."""
    return (-preset.priority, 0 if preset.is_cluster else 1, preset.name)


PROTECTED_ENTRY = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*\*?")
"""A protected env name, or a prefix ending in ``*`` (what ``--protected`` accepts everywhere)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Protected:
    """Env names and name prefixes no preset may inject (a server setting, passed in)."""

    names: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Protected:
        """``NAME`` protects one name, ``PREFIX*`` every name starting with ``PREFIX``.
        Raises ``ValueError`` naming a bad entry."""
        names: set[str] = set()
        prefixes: list[str] = []
        for entry in entries:
            text = entry.strip()
            body = text[:-1] if text.endswith("*") else text
            if not PROTECTED_ENTRY.fullmatch(text):
                raise ValueError(
                    f"protected env name {entry!r}: expected NAME or PREFIX* (no '=', one trailing '*'; "
                    "letters, digits, '_', '-', '.', not starting with a digit)"
                )
            if text.endswith("*"):
                if body not in prefixes:
                    prefixes.append(body)
            else:
                names.add(body)
        return cls(names=frozenset(names), prefixes=tuple(prefixes))

    def why_name(self, name: str) -> str | None:
        """Why an env var of this name may not be injected, or None."""
        if name in self.names:
            return "is protected"
        for prefix in self.prefixes:
            if name.startswith(prefix):
                return f"is protected (prefix {prefix}*)"
        return None

    def why_prefix(self, prefix: str) -> str | None:
        """Why an envFrom with this ``prefix`` may not be injected, or None. An envFrom without
        a prefix cannot be checked: its names are the keys of a ConfigMap or Secret."""
        if not prefix:
            return None
        for protected in self.prefixes:
            if prefix.startswith(protected):
                return f"is protected (prefix {protected}*)"
        if prefix in self.names:
            return "is protected"
        return None

    def describe(self) -> str:
        return ", ".join([*sorted(self.names), *(p + "*" for p in self.prefixes)]) or "nothing"


DEFAULT_PROTECTED_ENTRIES = (
    "KUBERNETES_*",
    # The dynamic loader: a library to preload, where to find libraries, an audit library.
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    # Language runtimes read these at start to load an agent, code or options into the process.
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "NODE_OPTIONS",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PERL5OPT",
    "PERL5LIB",
    "RUBYOPT",
    "RUBYLIB",
    "DOTNET_STARTUP_HOOKS",
    "CORECLR_PROFILER_PATH",
    # Non-interactive bash runs the file this names before its script.
    "BASH_ENV",
)
"""The one default list of env names (and ``PREFIX*``) no preset may inject, for ``serve`` and
the CLI alike: the API server's service variables, and every variable that makes the dynamic
loader or a language runtime load code the variable names (docs/semantics.md says why each).
``--protected`` replaces the whole list."""
DEFAULT_PROTECTED = Protected.parse(DEFAULT_PROTECTED_ENTRIES)
NOTHING_PROTECTED = Protected()


RESTRICTED_VOLUME_TYPES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
)
"""The volume types the Pod Security "restricted" level allows: the default of what a
namespaced PodPreset may inject (``--namespaced-volume-types``)."""
ANY_VOLUME_TYPE = "*"


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeTypes:
    """The volume types a PodPreset (namespaced) may inject; a server setting, passed in.
    ClusterPodPresets may inject any. ``allowed`` None: any type."""

    allowed: frozenset[str] | None = None

    @classmethod
    def parse(cls, entries: Iterable[str]) -> VolumeTypes:
        """Volume type names as in a pod's ``volumes[]`` (``hostPath``), or ``*`` for any.
        Raises ``ValueError`` naming an entry that is no volume type."""
        allowed: set[str] = set()
        for entry in entries:
            text = entry.strip()
            if text == ANY_VOLUME_TYPE:
                return cls(allowed=None)
            if text not in VOLUME_SOURCES:
                raise ValueError(
                    f"{_shown(text)!r} is not a volume type; expected '*' or names such as "
                    f"{', '.join(RESTRICTED_VOLUME_TYPES)}"
                )
            allowed.add(text)
        return cls(allowed=frozenset(allowed))

    def refused(self, preset: PodPreset) -> tuple[tuple[str, str], ...]:
        """``(volume name, type)`` of each volume of ``preset`` whose type it may not inject."""
        if self.allowed is None or preset.kind == CLUSTER_KIND or not preset.volumes:
            return ()
        found = ((str(v.get("name", "")), volume_type(v)) for v in preset.volumes)
        return tuple((name, kind) for name, kind in found if kind not in self.allowed)

    def describe(self) -> str:
        return "any" if self.allowed is None else ", ".join(sorted(self.allowed)) or "none"


DEFAULT_VOLUME_TYPES = VolumeTypes(allowed=frozenset(RESTRICTED_VOLUME_TYPES))
ANY_VOLUME_TYPES = VolumeTypes(allowed=None)


def volume_type(volume: Mapping[str, Any]) -> str:
    """The type of a volume (the key of its source); ``emptyDir`` when it names none, as the API
    server's defaulting makes it."""
    for key, value in volume.items():
        if key != "name" and value is not None and key in VOLUME_SOURCES:
            return key
    return "emptyDir"


def volume_type_problems(preset: PodPreset, volume_types: VolumeTypes) -> list[tuple[str, str]]:
    """``(field, problem)`` for every volume of ``preset`` of a type it may not inject."""
    index = {str(v.get("name", "")): i for i, v in enumerate(preset.volumes)}
    return [
        (
            f"spec.volumes[{index[name]}].{kind}",
            f"volume {name!r} is of type {kind}, which a PodPreset may not inject (allowed: "
            f"{volume_types.describe()}; --namespaced-volume-types); a ClusterPodPreset may",
        )
        for name, kind in volume_types.refused(preset)
    ]


def protected_items(
    preset: PodPreset, protected: Protected
) -> Iterator[tuple[Literal["env", "envFrom"], int, dict[str, Any], str]]:
    """``(field, index, item, why)`` for every env var and envFrom prefix of ``preset`` that
    ``protected`` covers: what ``validate --protected`` refuses and the engine treats as a conflict."""
    for i, var in enumerate(preset.env):
        why = protected.why_name(str(var.get("name", "")))
        if why:
            yield "env", i, var, why
    for i, item in enumerate(preset.env_from):
        why = protected.why_prefix(str(item.get("prefix") or ""))
        if why:
            yield "envFrom", i, item, why


def protected_problems(preset: PodPreset, protected: Protected) -> list[tuple[str, str]]:
    """``(field, problem)`` for every env var and envFrom prefix of ``preset`` that ``protected`` covers."""
    found: list[tuple[str, str]] = []
    for field_name, i, item, why in protected_items(preset, protected):
        if field_name == "env":
            found.append((f"spec.env[{i}].name", f"{item.get('name')!r} {why}; no preset may inject it"))
        else:
            found.append(
                (f"spec.envFrom[{i}].prefix", f"{item.get('prefix')!r} {why}; no preset may inject it")
            )
    return found


def parse_preset(doc: object, *, source: str, document: int, default_namespace: str) -> PodPreset:
    """Validate one PodPreset or ClusterPodPreset document; raises :class:`InvalidPreset`
    listing every problem. ``default_namespace`` places a PodPreset that names none."""
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

    kind: Kind = CLUSTER_KIND if doc.get("kind") == CLUSTER_KIND else KIND
    if doc.get("kind") not in KINDS:
        found.append(("kind", f"must be {KIND} or {CLUSTER_KIND}, got {doc.get('kind')!r}"))
    versions = API_VERSIONS if kind == KIND else (API_VERSION,)
    if doc.get("apiVersion") not in versions:
        found.append(("apiVersion", f"must be one of {', '.join(versions)}, got {doc.get('apiVersion')!r}"))

    namespace, resource_version = _parse_metadata(doc.get("metadata"), kind, default_namespace, found)

    spec = doc.get("spec")
    parsed = _Spec()
    if not isinstance(spec, dict):
        found.append(
            ("spec", "required: a mapping with a selector and at least one of " + ", ".join(INJECTION_FIELDS))
        )
    else:
        parsed = _parse_spec(spec, kind, found)

    if found:
        raise InvalidPreset(
            [
                Problem(
                    source=source, document=document, name=_shown(name), field=_shown(f), message=_shown(m)
                )
                for f, m in found
            ]
        )
    return _preset_of(name, namespace, kind, resource_version=resource_version, parsed=parsed, source=source)


def _parse_metadata(
    metadata: object, kind: Kind, default_namespace: str, found: list[tuple[str, str]]
) -> tuple[str, str]:
    """The preset's namespace and resourceVersion; its name's problems go to ``found``."""
    namespace = default_namespace if kind == KIND else ""
    if not isinstance(metadata, dict):
        found.append(("metadata", "required: a mapping with at least a name"))
        return namespace, ""
    found.extend(_check_name(metadata.get("name"), kind))
    raw_ns = metadata.get("namespace")
    if raw_ns is not None and raw_ns != "":
        if kind == CLUSTER_KIND:
            found.append(
                ("metadata.namespace", "a ClusterPodPreset is cluster-scoped: remove metadata.namespace")
            )
        elif not is_dns_label(raw_ns):
            found.append(
                (
                    "metadata.namespace",
                    f"must be a DNS label (lowercase letters, digits, '-'), got {raw_ns!r}",
                )
            )
        else:
            namespace = raw_ns
    rv = metadata.get("resourceVersion")
    return namespace, "" if rv is None else str(rv)


def _preset_of(
    name: str, namespace: str, kind: Kind, *, resource_version: str, parsed: _Spec, source: str
) -> PodPreset:
    return PodPreset(
        name=name,
        namespace=namespace,
        kind=kind,
        resource_version=resource_version,
        selector=parsed.selector,
        namespace_selector=parsed.namespace_selector,
        env=parsed.items["env"],
        env_from=parsed.items["envFrom"],
        volumes=parsed.items["volumes"],
        volume_mounts=parsed.items["volumeMounts"],
        tolerations=parsed.items["tolerations"],
        image_pull_secrets=parsed.items["imagePullSecrets"],
        container_selector=parsed.container_selector,
        node_selector=parsed.node_selector,
        labels=parsed.labels,
        annotations=parsed.annotations,
        priority=parsed.priority,
        on_conflict=parsed.on_conflict,
        rollout=parsed.rollout,
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


@dataclass(slots=True)
class _Spec:
    """The parts of a spec, filled in while checking it."""

    selector: Selector = EVERYTHING
    namespace_selector: Selector | None = None
    items: dict[str, tuple[dict[str, Any], ...]] = field(
        default_factory=lambda: dict.fromkeys(LIST_FIELDS, ())
    )
    container_selector: ContainerSelector = ALL_CONTAINERS
    node_selector: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    priority: int = 0
    on_conflict: ConflictPolicy = "SkipAll"
    rollout: RolloutPolicy = "OnChange"


def _parse_list(raw: object, path: str, found: list[tuple[str, str]]) -> tuple[dict[str, Any], ...]:
    """The mappings of a list field; each other item, or another type, is a problem."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        found.append((path, f"expected a list, got {json_type(raw)}"))
        return ()
    good = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            found.append((f"{path}[{i}]", f"expected a mapping, got {json_type(item)}"))
        else:
            good.append(item)
    return tuple(good)


def _parse_pod_metadata(metadata: object, parsed: _Spec, found: list[tuple[str, str]]) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        found.append(("spec.podMetadata", f"expected a mapping, got {json_type(metadata)}"))
        return
    for key in metadata:
        if key not in ("labels", "annotations"):
            found.append((f"spec.podMetadata.{key}", "unknown field (expected labels or annotations)"))
    parsed.labels = _parse_map(metadata.get("labels"), "spec.podMetadata.labels", "label", found)
    parsed.annotations = _parse_map(
        metadata.get("annotations"), "spec.podMetadata.annotations", "annotation", found
    )


def _parse_order(spec: dict[str, Any], parsed: _Spec, found: list[tuple[str, str]]) -> None:
    """``priority``, ``onConflict`` and ``rollout``: where the preset stands, what its conflicts
    do, and whether its edits roll opted-in workloads."""
    priority = spec.get("priority")
    if priority is not None:
        low, high = PRIORITY_RANGE
        if not isinstance(priority, int) or isinstance(priority, bool):
            found.append(("spec.priority", f"expected an integer, got {json_type(priority)}"))
        elif not low <= priority <= high:
            found.append(("spec.priority", f"{priority} is outside the 32-bit range {low}..{high}"))
        else:
            parsed.priority = priority
    policy = spec.get("onConflict")
    if policy is not None:
        if policy not in POLICIES:
            found.append(("spec.onConflict", f"must be one of {', '.join(POLICIES)}, got {policy!r}"))
        else:
            parsed.on_conflict = cast(ConflictPolicy, policy)
    rollout = spec.get("rollout")
    if rollout is not None:
        if rollout not in ROLLOUT_POLICIES:
            found.append(("spec.rollout", f"must be one of {', '.join(ROLLOUT_POLICIES)}, got {rollout!r}"))
        else:
            parsed.rollout = cast(RolloutPolicy, rollout)


def _parse_spec(spec: dict[str, Any], kind: Kind, found: list[tuple[str, str]]) -> _Spec:
    parsed = _Spec()
    known = CLUSTER_SPEC_FIELDS if kind == CLUSTER_KIND else SPEC_FIELDS
    for key in spec:
        if key == "namespaceSelector" and kind == KIND:
            found.append((f"spec.{key}", "only a ClusterPodPreset has a namespaceSelector"))
        elif key not in known:
            found.append((f"spec.{key}", f"unknown field (a {kind} spec has {', '.join(known)})"))
    parsed.selector, selector_problems = parse_selector(spec.get("selector"), "spec.selector")
    found.extend(selector_problems)
    if kind == CLUSTER_KIND:
        parsed.namespace_selector, ns_problems = parse_selector(
            spec.get("namespaceSelector"), "spec.namespaceSelector"
        )
        found.extend(ns_problems)
    for key in LIST_FIELDS:
        parsed.items[key] = _parse_list(spec.get(key), f"spec.{key}", found)
    parsed.container_selector = _parse_container_selector(spec.get("containerSelector"), found)
    parsed.node_selector = _parse_map(spec.get("nodeSelector"), "spec.nodeSelector", "label", found)
    _parse_pod_metadata(spec.get("podMetadata"), parsed, found)
    _parse_order(spec, parsed, found)
    injects = any(parsed.items[k] for k in LIST_FIELDS) or parsed.node_selector or parsed.labels
    if not injects and not parsed.annotations and not any(p.startswith("spec.") for p, _ in found):
        found.append(("spec", "injects nothing: set at least one of " + ", ".join(INJECTION_FIELDS)))
    found.extend(_check_env(parsed.items["env"]))
    found.extend(_check_env_from(parsed.items["envFrom"]))
    found.extend(_check_volumes(parsed.items["volumes"]))
    found.extend(_check_volume_mounts(parsed.items["volumeMounts"], parsed.items["volumes"]))
    found.extend(_check_tolerations(parsed.items["tolerations"]))
    found.extend(_check_image_pull_secrets(parsed.items["imagePullSecrets"]))
    return parsed


def _parse_container_selector(raw: object, found: list[tuple[str, str]]) -> ContainerSelector:
    path = "spec.containerSelector"
    if raw is None:
        return ALL_CONTAINERS
    if not isinstance(raw, dict):
        found.append((path, f"expected a mapping, got {json_type(raw)}"))
        return ALL_CONTAINERS
    found.extend(_unknown_fields(raw, ("include", "exclude", "initContainers"), path))
    globs: dict[str, tuple[str, ...]] = {}
    for key in ("include", "exclude"):
        value = raw.get(key)
        if value is None:
            globs[key] = ()
            continue
        if not isinstance(value, list):
            found.append((f"{path}.{key}", f"expected a list of glob patterns, got {json_type(value)}"))
            globs[key] = ()
            continue
        if key == "include" and not value:
            found.append((f"{path}.include", "must not be empty; leave it out to target every container"))
        good: list[str] = []
        for i, glob in enumerate(value):
            if not isinstance(glob, str) or not GLOB_RE.fullmatch(glob) or len(glob) > 253:
                found.append(
                    (
                        f"{path}.{key}[{i}]",
                        f"{glob!r} is not a container-name glob (lowercase letters, digits, '-', "
                        "'*', '?' and classes such as [a-z] or [!0-9])",
                    )
                )
            else:
                good.append(glob)
        globs[key] = tuple(good)
    init = raw.get("initContainers", True)
    if init is None:
        init = True
    if not isinstance(init, bool):
        found.append((f"{path}.initContainers", f"expected true or false, got {json_type(init)}"))
        init = True
    return ContainerSelector(include=globs["include"], exclude=globs["exclude"], init_containers=init)


def _parse_map(
    raw: object, path: str, noun: Literal["label", "annotation"], found: list[tuple[str, str]]
) -> tuple[tuple[str, str], ...]:
    """A map of label (or annotation) keys to string values; annotation values may be any string."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        found.append((path, f"expected a mapping, got {json_type(raw)}"))
        return ()
    pairs: list[tuple[str, str]] = []
    for key, value in raw.items():
        where = f"{path}[{key}]"
        problem = label_key_problem(key)
        if problem:
            found.append((where, problem.replace("label key", f"{noun} key")))
            continue
        if not isinstance(value, str):
            found.append((where, f"expected a string value, got {json_type(value)} (quote it in YAML)"))
            continue
        if noun == "label":
            value_problem = label_value_problem(value)
            if value_problem:
                found.append((where, value_problem))
                continue
        elif key.startswith(ANNOTATION_PREFIX):
            found.append(
                (where, f"the prefix {ANNOTATION_PREFIX} is reserved for podpreset's own annotations")
            )
            continue
        pairs.append((key, value))
    return tuple(pairs)


def _check_image_pull_secrets(secrets: tuple[dict[str, Any], ...]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(secrets):
        path = f"spec.imagePullSecrets[{i}]"
        found.extend(_unknown_fields(item, ("name",), path))
        name = item.get("name")
        if not isinstance(name, str) or not name:
            found.append((f"{path}.name", "required: a non-empty string"))
        elif not is_dns_subdomain(name):
            found.append((f"{path}.name", f"{name!r} is not a valid Secret name (a DNS subdomain)"))
        elif name in seen:
            found.append(
                (f"{path}.name", f"duplicate Secret {name!r} (also spec.imagePullSecrets[{seen[name]}])")
            )
        else:
            seen[name] = i
    return found


def parse_api_object(
    obj: object, *, max_bytes: int = DEFAULT_MAX_PRESET_BYTES
) -> tuple[PodPreset | None, tuple[str, ...]]:
    """One PodPreset or ClusterPodPreset object as the API (a watch) delivers it: the preset, or
    None and its problems, one line each, starting ``podpreset NS/NAME`` or ``clusterpodpreset NAME``.
    An object larger than ``max_bytes`` (``presets.limits.preset_bytes``) is not parsed at all."""
    if not isinstance(obj, Mapping):
        return None, (f"podpreset ?: expected a PodPreset or ClusterPodPreset object, got {json_type(obj)}",)
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
    namespace, name = _shown(namespace), _shown(name)
    where = f"clusterpodpreset {name}" if obj.get("kind") == CLUSTER_KIND else f"podpreset {namespace}/{name}"
    too_large = preset_size_problem(obj, max_bytes)
    if too_large:
        return None, (f"{where}: {too_large}",)
    try:
        return parse_preset(dict(obj), source=where, document=1, default_namespace=namespace), ()
    except InvalidPreset as exc:
        return None, tuple(
            f"{where}: {p.field}: {p.message}" if p.field else f"{where}: {p.message}" for p in exc.problems
        )


def _check_name(name: object, kind: Kind = KIND) -> list[tuple[str, str]]:
    if not isinstance(name, str) or not name:
        return [("metadata.name", "required: the preset needs a name")]
    limit = MAX_NAME_LENGTHS[kind]
    if len(name) > limit:
        return [
            (
                "metadata.name",
                f"is {len(name)} characters; at most {limit} are allowed, because the pod "
                f"annotation key {ANNOTATION_NAME_PREFIXES[kind]}<name> must fit in 63 characters",
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


def _check_value_from(value_from: object, has_value: bool, path: str) -> list[tuple[str, str]]:
    if not isinstance(value_from, dict):
        return [(path, f"expected a mapping, got {json_type(value_from)}")]
    found: list[tuple[str, str]] = []
    if has_value:
        found.append((path, "may not be set together with value"))
    sources = [k for k in _VALUE_FROM_SOURCES if value_from.get(k) is not None]
    unknown = [k for k in value_from if k not in _VALUE_FROM_SOURCES]
    if unknown:
        found.append(
            (f"{path}.{unknown[0]}", "unknown field (expected one of " + ", ".join(_VALUE_FROM_SOURCES) + ")")
        )
        return found
    if len(sources) != 1:
        found.append((path, "must set exactly one of " + ", ".join(_VALUE_FROM_SOURCES)))
        return found
    source = sources[0]
    ref = value_from[source]
    if not isinstance(ref, dict):
        found.append((f"{path}.{source}", f"expected a mapping, got {json_type(ref)}"))
    elif source in _VALUE_FROM_REQUIRED:
        found.extend(_require_string(ref, _VALUE_FROM_REQUIRED[source], f"{path}.{source}"))
    return found


_VALUE_FROM_REQUIRED = {
    "fieldRef": "fieldPath",
    "resourceFieldRef": "resource",
    "configMapKeyRef": "key",
    "secretKeyRef": "key",
}
"""The field each ``valueFrom`` source must set."""


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
            found.extend(_check_value_from(value_from, bool(var.get("value")), f"{path}.valueFrom"))
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
