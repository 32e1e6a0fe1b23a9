"""Instants as people and programs write them, read one way by every entry point (the
HTTP API's query parameters, the command line's ``--as-of`` and ``--until``).

Rule: an ISO 8601 instant; one without an offset is in UTC; a date alone means its
midnight UTC (``2026-03-01`` is ``2026-03-01T00:00:00Z``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_UNENCODED_PLUS = re.compile(r"(.*\d[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?) (\d{2}(?::?\d{2})?)")
"""A time followed by a space and an offset: the ``+`` of ``+02:00`` sent unencoded in
a query string, where it reads as a space."""


def parse_instant(text: str) -> datetime:
    """``text`` as an instant in UTC (see the module's rule); ``ValueError`` saying
    what is accepted otherwise."""
    written = text.strip()
    if match := _UNENCODED_PLUS.fullmatch(written):
        written = f"{match[1]}+{match[2]}"
    try:
        parsed = datetime.fromisoformat(written)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 instant (2026-03-01T09:30:00Z) or date (2026-03-01)"
        ) from None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def is_projection(as_of: datetime, now: datetime) -> bool:
    """Whether an answer as of ``as_of`` is a projection: ``as_of`` is after ``now``,
    so the answer carries today's facts forward (a client who buys nothing until then
    counts as dead by then) and holds nothing that has not been recorded yet."""
    return as_of > now
