"""Kubernetes label selectors (``metav1.LabelSelector``): parsing, validation and matching.

The semantics are Kubernetes' own: every ``matchLabels`` pair must be equal, every
``matchExpressions`` requirement must hold, and an absent or empty selector matches every pod.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

from presets.names import LABEL_NAME_RE, is_dns_subdomain, json_type

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
OPERATORS: tuple[Operator, ...] = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True, slots=True, kw_only=True)
class Requirement:
    """One ``matchExpressions`` entry (``matchLabels`` pairs become ``In`` with one value)."""

    key: str
    operator: Operator
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True, slots=True, kw_only=True)
class Selector:
    """A parsed label selector; no requirements means it matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def unmet(self, labels: Mapping[str, str]) -> tuple[Requirement, ...]:
        """The requirements that these labels do not satisfy (for explanations)."""
        return tuple(r for r in self.requirements if not r.matches(labels))


EVERYTHING = Selector()


def label_key_problem(key: object) -> str | None:
    """Why ``key`` is not a valid label key, or None when it is."""
    if not isinstance(key, str) or not key:
        return "a label key must be a non-empty string"
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        return f"label key {key!r}: the prefix before '/' must not be empty"
    if prefix and not is_dns_subdomain(prefix):
        return f"label key {key!r}: the prefix must be a DNS subdomain (lowercase, at most 253 characters)"
    if len(name) > 63 or not LABEL_NAME_RE.fullmatch(name):
        return (
            f"label key {key!r}: the name must be 1-63 characters of letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return None


def label_value_problem(value: object) -> str | None:
    """Why ``value`` is not a valid label value, or None when it is."""
    if not isinstance(value, str):
        return f"a label value must be a string, got {type(value).__name__}"
    if value == "":
        return None
    if len(value) > 63 or not LABEL_NAME_RE.fullmatch(value):
        return (
            f"label value {value!r} must be at most 63 characters of letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return None


def describe_requirement(req: Requirement) -> str:
    """A requirement in kubectl's selector syntax, e.g. ``app in (web,api)``."""
    values = ",".join(sorted(req.values))
    if req.operator == "In":
        return f"{req.key}={values}" if len(req.values) == 1 else f"{req.key} in ({values})"
    if req.operator == "NotIn":
        return f"{req.key} notin ({values})"
    if req.operator == "Exists":
        return req.key
    return f"!{req.key}"


def parse_selector(raw: object, path: str) -> tuple[Selector, list[tuple[str, str]]]:
    """Parse a LabelSelector; returns the selector and ``(field path, problem)`` pairs.

    ``None`` and ``{}`` both match everything, as they did in the original plugin.
    """
    problems: list[tuple[str, str]] = []
    if raw is None:
        return EVERYTHING, problems
    if not isinstance(raw, dict):
        return EVERYTHING, [(path, f"expected a mapping, got {json_type(raw)}")]
    requirements: list[Requirement] = []
    for field in raw:
        if field not in ("matchLabels", "matchExpressions"):
            problems.append((f"{path}.{field}", "unknown field (expected matchLabels or matchExpressions)"))
    _parse_match_labels(raw.get("matchLabels"), f"{path}.matchLabels", requirements, problems)
    _parse_match_expressions(raw.get("matchExpressions"), f"{path}.matchExpressions", requirements, problems)
    if problems:
        return EVERYTHING, problems
    return Selector(requirements=tuple(requirements)), problems


def _parse_match_labels(
    match_labels: object, path: str, requirements: list[Requirement], problems: list[tuple[str, str]]
) -> None:
    if match_labels is None:
        return
    if not isinstance(match_labels, dict):
        problems.append((path, f"expected a mapping, got {json_type(match_labels)}"))
        return
    for key, value in match_labels.items():
        problem = label_key_problem(key) or label_value_problem(value)
        if problem:
            problems.append((f"{path}[{key}]", problem))
        else:
            requirements.append(Requirement(key=key, operator="In", values=frozenset([value])))


def _parse_match_expressions(
    expressions: object, path: str, requirements: list[Requirement], problems: list[tuple[str, str]]
) -> None:
    if expressions is None:
        return
    if not isinstance(expressions, list):
        problems.append((path, f"expected a list, got {json_type(expressions)}"))
        return
    for i, expr in enumerate(expressions):
        req, expr_problems = _parse_expression(expr, f"{path}[{i}]")
        problems.extend(expr_problems)
        if req is not None:
            requirements.append(req)


def _parse_expression(expr: object, path: str) -> tuple[Requirement | None, list[tuple[str, str]]]:
    if not isinstance(expr, dict):
        return None, [(path, f"expected a mapping, got {json_type(expr)}")]
    problems: list[tuple[str, str]] = []
    for field in expr:
        if field not in ("key", "operator", "values"):
            problems.append((f"{path}.{field}", "unknown field (expected key, operator or values)"))
    key = expr.get("key")
    key_problem = label_key_problem(key)
    if key_problem:
        problems.append((f"{path}.key", key_problem))
    operator = expr.get("operator")
    if operator not in OPERATORS:
        problems.append(
            (f"{path}.operator", f"must be one of In, NotIn, Exists, DoesNotExist, got {operator!r}")
        )
    values = expr.get("values")
    if values is None:
        values = []
    if not isinstance(values, list):
        problems.append((f"{path}.values", f"expected a list, got {json_type(values)}"))
        values = []
    for j, value in enumerate(values):
        problem = label_value_problem(value)
        if problem:
            problems.append((f"{path}.values[{j}]", problem))
    if operator in ("In", "NotIn") and not values:
        problems.append((f"{path}.values", f"must not be empty when operator is {operator}"))
    if operator in ("Exists", "DoesNotExist") and values:
        problems.append((f"{path}.values", f"must be empty when operator is {operator}"))
    if problems:
        return None, problems
    return Requirement(key=cast(str, key), operator=cast(Operator, operator), values=frozenset(values)), []
