"""Input that the framework would accept but the rest of the product cannot hold.

* JSON nested deeper than Python's recursion limit: orjson accepts up to 1024 levels,
  the framework's own decoding then recurses and fails.

The checks here are pure functions over bytes and values; ``api.http.app`` runs them
on every request before a route sees it.
"""

from __future__ import annotations

import re

MAX_JSON_DEPTH = 32
"""Arrays and objects nested deeper than this are refused (400): no command body needs
more than three levels, and the limit keeps every later decoder far from recursion
trouble."""

_STRUCTURE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
"""A JSON string (escapes included; unterminated up to the end) or a bracket. Strings
are matched whole so that brackets inside them are skipped."""


def json_depth(raw: bytes, *, stop_above: int | None = None) -> int:
    """How deeply arrays and objects nest in the JSON text ``raw`` (0 for a scalar,
    1 for ``{"a": 1}``, 2 for ``[[]]``), without recursion and without decoding: one
    pass over the bytes that skips strings (with their escapes) and counts brackets.
    Once the depth passes ``stop_above`` the scan stops and returns that depth.
    Malformed JSON gets a number too; deciding it is malformed is the decoder's job."""
    depth = deepest = 0
    for match in _STRUCTURE.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    break
        elif token in (b"]", b"}"):
            depth = max(depth - 1, 0)
    return deepest


def too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text ``raw`` nests deeper than ``limit``."""
    # Counting the openers is fast (C); a body with no more openers than the limit
    # cannot nest deeper than it, and that is nearly every body.
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    return json_depth(raw, stop_above=limit) > limit
