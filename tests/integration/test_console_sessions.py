"""Console sessions on every store: opened with an active user's token, good until
they expire or the token stops being that user's, ended on sign-out, and kept only
as hashes."""

from __future__ import annotations

import time

import pytest

from adapters.sessions import SESSION_SECONDS, SessionUser, SqlConsoleSessions
from api.bootstrap import Crm


@pytest.fixture
def sessions(crm: Crm) -> SqlConsoleSessions:
    made = SqlConsoleSessions(crm.db)
    made.create_tables()
    made.create_tables()  # made again at every start: nothing happens
    return made


def test_a_session_opened_with_a_token_belongs_to_its_user(
    crm: Crm, sessions: SqlConsoleSessions
) -> None:
    token = crm.users.add("aud", "auditor")
    opened = sessions.open(token)
    assert opened is not None
    session_id, user = opened
    assert user == SessionUser("aud", "auditor")
    assert sessions.user(session_id) == user
    assert sessions.user(session_id + "x") is None


def test_an_unknown_or_revoked_token_opens_no_session(
    crm: Crm, sessions: SqlConsoleSessions
) -> None:
    token = crm.users.add("aud", "auditor")
    assert sessions.open("crm_not-a-token") is None
    crm.users.revoke("aud")
    assert sessions.open(token) is None


def test_revoking_or_replacing_the_token_ends_its_sessions(
    crm: Crm, sessions: SqlConsoleSessions
) -> None:
    ann = crm.users.add("ann", "auditor")
    bob = crm.users.add("bob", "manager")
    ann_session, _ = sessions.open(ann) or ("", None)
    bob_session, _ = sessions.open(bob) or ("", None)
    assert crm.users.issue_token("bob")
    assert sessions.user(bob_session) is None
    crm.users.revoke("ann")
    assert sessions.user(ann_session) is None


def test_a_session_ends_when_it_expires_or_is_closed(
    crm: Crm, sessions: SqlConsoleSessions
) -> None:
    token = crm.users.add("aud", "auditor")
    now = time.time()
    expiring, _ = sessions.open(token, now=now) or ("", None)
    assert sessions.user(expiring, now=now + SESSION_SECONDS - 1) is not None
    assert sessions.user(expiring, now=now + SESSION_SECONDS) is None
    closed, _ = sessions.open(token) or ("", None)
    sessions.close(closed)
    assert sessions.user(closed) is None
    sessions.close(closed)  # twice: nothing happens


def test_the_table_keeps_no_session_id_or_token_in_clear(
    crm: Crm, sessions: SqlConsoleSessions
) -> None:
    token = crm.users.add("aud", "auditor")
    session_id, _ = sessions.open(token) or ("", None)
    stored = " ".join(map(str, crm.db.query("SELECT * FROM console_sessions")[0]))
    assert session_id not in stored
    assert token not in stored


def test_expired_sessions_are_deleted_when_the_next_one_opens(
    crm: Crm, sessions: SqlConsoleSessions
) -> None:
    token = crm.users.add("aud", "auditor")
    sessions.open(token, now=time.time() - SESSION_SECONDS - 1)
    sessions.open(token)
    assert crm.db.query("SELECT COUNT(*) FROM console_sessions")[0][0] == 1
