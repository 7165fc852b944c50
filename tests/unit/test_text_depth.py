"""The depth bound measured on the request's bytes (``text_within_depth``) against the walk over
the parsed value (``within_depth``): the bytes may say "surely within" only when the value is,
and must say so for every text whose strings hold no bracket (the request path's shortcut)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presets.admission import decode_review
from presets.limits import MAX_DEPTH, text_within_depth, within_depth

TRICKY = st.text(alphabet=st.sampled_from('ab{}[]"\\/\n\u00e9\u4e16'), max_size=8)
PLAIN = st.text(alphabet=st.sampled_from('ab "\\/\n\u00e9'), max_size=6)
"""Strings without brackets, but with what JSON escapes."""


def values(strings: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    leaves = st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | strings
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(strings, inner, max_size=3),
        max_leaves=12,
    )


def encodings(value: Any) -> list[bytes]:
    return [
        orjson.dumps(value),
        json.dumps(value).encode(),
        json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8"),
    ]


@settings(max_examples=300, deadline=None)
@given(value=values(TRICKY), depth=st.integers(min_value=0, max_value=6))
def test_the_bytes_never_pass_a_value_the_walk_refuses(value: Any, depth: int) -> None:
    for text in encodings(value):
        if text_within_depth(text, depth):
            assert within_depth(value, depth), text


@settings(max_examples=300, deadline=None)
@given(value=values(PLAIN), depth=st.integers(min_value=0, max_value=6))
def test_the_bytes_decide_alone_when_no_string_holds_a_bracket(value: Any, depth: int) -> None:
    for text in encodings(value):
        assert text_within_depth(text, depth) == within_depth(value, depth), text


def nested(levels: int, inner: Any = 1) -> Any:
    value = inner
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        pytest.param(MAX_DEPTH, True, id="at-the-bound"),
        pytest.param(MAX_DEPTH + 1, False, id="one-past-the-bound"),
    ],
)
def test_the_bound_itself(levels: int, expected: bool) -> None:
    text = orjson.dumps(nested(levels))
    assert text_within_depth(text) is expected
    assert within_depth(orjson.loads(text)) is expected


@pytest.mark.parametrize(
    "inner",
    [
        pytest.param("]]]]", id="closing-brackets-in-a-string"),
        pytest.param('\\"[[[[', id="escaped-quote-then-brackets"),
        pytest.param("\\\\", id="escaped-backslash"),
    ],
)
def test_a_review_past_the_bound_is_refused_whatever_its_strings_hold(inner: str) -> None:
    body = orjson.dumps({"a": inner, "b": nested(MAX_DEPTH + 1, inner)})
    with pytest.raises(RecursionError):
        decode_review(body)
    assert decode_review(orjson.dumps({"a": inner, "b": nested(MAX_DEPTH - 1, inner)}))
