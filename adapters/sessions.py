"""Sessions of the web console, kept in the store beside the users they belong to.

A session is a random id given to the browser in a cookie; the table keeps only its
hash (a copy of the database opens no session), the user, the hash of the API token
it was opened with and when it expires. A session is good while the user is active
and still holds that very token: ``crm users revoke`` (or ``crm users token``, which
replaces the token) ends every session opened with it, at the next request.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from adapters.sql import Database, Dialect, Query, Rows
from adapters.users import hash_token

SESSION_SECONDS = 8 * 3600
"""A session ends eight hours after sign-in (a working day), whatever happens in it."""

_DDL: dict[Dialect, str] = {
    "postgresql": (
        "CREATE TABLE IF NOT EXISTS console_sessions ("
        " session_hash text PRIMARY KEY, user_id text NOT NULL, token_hash text NOT NULL,"
        " created_at bigint NOT NULL, expires_at bigint NOT NULL)"
    ),
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS console_sessions ("
        " session_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, token_hash TEXT NOT NULL,"
        " created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL)"
    ),
}
"""Instants are whole seconds since the epoch: compared alike on both dialects."""


@dataclass(frozen=True)
class SessionUser:
    """Who a live session belongs to."""

    user_id: str
    role: str


def _hash(session_id: str) -> str:
    return hashlib.sha256(b"console-session:" + session_id.encode()).hexdigest()


def _user(rows: Rows) -> SessionUser | None:
    return SessionUser(str(rows[0][0]), str(rows[0][1])) if rows else None


class SqlConsoleSessions:
    """Console sessions in the product's database (PostgreSQL or SQLite)."""

    def __init__(self, db: Database, *, lifetime: int = SESSION_SECONDS) -> None:
        self.db = db
        self.lifetime = lifetime

    def create_tables(self) -> None:
        with self.db.transaction() as cursor:
            cursor.execute(_DDL[self.db.dialect])

    def open(self, token: str, *, now: float | None = None) -> tuple[str, SessionUser] | None:
        """A new session for the active user holding ``token`` (its id, to give the
        browser, and the user); ``None`` for an unknown or revoked token. Sessions
        that have expired are deleted on the way."""
        moment = int(time.time() if now is None else now)
        token_hash = hash_token(token)
        session_id = secrets.token_urlsafe(32)
        with self.db.transaction() as cursor:
            cursor.execute("DELETE FROM console_sessions WHERE expires_at <= %s", (moment,))
            cursor.execute(
                "SELECT user_id, role FROM users WHERE token_hash = %s AND active = %s",
                (token_hash, True),
            )
            user = _user(cursor.fetchall())
            if user is None:
                return None
            cursor.execute(
                "INSERT INTO console_sessions"
                " (session_hash, user_id, token_hash, created_at, expires_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                (_hash(session_id), user.user_id, token_hash, moment, moment + self.lifetime),
            )
        return session_id, user

    def user(self, session_id: str, *, now: float | None = None) -> SessionUser | None:
        return self.db.run(self.user_query(session_id, now=now))

    @staticmethod
    def user_query(session_id: str, *, now: float | None = None) -> Query[SessionUser | None]:
        """The user of a live session: not expired, the user active and still holding
        the token the session was opened with."""
        moment = int(time.time() if now is None else now)
        return Query(
            "SELECT u.user_id, u.role FROM console_sessions s"
            " JOIN users u ON u.user_id = s.user_id AND u.token_hash = s.token_hash"
            " WHERE s.session_hash = %s AND s.expires_at > %s AND u.active = %s",
            (_hash(session_id), moment, True),
            _user,
        )

    def close(self, session_id: str) -> None:
        """End the session (signing out); nothing happens for an unknown one."""
        with self.db.transaction() as cursor:
            cursor.execute(
                "DELETE FROM console_sessions WHERE session_hash = %s", (_hash(session_id),)
            )
