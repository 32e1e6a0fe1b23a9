"""The audit trail on every store: exact entries for a small history, filters, cursor
pagination (also while events keep coming), exports, hostile values and erasure."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import pytest

from adapters.projector import Projector, rebuild
from adapters.read_models.audit import COLUMNS, AuditReadModel, decode_cursor
from api.bootstrap import Crm
from application import clients, deals
from domain.envelope import Envelope, utc_now
from domain.errors import RuleViolation
from domain.pipeline import pipeline_id
from projections.audit import AuditEntry
from tests.conftest import at

REGISTERED = at("2024-01-10T09:00")
CHANGED = at("2024-02-01T10:00")
ASSIGNED = at("2024-02-10T08:00")
BOUGHT = at("2024-03-01T00:00")
OPENED = at("2024-03-05T11:00")
MOVED = at("2024-03-20T15:00")
WON = at("2024-04-01T00:00")

PHONES = '["+49301234567","+442079460958"]'
NEW_PHONES = '["+49301234567","+4930555666"]'
INJECTION = "Robert'); DROP TABLE audit_entries;--"
SCRIPT = "<script>alert(1)</script>"

Brief = tuple[int, int, str, str, str | None, str | None, str | None]


def brief(found: Iterable[AuditEntry]) -> list[Brief]:
    """(position, seq, event_type, actor_id, field, old_value, new_value)"""
    return [
        (e.position, e.seq, e.event_type, e.actor_id, e.field, e.old_value, e.new_value)
        for e in found
    ]


@dataclass
class History:
    crm: Crm
    envelope: Envelope
    model: AuditReadModel
    projector: Projector
    client: UUID
    deal: UUID
    started: datetime
    finished: datetime

    def run(self, command: object, when: datetime | None = None, **envelope: Any) -> Any:
        attribution = replace(self.envelope, occurred_at=when, **envelope)
        return self.crm.app.execute(command, attribution)

    def all(self, **filters: Any) -> list[AuditEntry]:
        return self.model.page(limit=10_000, **filters).entries


@pytest.fixture
def history(crm: Crm, envelope: Envelope) -> History:
    """Ann registers with two phones; bob imports a back-dated name and phone change;
    she gets a new owner, buys, and a deal is opened, moved and won (which records her
    purchase, caused by the win). Projected in batches of 3 events, so deal events
    find their client in the deal links stored by an earlier batch."""
    crm.users.add("maria", "manager")
    crm.users.add("ivan", "manager")
    model = AuditReadModel(crm.db)
    projector = Projector(crm.app, crm.db, [model], batch_size=3)
    projector.setup()
    h = History(crm, envelope, model, projector, UUID(int=0), UUID(int=0), utc_now(), utc_now())
    positions = []
    ann = h.run(
        clients.RegisterClient(
            name="Ann Lee", phones=("+49 30 1234567", "+44 20 7946 0958"), owner_id="maria"
        ),
        REGISTERED,
    )
    h.client = ann.id
    positions.append(ann.position)
    change = clients.ChangeClientDetails(
        client_id=ann.id, changes={"name": "Ann Smith", "phones": ["+49301234567", "+4930555666"]}
    )
    positions.append(
        h.run(change, CHANGED, actor_id="bob", actor_role="admin", source="import").position
    )
    positions.append(
        h.run(clients.AssignOwner(client_id=ann.id, owner_id="ivan"), ASSIGNED).position
    )
    purchase = clients.RecordPurchase(
        client_id=ann.id, amount=Decimal("120.00"), cost=Decimal("70"), currency="EUR"
    )
    positions.append(h.run(purchase, BOUGHT).position)
    deal = h.run(
        deals.OpenDeal(client_id=ann.id, title="Windows", amount=Decimal(1500), currency="EUR"),
        OPENED,
    )
    h.deal = deal.id
    positions.append(deal.position)
    positions.append(
        h.run(deals.MoveDealStage(deal_id=deal.id, stage="evaluation"), MOVED).position
    )
    positions.append(h.run(deals.WinDeal(deal_id=deal.id), WON).position)
    assert positions == [2, 3, 4, 5, 6, 7, 9]  # the win records 8 (DealWon) and 9 (purchase)
    projector.catch_up()
    h.finished = utc_now()
    return h


def client_entries(h: History) -> list[Brief]:
    return [
        (2, 0, "ClientRegistered", "alice", "name", None, "Ann Lee"),
        (2, 1, "ClientRegistered", "alice", "kind", None, "person"),
        (2, 2, "ClientRegistered", "alice", "phones", None, PHONES),
        (2, 3, "ClientRegistered", "alice", "owner_id", None, "maria"),
        (3, 0, "ClientDetailsChanged", "bob", "name", "Ann Lee", "Ann Smith"),
        (3, 1, "ClientDetailsChanged", "bob", "phones", PHONES, NEW_PHONES),
        (4, 0, "OwnerAssigned", "alice", "owner_id", "maria", "ivan"),
        (5, 0, "PurchaseMade", "alice", None, None, None),
        *deal_entries(h),
        (9, 0, "PurchaseMade", "alice", None, None, None),
    ]


def deal_entries(h: History) -> list[Brief]:
    return [
        (6, 0, "DealOpened", "alice", "title", None, "Windows"),
        (6, 1, "DealOpened", "alice", "amount", None, "1500"),
        (6, 2, "DealOpened", "alice", "currency", None, "EUR"),
        (6, 3, "DealOpened", "alice", "stage", None, "attraction"),
        (6, 4, "DealOpened", "alice", "owner_id", None, "ivan"),
        (6, 5, "DealOpened", "alice", "pipeline_id", None, str(pipeline_id("default"))),
        (7, 0, "DealStageChanged", "alice", "stage", "attraction", "evaluation"),
        (8, 0, "DealWon", "alice", None, None, None),
    ]


# ------------------------------------------------------------------ exact entries


def test_a_clients_trail_is_every_field_change_and_event_in_order(history: History) -> None:
    h = history
    found = h.all(client_id=h.client)

    assert brief(found) == client_entries(h)
    assert {e.client_id for e in found} == {h.client}
    details = {e.position: orjson.loads(e.details or "") for e in found if e.field is None}
    assert details == {
        5: {"amount": "120.00", "cost": "70", "currency": "EUR", "deal_id": None},
        8: {
            "amount": "1500",
            "client_id": str(h.client),
            "cost": "0",
            "currency": "EUR",
            "stage": "evaluation",
        },
        9: {"amount": "1500", "cost": "0", "currency": "EUR", "deal_id": str(h.deal)},
    }
    field_details = {(e.field, e.details) for e in found if e.field is not None}
    assert {d for f, d in field_details if f != "owner_id"} == {None}
    assert ("owner_id", '{"reason":"manual"}') in field_details  # why the owner changed


def test_each_entry_keeps_who_when_from_where_and_why(history: History) -> None:
    h = history
    found = h.all(client_id=h.client)
    by_position = {e.position: e for e in found}

    occurred = {p: e.occurred_at for p, e in by_position.items()}
    assert occurred == {
        2: REGISTERED,
        3: CHANGED,
        4: ASSIGNED,
        5: BOUGHT,
        6: OPENED,
        7: MOVED,
        8: WON,
        9: WON,
    }
    assert all(h.started <= e.recorded_at <= h.finished for e in found)
    change = by_position[3]
    assert (change.actor_id, change.actor_role, change.source) == ("bob", "admin", "import")
    assert (by_position[2].actor_role, by_position[2].source) == ("admin", "api")
    assert {e.correlation_id for e in found} == {"test-correlation"}
    # the purchase was caused by the win: its causation id is the win's event id
    assert by_position[8].event_id == f"{h.deal}@3"
    assert by_position[9].causation_id == f"{h.deal}@3"
    assert by_position[9].event_id == f"{h.client}@5"
    assert {e.causation_id for p, e in by_position.items() if p != 9} == {None}


def test_a_deals_trail_is_its_own_events_linked_to_its_client(history: History) -> None:
    h = history
    found = h.all(deal_id=h.deal)

    assert brief(found) == deal_entries(h)
    assert {(e.client_id, e.deal_id) for e in found} == {(h.client, h.deal)}
    assert [e.deal_id for e in h.all(client_id=h.client) if e.position in (5, 9)] == [None, None]


def test_an_actors_trail_is_what_they_changed(history: History) -> None:
    h = history

    assert brief(h.all(actor_id="bob")) == [
        (3, 0, "ClientDetailsChanged", "bob", "name", "Ann Lee", "Ann Smith"),
        (3, 1, "ClientDetailsChanged", "bob", "phones", PHONES, NEW_PHONES),
    ]
    assert brief(h.all(actor_id="system")) == [
        (1, 0, "PipelineDefined", "system", "name", None, "default"),
        (
            1,
            1,
            "PipelineDefined",
            "system",
            "stages",
            None,
            '["attraction","interest","evaluation"]',
        ),
    ]
    assert h.all(actor_id="carol") == []


def test_a_fields_trail_spans_clients_and_deals(history: History) -> None:
    h = history

    assert brief(h.all(field="owner_id")) == [
        (2, 3, "ClientRegistered", "alice", "owner_id", None, "maria"),
        (4, 0, "OwnerAssigned", "alice", "owner_id", "maria", "ivan"),
        (6, 4, "DealOpened", "alice", "owner_id", None, "ivan"),
    ]
    assert brief(h.all(field="name", client_id=h.client)) == [
        (2, 0, "ClientRegistered", "alice", "name", None, "Ann Lee"),
        (3, 0, "ClientDetailsChanged", "bob", "name", "Ann Lee", "Ann Smith"),
    ]
    assert [e.position for e in h.all(field="name")] == [1, 2, 3]  # the pipeline's name too


def test_a_sources_or_a_requests_trail_is_what_it_recorded(history: History) -> None:
    h = history
    contact = clients.RecordContact(client_id=h.client, channel="call", direction="outbound")
    called = h.run(contact, correlation_id="req-77").position
    h.projector.catch_up()

    assert [(e.position, e.seq) for e in h.all(source="import")] == [(3, 0), (3, 1)]
    assert [(e.position, e.source) for e in h.all(correlation_id="req-77")] == [(called, "api")]
    assert h.all(correlation_id="req-77", source="import") == []
    assert h.all(correlation_id="req-78") == []
    exported = list(h.model.export_jsonl(correlation_id="req-77"))
    assert [orjson.loads(line)["position"] for line in exported] == [called]


def test_a_time_range_includes_its_start_and_excludes_its_end(history: History) -> None:
    h = history
    found = h.all(occurred_from=BOUGHT, occurred_to=WON)

    assert [(e.position, e.seq) for e in found] == [(5, 0), *((6, s) for s in range(6)), (7, 0)]
    assert [e.position for e in h.all(occurred_from=WON)] == [1, 1, 8, 9]  # 1 is "now"
    assert [e.position for e in h.all(occurred_from=WON, occurred_to=at("2025-01-01"))] == [8, 9]
    assert [e.position for e in h.all(occurred_to=CHANGED, client_id=h.client)] == [2, 2, 2, 2]


def test_a_naive_time_bound_is_refused(history: History) -> None:
    with pytest.raises(ValueError, match="timezone"):
        history.model.page(occurred_from=datetime(2024, 1, 1))


# ------------------------------------------------------------------ pagination


def walk(model: AuditReadModel, limit: int, **filters: Any) -> list[list[AuditEntry]]:
    pages = []
    cursor = None
    while True:
        page = model.page(limit=limit, cursor=cursor, **filters)
        pages.append(page.entries)
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def test_pages_of_two_walk_every_entry_exactly_once(history: History) -> None:
    h = history
    pages = walk(h.model, 2)

    assert [len(p) for p in pages] == [2] * 9 + [1]
    assert [e for p in pages for e in p] == h.all()
    assert len(h.all()) == 19
    deal_pages = walk(h.model, 2, deal_id=h.deal)
    assert [brief(p) for p in deal_pages] == [deal_entries(h)[i : i + 2] for i in range(0, 8, 2)]


def test_the_last_page_has_no_next_cursor(history: History) -> None:
    h = history

    assert h.model.page(limit=19).next_cursor is None
    assert h.model.page(limit=18).next_cursor is not None
    assert h.model.page(limit=5, field="no-such-field") == type(h.model.page())([], None)


def test_pages_neither_skip_nor_repeat_while_new_events_arrive(history: History) -> None:
    h = history
    seen: list[AuditEntry] = []
    cursor = None
    for turn in range(50):
        page = h.model.page(client_id=h.client, limit=2, cursor=cursor)
        seen += page.entries
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        if turn < 6:  # a new event between two page reads
            contact = clients.RecordContact(
                client_id=h.client, channel="call", direction="outbound", summary=f"call {turn}"
            )
            h.run(contact)
            h.projector.catch_up()

    assert seen == h.all(client_id=h.client)
    assert len({(e.position, e.seq) for e in seen}) == len(seen) == 17 + 6
    assert [e.event_type for e in seen[-6:]] == ["ContactMade"] * 6


@pytest.mark.parametrize(
    "cursor",
    ["", "not a cursor!", "MTE", "MToy=", "LTE6MA", "MTph", "MToy0", "MToxOjM", "MDE6Mg", "🙂"],
    ids=[
        "empty",
        "junk",
        "no-colon",
        "padded",
        "negative",
        "letters",
        "trailing",
        "three",
        "leading-zero",
        "emoji",
    ],
)
def test_a_malformed_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(ValueError, match="cursor"):
        decode_cursor(cursor)


def test_a_cursor_reads_back_as_the_entry_it_was_made_after(history: History) -> None:
    h = history
    entry = h.all()[7]

    assert decode_cursor(h.model.page(limit=8).next_cursor or "") == (entry.position, entry.seq)
    assert decode_cursor("MToy") == (1, 2)
    with pytest.raises(ValueError, match="cursor"):
        h.model.page(cursor="MToy=")


def test_a_limit_below_one_is_refused(history: History) -> None:
    with pytest.raises(ValueError, match="limit"):
        history.model.page(limit=0)


# ------------------------------------------------------------------ exports


def from_text(record: dict[str, Any]) -> AuditEntry:
    """An exported record (all text, as CSV gives it) back to an entry."""
    values: dict[str, Any] = {k: (None if v == "" else v) for k, v in record.items()}
    values["position"] = int(values["position"])
    values["seq"] = int(values["seq"])
    for name in ("recorded_at", "occurred_at"):
        assert values[name].endswith("Z")
        values[name] = datetime.fromisoformat(values[name])
    for name in ("client_id", "deal_id"):
        values[name] = values[name] and UUID(values[name])
    values["redacted"] = {"true": True, "false": False}[values["redacted"]]
    return AuditEntry(**values)


def test_the_csv_export_parses_back_to_the_same_entries(history: History) -> None:
    h = history
    tricky = 'Hauptstr. 1,\n"Hof" 2; \u00e4\u00df'
    h.run(clients.ChangeClientDetails(client_id=h.client, changes={"address": tricky}))
    h.projector.catch_up()
    h.model.export_page_size = 3  # several pages, read one after the other

    lines = list(h.model.export_csv())

    assert lines[0] == ",".join(COLUMNS) + "\r\n"
    rows = list(csv.DictReader(io.StringIO("".join(lines), newline="")))
    assert [from_text(row) for row in rows] == h.all()
    assert from_text(rows[-1]).new_value == tricky
    assert len(lines) == 1 + 20
    by_deal = csv.DictReader(io.StringIO("".join(h.model.export_csv(deal_id=h.deal)), newline=""))
    assert [from_text(row) for row in by_deal] == h.all(deal_id=h.deal)


def test_the_jsonl_export_is_one_object_per_line_and_parses_back(history: History) -> None:
    h = history
    h.model.export_page_size = 4

    lines = list(h.model.export_jsonl(client_id=h.client))

    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    records = [orjson.loads(line) for line in lines]
    purchase = next(r for r in records if r["position"] == 5)
    assert purchase["details"] == {
        "amount": "120.00",
        "cost": "70",
        "currency": "EUR",
        "deal_id": None,
    }
    assert purchase["occurred_at"] == "2024-03-01T00:00:00.000000Z"
    parsed = []
    for record in records:
        details = record.pop("details")
        redacted = record.pop("redacted")
        entry = from_text({**record, "redacted": "true" if redacted else "false"})
        if details is not None:
            details = orjson.dumps(details, option=orjson.OPT_SORT_KEYS).decode()
        parsed.append(replace(entry, details=details))
    assert parsed == h.all(client_id=h.client)


def test_an_export_streams_a_snapshot_of_the_entries_when_it_started(history: History) -> None:
    h = history
    h.model.export_page_size = 2
    before = h.all()

    export = h.model.export_jsonl()
    first = next(export)
    h.run(clients.RecordContact(client_id=h.client, channel="sms", direction="inbound"))
    h.projector.catch_up()
    rest = list(export)

    assert [orjson.loads(line)["position"] for line in [first, *rest]] == [
        e.position for e in before
    ]
    assert len(h.all()) == len(before) + 1


# ------------------------------------------------------------------ hostile values


def test_injection_strings_are_stored_and_returned_verbatim(history: History) -> None:
    h = history
    actor = "x'); DROP TABLE audit_deals;--"
    mallory = h.run(
        clients.RegisterClient(
            name=INJECTION, company=SCRIPT, attributes={"note": "' OR '1'='1"}, owner_id="maria"
        ),
        actor_id=actor,
    )
    h.run(
        deals.OpenDeal(client_id=mallory.id, title=SCRIPT, amount=Decimal(1), currency="EUR"),
        actor_id=actor,
    )
    h.projector.catch_up()

    assert brief(h.all(actor_id=actor)) == [
        (10, 0, "ClientRegistered", actor, "name", None, INJECTION),
        (10, 1, "ClientRegistered", actor, "kind", None, "person"),
        (10, 2, "ClientRegistered", actor, "company", None, SCRIPT),
        (10, 3, "ClientRegistered", actor, "owner_id", None, "maria"),
        (10, 4, "ClientRegistered", actor, "attributes", None, """{"note":"' OR '1'='1"}"""),
        (11, 0, "DealOpened", actor, "title", None, SCRIPT),
        (11, 1, "DealOpened", actor, "amount", None, "1"),
        (11, 2, "DealOpened", actor, "currency", None, "EUR"),
        (11, 3, "DealOpened", actor, "stage", None, "attraction"),
        (11, 4, "DealOpened", actor, "owner_id", None, "maria"),
        (11, 5, "DealOpened", actor, "pipeline_id", None, str(pipeline_id("default"))),
    ]
    assert h.all(actor_id="' OR '1'='1") == []
    assert h.all(field="name' OR '1'='1") == []
    exported = [orjson.loads(line) for line in h.model.export_jsonl(client_id=mallory.id)]
    assert [r["new_value"] for r in exported][:3] == [INJECTION, "person", SCRIPT]
    assert INJECTION in "".join(h.model.export_csv(actor_id=actor))
    for table in ("audit_entries", "audit_deals"):
        assert h.crm.db.query(f"SELECT COUNT(*) FROM {table}")[0][0] > 0


# ------------------------------------------------------------------ erasure


def test_erasure_purges_personal_values_and_keeps_who_when_and_which_field(
    history: History,
) -> None:
    h = history
    h.run(
        clients.RecordContact(
            client_id=h.client, channel="visit", direction="inbound", summary="at Hauptstr. 1"
        )
    )
    h.projector.catch_up()  # the erasure comes in a later batch than what it purges
    h.run(clients.ErasePersonalData(client_id=h.client, reason="subject_request"))
    with pytest.raises(RuleViolation, match="erased"):  # the erased client's deal is frozen
        h.run(deals.ReopenDeal(deal_id=h.deal))
    h.projector.catch_up()

    found = h.all(client_id=h.client)

    assert brief(found)[:7] == [
        (2, 0, "ClientRegistered", "alice", "name", None, None),
        (2, 1, "ClientRegistered", "alice", "kind", None, "person"),
        (2, 2, "ClientRegistered", "alice", "phones", None, None),
        (2, 3, "ClientRegistered", "alice", "owner_id", None, "maria"),
        (3, 0, "ClientDetailsChanged", "bob", "name", None, None),
        (3, 1, "ClientDetailsChanged", "bob", "phones", None, None),
        (4, 0, "OwnerAssigned", "alice", "owner_id", "maria", "ivan"),
    ]
    assert [(e.field, e.new_value, e.redacted) for e in found if e.position == 6][:2] == [
        ("title", None, True),
        ("amount", "1500", False),
    ]
    contact, erased = found[-2:]
    assert (contact.event_type, contact.redacted) == ("ContactMade", True)
    assert orjson.loads(contact.details or "")["summary"] is None
    assert (erased.event_type, erased.redacted) == ("PersonalDataErased", False)
    assert orjson.loads(erased.details or "") == {"reason": "subject_request"}
    dump = str(h.crm.db.query("SELECT * FROM audit_entries"))
    assert "Ann" not in dump
    assert "Hauptstr" not in dump
    assert "+4930555666" not in dump
    assert "Windows" not in dump


# ------------------------------------------------------------------ rebuild


def test_a_rebuild_beside_the_live_tables_swaps_in_the_same_trail(history: History) -> None:
    h = history
    before = h.all()
    h.run(clients.RecordContact(client_id=h.client, channel="chat", direction="inbound"))

    position = rebuild(h.crm.app, h.crm.db, lambda prefix: AuditReadModel(h.crm.db, prefix=prefix))
    h.projector.catch_up()  # the live projector carries on from the rebuilt position

    after = h.all()
    assert position == 10
    assert after[:-1] == before
    assert brief(after[-1:]) == [(10, 0, "ContactMade", "alice", None, None, None)]
    assert after[-1].client_id == h.client
