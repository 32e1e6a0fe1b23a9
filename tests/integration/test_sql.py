"""The SQL layer's read snapshot: a read of several statements sees one state of the
database, whatever commits in between (on the in-memory store, readers and writers
take turns, so nothing commits during a read)."""

from __future__ import annotations

import pytest

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
