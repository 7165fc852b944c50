"""Hypothesis strategies for hostile input: valid documents with fields broken on purpose.

Each strategy starts from a well-formed document (an AdmissionReview as kube-apiserver sends it,
a PodPreset as the API server or a file holds it) and breaks one to three places in it: a value
of the wrong JSON type, huge or empty values, unusual unicode (lone surrogates included), deep
nesting, a deleted or unknown key, a key given twice. Documents are encoded by ``encode``, which
can write duplicate keys (``Pairs``) that no dict can hold.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from support.reviews import admission_review

settings.register_profile(
    "fuzz-quick",
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.register_profile(
    "fuzz-long",
    max_examples=4000,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
PROFILE = os.environ.get("PODPRESET_FUZZ_PROFILE", "fuzz-quick")
FUZZ = settings(settings.get_profile(PROFILE))
"""The settings of every fuzz test: a few seconds in ``make test``; ``make fuzz`` picks ``fuzz-long``."""


class Pairs(list[tuple[str, Any]]):
    """A JSON object as key/value pairs: may hold one key twice."""


def encode(value: Any, *, ensure_ascii: bool = True) -> bytes:
    """JSON text of ``value``; ``Pairs`` become objects with their duplicate keys."""
    text = _encode(value, ensure_ascii)
    return text.encode("utf-8", "surrogatepass")


def _encode(value: Any, ascii_only: bool) -> str:
    if not _has_pairs(value):
        return json.dumps(value, ensure_ascii=ascii_only)
    if isinstance(value, Pairs):
        return "{" + ",".join(_key(k, ascii_only) + ":" + _encode(v, ascii_only) for k, v in value) + "}"
    if isinstance(value, dict):
        return (
            "{" + ",".join(_key(k, ascii_only) + ":" + _encode(v, ascii_only) for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(_encode(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def _has_pairs(value: Any, depth: int = 0) -> bool:
    if isinstance(value, Pairs):
        return True
    if depth > 20:
        return False  # mutations stop 20 levels down: nothing deeper was turned into Pairs
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return any(_has_pairs(child, depth + 1) for child in children)


def _key(key: Any, ascii_only: bool) -> str:
    return json.dumps(str(key), ensure_ascii=ascii_only)


# Values -------------------------------------------------------------------------------------

unicode_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=20)
"""Any code point, lone surrogates and control characters included."""

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    unicode_text,
    st.sampled_from(["", " ", "0", "true", "null", "CREATE", "pods", "Pod", "default", "a=b", "~1/", "-"]),
)

huge = st.one_of(
    st.integers(min_value=10_000, max_value=300_000).map(lambda n: "x" * n),
    st.integers(min_value=1_000, max_value=20_000).map(lambda n: ["x"] * n),
    st.integers(min_value=1_000, max_value=5_000).map(lambda n: {f"k{i}": i for i in range(n)}),
)

json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(unicode_text, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def deep(draw: st.DrawFn) -> Any:
    """A value nested 50 to 300 levels deep, in lists or objects (deeper ones, which no Python
    encoder writes, are sent as text by ``deep_text``)."""
    levels = draw(st.sampled_from([50, 99, 100, 101, 150, 300]))
    value: Any = draw(scalars)
    in_objects = draw(st.booleans())
    for _ in range(levels):
        value = {"a": value} if in_objects else [value]
    return value


POD_DEPTH = 6
"""Levels above a container's fields in a review: review, request, object, spec, containers, [0]."""


@st.composite
def deep_text(draw: st.DrawFn) -> tuple[int, bytes]:
    """(depth, a review whose first container holds a value nested to make the review that deep),
    written as text: 90 to 100,000 levels."""
    levels = draw(st.sampled_from([90, 93, 94, 95, 101, 500, 999, 1000, 1025, 5000, 100_000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    body = encode(review_of()).replace(
        b'"image": "registry.example/app:1"',
        b'"image": "x", "deep": ' + (opener * levels + "1" + closer * levels).encode(),
    )
    assert b'"deep"' in body
    return POD_DEPTH + levels, body


hostile_values = st.one_of(scalars, json_values, huge, deep(), st.just({}), st.just([]))


# Mutations ----------------------------------------------------------------------------------

Path = tuple[Any, ...]


def paths_of(value: Any, prefix: Path = ()) -> list[Path]:
    """Paths to the values inside ``value`` (keys and indexes), the root excluded; at most 20
    levels down and the first 8 children of each container (huge values were put there by us)."""
    if len(prefix) >= 20:
        return []
    found: list[Path] = []
    if isinstance(value, dict):
        children: Any = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        children = ()
    for (key, child), _ in zip(children, range(8), strict=False):
        found.append((*prefix, key))
        found.extend(paths_of(child, (*prefix, key)))
    return found


def _parent(document: Any, path: Path) -> Any:
    for key in path[:-1]:
        document = document[key]
    return document


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """``base`` with one to three places broken."""
    document = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = paths_of(document)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(document, path)
        if isinstance(parent, Pairs):
            continue
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add", "duplicate"]))
        key = path[-1]
        if action == "replace":
            parent[key] = draw(hostile_values)
        elif action == "delete":
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(unicode_text)] = draw(hostile_values)
        elif action == "add":
            parent.append(draw(hostile_values))
        elif action == "duplicate" and isinstance(parent, dict):
            pairs = Pairs(parent.items())
            pairs.insert(draw(st.integers(0, len(pairs))), (key, draw(hostile_values)))
            if len(path) == 1:
                return pairs  # the root itself: nothing below can be broken further
            _parent(document, path[:-1])[path[-2]] = pairs
    return document


# Documents ----------------------------------------------------------------------------------

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-1",
        "namespace": "default",
        "labels": {"app": "web"},
        "annotations": {"note": "x"},
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "controller": True}
        ],
    },
    "spec": {
        "initContainers": [{"name": "init", "image": "busybox", "env": [{"name": "A", "value": "1"}]}],
        "containers": [
            {
                "name": "app",
                "image": "registry.example/app:1",
                "env": [{"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "envFrom": [{"configMapRef": {"name": "cfg"}}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "tolerations": [{"key": "k", "operator": "Exists"}],
    },
}


def review_of(pod: Any = POD, operation: str = "CREATE") -> dict[str, Any]:
    review = admission_review(pod, operation=operation, name="web-1")
    review["request"]["oldObject"] = None
    return review


PRESET: dict[str, Any] = {
    "apiVersion": "podpreset.dev/v1",
    "kind": "PodPreset",
    "metadata": {"name": "web-settings", "namespace": "default", "resourceVersion": "7"},
    "spec": {
        "selector": {
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}],
        },
        "env": [
            {"name": "GREETING", "value": "hello"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "envFrom": [{"configMapRef": {"name": "web-config"}, "prefix": "WEB_"}],
        "volumes": [
            {"name": "cache", "emptyDir": {}},
            {
                "name": "info",
                "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]},
            },
        ],
        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}, {"name": "info", "mountPath": "/info"}],
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
    },
}

LEGACY_PRESET: dict[str, Any] = {
    "apiVersion": "settings.k8s.io/v1alpha1",
    "kind": "PodPreset",
    "metadata": {"name": "db-password"},
    "spec": {
        "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    },
}

reviews = st.one_of(
    mutated(review_of()),
    st.builds(review_of, mutated(POD)),
    st.builds(review_of, mutated(POD), st.sampled_from(["UPDATE", "DELETE", "CONNECT", ""])),
    hostile_values,
)
"""AdmissionReviews broken anywhere, or in the pod only (which reaches the engine), or not one at all."""

preset_documents = st.one_of(mutated(PRESET), mutated(LEGACY_PRESET), hostile_values)
"""Preset documents broken anywhere, or anything else a file or the watch might hold."""
