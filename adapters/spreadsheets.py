"""Reading the files firms keep their clients in: workbooks (``.xlsx``, ``.xls``,
``.ods``, read by calamine) and delimited text (``.csv``, ``.tsv``, ``.txt``) in
whatever encoding and delimiter the spreadsheet that saved it chose.

The format is told from the file's first bytes, not its name (a file sent over HTTP
has none): a ZIP holding ``mimetype`` of an OpenDocument spreadsheet is ``.ods``,
another ZIP ``.xlsx``, an OLE2 compound file ``.xls``, anything else text. Text is
decoded by its byte-order mark (UTF-8, UTF-16, UTF-32) or, without one, as UTF-8 if
it is valid UTF-8, else as what ``charset-normalizer`` finds most likely among the
encodings spreadsheets save in (UTF-16, cp1251, cp1252, …). The delimiter is the one
of ``, ; TAB |`` that splits the header line into the most columns, and splits the
next lines as it does.

A sheet is its rows of cells with line numbers (a text file's lines, a workbook's
row numbers, both from 1); blank rows are left out. Workbook cells keep their type
(``str``, ``int``, ``float``, ``bool``, ``datetime``, ``date``, ``time``); text cells
are ``str``.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

from charset_normalizer import from_bytes
from python_calamine import CalamineWorkbook

Cell = str | int | float | bool | datetime | date | time | timedelta | None
Format = Literal["csv", "xlsx", "xls", "ods"]

DELIMITERS = (",", ";", "\t", "|")
TEXT_ENCODINGS = ["utf_8", "utf_16", "cp1251", "cp1252", "koi8_u", "cp866", "iso8859_15"]
"""What charset-normalizer chooses among for text without a byte-order mark."""
MEDIA_TYPES: dict[Format, str] = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xls": "application/vnd.ms-excel",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class FileError(Exception):
    """The file cannot be read as a table at all (broken, empty, not a spreadsheet)."""


@dataclass(frozen=True)
class Row:
    line: int
    """The file's line (a quoted value may span several) or the workbook's row number."""
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Sheet:
    name: str
    """The workbook sheet's name; empty for a text file."""
    header: tuple[str, ...]
    header_line: int
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Workbook:
    format: Format
    sheets: tuple[Sheet, ...]
    encoding: str | None = None
    """A text file's encoding as decoded."""
    delimiter: str | None = None
    """A text file's delimiter."""


def file_format(data: bytes) -> Format:
    """What the file is, from its first bytes."""
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
                if "mimetype" in names and archive.read("mimetype").startswith(
                    b"application/vnd.oasis.opendocument.spreadsheet"
                ):
                    return "ods"
                if "[Content_Types].xml" in names:
                    return "xlsx"
        except zipfile.BadZipFile:
            raise FileError("the file looks like a workbook but is damaged") from None
        raise FileError("the file is a ZIP archive, not a workbook (.xlsx, .ods) or CSV")
    if data.startswith(_OLE2):
        return "xls"
    return "csv"


def read(data: bytes, *, sheets: Sequence[str] = ()) -> Workbook:
    """Every sheet of a workbook (or only those named), or the one table of a text
    file. Raises ``FileError`` when it cannot be read."""
    kind = file_format(data)
    if kind == "csv":
        return read_text(data)
    return _read_workbook(data, kind, sheets)


def _read_workbook(data: bytes, kind: Format, wanted: Sequence[str]) -> Workbook:
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except Exception as error:  # noqa: BLE001 - calamine raises its own error types
        raise FileError(f"the {kind} workbook cannot be read: {error}") from None
    names = list(workbook.sheet_names)
    missing = [name for name in wanted if name not in names]
    if missing:
        raise FileError(
            f"no sheet {', '.join(map(repr, missing))}; the sheets are: {', '.join(names)}"
        )
    sheets = []
    for name in wanted or names:
        rows = workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)
        sheet = _sheet(name, ((number, tuple(cells)) for number, cells in enumerate(rows, 1)))
        if sheet is not None:
            sheets.append(sheet)
    return Workbook(kind, tuple(sheets))


def read_text(data: bytes) -> Workbook:
    """A delimited text file: its encoding and delimiter found, its cells as text."""
    text, encoding = decode(data)
    delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    numbered: list[tuple[int, tuple[Cell, ...]]] = []
    start = 1
    try:
        for cells in reader:
            line, start = start, reader.line_num + 1
            numbered.append((line, tuple(cells)))
    except csv.Error as error:
        raise FileError(f"line {start} is not valid CSV: {error}") from None
    sheet = _sheet("", iter(numbered))
    if sheet is None:
        raise FileError("the file is empty: no header line, nothing to import")
    return Workbook("csv", (sheet,), encoding=encoding, delimiter=delimiter)


def decode(data: bytes) -> tuple[str, str]:
    """The text and the name of its encoding."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding), encoding
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if not _controls(text):
            return text, "utf-8"
    readings = []
    for encoding in ("utf-16-le", "utf-16-be"):  # UTF-16 without its mark
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if not _controls(text) and _alphabetic(text):
            readings.append((text, encoding))
    if len(readings) == 1:
        return readings[0]
    best = from_bytes(data, cp_isolation=TEXT_ENCODINGS).best()
    if best is None:
        raise FileError(
            "the file's encoding cannot be told (not UTF-8, UTF-16, cp1251 or cp1252); "
            "save it as CSV UTF-8 and import it again"
        )
    return str(best), best.encoding


def _controls(text: str) -> int:
    """Control characters no spreadsheet writes in text (NUL, and the like): many of
    them mean the bytes were read in the wrong encoding (UTF-16 as UTF-8)."""
    return sum(1 for ch in text[:4096] if ch < " " and ch not in "\t\r\n")


def _alphabetic(text: str) -> bool:
    """Nearly all of it in the Latin, Greek and Cyrillic blocks, as a table of names and
    numbers is (bytes of another encoding read as UTF-16 give Chinese-looking text)."""
    sample = text[:4096]
    return sum(1 for ch in sample if ch < "\u0530" or ch.isspace()) >= 0.95 * len(sample)


def sniff_delimiter(text: str) -> str:
    """The delimiter among ``, ; TAB |`` that splits the first non-blank line into the
    most columns, ties decided by how evenly it splits the next lines."""
    lines = [line for line in text.splitlines() if line.strip()][:20]
    if not lines:
        return ","

    def score(delimiter: str) -> tuple[int, int]:
        rows = list(csv.reader(lines, delimiter=delimiter))
        width = len(rows[0]) if rows else 0
        steady = sum(1 for row in rows[1:] if len(row) == width)
        return width, steady

    best = max(DELIMITERS, key=score)
    return best if score(best)[0] > 1 else ","


def _sheet(name: str, rows: object) -> Sheet | None:
    header: tuple[str, ...] | None = None
    header_line = 0
    kept: list[Row] = []
    for line, cells in rows:  # type: ignore[attr-defined]
        if not any(_filled(cell) for cell in cells):
            continue
        if header is None:
            header, header_line = tuple(_header_name(cell) for cell in cells), line
        else:
            kept.append(Row(line, _trim(cells)))
    if header is None:
        return None
    while header and not header[-1]:
        header = header[:-1]
    return Sheet(name, header, header_line, tuple(kept))


def _filled(cell: Cell) -> bool:
    return cell is not None and (not isinstance(cell, str) or bool(cell.strip()))


def _header_name(cell: Cell) -> str:
    return "" if cell is None else str(cell).strip()


def _trim(cells: tuple[Cell, ...]) -> tuple[Cell, ...]:
    trimmed = tuple(cell.strip() if isinstance(cell, str) else cell for cell in cells)
    end = len(trimmed)
    while end and not _filled(trimmed[end - 1]):
        end -= 1
    return trimmed[:end]
