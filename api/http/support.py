"""What every route shares: the envelope of a request, idempotency keys, ETags,
read-your-writes, and JSON rendering with orjson."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.exceptions import ClientException, HTTPException
from litestar.params import Parameter

from adapters.read_models import registry
from adapters.sql import Query, Reads, Rows
from api.bootstrap import Crm
from api.http.problems import correlation_id
from api.http.schemas import Written
from api.json import dumps
from application.access import Principal
from application.app import CommandResult
from domain.envelope import Envelope

READ_WAIT_SECONDS = 5.0
MAX_POSITION = 2**63 - 1
"""Store positions are 64-bit (PostgreSQL bigint)."""
MinPosition = Parameter(
    default=None,
    ge=1,
    le=MAX_POSITION,
    description="Wait until the read models include this position",
)
"""The ``min_position`` query parameter of every read (read-your-writes)."""
_KEY = re.compile(r"[\x21-\x7e]{1,200}")
_ETAG = re.compile(r'^(?:W/)?"(\d{1,18})"$')


class OrjsonResponse(Response[Any]):
    """Renders JSON bodies with orjson (decimals as exact strings)."""

    def render(self, content: Any, media_type: str, enc_hook: Any = None) -> bytes:
        if isinstance(content, (bytes, str)) or "json" not in media_type:
            return super().render(content, media_type, enc_hook)
        return dumps(content)


def crm_of(request: Request[Any, Any, Any]) -> Crm:
    crm: Crm = request.app.state["crm"]
    return crm


def principal(request: Request[Any, Any, Any]) -> Principal:
    user: Principal = request.user
    return user


def envelope(request: Request[Any, Any, Any], occurred_at: datetime | None = None) -> Envelope:
    """The request's attribution: the authenticated user and role, source ``api``,
    the request's correlation id, and the business time given in the body."""
    user = principal(request)
    return Envelope(
        actor_id=user.user_id,
        actor_role=user.role,  # type: ignore[arg-type]
        source="api",
        correlation_id=correlation_id(request),
        occurred_at=occurred_at,
    )


def idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise ClientException("Idempotency-Key must be 1 to 200 printable ASCII characters")
    return key


def if_match(request: Request[Any, Any, Any]) -> int | None:
    """``If-Match: "<version>"`` → the expected version (``*`` or absent: any)."""
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    match = _ETAG.match(header.strip())
    if match is None:
        raise ClientException('If-Match must be an ETag such as "3"')
    return int(match.group(1))


def etag(version: int) -> str:
    return f'"{version}"'


def written(result: CommandResult, *, status: int = 200) -> Response[Written]:
    task_id = result.extra.get("task_id")
    body = Written(
        id=result.id,
        version=result.version,
        position=result.position,
        task_id=task_id,
    )
    return Response(body, status_code=status, headers={"ETag": etag(result.version)})


def run_command(
    request: Request[Any, Any, Any],
    command: object,
    occurred_at: datetime | None,
    *,
    status: int = 200,
    location: str | None = None,
) -> Response[Written]:
    """Execute ``command`` with the request's envelope and idempotency key, and
    answer with what was written (``Location`` set to ``location`` + the new id)."""
    result = crm_of(request).app.execute(
        command, envelope(request, occurred_at), idempotency_key=idempotency_key(request)
    )
    response = written(result, status=status)
    if location is not None:
        response.headers["Location"] = f"{location}{result.id}"
    return response


def reads_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Reads:
    """The app's reads for the event loop (``Crm.reads``)."""
    reads: Reads = connection.app.state["reads"]
    return reads


def _position_query() -> Query[int]:
    """The position every read model has reached."""
    names = list(registry.NAMES)
    marks = ", ".join(["%s"] * len(names))

    def position(rows: Rows) -> int:
        count, least = rows[0]
        return int(least) if count == len(names) and least is not None else 0

    return Query(
        f"SELECT COUNT(*), MIN(position) FROM projection_tracking WHERE name IN ({marks})",  # noqa: S608
        names,
        position,
    )


def read_models_position(crm: Crm) -> int:
    """The position every read model has reached."""
    return crm.read_db.run(_position_query())


def _pauses() -> Iterator[float | None]:
    """The pauses of a read-your-writes wait between looks at the position: doubling
    from 5 ms up to 100 ms until ``READ_WAIT_SECONDS`` have passed, then ``None``
    before the last look."""
    deadline = time.monotonic() + READ_WAIT_SECONDS
    delay = 0.005
    while time.monotonic() < deadline:
        yield delay
        delay = min(delay * 2, 0.1)
    yield None


def _behind(min_position: int) -> HTTPException:
    return HTTPException(
        status_code=503,
        detail=f"the read models have not reached position {min_position} yet",
        headers={"Retry-After": "1"},
    )


def wait_for_position(crm: Crm, min_position: int | None) -> None:
    """Read-your-writes: wait (bounded) until the read models include
    ``min_position``; a 503 problem with ``Retry-After`` if they are still behind."""
    if not min_position:
        return
    for pause in _pauses():
        if read_models_position(crm) >= min_position:
            return
        if pause is not None:
            time.sleep(pause)
    raise _behind(min_position)


async def reach_position(request: Request[Any, Any, Any], min_position: int | None) -> None:
    """``wait_for_position`` for a route on the event loop."""
    if not min_position:
        return
    reads = reads_of(request)
    for pause in _pauses():
        if await reads.run(_position_query()) >= min_position:
            return
        if pause is not None:
            await asyncio.sleep(pause)
    raise _behind(min_position)
