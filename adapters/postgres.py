"""PostgreSQL: the production event store, in a dedicated schema."""

from __future__ import annotations

import os
import select
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, Notification, OperationalError, StoredEvent
from eventsourcing.postgres import (
    PostgresApplicationRecorder,
    PostgresDatastore,
)
from psycopg import AsyncConnection, ClientCursor, Connection, IsolationLevel
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Composed, Identifier, Literal
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from adapters import side_tables
from adapters.group_commit import GroupCommitter, Write, positions_of
from adapters.sql import DDL_LOCK_PREFIX, PostgresDatabase, Query, Rows, Steps, T, drive_async
from application.ports import EventRecorder, IdempotencyRecord, SideEffects

EVENTS_TABLE = "events"


IDLE_PING_SECONDS = 30.0
"""A pooled connection idle longer than this is pinged before it is handed out."""

POOL_MIN_SIZE = 1
"""Connections a pool keeps open however idle it is; it grows to ``CRM_POOL_SIZE``
under load and shrinks back after ``POOL_MAX_IDLE_SECONDS`` of quiet."""
POOL_MAX_IDLE_SECONDS = 60.0
CONNECT_SECONDS = 10.0
"""How long one attempt to open a connection may take."""
RECONNECT_SECONDS = 3.0
"""How long a pool goes on retrying (1 s, then 2 s apart) to open a connection it
lost before it gives up on it; the next request that needs one tries again. So a
database that is back is seen within about 2 s. psycopg_pool's default, five minutes
of doubling pauses, left a pool waiting up to a minute to see a database that was
back after a minute's outage."""


class ConnectionCheck:
    """Whether a pooled connection still works, without a round trip in the common case.

    A ping on every checkout (eventsourcing's ``pre_ping``) doubles the round trips of
    every short query. Instead, the connection is pinged only when the server has said
    something since it was last used — when a server restarts or ends a session it
    sends an error or closes the socket, which makes it readable — or when it has been
    idle longer than ``idle_seconds`` (a silent network failure).
    """

    def __init__(self, idle_seconds: float = IDLE_PING_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self._checked_at: weakref.WeakKeyDictionary[
            Connection[Any] | AsyncConnection[Any], float
        ] = weakref.WeakKeyDictionary()

    def usable(self, conn: Connection[Any]) -> bool:
        if not self._due(conn):
            return True
        try:
            ConnectionPool.check_connection(conn)
        except psycopg.Error:
            return False
        return True

    async def usable_async(self, conn: AsyncConnection[Any]) -> bool:
        """The same check for a connection of an asynchronous pool."""
        if not self._due(conn):
            return True
        try:
            await AsyncConnectionPool.check_connection(conn)
        except psycopg.Error:
            return False
        return True

    def _due(self, conn: Connection[Any] | AsyncConnection[Any]) -> bool:
        now = time.monotonic()
        last = self._checked_at.get(conn)
        self._checked_at[conn] = now
        return last is None or now - last > self.idle_seconds or _readable(conn)


def _readable(conn: Connection[Any] | AsyncConnection[Any]) -> bool:
    """Has the server sent anything (an error, a notice, an end of file) to this idle
    connection?"""
    if conn.closed:
        return True
    if hasattr(select, "poll"):  # not limited to descriptors below FD_SETSIZE
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    ready, _, _ = select.select([conn.fileno()], [], [], 0)  # Windows
    return bool(ready)


def _tries(pool: ConnectionPool[Any] | AsyncConnectionPool[Any]) -> range:
    """Checkouts before a pool gives up finding a working connection: every pooled
    one found broken, then a new one."""
    return range(pool.max_size + 1)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise PoolTimeout("no working connection to the database in time")
    return left


class HealingPool(ConnectionPool[Connection[DictRow]]):
    """A pool that checks each connection it hands out (``ConnectionCheck``) and, when
    the server has ended it, discards it and hands out the next at once — a new one
    when none is left. psycopg_pool's own check waits a back-off after each failed
    check (1 s, 2 s, 4 s …), so after a database restart, a failover or an
    administrator ending the sessions, a request met one dead connection after
    another and waited 10 s for an error. Only ``timeout`` (``CRM_POOL_TIMEOUT``)
    bounds the wait for a connection when the database cannot be reached."""

    def __init__(self, *args: Any, usable: ConnectionCheck, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._usable = usable

    def getconn(self, timeout: float | None = None) -> Connection[DictRow]:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        for _ in _tries(self):
            conn = super().getconn(_remaining(deadline))
            if self._usable.usable(conn):
                return conn
            conn.close()  # the pool opens another in its place
            self.putconn(conn)
        raise PoolTimeout("every connection of the pool was broken")


class HealingAsyncPool(AsyncConnectionPool[AsyncConnection[Any]]):
    """``HealingPool`` for asynchronous connections."""

    def __init__(self, *args: Any, usable: ConnectionCheck, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._usable = usable

    async def getconn(self, timeout: float | None = None) -> AsyncConnection[Any]:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        for _ in _tries(self):
            conn = await super().getconn(_remaining(deadline))
            if await self._usable.usable_async(conn):
                return conn
            await conn.close()
            await self.putconn(conn)
        raise PoolTimeout("every connection of the pool was broken")


def _kwargs(pool: ConnectionPool[Any]) -> dict[str, Any]:
    made = pool.kwargs
    assert isinstance(made, dict), "eventsourcing gives its pool the connection's kwargs"
    return made


class SchemaDatastore(PostgresDatastore):
    """eventsourcing's pooled datastore, with every connection's ``search_path`` set to
    the product's schema so the side tables and read models need no qualification,
    and a ``HealingPool``: small when idle, checked on checkout, waiting at most
    ``pool_timeout`` seconds for a connection."""

    def __init__(self, *args: Any, pool_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, pre_ping=False, **kwargs)
        made = self.pool
        self.pool = HealingPool(  # type: ignore[assignment]
            connection_class=made.connection_class,
            kwargs={
                **_kwargs(made),
                "connect_timeout": round(CONNECT_SECONDS),
                "application_name": f"crm[{os.getpid()}]",  # who is who in pg_stat_activity
            },
            min_size=min(POOL_MIN_SIZE, made.max_size),
            max_size=made.max_size,
            open=False,
            configure=self.after_connect_func(),
            timeout=pool_timeout,
            max_idle=POOL_MAX_IDLE_SECONDS,
            max_lifetime=made.max_lifetime,
            reconnect_timeout=RECONNECT_SECONDS,
            name="crm",
            usable=ConnectionCheck(),
        )

    def after_connect_func(self) -> Callable[[Connection[Any]], None]:
        configure = super().after_connect_func()
        set_path = SQL("SET search_path TO {}").format(Identifier(self.schema))

        def after_connect(conn: Connection[Any]) -> None:
            configure(conn)
            conn.execute(set_path)

        return after_connect


class AsyncReads:
    """``adapters.sql.Reads`` on psycopg's asynchronous pool, for the HTTP API's keyed
    reads: a query waits for PostgreSQL on the event loop instead of in a worker
    thread, sparing the hops to and from one (the token lookup and the route each
    made one per request; with them and the role guard's, a card read's server CPU was
    about twice what it is now). Connections are made as the
    datastore's: the same server and credentials, the schema on the ``search_path``,
    autocommit (one statement, one transaction), checked like ``ConnectionCheck``.
    Open it on the loop that will use it."""

    def __init__(self, datastore: SchemaDatastore, *, size: int) -> None:
        # The same server and credentials; rows as tuples.
        settings = {k: v for k, v in _kwargs(datastore.pool).items() if k != "row_factory"}
        set_path = SQL("SET search_path TO {}").format(Identifier(datastore.schema))

        async def configure(conn: AsyncConnection[Any]) -> None:
            await conn.set_autocommit(True)
            await conn.execute(set_path)

        self.pool = HealingAsyncPool(
            kwargs=settings,
            min_size=min(POOL_MIN_SIZE, size),
            max_size=size,
            open=False,
            configure=configure,
            timeout=datastore.pool.timeout,
            max_idle=POOL_MAX_IDLE_SECONDS,
            reconnect_timeout=RECONNECT_SECONDS,
            name="crm-reads",
            usable=ConnectionCheck(),
        )

    async def open(self, *, wait: bool = True) -> None:
        """Open the pool; with ``wait``, fail unless it connects within
        ``CONNECT_SECONDS``."""
        try:
            await self.pool.open(wait=wait, timeout=CONNECT_SECONDS)
        except psycopg.Error as error:
            raise OperationalError(str(error)) from error

    async def close(self) -> None:
        await self.pool.close()

    async def run(self, query: Query[T]) -> T:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(query.sql, query.params)
            return query.shape(await cursor.fetchall())

    async def run_steps(self, steps: Steps[T]) -> T:
        """In one REPEATABLE READ, READ ONLY transaction (on the BEGIN; ended by a
        COMMIT, which keeps the connection's prepared statements: see
        ``PostgresDatabase.snapshot``); the connection's settings are put back."""
        async with self.pool.connection() as conn:
            isolation, read_only = conn.isolation_level, conn.read_only
            await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)
            await conn.set_read_only(True)
            try:
                async with conn.transaction():

                    async def execute(sql: str, params: Sequence[Any]) -> Rows:
                        cursor = await conn.execute(sql, params)
                        return await cursor.fetchall()

                    return await drive_async(steps, execute)
            finally:
                await conn.set_isolation_level(isolation)
                await conn.set_read_only(read_only)


DDL_LOCK_SQL = "SELECT pg_advisory_lock(hashtextextended(%s, 0))"
"""``adapters.sql.DDL_XACT_LOCK_SQL``'s lock, held by the session."""


@contextmanager
def ddl_lock(url: str, schema: str) -> Iterator[None]:
    """Held while this process creates or upgrades the schema's tables, types and
    functions, so that processes starting together (API workers, projectors, the
    processes of a parallel rebuild) take turns: PostgreSQL refuses two concurrent
    creations of one table ("duplicate key … pg_type_typname_nsp_index") and two
    concurrent replacements of one function ("tuple concurrently updated"). A
    session-level advisory lock on a connection of its own, released when the block
    ends or the process dies."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as error:
        raise OperationalError(str(error)) from error
    with conn:
        conn.execute(DDL_LOCK_SQL, (DDL_LOCK_PREFIX + schema,))
        yield


def has_store(url: str, schema: str) -> bool:
    """Whether ``schema`` holds a store (its events table), read from the catalogue
    without creating anything, not even the schema."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as error:
        raise OperationalError(str(error)) from error
    with conn:
        row = conn.execute(
            "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL",
            (schema, EVENTS_TABLE),
        ).fetchone()
    return bool(row and row[0])


def connect(
    url: str, *, schema: str, pool_size: int, pool_timeout: float = 1.5, replica: bool = False
) -> SchemaDatastore:
    """A datastore for ``postgresql://user:password@host:port/dbname``, its pool open
    (an unreachable server fails here, after ``CONNECT_SECONDS``); the schema is
    created if it does not exist. A ``replica``'s pool opens in the background (one
    that is down is skipped until it answers) and nothing is created on it."""
    parts = urlsplit(url)
    datastore = SchemaDatastore(
        dbname=unquote(parts.path.lstrip("/")) or "postgres",
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        schema=schema,
        pool_size=pool_size,
        max_overflow=0,
        connect_timeout=CONNECT_SECONDS,
        pool_timeout=pool_timeout,
        lock_timeout=10,
        idle_in_transaction_session_timeout=30,
    )
    if replica:
        datastore.pool.open(wait=False)
        return datastore
    try:
        datastore.pool.open(wait=True, timeout=CONNECT_SECONDS)
    except psycopg.Error as error:
        datastore.close()
        raise OperationalError(str(error)) from error
    with datastore.get_connection() as conn:
        conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))
    return datastore


class PostgresEventRecorder(PostgresApplicationRecorder, EventRecorder):
    """eventsourcing's PostgreSQL application recorder, plus the side tables written in
    the events' transaction, with group commit: concurrent writes share one
    transaction, each in a savepoint of its own (see ``adapters.group_commit``).

    The events table is locked (EXCLUSIVE, which readers do not wait for) before
    anything is written, so positions are handed out in commit order — a reader
    following the store never skips an event that commits later — and writers never
    deadlock over the side tables."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore, events_table_name=EVENTS_TABLE)
        self._committer = GroupCommitter(datastore.get_connection, self._write_batch)
        self._events = events = SQL("{}.{}").format(
            Identifier(datastore.schema), Identifier(EVENTS_TABLE)
        )
        # Rendered once: psycopg renders a composed statement again on every execution.
        self._prelude = [
            _render(statement)
            for statement in (
                SQL("BEGIN"),
                SQL("SET LOCAL lock_timeout = {}").format(Literal(f"{datastore.lock_timeout}s")),
                SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(events),
                SQL("NOTIFY {}").format(Identifier(self.channel_name)),
            )
        ]
        self._topic_literals: dict[str, bytes] = {}
        self._insert_head = _render(
            SQL("INSERT INTO {} (originator_id, originator_version, topic, state) VALUES ").format(
                events
            )
        )
        self.sql_create_statements.extend(
            Composed([SQL(statement)]) for statement in side_tables.ddl("postgresql")
        )
        self.db = PostgresDatabase(datastore)
        self.data_key_read: Callable[[UUID, bytes | None], None] | None = None
        """Told the subject's wrapped data key read with an aggregate's history
        (``KeyStore.learn``); ``None`` for a destroyed key. Not called when the
        aggregate is not a data subject (no key row)."""
        # The key as an uncorrelated subquery: evaluated once, repeated on each row.
        self._history_sql = _render(
            SQL(
                "SELECT e.originator_version, e.topic, e.state,"
                " (SELECT COALESCE(k.wrapped, ''::bytea) FROM {}.data_keys k"
                "  WHERE k.subject_id = %(id)s)"
                " FROM {} e WHERE e.originator_id = %(id)s ORDER BY e.originator_version"
            ).format(Identifier(datastore.schema), events)
        )
        self._position_sql = SQL(
            "SELECT notification_id FROM {}.{} WHERE originator_id = %s AND originator_version = %s"
        ).format(Identifier(datastore.schema), Identifier(EVENTS_TABLE))

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return self._committer.submit(stored_events, kwargs.get("side_effects"))

    # eventsourcing retries these reads ten times on a connection error, 0.2 s apart,
    # each waiting for a connection: with the database down, a request hung 17 s
    # before its error. The pool now replaces broken connections itself, so a retry
    # belongs to the caller, who knows whether to (the projector backs off and tries
    # again; a request answers 503 with Retry-After).

    def max_notification_id(self) -> int | None:
        result: int | None = _unretried(PostgresApplicationRecorder.max_notification_id)(self)
        return result

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        select = _unretried(PostgresApplicationRecorder.select_notifications)
        result: Sequence[Notification] = select(
            self, start, limit, stop, topics, inclusive_of_start=inclusive_of_start
        )
        return result

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """An aggregate's events. A whole history (loading an aggregate) is read with
        the subject's data key in the same statement, handed to ``data_key_read``:
        loading a client then takes one round trip instead of two (the key, once
        per client and ten seconds, cost a second one), and rows come as tuples in
        binary, without composing the statement again."""
        if gt is not None or lte is not None or desc or limit is not None:
            some: Sequence[StoredEvent] = _unretried(PostgresApplicationRecorder.select_events)(
                self, originator_id, gt=gt, lte=lte, desc=desc, limit=limit
            )
            return some
        aggregate_id = originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=True) as cursor,
        ):
            cursor.execute(self._history_sql, {"id": aggregate_id}, prepare=True)
            rows = cursor.fetchall()
        if rows and (wrapped := rows[0][3]) is not None and self.data_key_read is not None:
            self.data_key_read(aggregate_id, bytes(wrapped) or None)  # empty: destroyed
        return [StoredEvent(aggregate_id, v, topic, state) for v, topic, state, _ in rows]

    def _write_batch(self, conn: Connection[Any], batch: list[Write]) -> None:
        """Record a batch in one transaction, sent in one round trip (``BEGIN``, the
        lock timeout, the table lock, the notification — delivered only if the
        transaction commits — every write, ``COMMIT``). If one of several
        writes fails, the batch is recorded again with each write in a savepoint of
        its own, so that only that write fails."""
        try:
            try:
                self._record_at_once(conn, batch)
            except psycopg.IntegrityError as error:
                _roll_back(conn)
                if len(batch) == 1:  # a write alone fails alone
                    batch[0].error = IntegrityError(str(error))
                    raise batch[0].error from error
                self._record_each(conn, batch)
        except BaseException:
            _roll_back(conn)  # the connection is left idle
            raise

    def _record_at_once(self, conn: Connection[Any], batch: list[Write]) -> None:
        """The batch as one string of statements, sent with the simple query protocol:
        one message, one round trip, no parameters to bind. Side-table values are
        quoted by psycopg's client-side binding (``ClientCursor.mogrify``), events'
        rows written by ``_insert``. This costs the writer far less than the same
        statements in pipeline mode, whose per-statement bookkeeping and array
        parameters took about half of a command's CPU."""
        statements = list(self._prelude)
        inserts: list[tuple[int, Write]] = []
        with ClientCursor(conn, row_factory=tuple_row) as cursor:
            for write in batch:
                write.positions = []
                for sql, rows in side_tables.statements(write.side_effects):
                    statements.extend(cursor.mogrify(sql, row).encode() for row in rows)
                if write.events:
                    inserts.append((len(statements), write))
                    statements.append(self._insert(cursor, write.events))
            statements.append(b"COMMIT")
            # Each batch's text is new: psycopg need not count it towards preparing.
            threshold, conn.prepare_threshold = conn.prepare_threshold, None
            try:
                cursor.execute(b";".join(statements))
            finally:
                conn.prepare_threshold = threshold
            results = 0  # the cursor is at the first statement's result
            for index, write in inserts:
                while results < index:
                    cursor.nextset()
                    results += 1
                write.positions = positions_of(cursor.fetchall())

    def _insert(self, cursor: ClientCursor[Any], events: Sequence[StoredEvent]) -> bytes:
        """The events' ``INSERT … VALUES``. Ids and states go in as hexadecimal (no
        character of theirs needs quoting), versions as numbers; the topics, quoted
        by psycopg once each, are remembered (about thirty event classes)."""
        topics = self._topic_literals
        rows = []
        for event in events:
            topic = topics.get(event.topic)
            if topic is None:
                topic = topics[event.topic] = cursor.mogrify("%s", (event.topic,)).encode()
            rows.append(
                b"('%s'::uuid,%d,%s,E'\\\\x%s'::bytea)"
                % (
                    _uuid_hex(event.originator_id),
                    event.originator_version,
                    topic,
                    event.state.hex().encode(),
                )
            )
        return self._insert_head + b",".join(rows) + _RETURNING

    def _record_each(self, conn: Connection[Any], batch: list[Write]) -> None:
        with ClientCursor(conn) as curs:
            curs.execute(b";".join(self._prelude))  # one round trip, as in _record_at_once
            for write in batch:
                try:
                    with conn.transaction():  # a savepoint
                        side_tables.write(curs, write.side_effects)
                        write.positions = []
                        if write.events:
                            curs.execute(self._insert(curs, write.events))
                            write.positions = positions_of(curs.fetchall())
                except psycopg.IntegrityError as error:
                    write.error = IntegrityError(str(error))
                    write.positions = None
            curs.execute(b"COMMIT")

    def refresh_statistics(self) -> bool:
        """``ANALYZE`` the events table if PostgreSQL has no statistics of it, or
        more than half of it changed since they were gathered (autovacuum off, or
        not yet round after a bulk load). Without them the planner expects a
        handful of rows and answers "the next page of these topics" by sorting every
        later event, page after page, several times slower than once analysed
        (docs/PERFORMANCE.md, Replay)."""
        events = self._events.as_string(None)
        (row,) = self.db.query(_STALENESS_SQL, (events,))
        tuples, changed = float(row[0]), int(row[1] or 0)
        if tuples >= 0 and changed <= STALE_SHARE * tuples:
            return False
        self.db.execute(f"ANALYZE {events}")
        return True

    def claim_owner(self, kind: str, digest: str) -> UUID | None:
        return side_tables.claim_owner(self.db, kind, digest)

    def idempotency_record(self, scope: str, key: str) -> IdempotencyRecord | None:
        return side_tables.idempotency_record(self.db, scope, key)

    def position_of(self, originator_id: UUID, version: int) -> int | None:
        with self.datastore.get_connection() as conn:
            row = conn.execute(self._position_sql, (originator_id, version)).fetchone()
        return None if row is None else int(row["notification_id"])


STALE_SHARE = 0.5
"""The share of the events table that may change before ``refresh_statistics``
gathers its statistics again."""
_STALENESS_SQL = (
    "SELECT c.reltuples, s.n_mod_since_analyze FROM pg_class c"
    " LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = %s::regclass"
)


def _unretried(method: Callable[..., Any]) -> Callable[..., Any]:
    """eventsourcing's method without its ``@retry`` wrapper."""
    inner: Callable[..., Any] = getattr(method, "__wrapped__", method)
    return inner


def _render(statement: Composed | SQL) -> bytes:
    return statement.as_bytes(None)


_RETURNING = b" RETURNING notification_id"


def _uuid_hex(value: Any) -> bytes:
    return (value if isinstance(value, UUID) else UUID(str(value))).hex.encode()


def _roll_back(conn: Connection[Any]) -> None:
    """End a transaction a failed batch left open (its ``COMMIT`` was skipped)."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        with suppress(psycopg.Error):  # a broken connection: the pool discards it
            conn.execute("ROLLBACK")


__all__ = ["PostgresEventRecorder", "SchemaDatastore", "SideEffects", "connect"]
