"""JSON as every entry point writes it (the HTTP API's answers, the command line's
``--format json``): orjson, money as exact decimal strings, instants in UTC with ``Z``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact: money is a string in JSON
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any, *, indent: bool = False) -> bytes:
    option = orjson.OPT_UTC_Z | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(value, default=_default, option=option)
