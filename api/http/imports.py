"""``POST /imports``: a spreadsheet uploaded as the request's body, imported as
``crm import`` imports it, answered with the same report as JSON."""

from __future__ import annotations

from typing import Any, Literal

import anyio
from litestar import Request, post
from litestar.exceptions import ClientException, ValidationException
from litestar.params import Parameter

from adapters.csv_import import ImportFileError, Options, import_file
from adapters.spreadsheets import MEDIA_TYPES
from api.http.auth import requires
from api.http.contract import documented
from api.http.support import crm_of, principal
from application.access import Permission
from application.phones import SUPPORTED_COUNTRIES

MAX_IMPORT_BYTES = 20 * 1024 * 1024
"""The largest file ``POST /imports`` takes (20 MiB); larger: ``crm import``."""
IMPORT_MEDIA_TYPES = frozenset(
    {
        *MEDIA_TYPES.values(),
        "text/tab-separated-values",
        "text/plain",
        "application/octet-stream",
    }
)


@post(
    "/imports",
    guards=[requires(Permission.ADMIN)],
    status_code=200,
    request_max_body_size=MAX_IMPORT_BYTES,
    summary="Import clients and purchases from a spreadsheet",
    opt=documented(
        {
            400: "the file is empty, or cannot be read",
            413: f"the file is over {MAX_IMPORT_BYTES // 2**20} MiB (import it with `crm import`)",
            415: "the body is not CSV text or a workbook's media type",
        },
        command=False,  # recorded once per file, whatever the Idempotency-Key
        body_media_types=IMPORT_MEDIA_TYPES,
    ),
)
async def import_spreadsheet(
    request: Request[Any, Any, Any],
    kind: Literal["clients", "purchases"] | None = Parameter(default=None),
    dry_run: bool = Parameter(default=False),
    skip_invalid: bool = Parameter(default=False),
    country: str | None = Parameter(default=None, max_length=2),
    date_format: Literal["DMY", "MDY", "YMD"] | None = Parameter(default=None),
    sheet: list[str] | None = Parameter(default=None),
) -> dict[str, Any]:
    """The body is the file: `text/csv` (any common delimiter and encoding) or a
    workbook (`.xlsx`, `.xls`, `.ods` media types). Every row is checked by the
    command handlers; all rows are recorded in one transaction, or none (`problems`
    lists each, with its sheet, line, column and value), or with `skip_invalid` the
    good ones. Recorded with source `import`, attributed to the caller. The same file
    again records nothing (`already_imported`)."""
    if country and country.upper() not in SUPPORTED_COUNTRIES:
        message = f"{country!r} is not a country code (UA, DE…)"
        raise ValidationException(extra=[{"key": "country", "message": message, "source": "query"}])
    data = await request.body()
    if not data:
        raise ClientException("the request's body is the file to import; it is empty")
    crm = crm_of(request)
    options = Options(
        kind=kind,
        actor=principal(request).user_id,
        sheets=tuple(sheet or ()),
        country=country.upper() if country else None,
        date_format=date_format,
        dry_run=dry_run,
        skip_invalid=skip_invalid,
    )
    try:
        report = await anyio.to_thread.run_sync(lambda: import_file(crm.app, data, options=options))
    except ImportFileError as error:
        raise ClientException(f"the file cannot be read: {error}") from None
    return report.as_dict()
