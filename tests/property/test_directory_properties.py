"""Properties of the directory and work-queue read models, on SQLite and PostgreSQL.

* projecting incrementally, in small batches between commands, leaves the same
  rows as one rebuild from position zero, and the same cards as the pure fold;
* the order in which back-dated purchases and contacts arrive does not change a card.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.projector import Projector
from adapters.read_models.directory import DirectoryReadModel
from adapters.read_models.work_queue import WorkQueueReadModel
from api.bootstrap import Crm
from application import clients
from application.errors import ApplicationError
from domain.envelope import Envelope
from domain.errors import DomainError
from projections import directory
from tests.conftest import fresh_product, table_rows
from tests.story import recorded_events

EPOCH = datetime(2023, 1, 1, tzinfo=UTC)
ENVELOPE = Envelope(actor_id="alice", actor_role="admin", source="import", correlation_id="p")
PHONES = ("+49 30 1000001", "+49 30 1000002", "+49 30 1000003", "+49 30 1000004")
ACTORS = ("alice", "maria", "ivan")
BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])


def at(days: int) -> datetime:
    return EPOCH + timedelta(days=days)


@dataclass(frozen=True)
class Op:
    kind: str  # buy | contact | phone | follow_up | complete | merge | erase | owner
    client: int
    day: int
    other: int = 0
    amount: int = 0
    actor: str = "alice"


def ops(clients_count: int) -> st.SearchStrategy[Op]:
    client = st.integers(0, clients_count - 1)
    return st.builds(
        Op,
        kind=st.sampled_from(
            ["buy"] * 4
            + ["contact"] * 2
            + ["phone", "follow_up", "complete", "merge", "erase", "owner"]
        ),
        client=client,
        day=st.integers(0, 300),
        other=st.integers(0, 3),
        amount=st.integers(1, 500),
        actor=st.sampled_from(ACTORS),
    )


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[int], list[Op]]:
    count = draw(st.integers(1, 3))
    registered = [draw(st.integers(0, 30)) for _ in range(count)]
    return registered, draw(st.lists(ops(count), max_size=14))


def run(crm: Crm, op: Op, ids: list[UUID], tasks: dict[UUID, list[UUID]]) -> None:
    """One command; a command the domain refuses (an erased client, a taken phone, a
    merge with itself…) records nothing and is simply skipped."""
    client = ids[op.client]
    # "complete" completes the oldest open follow-up of this client or the next one with any
    busy = next((c for c in ids[op.client :] + ids[: op.client] if tasks[c]), client)
    if op.kind == "complete" and not tasks[busy]:
        return
    envelope = replace(ENVELOPE, actor_id=op.actor, occurred_at=at(op.day))
    commands: dict[str, Any] = {
        "buy": lambda: clients.RecordPurchase(
            client_id=client,
            amount=Decimal(op.amount) / 4,
            cost=Decimal(op.amount % 7),
            currency="EUR",
        ),
        "contact": lambda: clients.RecordContact(
            client_id=client, channel="call", direction="inbound"
        ),
        "phone": lambda: clients.ChangeClientDetails(
            client_id=client, changes={"phones": [PHONES[op.other]], "name": f"Renamed {op.other}"}
        ),
        "follow_up": lambda: clients.ScheduleFollowUp(
            client_id=client, due_at=at(op.day + op.other * 3), assignee_id="maria"
        ),
        "complete": lambda: clients.CompleteFollowUp(client_id=busy, task_id=tasks[busy][0]),
        "merge": lambda: clients.MergeClients(
            survivor_id=client, duplicate_id=ids[op.other % len(ids)]
        ),
        "erase": lambda: clients.ErasePersonalData(client_id=client, reason="subject_request"),
        "owner": lambda: clients.AssignOwner(client_id=client, owner_id=ACTORS[1 + op.other % 2]),
    }
    try:
        result = crm.app.execute(commands[op.kind](), envelope)
    except (DomainError, ApplicationError):
        return
    if op.kind == "follow_up":
        tasks[client].append(UUID(result.extra["task_id"]))
    elif op.kind == "complete":
        tasks[busy].pop(0)


def models(crm: Crm, prefix: str = "") -> list[Any]:
    return [
        DirectoryReadModel(crm.db, blind_index=crm.app.blind_index, prefix=prefix),
        WorkQueueReadModel(crm.db, prefix=prefix),
    ]


def record(
    crm: Crm, registered: list[int], history: list[Op], every: int, batch: int
) -> list[UUID]:
    crm.users.add("maria", "manager")
    crm.users.add("ivan", "manager")
    projector = Projector(crm.app, crm.db, models(crm), batch_size=batch)
    projector.setup()
    ids = [
        crm.app.execute(
            clients.RegisterClient(name=f"Client {n}", phones=(PHONES[n],), owner_id="maria"),
            replace(ENVELOPE, occurred_at=at(day)),
        ).id
        for n, day in enumerate(registered)
    ]
    tasks: dict[UUID, list[UUID]] = {client_id: [] for client_id in ids}
    for n, op in enumerate(history, start=1):
        run(crm, op, ids, tasks)
        if n % every == 0:
            projector.catch_up()
    projector.catch_up()
    return ids


@BACKENDS
@settings(max_examples=20, deadline=None)
@given(history=histories(), every=st.integers(1, 4), batch=st.integers(1, 4))
def test_incremental_projection_equals_a_rebuild_and_the_fold(
    backend: str, tmp_path_factory: pytest.TempPathFactory, history: Any, every: int, batch: int
) -> None:
    registered, ops_ = history
    with fresh_product(backend, tmp_path_factory.mktemp("p")) as crm:
        ids = record(crm, registered, ops_, every, batch)
        rebuilt = Projector(crm.app, crm.db, models(crm, "check_"))
        rebuilt.setup()
        rebuilt.catch_up()
        for table in (
            "directory_cards",
            "directory_lookup",
            "work_queue_follow_ups",
            "work_queue_activity",
        ):
            assert table_rows(crm, table) == table_rows(crm, f"check_{table}"), table

        folded = directory.fold(recorded_events(crm))
        live = models(crm)[0]
        for client_id in ids:
            expected = folded[client_id]
            assert live.card(client_id) == (None if expected.merged_into else expected)
            for phone in expected.phones:
                found = live.lookup(phone=phone)
                if expected.live:
                    assert found == expected
                else:  # a merged-away card's numbers find the survivor, if anyone
                    assert found is None or found.client_id != client_id


@st.composite
def purchases(draw: st.DrawFn) -> tuple[list[tuple[str, int, int]], list[int]]:
    facts = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["buy", "contact"]), st.integers(1, 400), st.integers(1, 9999)
            ),
            min_size=1,
            max_size=8,
        )
    )
    return facts, draw(st.permutations(range(len(facts))))


@BACKENDS
@settings(max_examples=20, deadline=None)
@given(history=purchases(), every=st.integers(1, 3))
def test_the_arrival_order_of_back_dated_facts_does_not_change_the_card(
    backend: str, tmp_path_factory: pytest.TempPathFactory, history: Any, every: int
) -> None:
    """Two clients registered the same day get the same purchases and contacts, one in
    the order drawn, the other in a shuffled order, projected between arrivals."""
    facts, order = history
    with fresh_product(backend, tmp_path_factory.mktemp("p")) as crm:
        live = DirectoryReadModel(crm.db, blind_index=crm.app.blind_index)
        projector = Projector(crm.app, crm.db, [live], batch_size=2)
        projector.setup()
        cards = []
        for name, arrival in (("first", facts), ("second", [facts[i] for i in order])):
            client_id = crm.app.execute(
                clients.RegisterClient(name="Same Person"), replace(ENVELOPE, occurred_at=at(0))
            ).id
            for n, (kind, day, amount) in enumerate(arrival, start=1):
                command: Any = (
                    clients.RecordPurchase(
                        client_id=client_id,
                        amount=Decimal(amount) / 100,
                        cost=Decimal(amount % 13),
                        currency="EUR",
                    )
                    if kind == "buy"
                    else clients.RecordContact(
                        client_id=client_id, channel="sms", direction="outbound"
                    )
                )
                crm.app.execute(command, replace(ENVELOPE, occurred_at=at(day)))
                if n % every == 0:
                    projector.catch_up()
            projector.catch_up()
            card = live.card(client_id)
            assert card is not None, name
            cards.append(replace(card, client_id=UUID(int=0)))
        assert cards[0] == cards[1]
        bought = [(day, amount) for kind, day, amount in facts if kind == "buy"]
        assert cards[0].purchases_count == len(bought)
        assert cards[0].revenue == sum(Decimal(a) / 100 for _, a in bought)
        assert cards[0].last_purchase_at == (max(at(d) for d, _ in bought) if bought else None)
