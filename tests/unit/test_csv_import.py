"""Reading and checking CSV files for import: the header, the cells, the problems.

Checks that need the store (owners, existing clients) run on the in-memory product.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.csv_import import (
    ImportFileError,
    ImportPlan,
    detect_kind,
    parse_instant,
    plan_import,
    read_table,
    split_values,
)
from api.bootstrap import Crm, bootstrap
from application.clients import RecordPurchase, RegisterClient
from domain.envelope import Envelope
from domain.errors import InvalidValue
from tests.conftest import make_settings


@pytest.fixture
def product(tmp_path: Path) -> Iterator[Crm]:
    with bootstrap(make_settings("memory", tmp_path)) as crm:
        yield crm


def plan(crm: Crm, text: str, **options: object) -> ImportPlan:
    return plan_import(crm.app, read_table(text.encode()), **options)  # type: ignore[arg-type]


def registrations(result: ImportPlan) -> list[RegisterClient]:
    commands = [planned.command for planned in result.commands]
    assert all(isinstance(command, RegisterClient) for command in commands)
    return commands  # type: ignore[return-value]


# ------------------------------------------------------------------- the header


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("name,phones", "clients"),
        (" NAME ,Emails", "clients"),
        ("phone,amount,occurred_at", "purchases"),
        ("client_id, Amount ", "purchases"),
        ("name,amount", None),
        ("phones,emails", None),
    ],
)
def test_the_header_tells_a_clients_file_from_a_purchases_file(
    header: str, kind: str | None
) -> None:
    assert detect_kind(read_table(f"{header}\n".encode()).header) == kind


def test_header_names_ignore_case_surrounding_spaces_and_a_byte_order_mark() -> None:
    table = read_table("\ufeff Name ,PHONES , attr.Colour\nAnn,+4930111222,blue\n".encode())
    assert table.header == ("name", "phones", "attr.colour")
    assert [row.cells for row in table.rows] == [("Ann", "+4930111222", "blue")]


def test_a_file_naming_neither_kind_is_refused_at_the_header(product: Crm) -> None:
    result = plan(product, "phones\n+4930111222\n")
    assert result.kind is None
    (problem,) = result.problems
    assert problem.line == 1
    assert "--kind" in problem.message


def test_the_kind_given_overrides_the_header(product: Crm) -> None:
    result = plan(product, "name,amount\nAnn,12\n", kind="clients")
    assert result.kind == "clients"
    assert [(p.line, p.field) for p in result.problems] == [(1, "amount")]


def test_an_unknown_column_is_a_problem_with_a_suggestion_so_no_data_is_dropped(
    product: Crm,
) -> None:
    result = plan(product, "name,phone,colour\nAnn,+4930111222,blue\n")
    assert [(p.line, p.field) for p in result.problems] == [(1, "phone"), (1, "colour")]
    assert "did you mean 'phones'?" in result.problems[0].message
    assert "did you mean" not in result.problems[1].message


def test_a_semicolon_separated_file_is_recognised_as_such(product: Crm) -> None:
    (problem,) = plan(product, "name;phones\nAnn;+4930111222\n").problems
    assert problem.line == 1
    assert "not to be comma-separated" in problem.message
    problems = plan(product, "name;phones\nAnn;+4930111222\n", kind="clients").problems
    assert [(p.line, p.field) for p in problems] == [(1, "name;phones"), (1, "name")]
    assert "not to be comma-separated" in problems[0].message
    assert problems[1].message == "this column is required"


def test_a_column_named_twice_and_a_missing_required_column_are_header_problems(
    product: Crm,
) -> None:
    assert [
        (p.line, p.field, p.message) for p in plan(product, "name,Name\nAnn,Ann\n").problems
    ] == [(1, "name", "the column appears twice")]
    purchases = plan(product, "phone,amount\n+4930111222,5\n")
    assert [(p.line, p.field) for p in purchases.problems] == [(1, "occurred_at"), (2, "phone")]
    assert "no client has the phone" in purchases.problems[1].message


def test_an_attribute_column_needs_a_valid_key(product: Crm) -> None:
    result = plan(product, "name,attr.2nd colour\nAnn,blue\n")
    assert [(p.line, p.field) for p in result.problems] == [(1, "attr.2nd colour")]


# -------------------------------------------------------------- lines and cells


def test_lines_count_the_header_as_line_one_skip_blank_lines_and_span_quoted_newlines() -> None:
    text = 'name,address\nAnn,Main St 1\n\nBob,"Hill Rd 2\nBerlin"\nCid,\n'
    table = read_table(text.encode())
    assert [(row.line, row.cells) for row in table.rows] == [
        (2, ("Ann", "Main St 1")),
        (4, ("Bob", "Hill Rd 2\nBerlin")),
        (6, ("Cid", "")),
    ]


def test_a_file_that_is_not_utf8_is_refused_naming_the_line() -> None:
    with pytest.raises(ImportFileError, match=r"not valid UTF-8 \(byte 0xe9 on line 3\)"):
        read_table(b"name\nAnn\nRen" + b"\xe9e\n")


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(ImportFileError, match="empty"):
        read_table(b"\n \n")


def test_a_header_without_rows_plans_nothing(product: Crm) -> None:
    result = plan(product, "name,phones\n")
    assert (result.rows, result.commands, result.problems) == (0, (), ())


def test_several_phones_or_emails_in_one_cell_are_separated_by_semicolons() -> None:
    assert split_values(" +49 30 111222 ; ;0049 30 333444 ") == ["+49 30 111222", "0049 30 333444"]
    assert split_values("") == []


def test_contact_points_are_normalised_as_the_domain_does_and_repeats_in_a_cell_dropped(
    product: Crm,
) -> None:
    text = (
        'name,phones,emails\nAnn,"+49 (30) 111-222; 0049 30 333444;+4930111222",Ann@Example.COM\n'
    )
    (command,) = registrations(plan(product, text))
    assert command.phones == ("+4930111222", "+4930333444")
    assert command.emails == ("ann@example.com",)


def test_attribute_columns_become_custom_attributes_and_empty_cells_are_left_out(
    product: Crm,
) -> None:
    text = "name,attr.colour,attr.shoe_size\nAnn,blue,38\nBob,,44\n"
    ann, bob = registrations(plan(product, text))
    assert ann.attributes == {"colour": "blue", "shoe_size": "38"}
    assert bob.attributes == {"shoe_size": "44"}


def test_defaults_of_a_client_row(product: Crm) -> None:
    result = plan(product, "name,kind,company\nAnn,,\nAcme,company,Acme GmbH\n")
    ann, acme = registrations(result)
    assert (ann.kind, ann.company, ann.owner_id, ann.phones) == ("person", None, None, ())
    assert (acme.kind, acme.company) == ("company", "Acme GmbH")
    assert [planned.envelope.occurred_at for planned in result.commands] == [None, None]


def test_every_envelope_is_attributed_to_the_actor_and_the_file(product: Crm) -> None:
    result = plan(product, "name\nAnn\nBob\n", actor="maria")
    envelopes = {planned.envelope for planned in result.commands}
    assert {(e.actor_id, e.actor_role, e.source) for e in envelopes} == {
        ("maria", "admin", "import")
    }
    assert {e.correlation_id for e in envelopes} == {f"import:{result.sha256[:12]}"}


# ----------------------------------------------------------------------- dates


def test_a_date_is_midnight_utc_and_an_instant_keeps_its_offset() -> None:
    assert parse_instant("2021-03-04", field="d") == datetime(2021, 3, 4, tzinfo=UTC)
    assert parse_instant("2021-03-04T10:15:00+01:00", field="d") == datetime(
        2021, 3, 4, 9, 15, tzinfo=UTC
    )
    assert parse_instant("2021-03-04T10:15:00Z", field="d") == datetime(
        2021, 3, 4, 10, 15, tzinfo=UTC
    )
    assert parse_instant("2021-03-04T10:15", field="d") == datetime(2021, 3, 4, 10, 15, tzinfo=UTC)


@pytest.mark.parametrize("text", ["04.03.2021", "yesterday", "2021-02-30"])
def test_a_date_that_is_not_iso_is_refused(text: str) -> None:
    with pytest.raises(InvalidValue, match="is not an ISO date") as caught:
        parse_instant(text, field="registered_at")
    assert caught.value.field == "registered_at"


def test_a_business_date_in_the_future_is_refused() -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    with pytest.raises(InvalidValue, match="in the future"):
        parse_instant(tomorrow, field="occurred_at")


def test_a_rows_business_date_becomes_its_envelopes_occurred_at(product: Crm) -> None:
    result = plan(product, "name,registered_at\nAnn,2021-03-04\nBob,2021-03-05T08:00:00-02:00\n")
    assert [planned.envelope.occurred_at for planned in result.commands] == [
        datetime(2021, 3, 4, tzinfo=UTC),
        datetime(2021, 3, 5, 10, tzinfo=UTC),
    ]


# --------------------------------------------------------------- row problems


def test_every_problem_of_every_row_is_reported_with_its_line_and_column(product: Crm) -> None:
    text = (
        "name,kind,phones,emails,owner,registered_at\n"
        "Ann,person,+4930111222,ann@example.com,,2021-03-04\n"
        "  ,robot,030 1234;+4930555666;12,ann(at)example.com,nobody,04.03.2021\n"
        "Cid,company,,,,\n"
    )
    result = plan(product, text)
    assert [(p.line, p.field) for p in result.problems] == [
        (3, "name"),
        (3, "kind"),
        (3, "phones"),
        (3, "phones"),
        (3, "emails"),
        (3, "owner"),
        (3, "registered_at"),
    ]
    assert result.problems[1].message == "'robot' is not one of: person, company"
    assert "'030 1234'" in result.problems[2].message
    assert "'12'" in result.problems[3].message
    assert result.problems[5].message == "'nobody' is not an active manager or admin"
    assert [planned.line for planned in result.commands] == [2, 4]


def test_an_owner_must_be_an_active_manager_or_admin(product: Crm) -> None:
    product.users.add("maria", "manager")
    product.users.add("otto", "auditor")
    product.users.add("gone", "manager")
    product.users.revoke("gone")
    result = plan(product, "name,owner\nAnn,maria\nBob,otto\nCid,gone\n")
    assert [(p.line, p.field) for p in result.problems] == [(3, "owner"), (4, "owner")]
    assert registrations(result)[0].owner_id == "maria"


def test_rules_only_the_domain_knows_are_found_by_a_dry_run_of_the_command(
    product: Crm,
) -> None:
    too_long = "x" * 1001  # attribute values: at most 1000 characters (domain rule)
    (problem,) = plan(product, f"name,attr.note\nAnn,{too_long}\n").problems
    assert (problem.line, problem.field) == (2, "attr.note")
    assert "longer than 1000" in problem.message


def test_values_beyond_the_header_are_refused_rather_than_dropped(product: Crm) -> None:
    result = plan(product, "name,,phones\nAnn,,+4930111222\nBob,oops,,extra\n")
    assert [(p.line, p.field) for p in result.problems] == [(3, "column 2"), (3, "column 4")]
    assert [planned.line for planned in result.commands] == [2]


def test_two_rows_sharing_a_phone_or_email_are_both_reported_naming_each_other(
    product: Crm,
) -> None:
    text = (
        "name,phones,emails\n"
        "Ann,+49 30 111222,ann@example.com\n"
        "Bob,+4930999000,\n"
        "Cid,0049 30 111 222,ANN@example.com\n"
        "Dan,+4930111222,\n"
    )
    result = plan(product, text)
    assert [str(p) for p in result.problems] == [
        "line 2, phones: phone +4930111222 also on line 4, 5",
        "line 2, emails: email ann@example.com also on line 4",
        "line 4, phones: phone +4930111222 also on line 2, 5",
        "line 4, emails: email ann@example.com also on line 2",
        "line 5, phones: phone +4930111222 also on line 2, 4",
    ]


def test_a_phone_twice_in_one_row_is_not_a_duplicate(product: Crm) -> None:
    assert plan(product, "name,phones\nAnn,+4930111222;+49 30 111222\n").problems == ()


# ------------------------------------------------------------------ purchases


def test_a_purchase_row_names_its_client_in_exactly_one_column(product: Crm) -> None:
    text = (
        "client_id,phone,email,amount,occurred_at\n"
        ",,,10,2022-01-01\n"
        ",+4930111222,ann@example.com,10,2022-01-01\n"
        "not-a-uuid,,,10,2022-01-01\n"
        "00000000-0000-0000-0000-000000000001,,,10,2022-01-01\n"
        ",+4930111222,,10,2022-01-01\n"
        ",,ann(at)example.com,10,2022-01-01\n"
    )
    assert [str(p) for p in plan(product, text).problems] == [
        "line 2, client_id, phone, email: the client is missing",
        "line 3, phone, email: give the client in one of these columns, not several",
        "line 4, client_id: 'not-a-uuid' is not a client id",
        "line 5, client_id: no client 00000000-0000-0000-0000-000000000001",
        "line 6, phone: no client has the phone +4930111222",
        "line 7, email: email 'ann(at)example.com' must look like name@example.com",
    ]


def test_purchase_amounts_cost_and_currency_are_checked_by_the_domains_rules(
    product: Crm,
) -> None:
    product.app.execute(  # a client to buy; registered long ago
        RegisterClient(name="Ann", phones=("+4930111222",)),
        _envelope(datetime(2020, 1, 1, tzinfo=UTC)),
    )
    text = (
        "phone,amount,cost,currency,occurred_at\n"
        "+4930111222,120.50,20,EUR,2021-05-01\n"
        "+4930111222,99,,,2021-05-02T12:00:00Z\n"
        "+4930111222,,-1,USD,\n"
        "+4930111222,12,50,usd,2021-05-03\n"
        '+4930111222,"1,5",0,EUR,2021-05-03\n'
        "+4930111222,0,0,EUR,2021-05-03\n"
    )
    result = plan(product, text)
    assert [str(p) for p in result.problems] == [
        "line 4, amount: the amount is required",
        "line 4, cost: cost must be zero or positive",
        "line 4, currency: this CRM books amounts in EUR; USD cannot be recorded",
        "line 4, occurred_at: the date of the purchase is required",
        "line 5, currency: currency 'usd' must be a 3-letter ISO code",
        "line 6, amount: '1,5' is not a number (write decimals with a dot: 1234.50)",
        "line 7, amount: amount must be positive",
    ]
    first, second = (planned.command for planned in result.commands)
    assert isinstance(first, RecordPurchase)
    assert isinstance(second, RecordPurchase)
    assert (first.amount, first.cost, first.currency) == (Decimal("120.50"), Decimal(20), "EUR")
    assert (second.amount, second.cost, second.currency) == (Decimal(99), Decimal(0), "EUR")
    assert first.client_id == second.client_id


def _envelope(occurred_at: datetime) -> Envelope:
    return Envelope(
        actor_id="alice",
        actor_role="admin",
        source="api",
        correlation_id="test",
        occurred_at=occurred_at,
    )
