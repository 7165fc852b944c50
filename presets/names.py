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
