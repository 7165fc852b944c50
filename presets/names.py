"""What the parsers share: Kubernetes name syntax, and how a JSON value's type is named in messages."""

from __future__ import annotations

import re

LABEL_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
"""A label value, or the name part of a label key (up to 63 characters, checked apart)."""
_DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def is_dns_label(value: object) -> bool:
    """RFC 1123 label: namespaces, volume names."""
    return isinstance(value, str) and len(value) <= 63 and _DNS_LABEL_RE.fullmatch(value) is not None


def is_dns_subdomain(value: object) -> bool:
    """RFC 1123 subdomain: object names, label key prefixes."""
    return isinstance(value, str) and len(value) <= 253 and _DNS_SUBDOMAIN_RE.fullmatch(value) is not None


def json_type(value: object, mapping: str = "a mapping") -> str:
    """``a mapping``/``an object``, ``a list``, ``a string``, ``a number``, ``a boolean`` or ``null``."""
    if isinstance(value, dict):
        return mapping
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


MAX_ECHOED = 64
"""Characters of an input string an error message repeats (a kind, an apiVersion, a key)."""


def echoed(value: object, mapping: str = "a mapping") -> str:
    """How a message repeats a value it refuses: a string quoted and cut at ``MAX_ECHOED``
    characters, anything else by its JSON type, so that a made-up request cannot make a message
    (and the log line and 400 body carrying it) as large as itself."""
    if not isinstance(value, str):
        return json_type(value, mapping)
    if len(value) <= MAX_ECHOED:
        return repr(value)
    return f"{value[:MAX_ECHOED]!r}... ({len(value) - MAX_ECHOED} more characters)"


def clipped(text: str) -> str:
    """``text`` cut at ``MAX_ECHOED`` characters, unquoted (a key inside a field path)."""
    if len(text) <= MAX_ECHOED:
        return text
    return f"{text[:MAX_ECHOED]}... ({len(text) - MAX_ECHOED} more characters)"
