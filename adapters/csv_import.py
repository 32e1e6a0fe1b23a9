"""Import from spreadsheets: which column is which, and what a cell says.

Reading the file is ``adapters.spreadsheets``; checking and recording the rows is
``application.imports``, which runs each row through the command handlers. What is
left here is the mapping a firm's export needs:

* **Headers** in English, Ukrainian or Russian (``ПІБ``, ``Телефон``, ``Сума``…),
  matched ignoring case, spaces and a trailing full stop or colon; ``--column
  "HEADER=field"`` maps any other, ``HEADER=attr.key`` makes it a custom attribute,
  ``HEADER=-`` leaves it out. An unknown column is an error, so no data is dropped
  by a typo.
* **Values** as spreadsheets hold them: numbers and dates typed by Excel, serial
  dates, national phone numbers (read by the handler, in ``--country``), dates as
  ``01.02.2024``, ``01/02/2024``, ``01.02.24`` with or without a time, amounts as
  ``1 350,00``, ``1,350.00`` or ``1350,5 грн``.
"""

from __future__ import annotations

import csv
import difflib
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal, cast
from uuid import UUID

from adapters.spreadsheets import Cell, FileError, Row, Sheet, Workbook, read
from application.app import CrmApplication
from application.clients import RecordPurchase, RegisterClient
from application.imports import (
    ClientReference,
    ImportKind,
    ImportOutcome,
    ImportRow,
    Problem,
    ProgressCallback,
    ReferenceKind,
    import_rows,
    sha256_of,
)
from domain.client import ClientKind
from domain.envelope import Envelope, utc_now
from domain.errors import InvalidValue
from domain.values import check_attribute_key

DateOrder = Literal["DMY", "MDY", "YMD"]
DEFAULT_ACTOR = "import"
ATTRIBUTE_COLUMN = "attr."
"""A column ``attr.<key>`` (or mapped to it) holds the custom attribute ``<key>``."""
SKIP = "-"
"""``--column "HEADER=-"``: leave the column out."""
REJECTS_COLUMN = "problem"
"""The column ``--rejects`` adds; left out when the fixed file is imported again."""
_PLACEHOLDER = UUID(int=0)
"""A purchase's client before ``application.imports`` finds it."""

ImportFileError = FileError

# Each field and the header names it is known by (compared after ``header_key``).
# fmt: off
ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "full name", "client", "client name", "company name", "customer", "піб",
        "п.і.б", "ім'я", "клієнт", "назва", "ім'я клієнта", "фио", "ф.и.о", "имя", "клиент",
        "название"),
    "kind": ("kind", "type", "тип"),
    "phones": ("phones", "phone", "tel", "telephone", "mobile", "phone number", "телефон",
        "телефони", "тел", "мобільний", "моб. телефон", "телефоны", "мобильный", "моб",
        "номер телефону", "номер телефона"),
    "emails": ("emails", "email", "e-mail", "mail", "пошта", "ел. пошта", "електронна пошта",
        "e-mail адреса", "почта", "эл. почта", "электронная почта"),
    "company": ("company", "organisation", "organization", "компанія", "компания", "організація",
        "организация"),
    "address": ("address", "адреса", "адрес"),
    "channel": ("channel", "source", "канал", "джерело", "источник"),
    "owner": ("owner", "manager", "менеджер", "відповідальний", "ответственный"),
    "registered_at": ("registered_at", "registered", "created", "created at",
        "registration date", "дата реєстрації", "дата регистрации", "дата створення",
        "дата создания"),
    "client_id": ("client_id", "client id", "id клієнта", "id клиента"),
    "amount": ("amount", "sum", "total", "сума", "сумма", "сума покупки", "сумма покупки"),
    "cost": ("cost", "собівартість", "себестоимость"),
    "currency": ("currency", "валюта"),
    "occurred_at": ("occurred_at", "date", "purchase date", "sale date", "дата", "дата покупки",
        "дата продажу", "дата продажи"),
}
# fmt: on

CLIENT_FIELDS = (
    "name",
    "kind",
    "company",
    "phones",
    "emails",
    "address",
    "channel",
    "owner",
    "registered_at",
)
PURCHASE_FIELDS = (
    "client_id",
    "phones",
    "emails",
    "amount",
    "cost",
    "currency",
    "occurred_at",
    "name",
)
"""A purchases sheet finds its client by id, phone or email; a name column beside them
is for people reading the sheet and is not used."""
FIELD_COLUMN = {"owner": "owner_id"}
"""Fields whose command field has another name."""
CLIENT_KINDS: dict[str, ClientKind] = {
    "person": "person",
    "company": "company",
    "особа": "person",
    "фізособа": "person",
    "компанія": "company",
    "компания": "company",
    "лицо": "person",
    "физлицо": "person",
}
CURRENCY_SIGNS = {
    "₴": "UAH",
    "грн.": "UAH",
    "грн": "UAH",
    "uah": "UAH",
    "€": "EUR",
    "eur": "EUR",
    "$": "USD",
    "usd": "USD",
    "₽": "RUB",
    "руб.": "RUB",
    "руб": "RUB",
    "р.": "RUB",
    "rub": "RUB",
    "£": "GBP",
    "gbp": "GBP",
    "zł": "PLN",
    "pln": "PLN",
}
_SPACES = re.compile(r"[\s\u00a0\u2007\u2009\u202f']+")
_SPLIT = re.compile(r"[;,\n]+")
_DATE = re.compile(
    r"(\d{1,4})[./-](\d{1,2})[./-](\d{1,4})"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?)?"
)
_EXCEL_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)
_DATE_FIELDS = ("registered_at", "occurred_at")
_REFERENCES: tuple[tuple[str, ReferenceKind], ...] = (
    ("client_id", "client_id"),
    ("phones", "phone"),
    ("emails", "email"),
)


def header_key(name: str) -> str:
    """A header as it is compared: case-folded, spaces collapsed, a trailing full stop
    or colon dropped, apostrophes made one, ``ё`` read as ``е``."""
    text = unicodedata.normalize("NFC", name).casefold().replace("ё", "е")
    text = re.sub(r"[\u2019\u02bc\u0060\u00b4]", "'", text)
    return " ".join(text.split()).rstrip(".:").strip()


_BY_ALIAS = {header_key(alias): name for name, aliases in ALIASES.items() for alias in aliases}


@dataclass(frozen=True)
class Options:
    """How to read a file: what the user said on the command line or in the request."""

    kind: ImportKind | None = None
    actor: str = DEFAULT_ACTOR
    sheets: tuple[str, ...] = ()
    columns: Mapping[str, str] = field(default_factory=dict)
    """Header → field (``name``, ``phones``…, ``attr.<key>`` or ``-``), from ``--column``."""
    country: str | None = None
    date_format: DateOrder | None = None
    dry_run: bool = False
    skip_invalid: bool = False


def parse_column_option(text: str) -> tuple[str, str]:
    """``"Місто=attr.city"`` → ``("місто", "attr.city")``; ``ValueError`` explains."""
    header, equals, target = text.rpartition("=")
    header, target = header.strip(), target.strip()
    if not equals or not header or not target:
        raise ValueError(f'{text!r}: write --column "HEADER=field"')
    known = (*ALIASES, SKIP)
    if target != SKIP and not target.startswith(ATTRIBUTE_COLUMN) and target not in known:
        raise ValueError(
            f"{text!r}: {target!r} is not a field; fields are "
            + ", ".join(ALIASES)
            + f", {ATTRIBUTE_COLUMN}<key> and {SKIP} (leave the column out)"
        )
    return header_key(header), target


# ------------------------------------------------------------------ the header


@dataclass
class Layout:
    """What each column of a sheet holds."""

    sheet: Sheet
    kind: ImportKind | None
    fields: dict[str, int] = field(default_factory=dict)
    """Field → the column's position."""
    attributes: dict[str, int] = field(default_factory=dict)
    """Custom attribute key → the column's position."""
    labels: dict[str, str] = field(default_factory=dict)
    """Field → the header as the file writes it."""
    problems: list[Problem] = field(default_factory=list)
    date_orders: dict[str, DateOrder] = field(default_factory=dict)

    def problem(self, column: str, message: str) -> None:
        self.problems.append(Problem(self.sheet.header_line, column, message, "", self.sheet.name))


def layout(sheet: Sheet, options: Options) -> Layout:  # noqa: PLR0912, PLR0915 - one pass
    """Match each header to a field; note every header problem."""
    fields: dict[str, int] = {}
    attributes: dict[str, int] = {}
    labels: dict[str, str] = {}
    unknown: list[str] = []
    result = Layout(sheet, None)
    for position, header in enumerate(sheet.header):
        if not header:
            continue
        key = header_key(header)
        target = options.columns.get(key) or _BY_ALIAS.get(key)
        if target is None and key == REJECTS_COLUMN:
            continue  # a rejects file imported again, its rows fixed
        if target is None and key.startswith(ATTRIBUTE_COLUMN):
            target = header.strip()
        if target == SKIP:
            continue
        if target is None:
            unknown.append(header)
            continue
        if target.startswith(ATTRIBUTE_COLUMN):
            raw_key = target[len(ATTRIBUTE_COLUMN) :]
            try:
                attribute = check_attribute_key(raw_key.lower(), field=header)
            except InvalidValue as error:
                result.problem(header, error.message)
                continue
            if attribute in attributes:
                result.problem(header, "the column appears twice")
            attributes[attribute] = position
            labels[f"attributes.{attribute}"] = header
            continue
        if target in fields:
            result.problem(header, f"the column appears twice (as {labels[target]!r} too)")
            continue
        fields[target] = position
        labels[target] = header
    kind = options.kind or _kind(fields)
    if kind == "clients" and "occurred_at" in fields and "registered_at" not in fields:
        fields["registered_at"] = fields.pop("occurred_at")  # a clients sheet's "Дата"
        labels["registered_at"] = labels.pop("occurred_at")
    result.kind, result.fields, result.attributes, result.labels = kind, fields, attributes, labels
    if kind is None:
        result.problem(
            "",
            "cannot tell a clients sheet (it has a name column) from a purchases sheet "
            "(it has an amount column); say which with --kind",
        )
        return result
    allowed = CLIENT_FIELDS if kind == "clients" else PURCHASE_FIELDS
    for name in list(fields):
        if name not in allowed:
            unknown.append(labels.pop(name))
            del fields[name]
    if kind == "purchases" and attributes:
        unknown += [labels.pop(f"attributes.{attribute}") for attribute in attributes]
        attributes.clear()
    for header in unknown:
        result.problem(header, _unknown(header, kind))
    required = ("name",) if kind == "clients" else ("amount", "occurred_at")
    for name in required:
        if name not in fields:
            result.problem(name, f"this column is required (known as: {_aliases(name)})")
    if kind == "purchases" and not {"client_id", "phones", "emails"} & set(fields):
        result.problem("", "a purchases sheet needs a client_id, phone or email column")
    return result


def _kind(fields: Mapping[str, int]) -> ImportKind | None:
    if "amount" in fields:
        return "purchases"
    if "name" in fields:
        return "clients"
    return None


def _aliases(name: str) -> str:
    return ", ".join(ALIASES[name][:4] + tuple(a for a in ALIASES[name] if not a.isascii())[:3])


def _unknown(header: str, kind: ImportKind) -> str:
    allowed = CLIENT_FIELDS if kind == "clients" else PURCHASE_FIELDS
    close = difflib.get_close_matches(
        header_key(header), [a for n in allowed for a in ALIASES[n]], n=1, cutoff=0.75
    )
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f'unknown column{hint}; map it with --column "{header}=FIELD", keep it as a '
        f'custom attribute with --column "{header}=attr.KEY" (clients), or leave it '
        f'out with --column "{header}={SKIP}"'
    )


# ------------------------------------------------------------------- the values


def text(cell: Cell) -> str:
    """A cell as text: whole numbers without ``.0`` (Excel stores every number as a
    float, a phone typed as a number too), dates in ISO form."""
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float):
        return str(int(cell)) if cell.is_integer() else repr(cell)
    if isinstance(cell, datetime | date | time):
        return cell.isoformat()
    return str(cell).strip()


def split_values(cell: str) -> list[str]:
    """Several phones or emails in one cell: ``+4930111;+4930222``, or with commas or
    line breaks between them."""
    return [part.strip() for part in _SPLIT.split(cell) if part.strip()]


def parse_amount(cell: Cell, *, field: str) -> tuple[Decimal, str | None]:
    """A sum as spreadsheets write it, and the currency its sign names (if any):
    ``1 350,00``, ``1350,5``, ``1,350.00``, ``1.350,00``, ``₴1 350``, ``1350 грн``.
    A lone comma or dot is the decimal separator, unless it is followed by exactly
    three digits after a number (``1,350``): that could be either, and is refused."""
    if isinstance(cell, bool):
        raise InvalidValue(f"{cell!r} is not an amount", field=field)
    if isinstance(cell, int):
        return Decimal(cell), None
    if isinstance(cell, float):
        return Decimal(repr(cell)), None
    raw = text(cell)
    body = raw.casefold()
    currency = None
    for sign, code in CURRENCY_SIGNS.items():
        if sign in body:
            body = body.replace(sign, " ")
            currency = code
            break
    body = _SPACES.sub("", body)
    if body.startswith("+"):
        body = body[1:]
    commas, dots = body.count(","), body.count(".")
    if commas and dots:
        decimal_mark = "," if body.rfind(",") > body.rfind(".") else "."
        thousands = "." if decimal_mark == "," else ","
        body = body.replace(thousands, "").replace(decimal_mark, ".")
    elif commas > 1 or dots > 1:
        body = body.replace("," if commas else ".", "")
    elif commas or dots:
        mark = "," if commas else "."
        whole, _, fraction = body.partition(mark)
        if len(fraction) == 3 and whole.lstrip("-") not in ("", "0"):
            raise InvalidValue(
                f"{raw!r} could be {whole}{fraction} or {whole}.{fraction}: write "
                f"{whole}{fraction} or {whole}{mark}{fraction}0",
                field=field,
            )
        body = body.replace(",", ".")
    try:
        value = Decimal(body)
    except InvalidOperation:
        raise InvalidValue(f"{raw!r} is not an amount (1350,50 or 1 350.50)", field=field) from None
    if not value.is_finite():
        raise InvalidValue(f"{raw!r} is not an amount", field=field)
    return value, currency


def date_order_evidence(value: str) -> set[DateOrder] | None:
    """The orders a written date can be read in (``None``: not a d/m/y date at all)."""
    match = _DATE.fullmatch(value.strip())
    if match is None:
        return None
    a, b, c = (int(g) for g in match.groups()[:3])
    first, last = match.group(1), match.group(3)
    if len(first) == 4:
        return {"YMD"}
    if len(last) not in (2, 4):
        return set()
    orders: set[DateOrder] = set()
    if 1 <= b <= 12 and 1 <= a <= 31:
        orders.add("DMY")
    if 1 <= a <= 12 and 1 <= b <= 31:
        orders.add("MDY")
    if "." in value and "DMY" in orders:
        return {"DMY"}  # dotted dates are day first wherever they are written
    del c
    return orders


def parse_instant(cell: Cell, *, field: str, order: DateOrder | None = None) -> datetime:
    """A business date: a workbook's date or date-time cell, an Excel serial number,
    ISO 8601 (``2021-03-04``, ``2021-03-04T10:15:00+01:00``), or a day, month and
    year in ``order`` (``01.02.2024``, ``01/02/2024 10:30``, ``01.02.24``). A date
    without a time is midnight UTC; an instant without an offset is UTC. It may not
    lie in the future."""
    if isinstance(cell, datetime):
        parsed = cell if cell.tzinfo else cell.replace(tzinfo=UTC)
    elif isinstance(cell, date):
        parsed = datetime(cell.year, cell.month, cell.day, tzinfo=UTC)
    elif isinstance(cell, int | float) and not isinstance(cell, bool):
        if not 1 <= cell < 2_958_466:
            raise InvalidValue(f"{cell!r} is not a date", field=field)
        parsed = _EXCEL_EPOCH + timedelta(days=float(cell))
        parsed = parsed.replace(microsecond=0)
    else:
        parsed = _parse_text_date(text(cell), field=field, order=order)
    parsed = parsed.astimezone(UTC)
    if parsed > utc_now():
        raise InvalidValue(f"{text(cell)} is in the future", field=field)
    return parsed


def _parse_text_date(raw: str, *, field: str, order: DateOrder | None) -> datetime:
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        pass
    else:
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    match = _DATE.fullmatch(raw)
    possible = date_order_evidence(raw)
    if match is None or not possible:
        raise InvalidValue(
            f"{raw!r} is not a date (01.02.2024, 2024-02-01, 01/02/2024 10:30)", field=field
        )
    if len(possible) > 1:
        if order is None or order not in possible:
            raise InvalidValue(
                f"{raw!r} can be read day first or month first; nothing in the column "
                "settles it: say which with --date-format DMY or MDY",
                field=field,
            )
        chosen = order
    else:
        (chosen,) = possible
    a, b, c = (int(g) for g in match.groups()[:3])
    year, month, day = {"DMY": (c, b, a), "MDY": (c, a, b), "YMD": (a, b, c)}[chosen]
    if year < 100:
        year += 2000 if year <= (utc_now().year % 100) else 1900
    hour, minute, second = (int(g) if g else 0 for g in match.groups()[3:6])
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as error:
        raise InvalidValue(f"{raw!r} is not a date: {error}", field=field) from None


def settle_date_orders(result: Layout, options: Options) -> None:
    """The order of each date column: ``--date-format``, else what the column's own
    values settle (a ``13/02/2024`` anywhere makes it day first)."""
    for name in _DATE_FIELDS:
        position = result.fields.get(name)
        if position is None:
            continue
        if options.date_format:
            result.date_orders[name] = options.date_format
            continue
        seen: set[DateOrder] = set()
        for row in result.sheet.rows:
            cell = row.cells[position] if position < len(row.cells) else None
            orders = date_order_evidence(cell) if isinstance(cell, str) else None
            if orders and len(orders) == 1:
                seen |= orders
        if len(seen - {"YMD"}) == 1:
            (order,) = seen - {"YMD"}
            result.date_orders[name] = order


# --------------------------------------------------------------------- the rows


class _Mapper:
    """Turns one sheet's rows into ``ImportRow`` commands."""

    def __init__(self, result: Layout, base: Envelope, books: str) -> None:
        self.layout = result
        self.base = base
        self.books = books
        labels = result.labels
        self.columns = {FIELD_COLUMN.get(k, k): v for k, v in labels.items()}
        """A command's (or a domain error's) field → the column it was read from."""
        if result.kind == "clients":
            self.columns["occurred_at"] = labels.get("registered_at", "registered_at")
        for name in ("phone", "email"):
            self.columns[name] = labels.get(f"{name}s", name)
        if "currency" not in labels and "amount" in labels:
            self.columns["currency"] = labels["amount"]  # the sign in the amount named it

    def rows(self) -> Iterator[ImportRow]:
        for row in self.layout.sheet.rows:
            yield self.row(row)

    def cell(self, row: Row, name: str) -> Cell:
        position = self.layout.fields.get(name)
        if position is None or position >= len(row.cells):
            return None
        return row.cells[position]

    def row(self, row: Row) -> ImportRow:
        sheet = self.layout.sheet
        values = {
            header: text(row.cells[position]) if position < len(row.cells) else ""
            for position, header in enumerate(sheet.header)
            if header
        }
        problems: list[Problem] = []

        def problem(name: str, message: str) -> None:
            column = self.columns.get(name, name)
            problems.append(Problem(row.line, column, message, values.get(column, ""), sheet.name))

        for position, cell in enumerate(row.cells):
            if (position >= len(sheet.header) or not sheet.header[position]) and text(cell):
                problem(
                    f"column {position + 1}",
                    f"the value {text(cell)!r} is in a column without a name in the header",
                )
        occurred_at: datetime | None = None
        command: RegisterClient | RecordPurchase | None
        reference: ClientReference | None = None
        if self.layout.kind == "clients":
            command = self._client(row, problem)
            date_field = "registered_at"
        else:
            command, reference = self._purchase(row, problem)
            date_field = "occurred_at"
        cell = self.cell(row, date_field)
        if text(cell):
            try:
                occurred_at = parse_instant(
                    cell, field=date_field, order=self.layout.date_orders.get(date_field)
                )
            except InvalidValue as error:
                problem(date_field, error.message)
        elif date_field == "occurred_at" and "occurred_at" in self.layout.fields:
            problem("occurred_at", "the date of the purchase is required")
        return ImportRow(
            sheet=sheet.name,
            line=row.line,
            kind=self.layout.kind or "clients",
            command=command,
            envelope=replace(self.base, occurred_at=occurred_at),
            problems=tuple(problems),
            client=reference,
            columns=self.columns,
            values=values,
        )

    def _client(self, row: Row, problem: Callable[[str, str], None]) -> RegisterClient | None:
        name = text(self.cell(row, "name"))
        if not name and "name" in self.layout.fields:
            problem("name", "the name is required")
        kind_text = text(self.cell(row, "kind")).casefold() or "person"
        # Any other word goes to the domain as it is, to be refused there, naming the field.
        kind = CLIENT_KINDS.get(kind_text) or cast("ClientKind", kind_text)
        attributes = {
            key: value
            for key, position in self.layout.attributes.items()
            if position < len(row.cells) and (value := text(row.cells[position]))
        }
        return RegisterClient(
            name=name,
            kind=kind,
            company=text(self.cell(row, "company")) or None,
            phones=tuple(split_values(text(self.cell(row, "phones")))),
            emails=tuple(split_values(text(self.cell(row, "emails")))),
            address=text(self.cell(row, "address")) or None,
            channel=text(self.cell(row, "channel")) or None,
            attributes=attributes,
            owner_id=text(self.cell(row, "owner")) or None,
        )

    def _purchase(
        self, row: Row, problem: Callable[[str, str], None]
    ) -> tuple[RecordPurchase | None, ClientReference | None]:
        reference = None
        for name, kind in _REFERENCES:  # the first of id, phone and email the row gives
            if value := text(self.cell(row, name)):
                first = value if kind == "client_id" else split_values(value)[0]
                reference = ClientReference(kind, first)
                break
        else:
            present = [name for name, _ in _REFERENCES if name in self.layout.fields]
            if present:
                problem(present[0], "the client is missing (give their id, phone or email)")
        amount = cost = None
        currency = text(self.cell(row, "currency")).upper() or None
        cell = self.cell(row, "amount")
        if not text(cell):
            if "amount" in self.layout.fields:
                problem("amount", "the amount is required")
        else:
            try:
                amount, sign = parse_amount(cell, field="amount")
                currency = currency or sign
            except InvalidValue as error:
                problem("amount", error.message)
        cost_cell = self.cell(row, "cost")
        if text(cost_cell):
            try:
                cost, _ = parse_amount(cost_cell, field="cost")
            except InvalidValue as error:
                problem("cost", error.message)
        else:
            cost = Decimal(0)
        if amount is None or cost is None:
            return None, reference
        command = RecordPurchase(
            client_id=_PLACEHOLDER, amount=amount, currency=currency or self.books, cost=cost
        )
        return command, reference


# ---------------------------------------------------------------------- reports


@dataclass(frozen=True)
class ImportReport:
    """What an import did, for the command line and the API. ``problems`` and not
    ``recorded``: nothing was recorded; with ``skip_invalid`` the good rows were."""

    kinds: tuple[ImportKind, ...]
    sha256: str
    rows: int
    outcome: ImportOutcome
    dry_run: bool = False
    skip_invalid: bool = False
    workbook: Workbook | None = None
    layouts: tuple[Layout, ...] = ()

    @property
    def kind(self) -> ImportKind | None:
        return self.kinds[0] if len(self.kinds) == 1 else None

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self.outcome.problems

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def recorded(self) -> bool:
        return self.outcome.recorded

    @property
    def already_imported(self) -> bool:
        return self.outcome.already_imported

    @property
    def failed_while_recording(self) -> bool:
        return self.outcome.failed_while_recording

    @property
    def position(self) -> int | None:
        return self.outcome.position

    @property
    def correlation_id(self) -> str:
        return correlation_id(self.sha256)

    def counts(self) -> dict[str, int]:
        """Rows accepted per kind (recorded, or recordable on a dry run)."""
        return dict(self.outcome.counts)

    @property
    def ids(self) -> tuple[UUID, ...]:
        """The client of each accepted row, in the order of the rows."""
        return self.outcome.ids

    @property
    def lines(self) -> tuple[int, ...]:
        """The line of each accepted row."""
        return tuple(line for _, line in self.outcome.accepted)

    def as_dict(self) -> dict[str, object]:
        """The report as JSON (``POST /imports``)."""
        return {
            "kinds": list(self.kinds),
            "sha256": self.sha256,
            "correlation_id": self.correlation_id,
            "rows": self.rows,
            "accepted": self.counts(),
            "rejected": len(self.outcome.rejected),
            "recorded": self.recorded,
            "dry_run": self.dry_run,
            "already_imported": self.already_imported,
            "failed_while_recording": self.failed_while_recording,
            "position": self.position,
            "problems": [
                {
                    "sheet": p.sheet or None,
                    "line": p.line,
                    "column": p.field,
                    "value": p.value,
                    "message": p.message,
                }
                for p in self.problems
            ],
        }

    def write_problems(self, path: Path) -> None:
        """Every problem as CSV (UTF-8 with a byte-order mark, so Excel reads it)."""
        with path.open("w", encoding="utf-8-sig", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["sheet", "line", "column", "value", "problem"])
            for p in self.problems:
                writer.writerow([p.sheet, p.line or "", p.field, p.value, p.message])

    def write_rejects(self, path: Path) -> list[Path]:
        """The rejected rows, unchanged, with a ``problem`` column, one CSV per sheet
        that has any (``path`` itself for the first; ``<stem>-<sheet><suffix>`` for
        others): fix them and import the file again. The paths written."""
        if self.workbook is None:
            return []
        rejected = set(self.outcome.rejected)
        reasons: dict[tuple[str, int], list[str]] = {}
        for p in self.problems:
            if p.line is not None:
                reasons.setdefault((p.sheet, p.line), []).append(
                    f"{p.field}: {p.message}" if p.field else p.message
                )
        written: list[Path] = []
        delimiter = self.workbook.delimiter or ","
        for sheet in self.workbook.sheets:
            rows = [row for row in sheet.rows if (sheet.name, row.line) in rejected]
            if not rows:
                continue
            target = (
                path
                if not written
                else path.with_name(f"{path.stem}-{_file_safe(sheet.name)}{path.suffix}")
            )
            with target.open("w", encoding="utf-8-sig", newline="") as file:
                writer = csv.writer(file, delimiter=delimiter)
                writer.writerow([*sheet.header, REJECTS_COLUMN])
                width = len(sheet.header)
                for row in rows:
                    cells = [text(cell) for cell in row.cells][:width]
                    cells += [""] * (width - len(cells))
                    writer.writerow([*cells, "; ".join(reasons.get((sheet.name, row.line), []))])
            written.append(target)
        return written


def _file_safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name) or "sheet"


def correlation_id(sha256: str) -> str:
    """Every event of one file shares this correlation id."""
    return f"import:{sha256[:12]}"


# --------------------------------------------------------------------- importing


def import_file(
    app: CrmApplication,
    source: bytes | Path,
    *,
    kind: ImportKind | None = None,
    actor: str = DEFAULT_ACTOR,
    dry_run: bool = False,
    skip_invalid: bool = False,
    options: Options | None = None,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Read a workbook or CSV file, map its rows, check them with the command handlers
    and record them: all in one transaction, or none (or, with ``skip_invalid``, the
    good ones). Every event is attributed to ``actor`` (role ``admin``, source
    ``import``), shares one correlation id per file and carries the row's business
    date. The same file imported again records nothing. Raises ``ImportFileError``
    for a file that cannot be read, ``InvalidValue`` for an empty ``actor``."""
    options = options or Options(kind=kind, actor=actor, dry_run=dry_run, skip_invalid=skip_invalid)
    data = source.read_bytes() if isinstance(source, Path) else source
    workbook = read(data, sheets=options.sheets)
    sha256 = sha256_of(data)
    base = Envelope(
        actor_id=options.actor,
        actor_role="admin",
        source="import",
        correlation_id=correlation_id(sha256),
    )
    layouts = [layout(sheet, options) for sheet in workbook.sheets]
    if len(workbook.sheets) > 1 and not options.sheets:
        # Sheets that are clearly neither kind (notes, totals) are left out of a workbook.
        layouts = [r for r in layouts if r.kind is not None] or layouts
    for result in layouts:
        settle_date_orders(result, options)
    order = {"clients": 0, "purchases": 1, None: 2}
    layouts.sort(key=lambda r: order[r.kind])
    kinds = tuple(dict.fromkeys(r.kind for r in layouts if r.kind is not None))
    header_problems = [p for r in layouts for p in r.problems]
    rows = sum(len(r.sheet.rows) for r in layouts)

    def report(outcome: ImportOutcome) -> ImportReport:
        return ImportReport(
            kinds,
            sha256,
            rows,
            outcome,
            options.dry_run,
            options.skip_invalid,
            workbook,
            tuple(layouts),
        )

    if header_problems:
        return report(ImportOutcome(rows=rows, problems=tuple(header_problems)))
    mappers = [_Mapper(r, base, app.settings.currency) for r in layouts]

    def mapped() -> Iterator[ImportRow]:
        for mapper in mappers:
            yield from mapper.rows()

    return report(
        import_rows(
            app,
            mapped,
            sha256=sha256,
            country=options.country,
            dry_run=options.dry_run,
            skip_invalid=options.skip_invalid,
            total=rows,
            progress=progress,
        )
    )
