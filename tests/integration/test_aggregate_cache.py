"""The aggregate cache: the next command on an aggregate needs no read of its events,
and a cache that is behind the store (another process wrote) never changes what a
command decides or records."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from api.bootstrap import Crm, bootstrap
from application import clients, deals
from application.errors import VersionMismatch
from application.settings import Settings
from domain.client import Client
from domain.envelope import Envelope, utc_now
from domain.errors import DomainError, RuleViolation
from tests.conftest import make_settings


def purchase(client_id: UUID, amount: str = "10.00") -> clients.RecordPurchase:
    return clients.RecordPurchase(client_id=client_id, amount=Decimal(amount), currency="EUR")


def versions(crm: Crm, client_id: UUID) -> list[int]:
    return [e.originator_version for e in crm.app.repository.event_store.get(client_id)]


def purchases(crm: Crm, client_id: UUID) -> list[Decimal]:
    return [
        e.amount
        for e in crm.app.repository.event_store.get(client_id)
        if isinstance(e, Client.PurchaseMade)
    ]


def counted_reads(crm: Crm, monkeypatch: pytest.MonkeyPatch) -> list[UUID]:
    """The aggregates whose events the application reads from now on, in order."""
    reads: list[UUID] = []
    select_events = crm.app.recorder.select_events

    def counting(originator_id: UUID, **kwargs: Any) -> Any:
        reads.append(originator_id)
        return select_events(originator_id, **kwargs)

    monkeypatch.setattr(crm.app.recorder, "select_events", counting)
    return reads


def test_the_next_command_on_an_aggregate_reads_none_of_its_events(
    crm: Crm, envelope: Envelope, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = counted_reads(crm, monkeypatch)
    ann = crm.app.execute(clients.RegisterClient(name="Ann"), envelope).id
    crm.app.execute(purchase(ann, "10.00"), envelope)
    result = crm.app.execute(purchase(ann, "20.00"), envelope)
    assert reads == []
    assert result.version == 3
    assert purchases(crm, ann) == [Decimal("10.00"), Decimal("20.00")]


def test_without_a_cache_every_command_reads_its_aggregate(
    settings: Settings, envelope: Envelope, monkeypatch: pytest.MonkeyPatch
) -> None:
    with bootstrap(settings.model_copy(update={"aggregate_cache_size": 0})) as crm:
        ann = crm.app.execute(clients.RegisterClient(name="Ann"), envelope).id
        reads = counted_reads(crm, monkeypatch)
        crm.app.execute(purchase(ann), envelope)
        crm.app.execute(purchase(ann), envelope)
        assert reads == [ann, ann]
        assert len(crm.app.aggregate_cache) == 0


def test_a_failed_unit_of_work_leaves_nothing_half_done_in_the_cache(
    crm: Crm, envelope: Envelope
) -> None:
    """The first command of the pair changes the cached client, the second fails, so
    nothing is recorded; the client's next command must start from what is stored
    (a cache that kept the changed client would record version 4 after 2)."""
    ann = crm.app.execute(clients.RegisterClient(name="Ann"), envelope).id
    crm.app.execute(purchase(ann, "10.00"), envelope)
    bad = clients.RecordPurchase(client_id=ann, amount=Decimal("5.00"), currency="USD")
    with pytest.raises(DomainError):
        crm.app.execute_many([(purchase(ann, "99.00"), envelope), (bad, envelope)])
    assert crm.app.execute(purchase(ann, "30.00"), envelope).version == 3
    assert versions(crm, ann) == [1, 2, 3]
    assert purchases(crm, ann) == [Decimal("10.00"), Decimal("30.00")]


@pytest.fixture(params=["sqlite", "postgresql"])
def two(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Crm, Crm]]:
    """Two products on one store, standing for two processes (API workers, an
    import): each has a cache of its own, which the other's writes put behind."""
    backend: str = request.param
    overrides = {}
    if backend == "postgresql":
        overrides["database_schema"] = request.getfixturevalue("postgres_schema")
    settings = make_settings(backend, tmp_path, **overrides)
    with bootstrap(settings) as here, bootstrap(settings) as there:
        yield here, there


def test_a_change_made_elsewhere_is_not_overwritten_by_a_cached_aggregate(
    two: tuple[Crm, Crm], envelope: Envelope
) -> None:
    crm, other = two
    ann = crm.app.execute(clients.RegisterClient(name="Ann"), envelope).id
    crm.app.execute(purchase(ann, "10.00"), envelope)  # cached here at version 2
    other.app.execute(purchase(ann, "20.00"), envelope)  # version 3, elsewhere
    assert crm.app.execute(purchase(ann, "30.00"), envelope).version == 4
    assert versions(crm, ann) == [1, 2, 3, 4]
    assert purchases(crm, ann) == [Decimal("10.00"), Decimal("20.00"), Decimal("30.00")]


def test_an_aggregate_only_read_is_checked_against_the_store(
    two: tuple[Crm, Crm], envelope: Envelope
) -> None:
    crm, other = two
    """Opening a deal reads the client without changing it: the client restricted
    elsewhere must refuse the deal here, though the cached client is not restricted."""
    ann = crm.app.execute(clients.RegisterClient(name="Ann"), envelope).id
    first = crm.app.execute(
        deals.OpenDeal(client_id=ann, title="Windows", amount=Decimal(100), currency="EUR"),
        envelope,
    )
    assert first.version == 1
    other.app.execute(clients.RestrictProcessing(client_id=ann, reason="objection"), envelope)
    with pytest.raises(RuleViolation):
        crm.app.execute(
            deals.OpenDeal(client_id=ann, title="Doors", amount=Decimal(50), currency="EUR"),
            envelope,
        )


def test_a_rule_broken_only_on_a_cached_aggregate_is_decided_again_on_the_store(
    two: tuple[Crm, Crm], envelope: Envelope
) -> None:
    crm, other = two
    """The follow-up scheduled elsewhere is unknown to the cached client."""
    crm.users.add("maria", "manager")  # the store's users: both products see her
    ann = crm.app.execute(clients.RegisterClient(name="Ann"), envelope).id
    crm.app.execute(purchase(ann), envelope)  # cached here at version 2
    scheduled = other.app.execute(
        clients.ScheduleFollowUp(
            client_id=ann, due_at=utc_now() + timedelta(days=1), assignee_id="maria"
        ),
        envelope,
    )
    task_id = UUID(scheduled.extra["task_id"])
    done = crm.app.execute(clients.CompleteFollowUp(client_id=ann, task_id=task_id), envelope)
    assert done.version == scheduled.version + 1
    *_, last = crm.app.repository.event_store.get(ann)
    assert isinstance(last, Client.FollowUpCompleted)
    assert last.task_id == task_id


def test_an_expected_version_newer_than_the_cache_is_checked_against_the_store(
    two: tuple[Crm, Crm], envelope: Envelope
) -> None:
    crm, other = two
    ann = crm.app.execute(clients.RegisterClient(name="Ann"), envelope).id
    crm.app.execute(purchase(ann), envelope)  # cached here at version 2
    other.app.execute(purchase(ann), envelope)  # version 3
    lost = crm.app.execute(
        clients.MarkClientLost(client_id=ann, reason="moved", expected_version=3), envelope
    )
    assert lost.version == 4
    with pytest.raises(VersionMismatch):
        crm.app.execute(
            clients.RestrictProcessing(client_id=ann, reason="x", expected_version=3), envelope
        )


def test_two_processes_writing_one_client_lose_nothing(
    two: tuple[Crm, Crm], envelope: Envelope
) -> None:
    crm, other = two
    ann = crm.app.execute(clients.RegisterClient(name="Ann"), envelope).id
    per_writer, writers = 10, 4

    def buy(i: int) -> list[int]:
        product = (crm, other)[i % 2]
        return [
            product.app.execute(
                purchase(ann, f"{i + 1}.{n:02d}"), replace(envelope, correlation_id=f"w{i}-{n}")
            ).version
            for n in range(per_writer)
        ]

    with ThreadPoolExecutor(writers) as pool:
        acknowledged = sorted(v for vs in pool.map(buy, range(writers)) for v in vs)
    assert acknowledged == list(range(2, 2 + writers * per_writer))
    assert versions(crm, ann) == list(range(1, 2 + writers * per_writer))
    assert sorted(purchases(crm, ann)) == sorted(
        Decimal(f"{i + 1}.{n:02d}") for i in range(writers) for n in range(per_writer)
    )
