"""Reading and mapping files for import: encodings, delimiters, headers, cells; the
rows checked by the command handlers, on the in-memory product."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.csv_import import (
    ImportFileError,
    ImportReport,
    Options,
    header_key,
    import_file,
    parse_amount,
    parse_column_option,
    parse_instant,
    split_values,
)
from adapters.spreadsheets import decode, read, sniff_delimiter
from api.bootstrap import Crm, bootstrap
from tests.conftest import make_settings


@pytest.fixture
def product(tmp_path: Path) -> Iterator[Crm]:
    with bootstrap(make_settings("memory", tmp_path)) as crm:
        yield crm


def check(crm: Crm, text: str, **options: object) -> ImportReport:
    return import_file(crm.app, text.encode(), options=Options(dry_run=True, **options))  # type: ignore[arg-type]


def problems(report: ImportReport) -> list[tuple[int | None, str]]:
    return [(p.line, p.field) for p in report.problems]


# --------------------------------------------------------- encodings, delimiters


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("ПІБ,Телефон\n".encode("utf-8-sig"), "utf-8-sig"),
        ("ПІБ,Телефон\n".encode(), "utf-8"),
        ("ПІБ\tТелефон\n".encode("utf-16"), "utf-16"),
        ("ПІБ\tТелефон\n".encode("utf-16-le"), "utf-16-le"),
        (
            "ФИО;Телефон;Дата регистрации\nИванов Пётр;+380671112233;01.02.2024\n".encode("cp1251"),
            "cp1251",
        ),
        ("Name;Straße;Größe\nRené Müller;Hauptstraße;Größe\n".encode("cp1252"), "cp1252"),
    ],
)
def test_the_encoding_is_found_by_its_byte_order_mark_or_detected(
    data: bytes, encoding: str
) -> None:
    text, found = decode(data)
    assert found.replace("_", "-") == encoding
    assert text.startswith(("ПІБ", "ФИО", "Name"))


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("name,phones\nAnn,+4930111222\n", ","),
        ("name;phones;emails\nAnn;+4930111222;a@b.de\n", ";"),
        ("name\tphones\nAnn\t+4930111222\n", "\t"),
        ("name|phones\nAnn|+4930111222\n", "|"),
        ('name;address\n"Lee, Ann";"Main St 1, Berlin"\n', ";"),
        ("name\nAnn\n", ","),
    ],
)
def test_the_delimiter_is_sniffed_among_comma_semicolon_tab_and_bar(
    text: str, delimiter: str
) -> None:
    assert sniff_delimiter(text) == delimiter


def test_lines_count_the_header_as_line_one_skip_blank_lines_and_span_quoted_newlines() -> None:
    text = 'name,address\nAnn,Main St 1\n\nBob,"Hill Rd 2\nBerlin"\nCid,\n'
    (sheet,) = read(text.encode()).sheets
    assert [(row.line, row.cells) for row in sheet.rows] == [
        (2, ("Ann", "Main St 1")),
        (4, ("Bob", "Hill Rd 2\nBerlin")),
        (6, ("Cid",)),
    ]


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(ImportFileError, match="empty"):
        read(b"\n \n")


# -------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    ("header", "field"),
    [
        (" Full  Name ", "name"),
        ("ПІБ", "name"),
        ("Ім’я", "name"),
        ("ФИО", "name"),
        ("Клиент", "name"),
        ("Назва", "name"),
        ("Тел.", "phones"),
        ("Мобільний", "phones"),
        ("E-Mail", "emails"),
        ("Ел. пошта", "emails"),
        ("Відповідальний", "owner"),
        ("Ответственный", "owner"),
        ("Дата реєстрації", "registered_at"),
        ("Сумма", "amount"),
        ("Собівартість", "cost"),
        ("Дата продажу", "occurred_at"),
        ("Адрес:", "address"),
    ],
)
def test_headers_are_known_in_english_ukrainian_and_russian(header: str, field: str) -> None:
    from adapters.csv_import import ALIASES

    assert header_key(header) in {header_key(alias) for alias in ALIASES[field]}


def test_a_sheet_is_purchases_if_it_has_an_amount_column_else_clients_if_it_has_a_name(
    product: Crm,
) -> None:
    assert check(product, "ПІБ,Телефон\n").kinds == ("clients",)
    assert check(product, "Клієнт,Телефон,Сума,Дата\n").kinds == ("purchases",)
    report = check(product, "Телефон\n+4930111222\n")
    assert report.kinds == ()
    assert "--kind" in report.problems[0].message


def test_an_unknown_column_is_a_problem_naming_the_ways_to_map_it(product: Crm) -> None:
    report = check(product, "name,phonez,Колір\nAnn,+4930111222,blue\n")
    assert problems(report) == [(1, "phonez"), (1, "Колір")]
    assert "did you mean 'phone'?" in report.problems[0].message
    assert '--column "Колір=attr.KEY"' in report.problems[1].message


def test_columns_can_be_mapped_made_attributes_or_left_out(product: Crm) -> None:
    columns = dict(
        parse_column_option(option) for option in ("Місто=attr.місто", "Tel 2=phones", "Примітка=-")
    )
    report = import_file(
        product.app,
        "Назва,Tel 2,Місто,Примітка\nАтлант,+380671112233,Київ,VIP\n".encode(),
        options=Options(columns=columns),
    )
    assert report.recorded, report.problems
    (client_id,) = report.ids
    client = product.app.repository.get(client_id)
    assert (client.name, client.phones, client.attributes) == (
        "Атлант",
        ("+380671112233",),
        {"місто": "Київ"},
    )


def test_a_column_option_must_name_a_field() -> None:
    with pytest.raises(ValueError, match="not a field"):
        parse_column_option("Місто=city")
    with pytest.raises(ValueError, match="HEADER=field"):
        parse_column_option("Місто")


def test_a_column_named_twice_and_a_missing_required_column_are_header_problems(
    product: Crm,
) -> None:
    assert problems(check(product, "name,ПІБ\nAnn,Ann\n")) == [(1, "ПІБ")]
    assert problems(check(product, "phone,amount\n+4930111222,5\n")) == [(1, "occurred_at")]


def test_an_attribute_column_needs_a_valid_key(product: Crm) -> None:
    assert problems(check(product, "name,attr.2nd colour\nAnn,blue\n")) == [(1, "attr.2nd colour")]


# --------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("cell", "amount", "currency"),
    [
        ("1 350,00", Decimal("1350.00"), None),
        ("1\u00a0350,00", Decimal("1350.00"), None),
        ("1\u2009350,00", Decimal("1350.00"), None),
        ("1\u202f350,5", Decimal("1350.5"), None),
        ("1350,5", Decimal("1350.5"), None),
        ("1,350.00", Decimal("1350.00"), None),
        ("1.350,00", Decimal("1350.00"), None),
        ("1,350,000", Decimal(1350000), None),
        ("0,125", Decimal("0.125"), None),
        ("₴1 350", Decimal(1350), "UAH"),
        ("1350 грн", Decimal(1350), "UAH"),
        ("1 350,00 грн.", Decimal("1350.00"), "UAH"),
        ("€ 99,90", Decimal("99.90"), "EUR"),
        (1350.5, Decimal("1350.5"), None),
        (12, Decimal(12), None),
    ],
)
def test_amounts_are_read_as_spreadsheets_write_them(
    cell: object, amount: Decimal, currency: str | None
) -> None:
    assert parse_amount(cell, field="amount") == (amount, currency)  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", ["1,350", "12.345", "abc", "1,2,3.4.5", "NaN"])
def test_an_amount_that_cannot_be_told_is_refused(cell: str) -> None:
    with pytest.raises(Exception, match=r"amount|could be"):
        parse_amount(cell, field="amount")


@pytest.mark.parametrize(
    ("cell", "order", "expected"),
    [
        ("2021-03-04", None, datetime(2021, 3, 4, tzinfo=UTC)),
        ("2021-03-04T10:15:00+01:00", None, datetime(2021, 3, 4, 9, 15, tzinfo=UTC)),
        ("01.02.2024", None, datetime(2024, 2, 1, tzinfo=UTC)),
        ("01.02.24", None, datetime(2024, 2, 1, tzinfo=UTC)),
        ("1.2.2024 14:30", None, datetime(2024, 2, 1, 14, 30, tzinfo=UTC)),
        ("13/02/2024", None, datetime(2024, 2, 13, tzinfo=UTC)),
        ("02/13/2024 09:05:07", None, datetime(2024, 2, 13, 9, 5, 7, tzinfo=UTC)),
        ("01/02/2024", "DMY", datetime(2024, 2, 1, tzinfo=UTC)),
        ("01/02/2024", "MDY", datetime(2024, 1, 2, tzinfo=UTC)),
        (date(2024, 2, 1), None, datetime(2024, 2, 1, tzinfo=UTC)),
        (datetime(2024, 2, 1, 10, 30), None, datetime(2024, 2, 1, 10, 30, tzinfo=UTC)),
        (45323.0, None, datetime(2024, 2, 1, tzinfo=UTC)),  # an Excel serial date
        (45323.5, None, datetime(2024, 2, 1, 12, tzinfo=UTC)),
    ],
)
def test_dates_are_read_in_iso_dotted_slashed_and_excel_forms(
    cell: object, order: str | None, expected: datetime
) -> None:
    assert parse_instant(cell, field="d", order=order) == expected  # type: ignore[arg-type]


def test_a_slashed_date_nothing_settles_is_refused_naming_the_option() -> None:
    with pytest.raises(Exception, match="--date-format"):
        parse_instant("01/02/2024", field="d")


@pytest.mark.parametrize("cell", ["yesterday", "2021-02-30", "31.02.2024", "1/2"])
def test_a_cell_that_is_no_date_is_refused(cell: str) -> None:
    with pytest.raises(Exception, match="not a date"):
        parse_instant(cell, field="registered_at")


def test_a_business_date_in_the_future_is_refused() -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    with pytest.raises(Exception, match="in the future"):
        parse_instant(tomorrow, field="occurred_at")


def test_one_day_first_value_settles_a_slashed_date_column(product: Crm) -> None:
    report = import_file(
        product.app,
        b"name,registered_at\nAnn,01/02/2024\nBob,13/02/2024\n",
        options=Options(),
    )
    assert report.recorded, report.problems
    ann = product.app.repository.get(report.ids[0])
    assert ann.born_at == datetime(2024, 2, 1, tzinfo=UTC)
    unsettled = check(product, "name,registered_at\nAnn,01/02/2024\nBob,03/04/2024\n")
    assert problems(unsettled) == [(2, "registered_at"), (3, "registered_at")]


def test_several_phones_or_emails_in_one_cell() -> None:
    assert split_values(" +49 30 111222 ; ;0049 30 333444 ") == ["+49 30 111222", "0049 30 333444"]
    assert split_values("a@b.de, c@d.de\ne@f.de") == ["a@b.de", "c@d.de", "e@f.de"]
    assert split_values("") == []


# --------------------------------------------------------------- row problems


def test_every_problem_of_every_row_is_reported_with_its_line_column_and_value(
    product: Crm,
) -> None:
    text = (
        "name,kind,phones,emails,owner,registered_at\n"
        "Ann,person,+4930111222,ann@example.com,,2021-03-04\n"
        "  ,robot,030 1234,ann(at)example.com,nobody,31.02.2021\n"
        "Cid,company,,,,\n"
    )
    report = check(product, text)
    assert [(p.line, p.field, p.value) for p in report.problems] == [
        (3, "name", ""),
        (3, "registered_at", "31.02.2021"),
        (3, "owner", "nobody"),  # the handler's, found though the row was refused already
    ]
    report = check(product, text.replace("  ,robot", "Bob,robot").replace("31.02", "28.02"))
    assert [(p.line, p.field, p.value) for p in report.problems] == [(3, "owner", "nobody")]
    assert report.problems[0].message == "owner_id: 'nobody' is not an active manager or admin"


def test_rules_only_the_domain_knows_are_found_by_running_the_handler(product: Crm) -> None:
    too_long = "x" * 1001  # attribute values: at most 1000 characters (domain rule)
    (problem,) = check(product, f"name,attr.note\nAnn,{too_long}\n").problems
    assert (problem.line, problem.field) == (2, "attr.note")
    assert "longer than 1000" in problem.message
    (problem,) = check(product, "name,kind\nAnn,robot\n").problems
    assert (problem.field, problem.value) == ("kind", "robot")


def test_values_beyond_the_header_are_refused_rather_than_dropped(product: Crm) -> None:
    report = check(product, "name,,phones\nAnn,,+4930111222\nBob,oops,,extra\n")
    assert problems(report) == [(3, "column 2"), (3, "column 4")]
    assert report.lines == (2,)


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
    assert [str(p) for p in check(product, text).problems] == [
        "line 2, emails: email ann@example.com also on line 4",
        "line 2, phones: phone +4930111222 also on line 4, line 5",
        "line 4, emails: email ann@example.com also on line 2",
        "line 4, phones: phone +4930111222 also on line 2, line 5",
        "line 5, phones: phone +4930111222 also on line 2, line 4",
    ]


def test_a_phone_twice_in_one_row_is_not_a_duplicate(product: Crm) -> None:
    assert check(product, "name,phones\nAnn,+4930111222;+49 30 111222\n").problems == ()


def test_a_national_phone_needs_a_country(product: Crm) -> None:
    (problem,) = check(product, "name,phones\nAnn,067 111 22 33\n").problems
    assert "CRM_DEFAULT_COUNTRY" in problem.message
    assert check(product, "name,phones\nAnn,067 111 22 33\n", country="UA").problems == ()


# ------------------------------------------------------------------ purchases


def test_a_purchase_row_names_its_client(product: Crm) -> None:
    text = (
        "client_id,phone,email,amount,occurred_at\n"
        ",,,10,2022-01-01\n"
        "not-a-uuid,,,10,2022-01-01\n"
        "00000000-0000-0000-0000-000000000001,,,10,2022-01-01\n"
        ",+4930111222,,10,2022-01-01\n"
        ",,ann(at)example.com,10,2022-01-01\n"
    )
    assert [str(p) for p in check(product, text).problems] == [
        "line 2, client_id: the client is missing (give their id, phone or email)",
        "line 3, client_id: 'not-a-uuid' is not a client id",
        "line 4, client_id: no client 00000000-0000-0000-0000-000000000001",
        "line 5, phone: no client has the phone +4930111222",
        "line 6, email: email 'ann(at)example.com' must look like name@example.com",
    ]
