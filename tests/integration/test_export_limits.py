"""The export limit is kept in the store (``adapters/export_counts.py``): every process
over one store enforces the same limit, at once, and a restart does not reset it."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from api.bootstrap import Crm, bootstrap
from application.errors import ExportLimitReached, PermissionDenied
from application.settings import Settings
from domain.envelope import Envelope
from tests.conftest import make_settings

HOUR = 3600
NOON = 1_718_712_000.0  # 2024-06-18T12:00:00Z, the start of a clock hour
AUDITOR = Envelope(actor_id="aud", actor_role="auditor", source="api", correlation_id="x")


@pytest.fixture(params=["sqlite", "postgresql"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings of one store that several processes open, with an export limit of 5."""
    overrides: dict[str, object] = {"export_rate_per_hour": 5}
    if request.param == "postgresql":
        overrides["database_schema"] = request.getfixturevalue("postgres_schema")
    return make_settings(request.param, tmp_path, **overrides)


def _opened(settings: Settings, at: float) -> Crm:
    crm = bootstrap(settings)
    crm.exports.clock = lambda: at
    return crm


@pytest.fixture
def two_workers(shared: Settings) -> Iterator[tuple[Crm, Crm]]:
    """Two processes' object graphs over one store, at 12:30."""
    with _opened(shared, NOON + 1800) as first, _opened(shared, NOON + 1800) as second:
        yield first, second


def _export(crm: Crm, by: Envelope = AUDITOR) -> int:
    return crm.exports.export(by, kind="audit", format="csv", filters={})


def test_exports_at_once_from_two_workers_never_pass_the_limit(
    two_workers: tuple[Crm, Crm],
) -> None:
    def attempt(n: int) -> str:
        try:
            _export(two_workers[n % 2])
        except ExportLimitReached:
            return "refused"
        return "recorded"

    with ThreadPoolExecutor(max_workers=14) as pool:
        outcomes = list(pool.map(attempt, range(14)))

    assert outcomes.count("recorded") == 5
    assert outcomes.count("refused") == 9


def test_a_restart_does_not_reset_the_limit(shared: Settings) -> None:
    with _opened(shared, NOON + 60) as before:
        for _ in range(5):
            _export(before)
    with _opened(shared, NOON + 120) as after, pytest.raises(ExportLimitReached) as refused:
        _export(after)
    assert refused.value.retry_after == HOUR - 120


def test_the_limit_counts_per_user_and_clock_hour(two_workers: tuple[Crm, Crm]) -> None:
    first, second = two_workers
    for _ in range(5):
        _export(first)
    with pytest.raises(ExportLimitReached):
        _export(second)
    _export(first, Envelope(actor_id="ada", actor_role="admin", source="api", correlation_id="y"))

    first.exports.clock = lambda: NOON + HOUR  # the next hour begins
    _export(first)
    rows = first.db.query("SELECT window_start, count FROM export_counts WHERE user_id = 'aud'")
    assert [(int(w), int(n)) for w, n in rows] == [(int(NOON) + HOUR, 1)], "past hours forgotten"


def test_a_refused_export_records_nothing(two_workers: tuple[Crm, Crm]) -> None:
    first, _ = two_workers
    for _ in range(5):
        _export(first)
    head = first.app.recorder.max_notification_id()
    with pytest.raises(ExportLimitReached):
        _export(first)
    manager = Envelope(actor_id="mia", actor_role="manager", source="api", correlation_id="z")
    with pytest.raises(PermissionDenied):
        _export(first, manager)
    assert first.app.recorder.max_notification_id() == head
