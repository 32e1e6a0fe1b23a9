"""Where reads go with replicas configured: the first usable replica, else the
primary; writes always to the primary; one place for a whole request."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.persistence import OperationalError

from adapters.replicas import ReplicaRouter, RoutedDatabase, Target
from application.settings import Settings, SettingsError


class FakeDatabase:
    """Answers the router's look (the primary's log position, a replica's lag) and
    records what else it was asked."""

    def __init__(self, name: str, *, lag: float = 0.0, down: bool = False) -> None:
        self.name = name
        self.lag = lag
        self.down = down
        self.asked: list[str] = []

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        if self.down:
            raise OperationalError("connection refused")
        if "pg_current_wal_lsn" in sql:
            return [("0/16B3748",)]
        if "pg_last_wal_replay_lsn" in sql:
            return [(self.lag,)]
        self.asked.append(sql)
        return [(self.name,)]

    def execute(self, sql: str, params: Any = ()) -> None:
        self.asked.append(sql)


def router(*replicas: FakeDatabase, primary: FakeDatabase | None = None) -> ReplicaRouter:
    made = ReplicaRouter(
        Target("primary", primary or FakeDatabase("primary")),  # type: ignore[arg-type]
        [Target(r.name, r) for r in replicas],  # type: ignore[arg-type]
        max_lag_seconds=5.0,
    )
    made.check()
    return made


def test_reads_go_to_the_first_replica_within_the_lag_and_writes_to_the_primary() -> None:
    behind, current = FakeDatabase("behind", lag=30.0), FakeDatabase("current", lag=1.0)
    routed = RoutedDatabase(router(behind, current))

    assert routed.query("SELECT answer") == [("current",)]
    routed.execute("UPDATE something")
    assert routed.primary.asked == ["UPDATE something"]  # type: ignore[attr-defined]


def test_with_every_replica_down_or_behind_reads_go_to_the_primary() -> None:
    routed = RoutedDatabase(router(FakeDatabase("down", down=True), FakeDatabase("late", lag=9)))

    assert routed.query("SELECT answer") == [("primary",)]


def test_with_the_primary_out_of_reach_a_replica_that_answers_is_read_from() -> None:
    lagging = FakeDatabase("lagging", lag=600.0)  # its lag cannot be told without the primary
    routed = RoutedDatabase(router(lagging, primary=FakeDatabase("primary", down=True)))

    assert routed.query("SELECT answer") == [("lagging",)]


def test_a_pinned_request_reads_from_one_place_even_if_the_choice_changes_meanwhile() -> None:
    replica = FakeDatabase("replica")
    chooser = router(replica)
    routed = RoutedDatabase(chooser)
    with chooser.pinned():
        replica.down = True
        chooser.check()  # the watcher skips the replica from now on
        replica.down = False
        assert routed.query("SELECT answer") == [("replica",)]  # still this request's
    assert routed.query("SELECT answer") == [("primary",)]


def test_replicas_are_postgresql_urls_for_a_postgresql_store() -> None:
    both = Settings.from_env(
        {
            "CRM_DATABASE_URL": "postgresql://crm@primary/crm",
            "CRM_READ_DATABASE_URL": "postgresql://crm@replica1/crm, postgresql://crm@replica2/crm",
        }
    )
    assert both.read_database_urls == [
        "postgresql://crm@replica1/crm",
        "postgresql://crm@replica2/crm",
    ]
    with pytest.raises(SettingsError, match=r"CRM_READ_DATABASE_URL: .*PostgreSQL store"):
        Settings.from_env({"CRM_READ_DATABASE_URL": "postgresql://crm@replica1/crm"})  # SQLite
    with pytest.raises(SettingsError, match=r"CRM_READ_DATABASE_URL: .*postgresql:// URLs"):
        Settings.from_env(
            {"CRM_DATABASE_URL": "postgresql://crm@primary/crm", "CRM_READ_DATABASE_URL": "x"}
        )
