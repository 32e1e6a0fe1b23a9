"""What the processes tell operators: which database errors are worth retrying, and
the Prometheus counters of errors, retries and pool use."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from psycopg_pool import AsyncConnectionPool, ConnectionPool

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,  # eventsourcing's name for psycopg's and sqlite3's, raised through it
    InterfaceError,
    psycopg.OperationalError,  # a lost connection, an ended session, a pool timeout, a
    psycopg.InterfaceError,  # serialization failure, a lock or statement timeout
)
"""Errors that retrying can fix: the database was unreachable, restarted, failed over,
ended the session, or refused this transaction for now. Anything else (a wrong master
key, a schema this version does not know, a bug) comes back however often one retries."""

DATABASE_ERRORS = Counter(
    "crm_database_errors",
    "Database errors that retrying can fix (connections lost, timeouts), by process and kind",
    ["process", "kind"],
)
PROJECTOR_RETRIES = Counter(
    "crm_projector_retries", "Attempts of a projector to start again after a failure"
)
PROJECTOR_RESTARTS = Counter(
    "crm_projector_restarts", "Times a projector ran again after a failure (a recovery)"
)


class PoolCollector(Collector):
    """Each connection pool's size, idle connections and waiting requests, read at
    scrape time (``get_stats`` of psycopg_pool)."""

    def __init__(self, pools: Mapping[str, ConnectionPool[Any] | AsyncConnectionPool[Any]]) -> None:
        self.pools = pools

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size = GaugeMetricFamily(
            "crm_db_pool_connections", "Open connections of a pool", labels=["pool"]
        )
        idle = GaugeMetricFamily("crm_db_pool_idle", "Idle connections of a pool", labels=["pool"])
        waiting = GaugeMetricFamily(
            "crm_db_pool_waiting", "Requests waiting for a connection", labels=["pool"]
        )
        for name, pool in self.pools.items():
            stats = pool.get_stats()
            size.add_metric([name], stats.get("pool_size", 0))
            idle.add_metric([name], stats.get("pool_available", 0))
            waiting.add_metric([name], stats.get("requests_waiting", 0))
        yield from (size, idle, waiting)
