"""The OpenAPI pages at ``/schema`` with nothing from another host: Swagger UI from
the files vendored under ``static/swagger-ui`` (npm ``swagger-ui-dist``, see
``VERSION``), started by a script of the app's own rather than an inline one, so the
page runs under a Content-Security-Policy without ``unsafe-inline`` scripts."""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import OpenAPIRenderPlugin

STATIC = "/ui/static"
VERSION = "5.35.0"
"""The vendored swagger-ui-dist release."""


class LocalSwaggerPlugin(OpenAPIRenderPlugin):
    """Swagger UI served by the app itself; it reads the document from
    ``/schema/openapi.json``."""

    def __init__(self, path: str | list[str] = "/swagger", **kwargs: Any) -> None:
        super().__init__(
            path=path, favicon=f'<link rel="icon" href="{STATIC}/favicon.svg">', **kwargs
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:  # noqa: ARG002
        title = escape(str(openapi_schema.get("info", {}).get("title", "API")))
        return (
            '<!DOCTYPE html><html lang="en"><head>'
            f"<title>{title}</title>{self.favicon}"
            '<meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="stylesheet" href="{STATIC}/swagger-ui/swagger-ui.css">'
            f'<script src="{STATIC}/swagger-ui/swagger-ui-bundle.js" defer></script>'
            f'<script src="{STATIC}/swagger-start.js" defer></script>'
            '</head><body><div id="swagger-ui"></div></body></html>'
        ).encode()
