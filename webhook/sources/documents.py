"""Reading preset documents from YAML or JSON files and directories.

A path is a file (YAML, possibly multi-document or a ``List``; or JSON) or a directory, whose
``*.yaml``, ``*.yml`` and ``*.json`` files are read in name order (not recursively). Every
problem is reported with its file, document number, preset name and field.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from presets.limits import (
    DEFAULT_MAX_PRESET_BYTES,
    MAX_DEPTH,
    MAX_OBJECT_BYTES,
    LimitExceeded,
    Meter,
    describe_bytes,
    preset_size_problem,
)
from presets.model import InvalidPreset, PodPreset, Problem, parse_preset
from presets.namespaces import NamespaceLabels, parse_namespace

SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 8 * 1024 * 1024
"""A preset file (or standard input) larger than this is refused before it is parsed; so is a
file whose documents are larger once their YAML aliases are expanded."""


class SourceError(Exception):
    """A preset path cannot be read or parsed at all (missing file, bad YAML)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Document:
    """One document of a file: its 1-based position and parsed content."""

    source: str
    number: int
    content: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadResult:
    """Valid presets, Namespace labels, and every problem found; the caller decides whether
    problems are fatal."""

    presets: tuple[PodPreset, ...]
    problems: tuple[Problem, ...]
    namespaces: NamespaceLabels = field(default_factory=dict)
    """Labels of the ``Namespace`` documents among the inputs, by namespace name."""


def files_of(path: str) -> list[Path]:
    """The preset files a path names. Raises ``SourceError`` when it does not exist."""
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.is_file() and f.suffix in SUFFIXES)
    if p.is_file():
        return [p]
    raise SourceError(f"{path}: no such file or directory")


def read_text(path: str, limit: int = MAX_FILE_BYTES) -> str:
    """A file's text, or standard input for ``-``; refused past ``limit`` bytes without reading
    further."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as file:
                data = file.read(limit + 1)
        if len(data) > limit:
            raise SourceError(
                f"{'<stdin>' if path == '-' else path}: larger than {describe_bytes(limit)}, "
                "the limit for a preset or object file"
            )
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from exc


def parse_documents(text: str, source: str) -> list[Document]:
    """Split text into documents: JSON, or YAML (multi-document); ``List`` kinds are unpacked."""
    try:
        return _parse_documents(text, source)
    except RecursionError:
        raise SourceError(f"{source}: nests deeper than {MAX_DEPTH} levels") from None


def _parse_documents(text: str, source: str) -> list[Document]:
    stripped = text.lstrip()
    raw: list[Any]
    if source.endswith(".json") or stripped.startswith(("{", "[")):
        try:
            raw = [json.loads(text)]
        except json.JSONDecodeError as exc:
            if source.endswith(".json"):
                raise SourceError(
                    f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
                ) from exc
            raw = _load_yaml(text, source)
    else:
        raw = _load_yaml(text, source)
    documents: list[Document] = []
    number = 0
    meter = Meter()
    for content in raw:
        if content is None:
            continue
        _check_bounds(meter, content, MAX_FILE_BYTES, f"{source}: document {number + 1}")
        items = _list_items(content)
        for item in items if items is not None else [content]:
            number += 1
            _check_bounds(meter, item, MAX_OBJECT_BYTES, f"{source}: document {number}")
            problem = _non_json(item, "")
            if problem:
                raise SourceError(f"{source}: document {number}: {problem}")
            documents.append(Document(source=source, number=number, content=item))
    return documents


def _check_bounds(meter: Meter, content: object, max_bytes: int, where: str) -> None:
    """Refuse a document that is too deep or too large (aliases expanded) before anything walks it."""
    try:
        meter.measure(content, max_bytes)
    except LimitExceeded as exc:
        raise SourceError(f"{where}: {exc}") from None


def _non_unicode(text: str, path: str) -> str | None:
    """JSON's ``\\ud800`` escapes can write half of a UTF-16 pair, which no UTF-8 text holds."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"{path or 'the document'}: holds a lone UTF-16 surrogate "
            f"(U+{ord(text[exc.start]):04X}), which is not valid Unicode"
        )
    return None


def _non_json(value: object, path: str) -> str | None:
    """Where ``value`` holds something JSON (and so a Kubernetes object) cannot, and what."""
    if isinstance(value, str):
        return _non_unicode(value, path)
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return f"{path or 'the document'}: {value} is not a number JSON can carry; quote it if it is text"
    if isinstance(value, list):
        for i, item in enumerate(value):
            problem = _non_json(item, f"{path}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path or 'the document'}: key {key!r} must be a string; quote it"
            problem = _non_unicode(key, f"{path or 'the document'}: key {key!r}")
            if problem:
                return problem
            problem = _non_json(item, f"{path}.{key}" if path else key)
            if problem:
                return problem
        return None
    kind = type(value).__name__
    return f"{path or 'the document'}: a YAML {kind} value cannot appear in a Kubernetes object; quote it"


def read_documents(paths: Iterable[str]) -> Iterator[Document]:
    """Every document of every path, in order. Raises ``SourceError`` on unreadable input."""
    for path in paths:
        if path == "-":
            yield from parse_documents(read_text(path), "<stdin>")
            continue
        for file in files_of(path):
            yield from parse_documents(read_text(str(file)), str(file))


def load_presets(
    paths: Iterable[str],
    default_namespace: str = "default",
    *,
    max_preset_bytes: int = DEFAULT_MAX_PRESET_BYTES,
) -> LoadResult:
    """Parse and validate every PodPreset, ClusterPodPreset and Namespace in ``paths``; invalid
    documents become problems, and so does a preset larger than ``max_preset_bytes``
    (``presets.limits.preset_bytes``).

    Other documents are problems too, as are two presets of one kind, namespace and name.
    Raises ``SourceError`` only when a path cannot be read or parsed.
    """
    presets: list[PodPreset] = []
    problems: list[Problem] = []
    namespaces: dict[str, dict[str, str]] = {}
    seen: dict[tuple[str, str, str], str] = {}
    for doc in read_documents(paths):
        if isinstance(doc.content, dict) and doc.content.get("kind") == "Namespace":
            name, labels, found = parse_namespace(doc.content)
            problems.extend(
                Problem(source=doc.source, document=doc.number, name=name, field=f, message=m)
                for f, m in found
            )
            if name and not found:
                namespaces[name] = labels
            continue
        too_large = (
            preset_size_problem(doc.content, max_preset_bytes) if isinstance(doc.content, dict) else None
        )
        if too_large:
            metadata = doc.content.get("metadata")
            raw_name = metadata.get("name") if isinstance(metadata, dict) else None
            problems.append(
                Problem(
                    source=doc.source,
                    document=doc.number,
                    name=raw_name if isinstance(raw_name, str) else "",
                    field="",
                    message=f"the preset {too_large}",
                )
            )
            continue
        try:
            preset = parse_preset(
                doc.content, source=doc.source, document=doc.number, default_namespace=default_namespace
            )
        except InvalidPreset as exc:
            problems.extend(exc.problems)
            continue
        key = (preset.kind, preset.namespace, preset.name)
        if key in seen:
            what = (
                f"preset {preset.namespace}/{preset.name}"
                if preset.namespace
                else f"{preset.kind} {preset.name}"
            )
            problems.append(
                Problem(
                    source=doc.source,
                    document=doc.number,
                    name=preset.name,
                    field="metadata.name",
                    message=f"a {what} is already defined in {seen[key]}",
                )
            )
            continue
        seen[key] = f"{doc.source}: document {doc.number}"
        presets.append(preset)
    return LoadResult(
        presets=tuple(presets), problems=tuple(problems), namespaces=MappingProxyType(namespaces)
    )


def fingerprint(paths: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
    """A cheap change detector for a set of paths: (file, mtime_ns, size) of every preset file."""
    entries: list[tuple[str, int, int]] = []
    for path in paths:
        try:
            files = files_of(path)
        except SourceError:
            entries.append((path, -1, -1))
            continue
        for file in files:
            try:
                st = os.stat(file)
            except OSError:
                entries.append((str(file), -1, -1))
                continue
            entries.append((str(file), st.st_mtime_ns, st.st_size))
    return tuple(entries)


def _load_yaml(text: str, source: str) -> list[Any]:
    try:
        return list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SourceError(f"{source}: invalid YAML{where}: {problem}") from exc


def _list_items(content: Any) -> list[Any] | None:
    if (
        isinstance(content, dict)
        and isinstance(content.get("kind"), str)
        and content["kind"].endswith("List")
        and isinstance(content.get("items"), list)
    ):
        return list(content["items"])
    return None


_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STRING_TAGS = ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value")


class _Loader(_Base):  # type: ignore[misc]
    """Safe YAML without the timestamp and value types: ``2024-01-01`` and ``=`` stay strings,
    as kubectl reads them."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _STRING_TAGS]
        for first, resolvers in _Base.yaml_implicit_resolvers.items()
    }
