"""Concurrent writers on real stores: nothing acknowledged is lost or recorded twice."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from api.bootstrap import Crm
from application import clients
from application.errors import DuplicateContact
from domain.client import Client
from domain.envelope import Envelope

THREADS = 8


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


def race(task: Callable[[int], Any], threads: int = THREADS) -> list[Any]:
    """Run ``task(i)`` on ``threads`` threads released at the same instant; returns
    each result or the exception it raised."""
    barrier = threading.Barrier(threads)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return task(i)
        except Exception as error:
            return error

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, range(threads)))


def test_eight_writers_on_one_client_lose_no_event_and_leave_contiguous_versions(
    crm: Crm, envelope: Envelope
) -> None:
    client_id = crm.app.execute(clients.RegisterClient(name="Ann"), envelope).id
    per_thread = 5

    def buy(i: int) -> list[int]:
        versions = []
        for n in range(per_thread):
            result = crm.app.execute(
                clients.RecordPurchase(
                    client_id=client_id, amount=Decimal(f"{i}.{n:02d}") + 1, currency="EUR"
                ),
                replace(envelope, correlation_id=f"writer-{i}-{n}"),
            )
            versions.append(result.version)
        return versions

    outcomes = race(buy)
    assert not [o for o in outcomes if isinstance(o, Exception)]
    acknowledged = sorted(v for versions in outcomes for v in versions)
    assert acknowledged == list(range(2, 2 + THREADS * per_thread))
    events = list(crm.app.repository.event_store.get(client_id))
    assert [e.originator_version for e in events] == list(range(1, 2 + THREADS * per_thread))
    purchases = [e for e in events if isinstance(e, Client.PurchaseMade)]
    assert sorted(p.correlation_id for p in purchases) == sorted(
        f"writer-{i}-{n}" for i in range(THREADS) for n in range(per_thread)
    )


def test_two_concurrent_registrations_of_one_phone_exactly_one_wins(
    crm: Crm, envelope: Envelope
) -> None:
    outcomes = race(
        lambda i: crm.app.execute(
            clients.RegisterClient(name=f"Caller {i}", phones=("+4930555000",)), envelope
        )
    )
    winners = [o for o in outcomes if not isinstance(o, Exception)]
    losers = [o for o in outcomes if isinstance(o, Exception)]
    assert len(winners) == 1
    assert all(isinstance(o, DuplicateContact) for o in losers), losers
    assert {o.existing_client_id for o in losers} == {winners[0].id}
    registered = {
        n.originator_id
        for n in crm.app.recorder.select_notifications(start=1, limit=1000)
        if n.topic.endswith("ClientRegistered")
    }
    assert registered == {winners[0].id}


def test_concurrent_retries_with_one_idempotency_key_record_the_command_once(
    crm: Crm, envelope: Envelope
) -> None:
    before = crm.app.recorder.max_notification_id() or 0
    outcomes = race(
        lambda _: crm.app.execute(
            clients.RegisterClient(name="Ann", emails=("ann@example.com",)),
            envelope,
            idempotency_key="order-42",
        )
    )
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert len({(o.id, o.version, o.position) for o in outcomes}) == 1
    assert sum(not o.replayed for o in outcomes) == 1
    assert (crm.app.recorder.max_notification_id() or 0) == before + 1


def test_concurrent_writes_share_commits_and_a_conflicting_one_fails_alone(
    crm: Crm, envelope: Envelope
) -> None:
    from eventsourcing.persistence import IntegrityError, StoredEvent

    taken = crm.app.execute(clients.RegisterClient(name="Ann"), envelope).id

    def write(i: int) -> list[int]:
        # writer 0 reuses version 1 of an existing client: a conflict; the others are new
        originator = taken if i == 0 else uuid.uuid4()
        stored = StoredEvent(originator, 1, "tests:Nothing", b"{}")
        return list(crm.app.recorder.insert_events([stored]) or [])

    before = crm.app.recorder.max_notification_id() or 0
    outcomes = race(write, threads=THREADS)
    assert isinstance(outcomes[0], IntegrityError)
    positions = sorted(p for o in outcomes[1:] for p in o)
    assert len(set(positions)) == THREADS - 1
    assert positions[0] > before  # (PostgreSQL may skip the number the failed write drew)
    stored = crm.app.recorder.select_notifications(start=before + 1, limit=100)
    assert sorted(n.id for n in stored) == positions
    assert taken not in {n.originator_id for n in stored}


def test_a_batch_records_its_good_writes_and_fails_each_bad_one_alone(crm: Crm) -> None:
    """One group-commit batch (as concurrent commands form it): a version conflict and
    a contact point claimed twice fail on their own; the other writes, with their
    claims, are committed with the positions they were told."""
    from eventsourcing.persistence import IntegrityError, StoredEvent

    from adapters.group_commit import Write
    from application.ports import Claim, SideEffects

    taken = uuid.uuid4()
    (first,) = crm.app.recorder.insert_events([StoredEvent(taken, 1, "tests:Nothing", b"{}")])
    ids = [uuid.uuid4() for _ in range(3)]

    def event(originator: uuid.UUID, version: int = 1) -> StoredEvent:
        return StoredEvent(originator, version, "tests:Nothing", b'{"n": 1}')

    def claim(digest: str, owner: uuid.UUID) -> SideEffects:
        return SideEffects(claims=[Claim("phone", digest, owner)])

    batch = [
        Write([event(ids[0]), event(ids[0], 2)], claim("d-1", ids[0])),
        Write([event(taken)], None),  # version 1 of `taken` exists: a conflict
        Write([event(ids[1])], claim("d-1", ids[1])),  # d-1 was claimed just before
        Write([], claim("d-2", ids[2])),  # side effects only
        Write([event(ids[2])], None),
    ]
    recorder: Any = crm.app.recorder
    with recorder._committer._session() as session:  # as the group-commit leader does
        recorder._write_batch(session, batch)

    failed = [isinstance(w.error, IntegrityError) for w in batch]
    assert failed == [False, True, True, False, False], [w.error for w in batch]
    assert batch[1].positions is None
    assert batch[2].positions is None
    assert batch[3].positions == []
    told = [p for w in (batch[0], batch[4]) for p in w.positions or []]
    assert len(told) == 3
    assert told == sorted(told)
    assert told[0] > first
    stored = crm.app.recorder.select_notifications(start=first + 1, limit=10)
    assert [(n.id, n.originator_id, n.originator_version) for n in stored] == list(
        zip(told, [ids[0], ids[0], ids[2]], [1, 2, 1], strict=True)
    )
    assert crm.app.recorder.claim_owner("phone", "d-1") == ids[0]
    assert crm.app.recorder.claim_owner("phone", "d-2") == ids[2]
    # the connection is usable afterwards: a lone conflicting write fails alone
    with pytest.raises(IntegrityError):
        crm.app.recorder.insert_events([event(taken)])
    assert crm.app.recorder.insert_events([event(uuid.uuid4())])
