"""Input that the framework would accept but the rest of the product cannot hold.

Two things get past orjson and the framework and only fail further in, as 500s:

* text PostgreSQL cannot store: NUL (``\\u0000`` in JSON, ``%00`` in a query string)
  is refused by PostgreSQL's ``text`` type; lone UTF-16 surrogates cannot be encoded
  at all. orjson already refuses lone surrogates in a body, and query strings are
  decoded with replacement characters, so NUL is the one that gets through today;
  surrogates are checked anyway, at no cost.
* JSON nested deeper than Python's recursion limit: orjson accepts up to 1024 levels,
  the framework's own decoding then recurses and fails.

The checks here are pure functions over bytes and values; ``api.http.app`` runs them
on every request before a route sees it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MAX_JSON_DEPTH = 32
"""Arrays and objects nested deeper than this are refused (400): no command body needs
more than three levels, and the limit keeps every later decoder far from recursion
trouble."""

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""Characters a PostgreSQL ``text`` value cannot hold."""

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


def shown(text: str) -> str:
    """``text`` with the characters it cannot be stored with escaped, to quote it."""
    return UNSTORABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def unstorable_parameters(items: Iterable[tuple[str, str]]) -> list[str]:
    """The names of the query parameters (name, value pairs) whose name or value holds
    a character that cannot be stored, each once, in order."""
    bad = (shown(name) for name, value in items if UNSTORABLE.search(name + value))
    return list(dict.fromkeys(bad))


def unstorable_fields(value: Any) -> list[str]:
    """The paths (``name``, ``phones[1]``, ``attributes.city``; ``body`` for the value
    itself) of the strings in a decoded JSON value that hold a character that cannot
    be stored; a bad object key names the key's path. Walked with a stack, not by
    recursion."""
    found: list[str] = []
    stack: list[tuple[str, Any]] = [("", value)]  # popped last first: pushed reversed
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if UNSTORABLE.search(item):
                found.append(path or "body")
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                # A bad key is checked in place of its value: the path names it, and
                # what is under it needs no look.
                bad_key = UNSTORABLE.search(key) is not None
                stack.append(
                    (f"{path}.{shown(key)}" if path else shown(key), key if bad_key else child)
                )
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", item[index]) for index in reversed(range(len(item))))
    return list(dict.fromkeys(found))
