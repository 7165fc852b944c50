"""Bounds on the size and nesting of parsed input, checked before anything else walks it.

YAML can share one node under many aliases: nine levels of nine aliases is a 1 KB file that
expands to 387 million items, and everything that walks it (validation, a deep copy, a JSON
encoder) pays for every one. ``Meter`` visits each distinct list and mapping once, so measuring
costs what parsing cost, and reports the size the value has once expanded (as compact JSON,
approximately) and its nesting depth, stopping at the first bound passed. It never recurses
deeper than the depth bound, so deep input is refused with a message, not a ``RecursionError``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

MAX_DEPTH = 100
"""Levels of lists and mappings. The deepest path of a Pod is about 12; a review adds 3."""
MAX_OBJECT_BYTES = 3 * 1024 * 1024 // 2
"""1.5 MiB, etcd's default request limit: no Kubernetes object can be larger."""
DEFAULT_MAX_PRESET_BYTES = 256 * 1024
"""The default bound on one preset's size (``preset_bytes``): ``--max-preset-bytes``."""
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class LimitExceeded(ValueError):
    """A value passes a size or nesting bound; the message says which, without a location."""


@dataclass(slots=True)
class _Seen:
    size: int
    height: int
    """Levels of lists and mappings from this one down, itself included."""


class Meter:
    """Measures values, remembering each container it has seen (by identity) while it lives.

    One meter per parsed text: aliases shared between its documents are measured once, and the
    sizes it returns count every place they appear.
    """

    def __init__(self, *, max_depth: int = MAX_DEPTH) -> None:
        self.max_depth = max_depth
        self._seen: dict[int, _Seen] = {}
        self._active: set[int] = set()
        self._keep: list[object] = []
        """The measured containers, so that an id is not reused while the meter remembers it."""

    def measure(self, value: object, max_bytes: int) -> int:
        """The expanded size of ``value`` in bytes. Raises ``LimitExceeded`` past either bound."""
        size = self._size(value, 1, max_bytes)
        if size > max_bytes:
            raise LimitExceeded(_too_large(max_bytes))
        return size

    def _size(self, value: object, depth: int, max_bytes: int) -> int:
        if isinstance(value, str):
            return len(value) + 2
        if not isinstance(value, list | dict):
            return 5 if value is not None else 4
        key = id(value)
        seen = self._seen.get(key)
        if seen is None:
            if key in self._active:
                raise LimitExceeded("contains itself (a YAML alias inside its own anchor)")
            if depth > self.max_depth:
                raise LimitExceeded(f"nests deeper than {self.max_depth} levels")
            self._active.add(key)
            try:
                seen = self._walk(value, depth, max_bytes)
            finally:
                self._active.discard(key)
            self._seen[key] = seen
            self._keep.append(value)
        if depth + seen.height - 1 > self.max_depth:
            raise LimitExceeded(f"nests deeper than {self.max_depth} levels")
        return seen.size

    def _walk(self, value: list[object] | dict[object, object], depth: int, max_bytes: int) -> _Seen:
        size, height = 2, 1
        items = value.items() if isinstance(value, dict) else ((None, item) for item in value)
        for name, item in items:
            if name is not None:
                size += self._size(name, depth + 1, max_bytes) + 1
            size += self._size(item, depth + 1, max_bytes) + 1
            if isinstance(item, list | dict):
                height = max(height, 1 + self._seen[id(item)].height)
            if size > max_bytes:
                raise LimitExceeded(_too_large(max_bytes))
        return _Seen(size, height)


def _too_large(max_bytes: int) -> str:
    return f"larger than {describe_bytes(max_bytes)} with its YAML aliases expanded"


def describe_bytes(count: int) -> str:
    """``1.5 MiB``, ``8 MiB``, ``512 KiB``, ``100 bytes``."""
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if count >= scale:
            return f"{count / scale:g} {unit}"
    return f"{count} bytes"


def within_depth(value: object, max_depth: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests at most ``max_depth`` levels of lists and mappings.

    The request path's check: a few microseconds for a pod, recursing at most ``max_depth`` deep.
    """
    if max_depth <= 0:
        return False
    children = value.values() if type(value) is dict else value if type(value) is list else ()
    for child in children:
        kind = type(child)
        if (kind is dict or kind is list) and not within_depth(child, max_depth - 1):
            return False
    return True


_BRACKETS = bytes.maketrans(b"{[}]", b"(())")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'{}[]"')


def text_within_depth(text: bytes, max_depth: int = MAX_DEPTH) -> bool:
    """Whether the UTF-8 JSON ``text`` (valid: already parsed) surely nests at most ``max_depth``
    levels; False means "measure the parsed value" (``within_depth``), not "too deep".

    The request path's shortcut: a few C-speed passes over the bytes instead of a walk over every
    list and mapping. Escaped backslashes and quotes are dropped, then everything but brackets
    (each kind made ``(`` or ``)``: valid JSON nests them properly) and quotes. Unless a string
    holds a bracket (then the value is walked), every run of quotes left is whole strings, of
    even length, so the quotes are twice the non-overlapping ``""`` pairs (counted, not
    removed one by one), and once they are dropped what is left is brackets. Each pass removes the
    innermost pairs, one level, so a text that is empty after ``max_depth`` passes nests no
    deeper. In UTF-8 these bytes are never part of another character."""
    if max_depth <= 0:
        return False  # as ``within_depth``: no level allowed, not even a scalar's
    if b"\\" in text:
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = text.translate(_BRACKETS, _NOT_STRUCTURE)
    if structure.count(b'"') != 2 * structure.count(b'""'):
        return False  # some string's quotes are not adjacent: it holds a bracket
    outside = structure.translate(None, b'"')
    for _ in range(max_depth):
        if not outside:
            return True
        outside = outside.replace(b"()", b"")
    return not outside


def preset_bytes(obj: Mapping[str, Any]) -> int:
    """The size of a preset object as the preset-size bound measures it: the length in bytes of
    its compact JSON encoding (UTF-8, no whitespace), leaving out what tools and the API server
    write beside the author's object and the webhook never keeps: ``metadata.managedFields``, the
    ``kubectl.kubernetes.io/last-applied-configuration`` annotation (a second copy of the
    object) and ``status``. So a file and the object ``kubectl apply`` makes of it measure the
    same, within the few bytes of fields the API server adds (uid, timestamps)."""
    trimmed = {k: v for k, v in obj.items() if k != "status"}
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        kept = {k: v for k, v in metadata.items() if k != "managedFields"}
        annotations = metadata.get("annotations")
        if isinstance(annotations, Mapping) and LAST_APPLIED in annotations:
            kept["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
        trimmed["metadata"] = kept
    try:
        return len(orjson.dumps(trimmed))
    except (orjson.JSONEncodeError, TypeError):
        # Integers beyond 64 bits, or what YAML can hold and JSON cannot: the files' own checks
        # name those; measured here as json writes them.
        text = json.dumps(trimmed, separators=(",", ":"), ensure_ascii=False, default=str)
        return len(text.encode("utf-8", "surrogatepass"))  # a lone surrogate: JSON's \\ud800


def preset_size_problem(obj: Mapping[str, Any], max_bytes: int) -> str | None:
    """Why ``obj`` is too large to serve (``--max-preset-bytes``), or None."""
    size = preset_bytes(obj)
    if size <= max_bytes:
        return None
    return (
        f"is {size} bytes as compact JSON, over the limit of {describe_bytes(max_bytes)} "
        f"({max_bytes} bytes, --max-preset-bytes); split it into smaller presets"
    )
