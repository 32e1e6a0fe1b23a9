"""Properties of the audit trail on SQLite and PostgreSQL, over random histories:

* projecting in small batches gives the same entries as one rebuild from zero, and
  both are the fold of every event (deal clients resolved, erased clients purged);
* walking the pages, whatever their size and filter, yields exactly the full list.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.projector import Projector
from adapters.read_models.audit import AuditReadModel
from api.bootstrap import Crm
from application import clients, deals
from application.errors import ApplicationError
from domain.envelope import Envelope
from domain.errors import DomainError
from domain.pipeline import DEFAULT_STAGES
from projections import audit
from projections.audit import AuditEntry
from projections.base import Recorded
from tests.conftest import fresh_product, table_rows

BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
ENVELOPE = Envelope(actor_id="alice", actor_role="admin", source="api", correlation_id="p")
ACTORS = ("alice", "bob", "x'); DROP TABLE audit_entries;--")
KINDS = (
    "register",
    "change",
    "contact",
    "purchase",
    "assign",
    "lose",
    "open",
    "move",
    "value",
    "win",
    "deal_lost",
    "reopen",
    "erase",
    "merge",
    "consent",
)
DEAL_KINDS = ("move", "value", "win", "deal_lost", "reopen")
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=12)


@dataclass(frozen=True)
class Step:
    kind: str
    one: int
    two: int
    text: str
    actor: str
    project: bool


STEPS = st.lists(
    st.builds(
        Step,
        st.sampled_from(KINDS),
        st.integers(0, 3),
        st.integers(0, 3),
        TEXT.filter(str.strip),
        st.sampled_from(ACTORS),
        st.booleans(),
    ),
    min_size=8,
    max_size=30,
)
PROPERTY = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def command(step: Step, ids: list[UUID], deal_ids: list[UUID]) -> Any:
    """The command a step stands for; a step that needs a client or a deal before
    there is one registers a client or opens a deal instead. The domain may still
    refuse it (a merged or erased client, a deal not open): that records nothing."""
    if not ids:
        step = replace(step, kind="register")
    elif not deal_ids and step.kind in DEAL_KINDS:
        step = replace(step, kind="open")
    elif step.kind == "erase" and step.two != 3:  # else most histories end early
        step = replace(step, kind="contact")
    if step.kind == "register":
        phones = (f"+4930{1_000_000 + len(ids)}",)
        return clients.RegisterClient(name=step.text, phones=phones, attributes={"note": step.text})
    client = ids[step.one % len(ids)]
    by_client: dict[str, Any] = {
        "change": clients.ChangeClientDetails(
            client_id=client,
            changes={
                ("name", "company", "attributes.note", "emails")[step.two]: (
                    [f"a{step.one}@example.com"] if step.two == 3 else step.text
                )
            },
        ),
        "contact": clients.RecordContact(
            client_id=client, channel="call", direction="outbound", summary=step.text
        ),
        "purchase": clients.RecordPurchase(
            client_id=client, amount=Decimal(f"{step.two + 1}.50"), currency="EUR"
        ),
        "assign": clients.AssignOwner(client_id=client, owner_id=("maria", "ivan")[step.two % 2]),
        "lose": clients.MarkClientLost(client_id=client, reason="price", note=step.text),
        "open": deals.OpenDeal(
            client_id=client, title=step.text, amount=Decimal(step.two * 100), currency="EUR"
        ),
        "erase": clients.ErasePersonalData(client_id=client, reason="subject_request"),
        "merge": clients.MergeClients(
            survivor_id=client, duplicate_id=ids[(step.one + step.two + 1) % len(ids)]
        ),
        "consent": clients.GiveConsent(client_id=client, purpose="newsletter"),
    }
    if step.kind in by_client:
        return by_client[step.kind]
    deal = deal_ids[step.one % len(deal_ids)]
    return {
        "move": deals.MoveDealStage(deal_id=deal, stage=DEFAULT_STAGES[step.two % 3]),
        "value": deals.ChangeDealValue(deal_id=deal, amount=Decimal(step.two * 7), currency="EUR"),
        "win": deals.WinDeal(deal_id=deal),
        "deal_lost": deals.LoseDeal(deal_id=deal, reason="price", note=step.text),
        "reopen": deals.ReopenDeal(deal_id=deal),
    }[step.kind]


def record(crm: Crm, steps: list[Step], projector: Projector | None = None) -> None:
    """Run the steps (commands the domain refuses record nothing), projecting after
    the steps marked so."""
    crm.users.add("maria", "manager")
    crm.users.add("ivan", "manager")
    ids: list[UUID] = []
    deal_ids: list[UUID] = []
    for step in steps:
        cmd = command(step, ids, deal_ids)
        try:
            result = crm.app.execute(cmd, replace(ENVELOPE, actor_id=step.actor))
        except (DomainError, ApplicationError):
            continue
        if isinstance(cmd, clients.RegisterClient):
            ids.append(result.id)
        elif isinstance(cmd, deals.OpenDeal):
            deal_ids.append(result.id)
        if projector is not None and step.project:
            projector.catch_up()


def folded(crm: Crm) -> list[AuditEntry]:
    """What the trail must hold: the fold of every stored event, with each deal event
    given its deal's client and a client's entries purged by a later erasure."""
    notifications = crm.app.recorder.select_notifications(start=1, limit=1_000_000)
    found: list[AuditEntry] = []
    deal_client: dict[UUID, UUID] = {}
    for n in notifications:
        recorded = Recorded(n.id, crm.app.mapper.to_domain_event(n))  # type: ignore[arg-type]
        for entry in audit.entries(recorded):
            if entry.event_type == "DealOpened" and entry.deal_id and entry.client_id:
                deal_client[entry.deal_id] = entry.client_id
            if entry.deal_id:
                entry = replace(entry, client_id=deal_client[entry.deal_id])  # noqa: PLW2901
            if entry.event_type == "PersonalDataErased":
                found = [audit.redacted(e) if e.client_id == entry.client_id else e for e in found]
            found.append(entry)
    return found


def everything(model: AuditReadModel) -> list[AuditEntry]:
    return model.page(limit=1_000_000).entries


@BACKENDS
@PROPERTY
@given(steps=STEPS, batch_size=st.integers(1, 5))
def test_projecting_in_small_batches_equals_a_rebuild_and_the_fold(
    backend: str, tmp_path: Path, steps: list[Step], batch_size: int
) -> None:
    with fresh_product(backend, tmp_path) as crm:
        live = AuditReadModel(crm.db)
        projector = Projector(crm.app, crm.db, [live], batch_size=batch_size)
        projector.setup()
        record(crm, steps, projector)
        projector.catch_up()
        check = AuditReadModel(crm.db, prefix="check_")
        rebuild = Projector(crm.app, crm.db, [check], batch_size=1000)
        rebuild.setup()
        rebuild.catch_up()

        assert everything(live) == everything(check) == folded(crm)
        for table in ("entries", "deals"):
            assert table_rows(crm, live.t[table]) == table_rows(crm, check.t[table])


@BACKENDS
@settings(PROPERTY, max_examples=15)
@given(
    steps=STEPS,
    limit=st.integers(1, 7),
    which=st.sampled_from(["all", "client", "deal", "actor", "field", "time"]),
)
def test_walking_pages_of_any_size_yields_exactly_the_full_ordered_list(
    backend: str, tmp_path: Path, steps: list[Step], limit: int, which: str
) -> None:
    with fresh_product(backend, tmp_path) as crm:
        model = AuditReadModel(crm.db)
        projector = Projector(crm.app, crm.db, [model])
        projector.setup()
        record(crm, steps)
        projector.catch_up()
        full = everything(model)
        some = full[len(full) // 2]
        choices: dict[str, dict[str, Any]] = {
            "all": {},
            "client": {"client_id": some.client_id},
            "deal": {"deal_id": some.deal_id},
            "actor": {"actor_id": some.actor_id},
            "field": {"field": some.field},
            "time": {"occurred_from": some.occurred_at},
        }
        filters = {k: v for k, v in choices[which].items() if v is not None}
        expected = [
            e
            for e in full
            if all(
                (e.occurred_at >= v) if k == "occurred_from" else getattr(e, k) == v
                for k, v in filters.items()
            )
        ]

        walked: list[AuditEntry] = []
        cursor = None
        while True:
            page = model.page(limit=limit, cursor=cursor, **filters)
            assert len(page.entries) <= limit
            walked += page.entries
            if page.next_cursor is None:
                break
            assert len(page.entries) == limit
            cursor = page.next_cursor

        assert walked == expected
        assert [(e.position, e.seq) for e in full] == sorted({(e.position, e.seq) for e in full})
