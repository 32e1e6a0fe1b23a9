"""A webhook receiver for the webhooks benchmark: answers every POST 204 and counts
it; ``GET /count`` says how many. Run as ``python -m bench.receiver PORT`` (uvicorn,
one process, on 127.0.0.1)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

_count = 0

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    global _count  # noqa: PLW0603 - one process, one counter
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the body to its end
        message = await receive()
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        _count += 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = str(_count).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
