"""Query parameter types the routes share: instants, read as the command line reads
them (``api.instants``), and documented as what they accept."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar.openapi.spec import Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from api.instants import parse_instant


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
