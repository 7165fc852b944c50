"""AdmissionReview v1 in, AdmissionReview v1 out: the function behind ``/mutate`` and ``podpreset review``.

``admit`` validates the review's shape (a bad one raises ``BadReview``, which the server turns
into HTTP 400), applies the skip rules for operations and resources, runs the engine on the
presets of the request's namespace, and builds the response. ``encode_review`` is the one JSON
encoding both the server and the CLI use, so their bytes are identical.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from presets.engine import Outcome, apply_presets
from presets.limits import MAX_DEPTH, text_within_depth, within_depth
from presets.model import DEFAULT_PROTECTED, DEFAULT_VOLUME_TYPES, Protected, VolumeTypes
from presets.names import json_type
from presets.namespaces import NO_NAMESPACES, NamespaceLabels, labels_of
from presets.selection import PresetIndex

__all__ = [  # PresetIndex is selection's, read through here by the server and the CLI
    "API_VERSION",
    "KIND",
    "REJECT_CODE",
    "BadReview",
    "Decision",
    "PresetIndex",
    "Request",
    "admit",
    "check_pod",
    "decode_json",
    "decode_review",
    "encode_json",
    "encode_review",
    "parse_review",
]

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
REJECT_CODE = 409
"""HTTP status in ``response.status`` when an ``onConflict: Reject`` preset refuses the pod."""


class BadReview(ValueError):
    """The body is not a well-formed AdmissionReview v1; the message names the field."""


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
    namespaced_volume_types: VolumeTypes = DEFAULT_VOLUME_TYPES,
) -> Decision:
    """Answer one AdmissionReview. Raises ``BadReview`` for a malformed one.

    ``namespaces`` gives namespace labels for ClusterPodPresets' namespace selectors (a namespace
    missing from it has only ``kubernetes.io/metadata.name``); ``protected`` lists the env names
    no preset may inject, ``namespaced_volume_types`` the volume types a PodPreset may.
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
            namespaced_volume_types=namespaced_volume_types,
            preset_sets=index.preset_sets,
            refusal_sets=index.refusal_sets,
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
    well: what ``/mutate`` and ``podpreset review`` accept, before anything walks it. Text orjson
    parsed (valid UTF-8) is measured by its bytes first; the parsed value only when they cannot
    tell (``text_within_depth``)."""
    try:
        decoded = orjson.loads(body)
        shallow = text_within_depth(body)
    except orjson.JSONDecodeError:
        decoded, shallow = json.loads(body), False
    if not shallow and not within_depth(decoded):
        raise RecursionError(f"nests deeper than {MAX_DEPTH} levels")
    return decoded


def parse_review(review: object) -> Request:
    """Check the AdmissionReview's shape and extract the request."""
    request = _request_of(review)
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
    is_pod = _is_pod(request)
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


def _request_of(review: object) -> dict[str, Any]:
    """The review's ``request``, once its kind and apiVersion are checked."""
    if not isinstance(review, dict):
        raise BadReview(f"expected a JSON object (an AdmissionReview), got {_json_type(review)}")
    if review.get("kind") != KIND:
        raise BadReview(f"kind: expected {KIND}, got {_echo(review.get('kind'))}")
    if review.get("apiVersion") != API_VERSION:
        raise BadReview(f"apiVersion: expected {API_VERSION}, got {_echo(review.get('apiVersion'))}")
    request = review.get("request")
    if not isinstance(request, dict):
        raise BadReview(f"request: expected an object, got {_json_type(request)}")
    return request


def _is_pod(request: dict[str, Any]) -> bool:
    """Whether the request is about the core ``pods`` resource itself (no subresource)."""
    resource = request.get("resource")
    if not isinstance(resource, dict):
        raise BadReview(f"request.resource: expected an object, got {_json_type(resource)}")
    for name in ("group", "version", "resource"):
        value = resource.get(name)
        if value is not None and not isinstance(value, str):
            raise BadReview(f"request.resource.{name}: expected a string, got {_json_type(value)}")
    return (
        (resource.get("group") or "") == ""
        and resource.get("resource") == "pods"
        and not request.get("subResource")
    )


def check_pod(pod: object, where: str = "pod") -> None:
    """Raise ``BadReview`` unless every field the engine reads has the right JSON type."""
    if not isinstance(pod, dict):
        raise BadReview(f"{where}: expected an object, got {_json_type(pod)}")
    _check_pod(pod, where)


def _check_pod(pod: dict[str, Any], where: str = "request.object") -> None:
    metadata = pod.get("metadata")
    if metadata is not None:
        _check_metadata(metadata, f"{where}.metadata")
    spec = pod.get("spec")
    if spec is None:
        return
    _expect(spec, dict, f"{where}.spec")
    for name in ("volumes", "tolerations"):
        value = spec.get(name)
        if value is not None and not _dicts(value):
            _check_items(value, f"{where}.spec.{name}")
    for name in ("containers", "initContainers"):
        containers = spec.get(name)
        if containers is not None and not _dicts(containers):
            _check_items(containers, f"{where}.spec.{name}")
        for i, container in enumerate(containers or ()):
            for field_name in ("env", "envFrom", "volumeMounts"):
                value = container.get(field_name)
                if value is not None and not _dicts(value):
                    _check_items(value, f"{where}.spec.{name}[{i}].{field_name}")


def _check_metadata(metadata: object, where: str) -> None:
    _expect(metadata, dict, where)
    assert isinstance(metadata, dict)
    for name in ("labels", "annotations"):
        values = metadata.get(name)
        if values is None:
            continue
        _expect(values, dict, f"{where}.{name}")
        if _STR.issuperset(map(type, values.values())):
            continue  # every value a string: nothing to name
        for key, value in values.items():
            if not isinstance(value, str):
                raise BadReview(f"{where}.{name}[{_clip(key)}]: expected a string, got {_json_type(value)}")
    for name in ("name", "generateName", "namespace"):
        if metadata.get(name) is not None:
            _expect(metadata[name], str, f"{where}.{name}")


def _dicts(value: object) -> bool:
    """Whether ``value`` is a list of objects (most lists of every review: then no field path
    is formatted)."""
    return type(value) is list and _DICT.issuperset(map(type, value))


_DICT = frozenset({dict})
_STR = frozenset({str})


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


def _clip(text: str) -> str:
    """``text`` (a key inside a field path) cut at ``ECHO_LIMIT`` characters, unquoted."""
    return text if len(text) <= ECHO_LIMIT else f"{text[:ECHO_LIMIT]}... ({len(text)} characters)"


def _json_type(value: object) -> str:
    return json_type(value, mapping="an object")
