"""AdmissionReview v1 in, AdmissionReview v1 out: the function behind ``/mutate`` and ``podpreset review``.

``admit`` validates the review's shape (a bad one raises ``BadReview``, which the server turns
into HTTP 400), applies the skip rules for operations and resources, runs the engine on the
presets of the request's namespace, and builds the response. ``encode_review`` is the one JSON
encoding both the server and the CLI use, so their bytes are identical.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from presets.engine import Outcome, apply_presets
from presets.limits import MAX_DEPTH, within_depth
from presets.model import DEFAULT_PROTECTED, PodPreset, Protected, order_key
from presets.names import json_type
from presets.namespaces import NO_NAMESPACES, NamespaceLabels, labels_of
from presets.selector import Selector

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
REJECT_CODE = 409
"""HTTP status in ``response.status`` when an ``onConflict: Reject`` preset refuses the pod."""


class BadReview(ValueError):
    """The body is not a well-formed AdmissionReview v1; the message names the field."""


@dataclass(frozen=True, slots=True)
class _Namespace:
    """One namespace's presets (or the cluster's), and an index of them by one label each requires."""

    presets: tuple[PodPreset, ...]
    by_label: Mapping[tuple[str, str], tuple[PodPreset, ...]]
    """Presets that require ``key=value`` (a matchLabels pair), under their first such pair."""
    unindexed: tuple[PodPreset, ...]
    """Presets that require no single label value: checked for every pod."""
    by_namespace_label: Mapping[tuple[str, str], tuple[PodPreset, ...]] = field(default_factory=dict)
    """ClusterPodPresets whose pod selector requires no single value but whose namespace
    selector does, under that namespace label pair."""

    @classmethod
    def build(cls, presets: Iterable[PodPreset]) -> _Namespace:
        ordered = tuple(sorted(presets, key=order_key))
        by_label: dict[tuple[str, str], list[PodPreset]] = {}
        by_namespace_label: dict[tuple[str, str], list[PodPreset]] = {}
        unindexed: list[PodPreset] = []
        for preset in ordered:
            pair = _required_pair(preset.selector)
            if pair is not None:
                by_label.setdefault(pair, []).append(preset)
                continue
            namespace_pair = _required_pair(preset.namespace_selector)
            if namespace_pair is not None:
                by_namespace_label.setdefault(namespace_pair, []).append(preset)
            else:
                unindexed.append(preset)
        return cls(
            ordered,
            {k: tuple(v) for k, v in by_label.items()},
            tuple(unindexed),
            {k: tuple(v) for k, v in by_namespace_label.items()},
        )


_EMPTY_NAMESPACE = _Namespace((), {}, ())


def _required_pair(selector: Selector | None) -> tuple[str, str] | None:
    for requirement in selector.requirements if selector is not None else ():
        if requirement.operator == "In" and len(requirement.values) == 1:
            return requirement.key, next(iter(requirement.values))
    return None


@dataclass(frozen=True, slots=True)
class PresetIndex:
    """PodPresets grouped by namespace, and the ClusterPodPresets, built once per snapshot.

    ``candidates`` narrows them to those that can select a pod, using one required pod label per
    preset, so a pod's cost grows with the presets that could match it, not with every preset of
    its namespace or of the cluster. ClusterPodPresets are one group looked up for every
    namespace; their namespace selectors are checked by the engine, for the candidates only.
    """

    namespaces: Mapping[str, _Namespace] = field(default_factory=dict)
    cluster: _Namespace = _EMPTY_NAMESPACE

    @classmethod
    def build(cls, presets: Iterable[PodPreset]) -> PresetIndex:
        groups: dict[str, list[PodPreset]] = {}
        cluster: list[PodPreset] = []
        for preset in presets:
            if preset.is_cluster:
                cluster.append(preset)
            else:
                groups.setdefault(preset.namespace, []).append(preset)
        return cls({ns: _Namespace.build(group) for ns, group in groups.items()}, _Namespace.build(cluster))

    @property
    def by_namespace(self) -> Mapping[str, tuple[PodPreset, ...]]:
        """The PodPresets of each namespace (ClusterPodPresets are in ``cluster_presets``)."""
        return {ns: group.presets for ns, group in self.namespaces.items()}

    @property
    def cluster_presets(self) -> tuple[PodPreset, ...]:
        return self.cluster.presets

    def with_namespace(self, namespace: str, presets: Iterable[PodPreset]) -> PresetIndex:
        """A new index with one namespace's PodPresets replaced (a watch event changes one)."""
        namespaces = dict(self.namespaces)
        group = _Namespace.build(presets)
        if group.presets:
            namespaces[namespace] = group
        else:
            namespaces.pop(namespace, None)
        return PresetIndex(namespaces, self.cluster)

    def with_cluster(self, presets: Iterable[PodPreset]) -> PresetIndex:
        """A new index with the ClusterPodPresets replaced."""
        return PresetIndex(self.namespaces, _Namespace.build(presets))

    def for_namespace(self, namespace: str) -> tuple[PodPreset, ...]:
        """The PodPresets of ``namespace``, in preset order."""
        return self.namespaces.get(namespace, _EMPTY_NAMESPACE).presets

    def relevant(self, namespace: str) -> tuple[PodPreset, ...]:
        """Every preset that could apply in ``namespace``: its PodPresets and every
        ClusterPodPreset, in preset order (for ``--explain``)."""
        return tuple(sorted((*self.cluster.presets, *self.for_namespace(namespace)), key=order_key))

    def candidates(
        self, namespace: str, labels: Mapping[str, object], namespace_labels: Mapping[str, str] | None = None
    ) -> list[PodPreset]:
        """The presets that may select a pod of ``namespace`` with ``labels`` (a superset).

        ClusterPodPresets are narrowed by ``namespace_labels`` too when given; without them,
        every ClusterPodPreset that the pod's labels allow is a candidate."""
        found = _candidates(self.namespaces.get(namespace, _EMPTY_NAMESPACE), labels)
        cluster = self.cluster
        if cluster.presets:
            found.extend(_candidates(cluster, labels))
            if namespace_labels is None:
                found.extend(p for group in cluster.by_namespace_label.values() for p in group)
            elif cluster.by_namespace_label:
                for key, value in namespace_labels.items():
                    found.extend(cluster.by_namespace_label.get((key, value), ()))
        return found

    def __len__(self) -> int:
        return sum(len(group.presets) for group in self.namespaces.values()) + len(self.cluster.presets)


def _candidates(group: _Namespace, labels: Mapping[str, object]) -> list[PodPreset]:
    found = list(group.unindexed)
    if group.by_label:
        for key, value in labels.items():
            if isinstance(value, str):
                found.extend(group.by_label.get((key, value), ()))
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """The parts of ``AdmissionReview.request`` the webhook uses."""

    uid: str
    operation: str
    namespace: str
    dry_run: bool
    is_pod: bool
    object: dict[str, Any] | None

    @property
    def pod_name(self) -> str:
        """The pod's name, or its generateName (controllers' pods have no name yet)."""
        metadata = (self.object or {}).get("metadata")
        if not isinstance(metadata, dict):
            return ""
        name = metadata.get("name") or ""
        return str(name) if name else str(metadata.get("generateName") or "")


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The review's answer: the request, what the engine decided (None when not a pod CREATE)."""

    request: Request
    outcome: Outcome | None
    response: dict[str, Any]

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(self.response["response"].get("warnings", ()))


def admit(
    review: object,
    index: PresetIndex,
    *,
    namespaces: NamespaceLabels = NO_NAMESPACES,
    protected: Protected = DEFAULT_PROTECTED,
) -> Decision:
    """Answer one AdmissionReview. Raises ``BadReview`` for a malformed one.

    ``namespaces`` gives namespace labels for ClusterPodPresets' namespace selectors (a namespace
    missing from it has only ``kubernetes.io/metadata.name``); ``protected`` lists the env names
    no preset may inject.
    """
    request = parse_review(review)
    outcome: Outcome | None = None
    response: dict[str, Any] = {"uid": request.uid, "allowed": True}
    if request.is_pod and request.operation == "CREATE" and request.object is not None:
        metadata = request.object.get("metadata")
        labels = metadata.get("labels") if isinstance(metadata, dict) else None
        namespace_labels = labels_of(namespaces, request.namespace) if index.cluster.presets else None
        candidates = index.candidates(
            request.namespace, labels if isinstance(labels, dict) else {}, namespace_labels
        )
        outcome = apply_presets(
            request.object,
            candidates,
            namespace=request.namespace,
            namespaces=namespaces,
            protected=protected,
        )
        if outcome.verdict == "reject":
            response["allowed"] = False
            response["status"] = {
                "status": "Failure",
                "code": REJECT_CODE,
                "reason": "Conflict",
                "message": outcome.rejection,
            }
        if outcome.patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = binascii.b2a_base64(encode_json(outcome.patch), newline=False).decode("ascii")
        warnings = outcome.warnings
        if warnings:
            response["warnings"] = list(warnings)
    return Decision(
        request=request,
        outcome=outcome,
        response={"apiVersion": API_VERSION, "kind": KIND, "response": response},
    )


def encode_review(review: Mapping[str, Any]) -> bytes:
    """The exact bytes of a response AdmissionReview, shared by the server and the CLI."""
    return encode_json(review)


def encode_json(value: object) -> bytes:
    """Compact UTF-8 JSON. orjson is several times faster than json on this hot path; json
    handles what orjson refuses (integers beyond 64 bits), so every JSON value encodes."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_json(body: bytes) -> object:
    """Parse a request body. Raises ``json.JSONDecodeError`` (with line and column) on bad JSON,
    ``UnicodeDecodeError`` on bytes that are not UTF-8, ``RecursionError`` on absurd nesting.

    orjson parses first; what it refuses is parsed again by json, whose acceptance and error
    messages are the reference (orjson refuses NaN, which json accepts)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def decode_review(body: bytes) -> object:
    """``decode_json``, refusing JSON nested deeper than ``MAX_DEPTH`` with ``RecursionError`` as
    well: what ``/mutate`` and ``podpreset review`` accept, before anything walks it."""
    decoded = decode_json(body)
    if not within_depth(decoded):
        raise RecursionError(f"nests deeper than {MAX_DEPTH} levels")
    return decoded


def parse_review(review: object) -> Request:
    """Check the AdmissionReview's shape and extract the request."""
    if not isinstance(review, dict):
        raise BadReview(f"expected a JSON object (an AdmissionReview), got {_json_type(review)}")
    if review.get("kind") != KIND:
        raise BadReview(f"kind: expected {KIND}, got {_echo(review.get('kind'))}")
    if review.get("apiVersion") != API_VERSION:
        raise BadReview(f"apiVersion: expected {API_VERSION}, got {_echo(review.get('apiVersion'))}")
    request = review.get("request")
    if not isinstance(request, dict):
        raise BadReview(f"request: expected an object, got {_json_type(request)}")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("request.uid: required, a non-empty string")
    operation = request.get("operation")
    if not isinstance(operation, str) or not operation:
        raise BadReview("request.operation: required, a non-empty string")
    for name in ("namespace", "subResource"):
        value = request.get(name)
        if value is not None and not isinstance(value, str):
            raise BadReview(f"request.{name}: expected a string, got {_json_type(value)}")
    dry_run = request.get("dryRun", False)
    if dry_run is None:
        dry_run = False
    if not isinstance(dry_run, bool):
        raise BadReview(f"request.dryRun: expected a boolean, got {_json_type(dry_run)}")
    resource = request.get("resource")
    if not isinstance(resource, dict):
        raise BadReview(f"request.resource: expected an object, got {_json_type(resource)}")
    for name in ("group", "version", "resource"):
        value = resource.get(name)
        if value is not None and not isinstance(value, str):
            raise BadReview(f"request.resource.{name}: expected a string, got {_json_type(value)}")
    is_pod = (
        (resource.get("group") or "") == ""
        and resource.get("resource") == "pods"
        and not request.get("subResource")
    )
    obj = request.get("object")
    if obj is not None and not isinstance(obj, dict):
        raise BadReview(f"request.object: expected an object, got {_json_type(obj)}")
    if operation == "CREATE" and obj is None:
        raise BadReview("request.object: required for CREATE")
    if is_pod and operation == "CREATE" and obj is not None:
        _check_pod(obj)
    namespace = request.get("namespace") or ""
    if not namespace and isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        ns = obj["metadata"].get("namespace")
        namespace = ns if isinstance(ns, str) else ""
    return Request(
        uid=uid, operation=operation, namespace=namespace, dry_run=dry_run, is_pod=is_pod, object=obj
    )


def check_pod(pod: object, where: str = "pod") -> None:
    """Raise ``BadReview`` unless every field the engine reads has the right JSON type."""
    if not isinstance(pod, dict):
        raise BadReview(f"{where}: expected an object, got {_json_type(pod)}")
    _check_pod(pod, where)


def _check_pod(pod: dict[str, Any], where: str = "request.object") -> None:
    metadata = pod.get("metadata")
    if metadata is not None:
        _expect(metadata, dict, f"{where}.metadata")
        for name in ("labels", "annotations"):
            values = metadata.get(name)
            if values is None:
                continue
            _expect(values, dict, f"{where}.metadata.{name}")
            for key, value in values.items():
                if not isinstance(value, str):
                    raise BadReview(
                        f"{where}.metadata.{name}[{key}]: expected a string, got {_json_type(value)}"
                    )
        for name in ("name", "generateName", "namespace"):
            if metadata.get(name) is not None:
                _expect(metadata[name], str, f"{where}.metadata.{name}")
    spec = pod.get("spec")
    if spec is None:
        return
    _expect(spec, dict, f"{where}.spec")
    for name in ("volumes", "tolerations"):
        _check_items(spec.get(name), f"{where}.spec.{name}")
    for name in ("containers", "initContainers"):
        containers = spec.get(name)
        _check_items(containers, f"{where}.spec.{name}")
        for i, container in enumerate(containers or ()):
            for field_name in ("env", "envFrom", "volumeMounts"):
                value = container.get(field_name)
                if value is not None:
                    _check_items(value, f"{where}.spec.{name}[{i}].{field_name}")


def _check_items(value: object, where: str) -> None:
    if value is None:
        return
    _expect(value, list, where)
    assert isinstance(value, list)
    for item in value:
        if type(item) is not dict:
            break
    else:
        return
    for i, item in enumerate(value):  # the item's path is formatted only when it is wrong
        _expect(item, dict, f"{where}[{i}]")


_EXPECTED: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}


def _expect(value: object, kind: type, where: str) -> None:
    if not isinstance(value, kind):
        expected = _EXPECTED[kind]
        raise BadReview(f"{where}: expected {expected}, got {_json_type(value)}")


ECHO_LIMIT = 64
"""Characters of a request's own value an error message repeats, at most: a 400 (and the log
line that records it) never grows with what a client chose to send."""


def _echo(value: object) -> str:
    """``value`` as an error message shows it: a string quoted and cut at ``ECHO_LIMIT``
    characters, anything else by its JSON type."""
    if not isinstance(value, str):
        return _json_type(value) if value is not None else "nothing"
    if len(value) <= ECHO_LIMIT:
        return repr(value)
    return f"{value[:ECHO_LIMIT]!r}... ({len(value)} characters)"


def _json_type(value: object) -> str:
    return json_type(value, mapping="an object")
