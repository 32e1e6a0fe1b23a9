"""Users and their API tokens; the round-robin rotation of managers."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from adapters.sql import Database, Dialect, Query, Rows
from application.access import OWNER_ROLES, ROLES
from application.ports import UserRecord

_USER_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")

_DDL: dict[Dialect, list[str]] = {
    "postgresql": [
        "CREATE TABLE IF NOT EXISTS users ("
        " user_id text PRIMARY KEY, role text NOT NULL, token_hash text UNIQUE,"
        " active boolean NOT NULL, created_at timestamptz NOT NULL,"
        " revoked_at timestamptz)",
        "CREATE TABLE IF NOT EXISTS counters (name text PRIMARY KEY, value bigint NOT NULL)",
    ],
    "sqlite": [
        "CREATE TABLE IF NOT EXISTS users ("
        " user_id TEXT PRIMARY KEY, role TEXT NOT NULL, token_hash TEXT UNIQUE,"
        " active INTEGER NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT)",
        "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    ],
}


class UserError(ValueError):
    """A user cannot be added as asked (bad name, unknown role, name taken)."""


def hash_token(token: str) -> str:
    """Tokens are 256-bit random strings, so a plain SHA-256 is a safe, fast lookup key
    (no salt or slow hash is needed against guessing)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "crm_" + secrets.token_urlsafe(32)


def check_new_user(user_id: str, role: str) -> None:
    if not _USER_ID.fullmatch(user_id):
        raise UserError(
            f"user name {user_id!r} must be 1-63 lower-case letters, digits, '.', '_' or '-'"
        )
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of: {', '.join(ROLES)}")


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _token_owner(rows: Rows) -> UserRecord | None:
    return UserRecord(rows[0][0], rows[0][1], True, _text(rows[0][2])) if rows else None


class SqlUserDirectory:
    """Users in the product's database (PostgreSQL or SQLite)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create_tables(self) -> None:
        with self.db.transaction() as cursor:
            for statement in _DDL[self.db.dialect]:
                cursor.execute(statement)
            cursor.execute(
                "INSERT INTO counters (name, value) VALUES ('round_robin', 0)"
                " ON CONFLICT (name) DO NOTHING"
            )

    def add(self, user_id: str, role: str) -> str:
        check_new_user(user_id, role)
        token = new_token()
        with self.db.transaction() as cursor:
            cursor.execute("SELECT 1 FROM users WHERE user_id = %s", (user_id,))
            if cursor.fetchone():
                raise UserError(f"user {user_id!r} already exists")
            cursor.execute(
                "INSERT INTO users (user_id, role, token_hash, active, created_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                (user_id, role, hash_token(token), True, datetime.now(UTC)),
            )
        return token

    def add_if_missing(self, user_id: str, role: str) -> str | None:
        """Create the user and return its token, or return ``None`` if a user of that
        name already exists (active or revoked: it is left as it is). Processes starting
        at once may all ask: the table's primary key lets exactly one of them create it."""
        check_new_user(user_id, role)
        token = new_token()
        with self.db.transaction() as cursor:
            cursor.execute(
                "INSERT INTO users (user_id, role, token_hash, active, created_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (user_id) DO NOTHING"
                " RETURNING user_id",
                (user_id, role, hash_token(token), True, datetime.now(UTC)),
            )
            return token if cursor.fetchone() else None

    def issue_token(self, user_id: str) -> str | None:
        """A new token for an active user (the old one stops working); ``None`` if there
        is no such active user."""
        token = new_token()
        with self.db.transaction() as cursor:
            cursor.execute(
                "UPDATE users SET token_hash = %s WHERE user_id = %s AND active = %s"
                " RETURNING user_id",
                (hash_token(token), user_id, True),
            )
            return token if cursor.fetchone() else None

    def revoke(self, user_id: str) -> bool:
        with self.db.transaction() as cursor:
            cursor.execute(
                "UPDATE users SET active = %s, token_hash = NULL, revoked_at = %s"
                " WHERE user_id = %s AND active = %s RETURNING user_id",
                (False, datetime.now(UTC), user_id, True),
            )
            return cursor.fetchone() is not None

    def list(self) -> list[UserRecord]:
        rows = self.db.query(
            "SELECT user_id, role, active, created_at FROM users ORDER BY created_at, user_id"
        )
        return [UserRecord(r[0], r[1], bool(r[2]), _text(r[3])) for r in rows]

    def authenticate(self, token: str) -> UserRecord | None:
        return self.db.run(self.token_query(token))

    @staticmethod
    def token_query(token: str) -> Query[UserRecord | None]:
        """The active user owning ``token``, if any (``authenticate`` as a ``Query``, for
        the HTTP API's asynchronous reads)."""
        return Query(
            "SELECT user_id, role, created_at FROM users WHERE token_hash = %s AND active = %s",
            (hash_token(token), True),
            _token_owner,
        )

    def next_manager(self) -> str | None:
        with self.db.transaction() as cursor:
            cursor.execute(
                "SELECT user_id FROM users WHERE active = %s AND role = 'manager'"
                " ORDER BY created_at, user_id",
                (True,),
            )
            managers = [row[0] for row in cursor.fetchall()]
            if not managers:
                return None
            cursor.execute(
                "UPDATE counters SET value = value + 1 WHERE name = 'round_robin' RETURNING value"
            )
            row = cursor.fetchone()
            turn = int(row[0]) if row else 1
        return str(managers[(turn - 1) % len(managers)])

    def can_own_clients(self, user_id: str) -> bool:
        rows = self.db.query(
            "SELECT role FROM users WHERE user_id = %s AND active = %s", (user_id, True)
        )
        return bool(rows) and rows[0][0] in OWNER_ROLES
