"""The HTTP ceiling: a minimal Litestar app, one route answering ``{}``, served by
uvicorn exactly as ``crm serve`` serves the API (``python -m bench http``)."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get


@get("/", sync_to_thread=False)
def empty() -> dict[str, Any]:
    return {}


app = Litestar([empty], openapi_config=None)
