"""The HTTP ceiling: a minimal Litestar app, one route answering ``{}``, served exactly
as ``crm serve`` serves the API (``api.serving``): ``python -m bench.trivial_app
--host H --port P --workers N``."""

from __future__ import annotations

import argparse
from typing import Any

from litestar import Litestar, get

from api.serving import serve


@get("/", sync_to_thread=False)
def empty() -> dict[str, Any]:
    return {}


def create() -> Litestar:
    return Litestar([empty], openapi_config=None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    given = parser.parse_args()
    serve(
        "bench.trivial_app:create",
        host=given.host,
        port=given.port,
        workers=given.workers,
        log_level="warning",
    )
