"""The client directory read model on every store, every figure worked out by hand.

Ann   registered 2024-01-10 (owner maria), phone +49 30 1234567, email
      Ann.Lee@Example.com, company Lee Bakery; buys 2024-02-01 (100.10, cost
      60.05) and 2024-03-15 (49.90, cost 0); contact 2024-03-20; then, after
      everything was projected, a purchase back-dated to 2024-01-20 (25.25, cost
      30.00) arrives: 3 purchases, revenue 175.25, margin 40.05 + 49.90 - 4.75 =
      85.20, last purchase still 2024-03-15; version 5 (five events).
Bob   registered 2024-02-01 (owner ivan), no phone, never contacted, never buys.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from adapters.projector import Projector, rebuild
from adapters.read_models.directory import ClientPage, DirectoryReadModel
from adapters.read_models.work_queue import WorkQueueReadModel
from api.bootstrap import Crm
from application import clients, reminders
from domain.client import Client
from domain.envelope import Envelope
from domain.lifecycle import Stage
from projections.directory import ClientCard
from tests.conftest import table_rows
from tests.story import Story, day


def projector_for(crm: Crm, *, batch_size: int = 2000) -> tuple[Projector, DirectoryReadModel]:
    directory = DirectoryReadModel(crm.db, blind_index=crm.app.blind_index)
    projector = Projector(
        crm.app,
        crm.db,
        [crm.read_model("lifecycle"), directory, WorkQueueReadModel(crm.db)],
        batch_size=batch_size,
    )
    projector.setup()
    return projector, directory


@pytest.fixture
def story(crm: Crm, envelope: Envelope) -> Story:
    crm.users.add("maria", "manager")
    crm.users.add("ivan", "manager")
    return Story(crm, envelope)


@pytest.fixture
def people(story: Story) -> dict[str, UUID]:
    ann = story.register(
        "Ann Lee",
        "2024-01-10",
        owner_id="maria",
        phones=("+49 30 1234567",),
        emails=("Ann.Lee@Example.com",),
        company="Lee Bakery",
    )
    story.buy(ann, "2024-02-01", "100.10", "60.05")
    story.buy(ann, "2024-03-15", "49.90")
    story.contact(ann, "2024-03-20")
    bob = story.register("Bob Roe", "2024-02-01", owner_id="ivan")
    projector, _ = projector_for(story.crm)
    projector.catch_up()  # projected before the late purchase arrives
    story.buy(ann, "2024-01-20", "25.25", "30.00")
    projector.catch_up()
    return {"ann": ann, "bob": bob}


def change(story: Story, client_id: UUID, when: str, **changes: object) -> None:
    story.run(clients.ChangeClientDetails(client_id=client_id, changes=changes), when)


# ---------------------------------------------------------------------- cards


def test_a_card_sums_money_exactly_and_keeps_the_latest_dates_by_business_time(
    crm: Crm, people: dict[str, UUID]
) -> None:
    directory = DirectoryReadModel(crm.db, blind_index=crm.app.blind_index)

    assert directory.card(people["ann"]) == ClientCard(
        client_id=people["ann"],
        name="Ann Lee",
        kind="person",
        company="Lee Bakery",
        address=None,
        channel=None,
        phones=("+49301234567",),
        emails=("ann.lee@example.com",),
        owner_id="maria",
        registered_at=day("2024-01-10"),
        version=5,
        last_contact_at=day("2024-03-20"),
        last_purchase_at=day("2024-03-15"),
        purchases_count=3,
        revenue=Decimal("175.25"),
        margin=Decimal("85.20"),
    )
    bob = directory.card(people["bob"])
    assert bob is not None
    assert (bob.purchases_count, bob.revenue, bob.last_contact_at) == (0, Decimal(0), None)


def test_the_card_of_an_unknown_client_is_none(crm: Crm, people: dict[str, UUID]) -> None:
    assert DirectoryReadModel(crm.db, blind_index=crm.app.blind_index).card(uuid4()) is None


def test_a_details_change_shows_on_the_card_and_moves_the_phone_lookup(
    crm: Crm, story: Story, people: dict[str, UUID]
) -> None:
    ann = people["ann"]
    change(
        story,
        ann,
        "2024-04-01",
        name="Ann Lee-Smith",
        phones=["+49 30 7654321"],
        **{"attributes.tier": "gold"},
    )
    projector, directory = projector_for(crm)
    projector.catch_up()

    card = directory.card(ann)
    assert card is not None
    assert (card.name, card.phones, card.attributes, card.version) == (
        "Ann Lee-Smith",
        ("+49307654321",),
        {"tier": "gold"},
        6,
    )
    assert directory.lookup(phone="+49 30 7654321") == card
    assert directory.lookup(phone="+49 30 1234567") is None
    assert [
        c.client_id for c in directory.search(at=day("2024-05-01"), text="lee-smith").cards
    ] == [ann]


def test_the_automations_events_advance_the_cards_version_as_a_write_expects(
    crm: Crm, story: Story, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The card's version is the ETag a write's ``If-Match`` is checked against: a
    follow-up falling due and a lead flagged unanswered advance it like any event."""
    now = datetime.now(UTC)
    then, earlier = (now - timedelta(hours=2)).isoformat(), now - timedelta(hours=3)
    with monkeypatch.context() as clock:  # recorded hours ago, as a lead that waited
        clock.setattr(Client.ClientRegistered, "create_timestamp", staticmethod(lambda: earlier))
        cleo = story.register("Cleo Park", earlier.isoformat(), owner_id="maria")
        dan = story.register("Dan Roe", earlier.isoformat(), owner_id="ivan")
    task = story.run(
        clients.ScheduleFollowUp(client_id=cleo, due_at=now - timedelta(hours=1)), then
    ).extra["task_id"]
    due = story.run(reminders.MarkFollowUpDue(client_id=cleo, task_id=UUID(task)), now.isoformat())
    flag = reminders.FlagUnansweredLead(client_id=dan, response_time=timedelta(hours=1))
    flagged = story.run(flag, now.isoformat())
    projector, directory = projector_for(crm)
    projector.catch_up()

    for client_id, result, version in ((cleo, due, 3), (dan, flagged, 2)):
        card = directory.card(client_id)
        assert card is not None
        assert (card.version, result.version) == (version, version)
        contact = clients.RecordContact(
            client_id=client_id, channel="call", direction="outbound", expected_version=version
        )
        assert story.run(contact, now.isoformat()).version == version + 1


# --------------------------------------------------------------------- lookup


@pytest.mark.parametrize(
    "phone", ["+49 30 1234567", "+49301234567", "0049 (30) 123-4567", " +49.30.123 45 67 "]
)
def test_a_phone_is_found_in_any_formatting(crm: Crm, people: dict[str, UUID], phone: str) -> None:
    found = DirectoryReadModel(crm.db, blind_index=crm.app.blind_index).lookup(phone=phone)
    assert found is not None
    assert found.client_id == people["ann"]


def test_an_email_is_found_in_any_case_and_unknown_or_invalid_ones_find_nothing(
    crm: Crm, people: dict[str, UUID]
) -> None:
    directory = DirectoryReadModel(crm.db, blind_index=crm.app.blind_index)

    found = directory.lookup(email="  ANN.lee@EXAMPLE.com")
    assert found is not None
    assert found.client_id == people["ann"]
    assert directory.lookup(phone="+49 30 0000000") is None
    assert directory.lookup(phone="030 1234567") is None  # no country code: not a number
    assert directory.lookup(email="nobody@example.com") is None
    assert directory.lookup(email="not an email") is None
    with pytest.raises(ValueError, match="exactly one"):
        directory.lookup(phone="+49301234567", email="ann.lee@example.com")


def test_a_number_linked_later_finds_the_card(
    crm: Crm, story: Story, people: dict[str, UUID]
) -> None:
    projector, directory = projector_for(crm)
    assert directory.lookup(phone="+44 20 7946 0000") is None

    change(story, people["bob"], "2024-05-01", phones=["+44 20 7946 0000"])
    projector.catch_up()

    found = directory.lookup(phone="+442079460000")
    assert found is not None
    assert (found.client_id, found.phones) == (people["bob"], ("+442079460000",))


def test_the_lookup_table_holds_keyed_digests_and_never_a_number(
    crm: Crm, people: dict[str, UUID]
) -> None:
    rows = crm.db.query("SELECT kind, digest, client_id FROM directory_lookup ORDER BY kind")
    digest = crm.app.blind_index.digest

    assert [(kind, d, str(c)) for kind, d, c in rows] == [
        ("email", digest("email", "ann.lee@example.com"), str(people["ann"])),
        ("phone", digest("phone", "+49301234567"), str(people["ann"])),
    ]
    assert not any("1234567" in d or "example" in d for _, d, _ in rows)


# ---------------------------------------------------------- merge and erasure


def test_a_merge_gives_the_survivor_the_duplicates_figures_points_and_lookups(
    crm: Crm, story: Story
) -> None:
    """Ann buys 02-01 (100/60), contact 03-01; her duplicate registered earlier (01-05),
    buys 02-20 (10/4), contact 04-01, and has an open follow-up. After the merge Ann has
    2 purchases, revenue 110, margin 46, latest purchase 02-20 and contact 04-01 (both
    the duplicate's), registration 01-05 and version 4. Projected one event per batch,
    so the two sides of the merge land in different transactions."""
    ann = story.register("Ann Lee", "2024-01-10", owner_id="maria", phones=("+49 30 1234567",))
    dup = story.register(
        "A. Lee",
        "2024-01-05",
        owner_id="ivan",
        phones=("+49 170 5550101",),
        emails=("a@lee.example",),
    )
    story.buy(ann, "2024-02-01", "100", "60")
    story.buy(dup, "2024-02-20", "10", "4")
    story.contact(ann, "2024-03-01")
    story.contact(dup, "2024-04-01")
    story.run(clients.ScheduleFollowUp(client_id=dup, due_at=day("2024-06-01")), "2024-03-02")
    projector, directory = projector_for(crm, batch_size=1)
    projector.catch_up()
    assert directory.lookup(phone="+491705550101") == directory.card(dup)

    story.run(clients.MergeClients(survivor_id=ann, duplicate_id=dup), "2024-04-10")
    projector.catch_up()

    card = directory.card(ann)
    assert card is not None
    assert (card.purchases_count, card.revenue, card.margin) == (2, Decimal(110), Decimal(46))
    assert (card.last_purchase_at, card.last_contact_at) == (day("2024-02-20"), day("2024-04-01"))
    assert (card.registered_at, card.version) == (day("2024-01-05"), 4)
    assert card.phones == ("+49301234567", "+491705550101")
    assert card.owner_id == "maria"
    assert directory.card(dup) is None
    assert directory.lookup(phone="+49 170 5550101") == card
    assert directory.lookup(email="A@Lee.Example") == card
    listed = directory.search(at=day("2024-05-01")).cards
    assert [c.client_id for c in listed] == [ann]


def test_a_survivor_keeps_the_duplicates_number_when_one_batch_holds_both_claims(
    crm: Crm, story: Story
) -> None:
    """Both registrations and the survivor's side of the merge land in one batch (both
    cards claim the duplicate's number there), the duplicate's side in the next: the
    number must find the survivor, whichever of the two ids sorts first. Client ids are
    random, so the merge is repeated until both orders have been seen."""
    projector, directory = projector_for(crm, batch_size=3)
    orders: set[bool] = set()
    for n in range(40):
        phone = f"+49 170 555{n:04d}"
        ann = story.register(
            f"Ann {n}", "2024-01-10", owner_id="maria", phones=(f"+4930123{n:04d}",)
        )
        dup = story.register(f"A. {n}", "2024-01-05", owner_id="maria", phones=(phone,))
        story.run(clients.MergeClients(survivor_id=ann, duplicate_id=dup), "2024-04-10")
        projector.catch_up()  # [register ann, register dup, ann absorbs], [dup merged]
        assert directory.lookup(phone=phone) == directory.card(ann), n
        orders.add(ann < dup)
        if len(orders) == 2:
            break
    assert orders == {True, False}


def test_erasure_blanks_the_card_and_its_lookups_and_keeps_the_figures(
    crm: Crm, story: Story
) -> None:
    cara = story.register(
        "Cara Berg",
        "2024-03-01",
        owner_id="maria",
        phones=("+47 22 123456",),
        emails=("cara@berg-shop.example",),
        company="Berg Shop",
        address="Storgata 1, Oslo",
        attributes={"city": "oslo"},
    )
    story.contact(cara, "2024-04-10")
    story.buy(cara, "2024-04-12", "500", "200")
    projector, directory = projector_for(crm)
    projector.catch_up()
    story.erase(cara, "2024-06-01")
    projector.catch_up()

    card = directory.card(cara)
    assert card is not None
    assert card.erased
    assert (card.name, card.company, card.address, card.attributes) == ("", None, None, {})
    assert (card.phones, card.emails) == ((), ())
    assert (card.purchases_count, card.revenue, card.margin) == (1, Decimal(500), Decimal(300))
    assert (card.last_contact_at, card.last_purchase_at) == (day("2024-04-10"), day("2024-04-12"))
    assert card.owner_id == "maria"
    assert directory.lookup(phone="+47 22 123456") is None
    assert directory.lookup(email="cara@berg-shop.example") is None
    assert directory.search(at=day("2024-07-01"), text="berg").cards == []
    assert directory.search(at=day("2024-07-01")).cards == [card]  # listed, blanked
    assert crm.db.query("SELECT * FROM directory_lookup") == []
    (row,) = crm.db.query("SELECT * FROM directory_cards")
    dump = " ".join(str(value) for value in row).lower()
    assert not any(word in dump for word in ("cara", "berg", "oslo", "123456"))


# --------------------------------------------------------------------- search


@pytest.fixture
def listed(crm: Crm, story: Story) -> dict[str, UUID]:
    """At 2024-06-01 (dead = more than 90 days without a purchase):

    name   owner  registered  bought        last contact  stage at 06-01
    Ada    maria  01-01       -             01-15         potential
    Ben    ivan   02-01       02-10         -             dead (since 05-10)
    Cleo   maria  03-01       03-05         05-01         new (dead from 06-03)
    Dora   maria  04-01       -             -             potential
    Emil   ivan   05-01       05-02         05-20         new
    Finn   maria  05-01       -             -             potential
    """
    ids = {
        "Ada": story.register("Ada", "2024-01-01", owner_id="maria", emails=("ada@north.example",)),
        "Ben": story.register("Ben", "2024-02-01", owner_id="ivan", emails=("ben@south.example",)),
        "Cleo": story.register("Cleo", "2024-03-01", owner_id="maria", company="North Star Ltd"),
        "Dora": story.register("Dora", "2024-04-01", owner_id="maria", phones=("+49 30 5550000",)),
        "Emil": story.register("Emil", "2024-05-01", owner_id="ivan"),
        "Finn": story.register("Finn_Hart", "2024-05-01", owner_id="maria"),
    }
    story.contact(ids["Ada"], "2024-01-15")
    story.buy(ids["Ben"], "2024-02-10", "100")
    story.buy(ids["Cleo"], "2024-03-05", "50")
    story.contact(ids["Cleo"], "2024-05-01")
    story.buy(ids["Emil"], "2024-05-02", "70")
    story.contact(ids["Emil"], "2024-05-20")
    projector, _ = projector_for(crm)
    projector.catch_up()
    return ids


def names(cards: list[ClientCard], ids: dict[str, UUID]) -> list[str]:
    by_id = {client_id: name for name, client_id in ids.items()}
    return [by_id[card.client_id] for card in cards]


JUNE = day("2024-06-01")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"stage": "potential"}, ["Finn", "Dora", "Ada"]),
        ({"stage": "new"}, ["Emil", "Cleo"]),
        ({"stage": "dead"}, ["Ben"]),
        ({"stage": "loyal"}, []),
        ({"stage": "new", "at": day("2024-03-01T12:00")}, ["Ben"]),
        ({"owner_id": "maria"}, ["Finn", "Dora", "Cleo", "Ada"]),
        ({"owner_id": "ivan", "stage": "new"}, ["Emil"]),
        ({"last_contact_before": day("2024-05-01")}, ["Finn", "Dora", "Ben", "Ada"]),
        ({"last_contact_after": day("2024-05-01")}, ["Emil", "Cleo"]),
        ({"last_contact_after": day("2024-05-02")}, ["Emil"]),
        (
            {"last_contact_before": day("2024-05-02"), "owner_id": "maria"},
            ["Finn", "Dora", "Cleo", "Ada"],
        ),
        ({"text": "NORTH"}, ["Cleo", "Ada"]),
        ({"text": "+4930555"}, ["Dora"]),
        ({"text": "_"}, ["Finn"]),
        ({"text": "%"}, []),
        ({"text": "north", "stage": "potential"}, ["Ada"]),
    ],
)
def test_search_filters_by_stage_owner_last_contact_and_text(
    crm: Crm, listed: dict[str, UUID], filters: dict[str, object], expected: list[str]
) -> None:
    directory = DirectoryReadModel(crm.db, blind_index=crm.app.blind_index)
    arguments: dict[str, object] = {"at": JUNE, **filters}

    page = directory.search(**arguments)  # type: ignore[arg-type]

    assert (names(page.cards, listed), page.next_cursor) == (expected, None)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (
            JUNE,
            {
                "Ada": Stage.POTENTIAL,
                "Ben": Stage.DEAD,
                "Cleo": Stage.NEW,
                "Dora": Stage.POTENTIAL,
                "Emil": Stage.NEW,
                "Finn": Stage.POTENTIAL,
            },
        ),
        (
            day("2024-03-01T12:00"),
            {
                "Ada": Stage.POTENTIAL,
                "Ben": Stage.NEW,
                "Cleo": Stage.POTENTIAL,
                "Dora": None,  # not registered yet
                "Emil": None,
                "Finn": None,
            },
        ),
    ],
)
def test_a_page_gives_each_cards_stage_at_the_searchs_instant(
    crm: Crm, listed: dict[str, UUID], at: datetime, expected: dict[str, Stage | None]
) -> None:
    directory = DirectoryReadModel(crm.db, blind_index=crm.app.blind_index)

    page = directory.search(at=at, limit=4)
    rest = directory.search(at=at, cursor=page.next_cursor)

    cards, stages = page.cards + rest.cards, page.stages + rest.stages
    assert dict(zip(names(cards, listed), stages, strict=True)) == expected


@pytest.mark.parametrize("limit", [1, 2, 4, 6])
def test_pages_walk_every_card_once_newest_registered_first(
    crm: Crm, listed: dict[str, UUID], limit: int
) -> None:
    directory = DirectoryReadModel(crm.db, blind_index=crm.app.blind_index)
    registered = {"Ada": 1, "Ben": 2, "Cleo": 3, "Dora": 4, "Emil": 5, "Finn": 5}  # month
    expected = sorted(listed, key=lambda name: (registered[name], listed[name]), reverse=True)

    walked: list[str] = []
    pages: list[ClientPage] = [directory.search(at=JUNE, limit=limit)]
    while pages[-1].next_cursor is not None and len(pages) <= 6:  # a bound, if a cursor loops
        pages.append(directory.search(at=JUNE, limit=limit, cursor=pages[-1].next_cursor))
    for page in pages:
        walked += names(page.cards, listed)

    assert walked == expected
    assert len(pages) == -(-6 // limit)  # no empty page at the end


def test_a_cursor_keeps_the_filters_of_the_walk(crm: Crm, listed: dict[str, UUID]) -> None:
    directory = DirectoryReadModel(crm.db, blind_index=crm.app.blind_index)

    first = directory.search(at=JUNE, owner_id="maria", limit=3)
    second = directory.search(at=JUNE, owner_id="maria", limit=3, cursor=first.next_cursor)

    assert names(first.cards, listed) == ["Finn", "Dora", "Cleo"]
    assert (names(second.cards, listed), second.next_cursor) == (["Ada"], None)


@pytest.mark.parametrize("cursor", ["", "not a cursor", "W10", "WyJ4IiwgInkiXQ", "e30"])
def test_a_malformed_cursor_is_a_value_error(
    crm: Crm, listed: dict[str, UUID], cursor: str
) -> None:
    directory = DirectoryReadModel(crm.db, blind_index=crm.app.blind_index)
    with pytest.raises(ValueError, match="cursor"):
        directory.search(at=JUNE, cursor=cursor)


def test_an_unknown_stage_or_a_limit_out_of_range_is_a_value_error(
    crm: Crm, listed: dict[str, UUID]
) -> None:
    directory = DirectoryReadModel(crm.db, blind_index=crm.app.blind_index)
    with pytest.raises(ValueError, match="stage"):
        directory.search(at=JUNE, stage="vip")
    with pytest.raises(ValueError, match="limit"):
        directory.search(at=JUNE, limit=0)


def test_a_rebuild_beside_the_live_tables_swaps_in_the_same_rows(
    crm: Crm, story: Story, people: dict[str, UUID]
) -> None:
    story.erase(people["bob"], "2024-05-01")
    projector, directory = projector_for(crm)
    projector.catch_up()
    before = {
        table: table_rows(crm, table)
        for table in ("directory_cards", "directory_lookup", "work_queue_activity")
    }

    rebuild(
        crm.app,
        crm.db,
        lambda prefix: DirectoryReadModel(crm.db, blind_index=crm.app.blind_index, prefix=prefix),
    )
    rebuild(crm.app, crm.db, lambda prefix: WorkQueueReadModel(crm.db, prefix=prefix))

    assert {table: table_rows(crm, table) for table in before} == before
    assert directory.lookup(email="ann.lee@example.com") == directory.card(people["ann"])
