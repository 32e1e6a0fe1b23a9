"""CSV import: a file of clients or of purchases, recorded all together or not at all.

Three steps, so the command line can show a report and a progress bar, and tests can
look at each one:

* ``read_table(data)`` decodes UTF-8 (a byte-order mark is allowed) and splits the CSV
  into a header and rows, each with the line it starts on (the header is line 1);
* ``plan_import(app, table, ...)`` turns each row into a command and its envelope,
  collecting *every* problem of *every* row (column + message), duplicates within
  the file and contact points that already belong to a client;
* ``import_file(app, data, ...)`` does both and, if no row has a problem, records all
  the commands with ``CrmApplication.execute_many`` in one transaction keyed by the
  file's SHA-256, so importing the same file again records nothing.

Values are checked by the domain's own functions (``domain.values``) and, once a row
looks right, by a dry run of the domain command itself, so the import never accepts
what the domain would refuse nor invents rules of its own.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar, get_args
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from application.app import CommandResult, CrmApplication
from application.clients import RecordPurchase, RegisterClient
from application.errors import (
    ApplicationError,
    DuplicateContact,
    IdempotencyKeyReused,
    NotFound,
    UnknownUser,
)
from application.phones import parse_phone
from domain.client import ATTRIBUTE_PREFIX, CLIENT_KINDS, Client
from domain.envelope import Envelope, recording, utc_now
from domain.errors import DomainError, InvalidValue
from domain.values import (
    MAX_SHORT_TEXT,
    check_amount,
    check_currency,
    check_slug,
    normalise_email,
    normalise_name,
    normalise_text,
)

P = ParamSpec("P")
T = TypeVar("T")

ImportKind = Literal["clients", "purchases"]
IMPORT_KINDS: tuple[str, ...] = get_args(ImportKind)

DEFAULT_ACTOR = "import"
SEPARATOR = ";"
"""Separates several phones or emails in one cell."""
ATTRIBUTE_COLUMN = "attr."
"""A column ``attr.<key>`` holds the custom attribute ``<key>``."""
IMPORT_SCOPE = "import"
"""Idempotency keys of imported files belong to no actor: a file is imported once."""

CLIENT_COLUMNS = (
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
CLIENT_REFERENCES = ("client_id", "phone", "email")
"""The ways a purchase row names its client; each row uses exactly one."""
PURCHASE_COLUMNS = (*CLIENT_REFERENCES, "amount", "cost", "currency", "occurred_at")
_CONTACT_COLUMNS = {"phone": "phones", "email": "emails"}

ProgressCallback = Callable[[str, int, int | None], None]
"""``(stage, done, total)``: stage is ``"validating"`` or ``"recording"``; ``total`` is
``None`` while recording, which happens in one transaction with nothing to count."""


class ImportFileError(Exception):
    """The file cannot be read as a CSV table at all (not UTF-8, broken quoting, empty)."""


@dataclass(frozen=True)
class Problem:
    """Why a row (or the file) cannot be imported: the line it is on (the header is
    line 1; ``None`` when no line can be blamed), the column, and what is wrong."""

    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = "file" if self.line is None else f"line {self.line}"
        return (
            f"{where}, {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


@dataclass(frozen=True)
class Row:
    line: int
    """The line the row starts on (a quoted value may span several lines)."""
    cells: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A CSV file split into cells: header names lower-cased and trimmed, values trimmed,
    blank lines left out."""

    sha256: str
    header: tuple[str, ...]
    header_line: int
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class PlannedCommand:
    """One row's command, ready for ``execute_many``, and what it was read from."""

    line: int
    command: RegisterClient | RecordPurchase
    envelope: Envelope
    contacts: frozenset[tuple[str, str]] = frozenset()
    """``("phone", "+49…")`` / ``("email", "…")`` a new client claims."""
    reference: str = ""
    """The column a purchase found its client by."""


@dataclass(frozen=True)
class ImportPlan:
    kind: ImportKind | None
    sha256: str
    rows: int
    commands: tuple[PlannedCommand, ...]
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ImportReport:
    """What an import did. ``problems`` empty and ``recorded`` true: every row was
    recorded; ``problems`` non-empty: nothing was."""

    kind: ImportKind | None
    sha256: str
    rows: int
    problems: tuple[Problem, ...] = ()
    results: tuple[CommandResult, ...] = ()
    lines: tuple[int, ...] = ()
    """The line of each result."""
    recorded: bool = False
    already_imported: bool = False
    """The same file (by SHA-256) was imported before by the same actor; nothing new
    was recorded, and ``results`` are the first import's when they could be replayed."""
    dry_run: bool = False
    failed_while_recording: bool = False
    """Every row was valid, yet recording was refused (a phone registered meanwhile by
    someone else, an owner revoked meanwhile); nothing was recorded."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def position(self) -> int | None:
        """The store position of the import's last event (read your writes)."""
        return self.results[-1].position if self.results else None

    @property
    def correlation_id(self) -> str:
        return correlation_id(self.sha256)


def correlation_id(sha256: str) -> str:
    """Every event of one file shares this correlation id."""
    return f"import:{sha256[:12]}"


def idempotency_key(sha256: str) -> str:
    """The file's content is its identity: the same bytes are the same import."""
    return f"sha256:{sha256}"


# ------------------------------------------------------------------------ reading


def read_table(data: bytes) -> Table:
    """Split a UTF-8 CSV file (comma-separated, ``"`` quoting) into header and rows.

    Raises ``ImportFileError`` for a file that is not UTF-8, is not CSV, or is empty.
    """
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ImportFileError(
            f"the file is not valid UTF-8 (byte 0x{data[error.start]:02x} on line {line}); "
            "save it as UTF-8 (in a spreadsheet: CSV UTF-8) and import it again"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: tuple[str, ...] | None = None
    header_line = 1
    rows: list[Row] = []
    start = 1
    try:
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header, header_line = tuple(cell.strip().lower() for cell in cells), line
            else:
                rows.append(Row(line, tuple(cell.strip() for cell in cells)))
    except csv.Error as error:
        raise ImportFileError(f"line {start} is not valid CSV: {error}") from None
    if header is None:
        raise ImportFileError("the file is empty: no header line, nothing to import")
    return Table(sha256, header, header_line, tuple(rows))


def detect_kind(header: Sequence[str]) -> ImportKind | None:
    """A ``name`` column makes a clients file, an ``amount`` column a purchases file;
    ``None`` when the header has both or neither."""
    names = {name.strip().lower() for name in header}
    if "name" in names and "amount" not in names:
        return "clients"
    if "amount" in names and "name" not in names:
        return "purchases"
    return None


def split_values(cell: str) -> list[str]:
    """Several phones or emails in one cell: ``+4930111;+4930222``."""
    return [part.strip() for part in cell.split(SEPARATOR) if part.strip()]


def parse_instant(text: str, *, field: str) -> datetime:
    """A business date: ``2021-03-04`` is midnight UTC that day; an ISO 8601 instant
    (``2021-03-04T10:15:00+01:00``, ``…Z``) is that instant, and UTC when it names no
    offset. It may not lie in the future."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue(
            f"{text!r} is not an ISO date (2021-03-04) or instant (2021-03-04T10:15:00Z)",
            field=field,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    if parsed > utc_now():
        raise InvalidValue(f"{text} is in the future", field=field)
    return parsed


def normalise_phone(raw: str, *, field: str) -> str:
    return parse_phone(raw, country=None, field=field)


def parse_decimal(text: str, *, field: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise InvalidValue(
            f"{text!r} is not a number (write decimals with a dot: 1234.50)", field=field
        ) from None


# ----------------------------------------------------------------------- planning


class _RowProblems:
    """The problems of one row, and the translation of a domain error's field into
    the column it came from."""

    def __init__(self, line: int, columns: Mapping[str, str]) -> None:
        self.line = line
        self.columns = columns
        self.problems: list[Problem] = []

    def add(self, column: str, message: str) -> None:
        self.problems.append(Problem(self.line, column, message))

    def check(
        self, column: str, check: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T | None:
        """``check(*args, **kwargs)``, or ``None`` with the domain's refusal noted."""
        try:
            return check(*args, **kwargs)
        except DomainError as error:
            self.add(self.column(error.field, column), error.message)
            return None

    def column(self, domain_field: str | None, default: str) -> str:
        return _column(domain_field, self.columns, default)


def _column(domain_field: str | None, columns: Mapping[str, str], default: str) -> str:
    """The column a domain error's field was read from."""
    if domain_field is None:
        return default
    if domain_field.startswith(ATTRIBUTE_PREFIX):
        return ATTRIBUTE_COLUMN + domain_field.removeprefix(ATTRIBUTE_PREFIX)
    return columns.get(domain_field, domain_field)


class _Planner:
    """Reads the header, then each row; subclasses know one kind of file."""

    kind: ImportKind
    known: tuple[str, ...]
    required: tuple[str, ...]
    domain_fields: Mapping[str, str] = {}
    """Domain error fields whose column has another name."""

    def __init__(self, app: CrmApplication, table: Table, base: Envelope) -> None:
        self.app = app
        self.table = table
        self.base = base
        self.problems: list[Problem] = []
        self.index: dict[str, int] = {}
        self._read_header()

    def plan(self, progress: ProgressCallback | None) -> ImportPlan:
        commands: list[PlannedCommand] = []
        total = len(self.table.rows)
        for done, row in enumerate(self.table.rows, 1):
            problems = _RowProblems(row.line, self.domain_fields)
            self._check_unnamed_values(row, problems)
            planned = self._row(row, self._cells(row), problems)
            if planned is not None and not problems.problems:
                commands.append(planned)
            self.problems.extend(problems.problems)
            if progress:
                progress("validating", done, total)
        self._after_rows()
        return ImportPlan(
            kind=self.kind,
            sha256=self.table.sha256,
            rows=total,
            commands=tuple(commands),
            problems=tuple(sorted(self.problems, key=lambda p: p.line or 0)),
        )

    # ---------------------------------------------------------------- the header

    def _read_header(self) -> None:
        line = self.table.header_line
        for position, name in enumerate(self.table.header):
            if not name:
                continue  # values under a nameless column are refused row by row
            if name in self.index:
                self.problems.append(Problem(line, name, "the column appears twice"))
            elif self._known(name, line):
                self.index[name] = position
        for name in self.required:
            if name not in self.index:
                self.problems.append(Problem(line, name, "this column is required"))

    def _known(self, name: str, line: int) -> bool:
        if name in self.known:
            return True
        hint = self._hint(name)
        self.problems.append(
            Problem(
                line,
                name,
                f"unknown column{hint}; the columns of a {self.kind} file are: "
                + ", ".join(self._all_columns()),
            )
        )
        return False

    def _hint(self, name: str) -> str:
        if SEPARATOR in name or "\t" in name:
            return " (the file seems not to be comma-separated; save it as CSV with commas)"
        close = difflib.get_close_matches(name, self.known, n=1, cutoff=0.75)
        return f" (did you mean {close[0]!r}?)" if close else ""

    def _all_columns(self) -> tuple[str, ...]:
        return self.known

    # ------------------------------------------------------------------ the rows

    def _cells(self, row: Row) -> Callable[[str], str]:
        def cell(name: str) -> str:
            position = self.index.get(name)
            if position is None or position >= len(row.cells):
                return ""
            return row.cells[position]

        return cell

    def _check_unnamed_values(self, row: Row, problems: _RowProblems) -> None:
        header = self.table.header
        for position, value in enumerate(row.cells):
            if value and (position >= len(header) or not header[position]):
                problems.add(
                    f"column {position + 1}",
                    f"the value {value!r} is in a column without a name in the header",
                )

    def _envelope(self, occurred_at: datetime | None) -> Envelope:
        return replace(self.base, occurred_at=occurred_at)

    def _row(
        self, row: Row, cell: Callable[[str], str], problems: _RowProblems
    ) -> PlannedCommand | None:
        raise NotImplementedError

    def _after_rows(self) -> None:
        """Checks across rows, once every row was read."""


class _ClientPlanner(_Planner):
    kind = "clients"
    known = CLIENT_COLUMNS
    required = ("name",)
    domain_fields = {"occurred_at": "registered_at", "owner_id": "owner", "attributes": "attr"}

    def __init__(
        self, app: CrmApplication, table: Table, base: Envelope, *, check_store: bool
    ) -> None:
        self.check_store = check_store
        self.lines_by_contact: dict[tuple[str, str], list[int]] = {}
        super().__init__(app, table, base)

    def _known(self, name: str, line: int) -> bool:
        if not name.startswith(ATTRIBUTE_COLUMN):
            return super()._known(name, line)
        try:
            check_slug(name.removeprefix(ATTRIBUTE_COLUMN), field=name)
        except InvalidValue as error:
            self.problems.append(Problem(line, name, error.message))
            return False
        return True

    def _all_columns(self) -> tuple[str, ...]:
        return (*self.known, f"{ATTRIBUTE_COLUMN}<key>")

    def _row(
        self, row: Row, cell: Callable[[str], str], problems: _RowProblems
    ) -> PlannedCommand | None:
        name = None
        if "name" in self.index:  # else the header's problem, not every row's
            name = problems.check("name", normalise_name, cell("name"))
        kind = cell("kind") or "person"
        if kind not in CLIENT_KINDS:
            problems.add("kind", f"{kind!r} is not one of: {', '.join(CLIENT_KINDS)}")
        texts = {
            column: problems.check(
                column, normalise_text, cell(column), field=column, limit=MAX_SHORT_TEXT
            )
            for column in ("company", "address", "channel")
        }
        phones = self._contacts(row.line, "phone", cell("phones"), problems)
        emails = self._contacts(row.line, "email", cell("emails"), problems)
        owner = cell("owner") or None
        if owner is not None and not self.app.staff.can_own_clients(owner):
            problems.add("owner", f"{owner!r} is not an active manager or admin")
        registered_at = None
        if cell("registered_at"):
            registered_at = problems.check(
                "registered_at", parse_instant, cell("registered_at"), field="registered_at"
            )
        attributes = {
            column.removeprefix(ATTRIBUTE_COLUMN): cell(column)
            for column in self.index
            if column.startswith(ATTRIBUTE_COLUMN) and cell(column)
        }
        if problems.problems or name is None:
            return None
        command = RegisterClient(
            name=name,
            kind=kind,
            company=texts["company"] or None,
            phones=phones,
            emails=emails,
            address=texts["address"] or None,
            channel=texts["channel"] or None,
            attributes=attributes,
            owner_id=owner,
        )
        envelope = self._envelope(registered_at)
        with recording(envelope):  # the domain has the last word on every rule
            problems.check("", _register, command)
        contacts = frozenset([("phone", p) for p in phones] + [("email", e) for e in emails])
        return PlannedCommand(row.line, command, envelope, contacts)

    def _contacts(self, line: int, kind: str, cell: str, problems: _RowProblems) -> tuple[str, ...]:
        """The cell's phones or emails, normalised; each bad one, each one also on
        another line, and each one already a client's is a problem of its own."""
        column = _CONTACT_COLUMNS[kind]
        normalise = normalise_phone if kind == "phone" else normalise_email
        values: list[str] = []
        for raw in split_values(cell):
            value = problems.check(column, normalise, raw, field=column)
            if value is None or value in values:
                continue
            values.append(value)
            self.lines_by_contact.setdefault((kind, value), []).append(line)
            if self.check_store:
                digest = self.app.blind_index.digest(kind, value)
                if (owner := self.app.recorder.claim_owner(kind, digest)) is not None:
                    problems.add(column, f"{kind} {value} already belongs to client {owner}")
        return tuple(values)

    def _after_rows(self) -> None:
        """Rule: a phone or email belongs to at most one client, so two rows sharing
        one are both refused, each naming the other's line."""
        for (kind, value), lines in self.lines_by_contact.items():
            for line in lines if len(lines) > 1 else ():
                others = ", ".join(str(other) for other in lines if other != line)
                self.problems.append(
                    Problem(line, _CONTACT_COLUMNS[kind], f"{kind} {value} also on line {others}")
                )


def _register(command: RegisterClient) -> Client:
    return Client.register(
        name=command.name,
        kind=command.kind,
        company=command.company,
        phones=command.phones,
        emails=command.emails,
        address=command.address,
        channel=command.channel,
        attributes=command.attributes,
        owner_id=command.owner_id,
    )


class _PurchasePlanner(_Planner):
    kind = "purchases"
    known = PURCHASE_COLUMNS
    required = ("amount", "occurred_at")

    def __init__(self, app: CrmApplication, table: Table, base: Envelope) -> None:
        # Loaded once per file; each row's dry run adds its purchase to the same
        # object, as executing the rows in order will (never saved from here).
        self.clients: dict[UUID, Client | None] = {}
        self.holders: dict[tuple[str, str], UUID | None] = {}
        super().__init__(app, table, base)
        if not any(name in self.index for name in CLIENT_REFERENCES):
            self.problems.append(
                Problem(
                    table.header_line,
                    "",
                    "a purchases file needs a client_id, phone or email column",
                )
            )

    def _row(
        self, row: Row, cell: Callable[[str], str], problems: _RowProblems
    ) -> PlannedCommand | None:
        client, reference = self._client(cell, problems)
        amount = cost = None
        if not cell("amount"):
            if "amount" in self.index:  # else the header's problem, not every row's
                problems.add("amount", "the amount is required")
        elif (
            value := problems.check("amount", parse_decimal, cell("amount"), field="amount")
        ) is not None:
            amount = problems.check("amount", check_amount, value, field="amount")
        value = problems.check("cost", parse_decimal, cell("cost") or "0", field="cost")
        if value is not None:
            cost = problems.check("cost", check_amount, value, field="cost", allow_zero=True)
        books = self.app.settings.currency
        currency = problems.check(
            "currency", check_currency, cell("currency") or books, books=books
        )
        occurred_at = None
        if not cell("occurred_at"):
            if "occurred_at" in self.index:
                problems.add("occurred_at", "the date of the purchase is required")
        else:
            occurred_at = problems.check(
                "occurred_at", parse_instant, cell("occurred_at"), field="occurred_at"
            )
        if (
            problems.problems
            or client is None
            or amount is None
            or cost is None
            or currency is None
            or occurred_at is None
        ):
            return None
        command = RecordPurchase(client_id=client.id, amount=amount, currency=currency, cost=cost)
        envelope = self._envelope(occurred_at)
        with recording(envelope):  # e.g. a purchase dated before the client's registration
            problems.check(
                reference,
                client.record_purchase,
                amount=amount,
                currency=currency,
                cost=cost,
                books_currency=books,
            )
        return PlannedCommand(row.line, command, envelope, reference=reference)

    def _client(
        self, cell: Callable[[str], str], problems: _RowProblems
    ) -> tuple[Client | None, str]:
        given = [name for name in CLIENT_REFERENCES if cell(name)]
        if len(given) != 1:
            present = [name for name in CLIENT_REFERENCES if name in self.index]
            if given:
                problems.add(
                    ", ".join(given), "give the client in one of these columns, not several"
                )
            elif present:
                problems.add(", ".join(present), "the client is missing")
            return None, ""
        (reference,) = given
        raw = cell(reference)
        if reference == "client_id":
            try:
                client_id = UUID(raw)
            except ValueError:
                problems.add(reference, f"{raw!r} is not a client id")
                return None, reference
        else:
            value = problems.check(
                reference,
                normalise_phone if reference == "phone" else normalise_email,
                raw,
                field=reference,
            )
            if value is None:
                return None, reference
            holder = self._holder(reference, value)
            if holder is None:
                problems.add(reference, f"no client has the {reference} {value}")
                return None, reference
            client_id = holder
        client = self._load(client_id)
        if client is None:
            problems.add(reference, f"no client {client_id}")
        return client, reference

    def _holder(self, kind: str, value: str) -> UUID | None:
        if (kind, value) not in self.holders:
            digest = self.app.blind_index.digest(kind, value)
            self.holders[(kind, value)] = self.app.recorder.claim_owner(kind, digest)
        return self.holders[(kind, value)]

    def _load(self, client_id: UUID) -> Client | None:
        if client_id not in self.clients:
            aggregate: object
            try:
                aggregate = self.app.repository.get(client_id)
            except AggregateNotFoundError:
                aggregate = None
            self.clients[client_id] = aggregate if isinstance(aggregate, Client) else None
        return self.clients[client_id]


def plan_import(
    app: CrmApplication,
    table: Table,
    *,
    kind: ImportKind | None = None,
    actor: str = DEFAULT_ACTOR,
    check_store: bool = True,
    progress: ProgressCallback | None = None,
) -> ImportPlan:
    """Every row's command and envelope, and every problem of every row.

    ``kind`` defaults from the header (``detect_kind``). ``check_store=False`` leaves
    out the check that a new client's phones and emails are nobody's yet (for a file
    already imported, whose clients hold them now).
    """
    kind = kind or detect_kind(table.header)
    if kind is None:
        message = (
            "cannot tell a clients file (it has a name column) from a purchases file "
            "(it has an amount column); say which with --kind"
        )
        if any(SEPARATOR in name or "\t" in name for name in table.header):
            message = "the file seems not to be comma-separated; save it as CSV with commas"
        problem = Problem(table.header_line, "", message)
        return ImportPlan(None, table.sha256, len(table.rows), (), (problem,))
    base = Envelope(
        actor_id=actor,
        actor_role="admin",
        source="import",
        correlation_id=correlation_id(table.sha256),
    )
    planner: _Planner
    if kind == "clients":
        planner = _ClientPlanner(app, table, base, check_store=check_store)
    else:
        planner = _PurchasePlanner(app, table, base)
    return planner.plan(progress)


# ---------------------------------------------------------------------- recording


def import_file(
    app: CrmApplication,
    source: bytes | Path,
    *,
    kind: ImportKind | None = None,
    actor: str = DEFAULT_ACTOR,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Validate every row of a clients or purchases CSV file, then record all of them
    in one transaction, or none.

    Every event is attributed to ``actor`` (role ``admin``, source ``import``), shares
    one correlation id per file, and carries the row's business date. The same file
    imported again, by anyone, records nothing (``already_imported``). With
    ``dry_run`` nothing is recorded. Raises ``ImportFileError`` for a file that cannot
    be read as CSV, and ``InvalidValue`` for an empty ``actor``.
    """
    data = source.read_bytes() if isinstance(source, Path) else source
    table = read_table(data)
    key = idempotency_key(table.sha256)
    first_import = app.recorder.idempotency_record(IMPORT_SCOPE, key) is None
    plan = plan_import(
        app, table, kind=kind, actor=actor, check_store=first_import, progress=progress
    )
    report = ImportReport(plan.kind, plan.sha256, plan.rows, dry_run=dry_run)
    if not first_import:
        replayed = () if dry_run else _replay(app, plan, key)
        return replace(report, already_imported=True, results=replayed, lines=_lines(plan))
    if not plan.ok:
        return replace(report, problems=plan.problems)
    if dry_run or not plan.commands:
        return report
    total = len(plan.commands)
    if progress:
        progress("recording", 0, None)
    try:
        results = app.execute_many(
            [(c.command, c.envelope) for c in plan.commands],
            idempotency_key=key,
            idempotency_scope=IMPORT_SCOPE,
        )
    except (DomainError, ApplicationError) as error:
        return replace(report, problems=_blame(error, plan), failed_while_recording=True)
    if progress:
        progress("recording", total, total)
    app.recorder.refresh_statistics()  # a large import can change much of the store
    raced = results[0].replayed  # a concurrent import of the same file won the race
    return replace(
        report,
        results=tuple(results),
        lines=_lines(plan),
        recorded=not raced,
        already_imported=raced,
    )


def _lines(plan: ImportPlan) -> tuple[int, ...]:
    return tuple(c.line for c in plan.commands)


def _replay(app: CrmApplication, plan: ImportPlan, key: str) -> tuple[CommandResult, ...]:
    """The first import's answers, when the file still reads as the same commands
    (it may not: a purchase's client found by phone may have changed since)."""
    if not plan.ok or not plan.commands:
        return ()
    try:
        results = app.execute_many(
            [(c.command, c.envelope) for c in plan.commands],
            idempotency_key=key,
            idempotency_scope=IMPORT_SCOPE,
        )
    except (DomainError, ApplicationError):
        return ()
    return tuple(results) if all(r.replayed for r in results) else ()


def _blame(error: DomainError | ApplicationError, plan: ImportPlan) -> tuple[Problem, ...]:
    """Recording refused a file whose rows were all valid (something changed since
    they were checked): name the rows the refusal is about where it can be told."""
    commands = plan.commands
    if isinstance(error, IdempotencyKeyReused):
        message = (
            "this file was imported before, but its rows now read as different commands "
            "(a client found by phone or email changed?); nothing was recorded"
        )
        return (Problem(None, "", message),)
    if isinstance(error, DuplicateContact):
        column = _CONTACT_COLUMNS.get(error.kind, error.kind)
        lines = [c.line for c in commands if (error.kind, error.value) in c.contacts]
    elif isinstance(error, UnknownUser):
        column = "owner"
        lines = [
            c.line
            for c in commands
            if isinstance(c.command, RegisterClient) and c.command.owner_id == error.user_id
        ]
    elif isinstance(error, NotFound):
        column = "client_id"
        lines = [
            c.line
            for c in commands
            if isinstance(c.command, RecordPurchase) and c.command.client_id == error.aggregate_id
        ]
    else:
        columns = _ClientPlanner.domain_fields if plan.kind == "clients" else {}
        column = _column(getattr(error, "field", None), columns, "")
        lines = []
    if not lines:
        return (Problem(None, column, error.message),)
    return tuple(Problem(line, column, error.message) for line in lines)
