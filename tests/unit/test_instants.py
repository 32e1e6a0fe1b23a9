"""Instants as the HTTP API and the command line read them (``api.instants``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.instants import is_projection, parse_instant


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T09:30:00Z", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01T09:30:00", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01T11:30:00+02:00", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01 09:30", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        # "+02:00" in a query string that was not percent-encoded arrives as " 02:00"
        ("2026-03-01T11:30:00 02:00", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01T11:30:00.250 0200", datetime(2026, 3, 1, 9, 30, 0, 250_000, tzinfo=UTC)),
    ],
)
def test_a_date_is_its_midnight_utc_and_an_instant_is_read_into_utc(
    text: str, instant: datetime
) -> None:
    parsed = parse_instant(text)
    assert parsed == instant
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01", "01.03.2026"])
def test_anything_else_is_refused_saying_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"ISO 8601 instant .* or date"):
        parse_instant(text)


def test_only_an_instant_after_now_is_a_projection() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert is_projection(now + timedelta(microseconds=1), now)
    assert not is_projection(now, now)
    assert not is_projection(now - timedelta(days=400), now)
