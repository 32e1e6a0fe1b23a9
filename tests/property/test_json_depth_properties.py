"""Property: the request guard's depth scanner, which reads raw bytes without decoding
or recursing, finds the same nesting depth as a plain recursive walk over the value
the bytes encode, however the JSON is written and whatever its strings hold."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from api.http.hygiene import json_depth, too_deep

# Strings are where a scanner goes wrong: brackets, quotes and backslashes inside them
# must not count, escaped or not (and `\\` before a closing quote ends the string).
tricky = st.text(alphabet=st.sampled_from('[]{}"\\/ u0aé\n\t\x00€😀'), max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | tricky
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky, inner, max_size=4),
    max_leaves=40,
)


def reference_depth(value: Any) -> int:
    """Arrays and objects nested: 0 for a scalar, 1 for ``[]``, 2 for ``[{}]``."""
    if isinstance(value, dict):
        return 1 + max(map(reference_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(reference_depth, value), default=0)
    return 0


def encodings(value: Any) -> list[bytes]:
    """The same value written as compact, spaced, indented, ASCII-escaped and orjson
    JSON."""
    return [
        json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(),
        json.dumps(value, ensure_ascii=True).encode(),
        json.dumps(value, indent=2, ensure_ascii=False).encode(),
        orjson.dumps(value),
    ]


@given(values)
def test_the_scanner_finds_the_depth_of_the_decoded_value(value: Any) -> None:
    expected = reference_depth(value)
    for raw in encodings(value):
        assert json_depth(raw) == expected, raw


@given(values, st.integers(min_value=0, max_value=8))
def test_a_body_is_too_deep_exactly_when_its_value_nests_past_the_limit(
    value: Any, limit: int
) -> None:
    expected = reference_depth(value) > limit
    for raw in encodings(value):
        assert too_deep(raw, limit) == expected, raw
        assert (json_depth(raw, stop_above=limit) > limit) == expected, raw


@given(st.integers(min_value=0, max_value=3000))
def test_the_scanner_reads_depths_no_decoder_could_recurse_into(depth: int) -> None:
    raw = b'[" ]\\\\", ' * depth + b"0" + b"]" * depth
    assert json_depth(raw) == depth
    assert too_deep(raw, 32) == (depth > 32)
