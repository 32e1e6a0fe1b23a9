"""JSON encoding of event state with orjson."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from eventsourcing.persistence import Transcoder


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)  # exact: "10.50" stays "10.50"
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


class OrjsonTranscoder(Transcoder):
    """Encodes event state as compact UTF-8 JSON.

    orjson writes UUIDs, timezone-aware datetimes (RFC 3339), tuples and dataclasses
    natively; decimals become strings so no precision is lost. Decoding yields plain
    JSON values; the mapper turns them back into typed fields.
    """

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj, default=_default)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)
