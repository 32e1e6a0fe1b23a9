"""The SQL layer's read snapshot: a read of several statements sees one state of the
database, whatever commits in between (on the in-memory store, readers and writers
take turns, so nothing commits during a read)."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import InternalError

from api.bootstrap import Crm


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_snapshot_does_not_see_what_commits_after_its_first_read(crm: Crm) -> None:
    with crm.db.transaction() as cursor:
        cursor.execute("CREATE TABLE snapshot_probe (n INTEGER PRIMARY KEY)")
        cursor.execute("INSERT INTO snapshot_probe (n) VALUES (1)")
    with crm.db.snapshot() as snapshot:
        snapshot.execute("SELECT COUNT(*) FROM snapshot_probe")
        assert snapshot.fetchone() == (1,)
        crm.db.execute("INSERT INTO snapshot_probe (n) VALUES (2)")  # commits
        snapshot.execute("SELECT COUNT(*) FROM snapshot_probe")
        assert snapshot.fetchone() == (1,)
    assert crm.db.query("SELECT COUNT(*) FROM snapshot_probe") == [(2,)]


@pytest.mark.parametrize("store", ["postgresql"])
def test_a_snapshot_keeps_the_statements_its_connection_prepared(crm: Crm) -> None:
    """psycopg prepares a statement run a sixth time on a connection and forgets them
    all at a ROLLBACK: a snapshot that ended in one would have its reads parsed and
    planned again every time."""
    crm.db.execute("CREATE TABLE snapshot_probe (n INTEGER PRIMARY KEY)")
    runs: dict[int, int] = {}
    for _ in range(200):  # the pool hands out its connections in turn
        with crm.db.snapshot() as snapshot:
            snapshot.execute("SELECT pg_backend_pid()")
            pid = snapshot.fetchone()[0]  # type: ignore[index]
            if runs.get(pid, 0) >= 6:
                snapshot.execute(
                    "SELECT COUNT(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                    ("%FROM snapshot_probe%",),
                )
                assert snapshot.fetchone() == (1,)
                return
            snapshot.execute("SELECT COUNT(*) FROM snapshot_probe WHERE n > %s", (0,))
            snapshot.fetchall()
            runs[pid] = runs.get(pid, 0) + 1
    pytest.fail(f"no connection came back six times in 200 snapshots: {runs}")


@pytest.mark.parametrize("store", ["postgresql"])
def test_a_snapshot_cannot_write_and_leaves_its_connection_as_it_was(crm: Crm) -> None:
    crm.db.execute("CREATE TABLE snapshot_probe (n INTEGER PRIMARY KEY)")
    with pytest.raises(InternalError, match="read-only"), crm.db.snapshot() as snapshot:
        snapshot.execute("INSERT INTO snapshot_probe (n) VALUES (1)")
    for n in range(30):  # every connection of the pool writes again, at the default level
        with crm.db.snapshot() as snapshot:
            snapshot.execute("SELECT 1")
        with crm.db.transaction() as cursor:
            cursor.execute("SHOW transaction_isolation")
            assert cursor.fetchone() == ("read committed",)
            cursor.execute("INSERT INTO snapshot_probe (n) VALUES (%s)", (n,))
    assert crm.db.query("SELECT COUNT(*) FROM snapshot_probe") == [(30,)]
