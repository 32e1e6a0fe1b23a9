"""Query parameters the routes share: instants, read as the command line reads them
(``api.instants``) and documented as what they accept; a page's limit and cursor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from litestar.exceptions import ClientException
from litestar.openapi.spec import Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.params import Parameter
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from adapters.read_models.paging import decode_cursor
from api.instants import is_projection, parse_instant

T = TypeVar("T")

Limit = Parameter(default=50, ge=1, le=500, description="The most items the page holds")
"""The ``limit`` of every paged read."""
Cursor = Parameter(
    default=None, max_length=200, description="The `next_cursor` of the previous page"
)
"""The ``cursor`` of every paged read."""


def after_cursor(cursor: str | None, parts: int, read: Callable[[list[str]], T]) -> T | None:
    """The sort key a page's ``cursor`` holds (``parts`` values, turned into the
    key's types by ``read``); ``None`` for the first page, a 400 for a cursor that
    no page made."""
    if cursor is None:
        return None
    try:
        return read(decode_cursor(cursor, parts))
    except ValueError:
        raise ClientException(f"malformed cursor {cursor!r}") from None


class Instant(datetime):
    """A query parameter holding an instant: ISO 8601, UTC without an offset, a date
    alone meaning its midnight UTC. Only the parameter's type: ``plain`` turns it into
    the ``datetime`` the rest of the product takes."""


def _decode_instant(_: type[Any], value: Any) -> Instant:
    parsed = parse_instant(str(value))
    return Instant.combine(parsed.date(), parsed.timetz())


INSTANT_DECODER = (lambda kind: kind is Instant, _decode_instant)
"""The app's ``type_decoders`` entry reading ``Instant`` parameters."""


class InstantSchema(OpenAPISchemaPlugin):
    """``Instant`` in the OpenAPI document: a date-time or a date."""

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        return value is Instant

    def to_openapi_schema(
        self,
        field_definition: FieldDefinition,  # noqa: ARG002 - the plugin interface's
        schema_creator: Any,  # noqa: ARG002
    ) -> Schema:
        return Schema(
            any_of=[
                Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
                Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE),
            ],
            description=(
                "An ISO 8601 instant (`2026-03-01T09:30:00Z`; UTC if it has no offset) or a "
                "date (`2026-03-01`: its midnight UTC)"
            ),
        )


def plain(value: datetime | None) -> datetime | None:
    """``value`` as a plain ``datetime`` (what JSON and the stores take)."""
    if value is None or type(value) is datetime:
        return value
    return datetime.combine(value.date(), value.timetz())


def at_or_now(value: datetime | None, now: datetime) -> datetime:
    """The instant asked for, or ``now``."""
    return plain(value) or now


AsOf = Parameter(
    default=None,
    description=(
        "The instant the answer is as of (default: now). Later than now, the answer is a "
        "projection, marked `projected`: today's facts carried forward (a client who buys "
        "nothing until then is counted dead by then), nothing yet to be recorded in it"
    ),
)
"""The ``as_of`` of every read of figures at an instant."""


def as_of_now(value: datetime | None) -> tuple[datetime, bool]:
    """The instant a read is as of (now if not given), and whether the answer is a
    projection (``api.instants.is_projection``)."""
    now = datetime.now(UTC)
    at = at_or_now(value, now)
    return at, is_projection(at, now)
