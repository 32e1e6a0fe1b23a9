"""Migrating a firm off Excel: files as a Ukrainian firm's spreadsheets save them,
imported on every store and checked value by value (figures computed by hand)."""

from __future__ import annotations

import io
import os
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from openpyxl import Workbook
from typer.testing import CliRunner

from adapters.csv_import import Options, import_file
from adapters.read_models.kpis import KPI_MODELS, KpiQueries
from api.bootstrap import Crm, bootstrap
from api.cli.importing import register
from application.settings import Settings
from domain.client import Client

AS_OF = datetime(2024, 4, 2, tzinfo=UTC)


@pytest.fixture
def firm(settings: Settings) -> Crm:
    """The product as a Ukrainian firm runs it: books in hryvnia."""
    with bootstrap(settings.model_copy(update={"currency": "UAH"})) as crm:
        yield crm  # type: ignore[misc]


def xlsx_with_ukrainian_headers() -> bytes:
    workbook = Workbook()
    clients = workbook.active
    assert clients is not None
    clients.title = "Клієнти"
    clients.append(["ПІБ", "Телефон", "Ел. пошта", "Дата реєстрації", "Місто"])
    clients.append(["Іван Петренко", "067 111 22 33", "Ivan@Example.com", "01.02.2024", "Київ"])
    clients.append([None, None, None, None, None])  # a blank row
    clients.append(["Олена Коваль", 671112244, None, date(2024, 3, 15), "Львів"])  # 0 lost
    purchases = workbook.create_sheet("Покупки")
    purchases.append(["Телефон", "Сума", "Собівартість", "Дата покупки"])
    purchases.append(["067 111 22 33", "1 350,00", "1\u00a0000,00", "02.02.2024"])
    purchases.append(["0671112244", 1350.5, 350.5, datetime(2024, 3, 16)])
    purchases.append([None, None, None, None])
    purchases.append(["(067) 111-22-33", "99,50 грн", None, 45383])  # serial: 2024-04-01
    data = io.BytesIO()
    workbook.save(data)
    return data.getvalue()


CP1251_CLIENTS = (
    "ФИО;Телефон;Почта;Дата регистрации\r\n"
    "Пётр Сидоров;(050) 123-45-67;petr@example.ru;05.01.2024\r\n"
    ";;;\r\n"
    "Анна Смирнова;+380 63 765 43 21;;06.01.24\r\n"
).encode("cp1251")
CP1251_PURCHASES = (
    "Телефон;Сумма;Себестоимость;Дата покупки\r\n050 123 45 67;2 500,00;1 500,00;10.01.2024\r\n"
).encode("cp1251")
UTF16_CLIENTS = (
    "Назва\tТелефон\tКомпанія\tДата\n\nТОВ Ромашка\t044 123 45 67\tРомашка\t01.03.2024\n"
)
UTF16_PURCHASES = "Телефон\tСума\tДата\n044 123 45 67\t10 000,00\t02.03.2024\n"


def card(crm: Crm, client_id: object) -> Client:
    client = crm.app.repository.get(client_id)  # type: ignore[arg-type]
    assert isinstance(client, Client)
    return client


def purchases_of(crm: Crm, client_id: object) -> list[tuple[Decimal, Decimal, datetime, str]]:
    return [
        (e.amount, e.cost, e.occurred_at, e.source)  # type: ignore[attr-defined]
        for e in crm.app.repository.event_store.get(client_id)  # type: ignore[arg-type]
        if type(e).__name__ == "PurchaseMade"
    ]


def test_a_firms_workbook_and_csv_files_import_with_every_value_as_written(firm: Crm) -> None:
    crm = firm
    ua = Options(country="UA", columns={"місто": "attr.місто"})
    book = import_file(crm.app, xlsx_with_ukrainian_headers(), options=ua)
    assert (book.recorded, book.problems, book.counts()) == (
        True,
        (),
        {"clients": 2, "purchases": 3},
    )
    ivan_id, olena_id = book.ids[:2]
    assert book.ids[2:] == (ivan_id, olena_id, ivan_id)

    ru = import_file(crm.app, CP1251_CLIENTS, options=Options(country="UA"))
    assert (ru.recorded, ru.problems, ru.lines) == (True, (), (2, 4))
    petr_id, anna_id = ru.ids
    assert import_file(crm.app, CP1251_PURCHASES, options=Options(country="UA")).recorded

    tsv = import_file(crm.app, UTF16_CLIENTS.encode("utf-16"), options=Options(country="UA"))
    assert (tsv.recorded, tsv.problems) == (True, ())
    (romashka_id,) = tsv.ids
    bought = import_file(crm.app, UTF16_PURCHASES.encode("utf-16"), options=Options(country="UA"))
    assert (bought.recorded, bought.problems) == (True, ())

    ivan, olena = card(crm, ivan_id), card(crm, olena_id)
    assert (ivan.name, ivan.phones, ivan.emails, ivan.attributes, ivan.born_at) == (
        "Іван Петренко",
        ("+380671112233",),
        ("ivan@example.com",),
        {"місто": "Київ"},
        datetime(2024, 2, 1, tzinfo=UTC),
    )
    assert (olena.phones, olena.attributes, olena.born_at) == (
        ("+380671112244",),
        {"місто": "Львів"},
        datetime(2024, 3, 15, tzinfo=UTC),
    )
    petr, anna, romashka = card(crm, petr_id), card(crm, anna_id), card(crm, romashka_id)
    assert (petr.name, petr.phones, petr.emails, petr.born_at) == (
        "Пётр Сидоров",
        ("+380501234567",),
        ("petr@example.ru",),
        datetime(2024, 1, 5, tzinfo=UTC),
    )
    assert (anna.phones, anna.born_at) == (("+380637654321",), datetime(2024, 1, 6, tzinfo=UTC))
    assert (romashka.name, romashka.company, romashka.phones) == (
        "ТОВ Ромашка",
        "Ромашка",
        ("+380441234567",),
    )

    assert purchases_of(crm, ivan_id) == [
        (Decimal("1350.00"), Decimal("1000.00"), datetime(2024, 2, 2, tzinfo=UTC), "import"),
        (Decimal("99.50"), Decimal(0), datetime(2024, 4, 1, tzinfo=UTC), "import"),
    ]
    assert purchases_of(crm, olena_id) == [
        (Decimal("1350.5"), Decimal("350.5"), datetime(2024, 3, 16, tzinfo=UTC), "import")
    ]
    assert purchases_of(crm, petr_id) == [
        (Decimal("2500.00"), Decimal("1500.00"), datetime(2024, 1, 10, tzinfo=UTC), "import")
    ]
    assert purchases_of(crm, romashka_id) == [
        (Decimal("10000.00"), Decimal(0), datetime(2024, 3, 2, tzinfo=UTC), "import")
    ]
    assert purchases_of(crm, anna_id) == []

    # By hand, as of 2024-04-02: 5 clients; 5 purchases by 4 of them; revenue
    # 1350 + 99.50 + 1350.50 + 2500 + 10000 = 15300; cost 1000 + 350.50 + 1500 = 2850.50;
    # margin 12449.50. Every payer bought within 90 days (Пётр 83 days before): new.
    crm.projector(KPI_MODELS).catch_up()
    kpis = KpiQueries(crm.db).values(AS_OF)
    assert kpis["clients_total"] == 5
    assert kpis["stage_counts"] == {"potential": 1, "new": 4, "loyal": 0, "dead": 0, "returned": 0}
    assert kpis["avg_purchases_per_client"] == 1.25
    assert kpis["avg_check"] == Decimal("3060")
    assert kpis["avg_margin"] == Decimal("2489.9")
    assert kpis["margin_ratio"] == pytest.approx(12449.5 / 15300)


def test_a_legacy_xls_workbook_is_read_with_its_cell_types(firm: Crm) -> None:
    xlwt = pytest.importorskip("xlwt")
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("Клиенты")
    dated = xlwt.easyxf(num_format_str="DD.MM.YYYY")
    for column, header in enumerate(["Клиент", "Телефон", "Дата регистрации"]):
        sheet.write(0, column, header)
    sheet.write(1, 0, "ООО Василёк")
    sheet.write(1, 1, 501234568)  # a phone typed as a number
    sheet.write(1, 2, date(2023, 12, 24), dated)
    data = io.BytesIO()
    book.save(data)
    report = import_file(firm.app, data.getvalue(), options=Options(country="UA"))
    assert (report.recorded, report.problems) == (True, ())
    client = card(firm, report.ids[0])
    assert (client.name, client.phones, client.born_at) == (
        "ООО Василёк",
        ("+380501234568",),
        datetime(2023, 12, 24, tzinfo=UTC),
    )


def test_a_bad_workbook_imports_nothing_and_lists_every_problem(firm: Crm) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["ПІБ", "Телефон", "Ел. пошта", "Дата реєстрації"])
    sheet.append(["Іван", "067 111 22 33", "ivan@example.com", "01.02.2024"])
    sheet.append(["Петро", "12", "petro@example.com", "31.02.2024"])
    sheet.append(["Ганна", "050 000 00 01", "IVAN@example.com", "01.02.2024"])
    data = io.BytesIO()
    workbook.save(data)
    before = firm.app.recorder.max_notification_id()
    report = import_file(firm.app, data.getvalue(), options=Options(country="UA"))
    assert not report.recorded
    assert [(p.line, p.field, p.value) for p in report.problems] == [
        (2, "Ел. пошта", "ivan@example.com"),
        (3, "Дата реєстрації", "31.02.2024"),
        (3, "Телефон", "12"),
        (4, "Ел. пошта", "IVAN@example.com"),
    ]
    assert "also on line 4" in report.problems[0].message
    assert firm.app.recorder.max_notification_id() == before
    fixed = import_file(
        firm.app, data.getvalue(), options=Options(country="UA", skip_invalid=True, dry_run=True)
    )
    assert (fixed.recorded, fixed.lines) == (False, ())  # a dry run; every row shares or fails
    assert [p.line for p in fixed.problems] == [2, 3, 3, 4]


def test_skip_invalid_records_the_good_rows_and_the_fixed_rejects_file_brings_the_rest(
    tmp_path: Path,
) -> None:
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    runner = CliRunner()
    env: dict[str, str | None] = {key: None for key in os.environ if key.startswith("CRM_")}
    env.update(
        CRM_DATABASE_URL=f"sqlite:///{tmp_path / 'crm.db'}",
        CRM_KEY_FILE=str(tmp_path / "crm.key"),
        CRM_DEFAULT_COUNTRY="UA",
        CRM_CURRENCY="UAH",
    )
    source = tmp_path / "clients.csv"
    source.write_bytes(
        "ФИО;Телефон;Дата регистрации\n"
        "Пётр;050 123 45 67;05.01.2024\n"
        "Анна;063 765 43;06.01.2024\n"
        "Олег;093 000 11 22;07.01.2024\n".encode("cp1251")
    )
    rejects, report = tmp_path / "rejects.csv", tmp_path / "report.csv"
    arguments = ["import", str(source), "--skip-invalid", "--rejects", str(rejects)]
    first = runner.invoke(app, [*arguments, "--report", str(report)], env=env)
    assert first.exit_code == 2, first.output
    assert "imported 2 clients" in first.stdout
    assert "1 of 3 rows were left out" in first.stderr
    rejected = rejects.read_text(encoding="utf-8-sig").splitlines()
    assert rejected[0] == "ФИО;Телефон;Дата регистрации;problem"
    assert rejected[1].startswith("Анна;063 765 43;06.01.2024;Телефон: phone '063 765 43'")
    problems = report.read_text(encoding="utf-8-sig").splitlines()
    assert problems[0] == "sheet,line,column,value,problem"
    assert problems[1].startswith(",3,Телефон,063 765 43,phone '063 765 43' is not a valid")

    rejects.write_text(
        rejects.read_text(encoding="utf-8-sig").replace("063 765 43;", "063 765 43 21;"),
        encoding="utf-8-sig",
    )
    second = runner.invoke(app, ["import", str(rejects)], env=env)
    assert second.exit_code == 0, second.output
    assert "imported 1 client" in second.stdout
    settings = {k.removeprefix("CRM_").lower(): v for k, v in env.items() if v}
    with bootstrap(Settings.model_validate(settings)) as crm:
        crm.projector(KPI_MODELS).catch_up()
        assert KpiQueries(crm.db).values(datetime.now(UTC))["clients_total"] == 3
