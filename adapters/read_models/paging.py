"""Cursor pages of a read: the rows of one page and an opaque cursor meaning "after
the last of them", made of the values of the read's sort key (keyset pagination: a
page never skips nor repeats a row while rows are added elsewhere in the order)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_SEPARATOR = "\x1f"  # no sort key value holds it (ids, instants, numbers, user ids)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    """Pass as ``cursor`` for the rows after this page; ``None`` when there are none."""


def encode_cursor(*key: str) -> str:
    """An opaque cursor holding the sort key ``key`` of the last row of a page."""
    text = _SEPARATOR.join(key)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int) -> list[str]:
    """The sort key held by a cursor of ``encode_cursor`` with ``parts`` values; a
    ``ValueError`` for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):  # bad base64, padding or UTF-8
        text = ""
    key = text.split(_SEPARATOR)
    if len(key) != parts or encode_cursor(*key) != cursor:  # one spelling per cursor
        raise ValueError(f"malformed cursor {cursor!r}")
    return key


def page_of(rows: Sequence[T], limit: int, key: Callable[[T], tuple[str, ...]]) -> Page[T]:
    """The page of the first ``limit`` of ``rows``, read as ``limit + 1`` rows: the
    extra one, when there, says that a next page exists."""
    if len(rows) <= limit:
        return Page(list(rows), None)
    items = list(rows[:limit])
    return Page(items, encode_cursor(*key(items[-1])))
