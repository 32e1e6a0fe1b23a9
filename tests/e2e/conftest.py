"""The HTTP API in-process (litestar's ``TestClient``) over a product on SQLite, with one
user per role: ``ada`` (admin), ``mia`` and ``max`` (managers), ``aud`` (auditor),
``svc`` (service).

Read models are brought up to date by hand (``api.catch_up()``) unless a test asks
for the embedded projector, so that what a read sees never depends on timing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.bootstrap import Crm
from api.http.app import create_app
from domain.envelope import Envelope
from tests.conftest import fresh_product

PROBLEM = "application/problem+json"
USERS = {"ada": "admin", "mia": "manager", "max": "manager", "aud": "auditor", "svc": "service"}
ROLE_USER = {"admin": "ada", "manager": "mia", "auditor": "aud", "service": "svc"}


@dataclass
class Api:
    crm: Crm
    http: TestClient[Any]
    tokens: dict[str, str]
    """user id → bearer token"""

    def auth(self, user: str | None, **headers: str) -> dict[str, str]:
        """Headers of a request by ``user`` (a user id or a role; ``None``: no token)."""
        user = ROLE_USER.get(user or "", user)
        if user is not None:
            headers["Authorization"] = f"Bearer {self.tokens[user]}"
        return headers

    def head(self) -> int:
        """The store's head position: a refused request must leave it where it was."""
        return self.crm.app.recorder.max_notification_id() or 0

    def catch_up(self) -> None:
        self.crm.projector().catch_up()


def admin_envelope() -> Envelope:
    """Attribution for records a test sets up directly through the application."""
    return Envelope(actor_id="ada", actor_role="admin", source="api", correlation_id="setup")


@contextmanager
def open_api(crm: Crm) -> Iterator[Api]:
    """The app over ``crm``, with one token per user of ``USERS``."""
    tokens = {user: crm.users.add(user, role) for user, role in USERS.items()}
    with TestClient(create_app(crm), raise_server_exceptions=False) as http:
        yield Api(crm, http, tokens)


@pytest.fixture
def product(tmp_path: Path) -> Iterator[Crm]:
    """An empty product on SQLite with no users yet and no embedded projector."""
    # webhook subscriptions to 127.0.0.1 are allowed; nothing delivers them here
    with fresh_product(
        "sqlite", tmp_path, embedded_projector=False, webhook_allow_private=True
    ) as crm:
        yield crm


@pytest.fixture
def api(product: Crm) -> Iterator[Api]:
    with open_api(product) as opened:
        yield opened


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem document with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    for field in ("type", "title", "status", "detail"):
        assert field in body, body
    assert body["status"] == status
    return body
