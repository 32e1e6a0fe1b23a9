"""The composition root: builds the whole object graph from settings."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from eventsourcing.sqlite import SQLiteDatastore

from adapters import memory, postgres, sqlite
from adapters.export_counts import SqlExportCounts
from adapters.keys import HmacBlindIndex, decode_master_key, load_master_key
from adapters.keystore import (
    BLIND_INDEX_SUBJECT,
    KeyStore,
    KeyTable,
    MemoryKeyTable,
    SqlKeyTable,
)
from adapters.mapper import CryptoMapper
from adapters.projector import Projector
from adapters.read_models import registry
from adapters.read_models.base import SqlReadModel
from adapters.replicas import ReplicaRouter, RoutedDatabase, RoutedReads, Target
from adapters.sql import Database, PostgresDatabase, Reads, SqliteDatabase, ThreadedReads
from adapters.telemetry import TRANSIENT_ERRORS
from adapters.transcoder import OrjsonTranscoder
from adapters.users import SqlUserDirectory
from application.aggregate_cache import AggregateCache
from application.app import CrmApplication
from application.exports import Exports
from application.pipelines import DefinePipeline
from application.ports import EventRecorder
from application.settings import Settings
from domain.envelope import Envelope
from domain.pipeline import DEFAULT_PIPELINE, DEFAULT_STAGES, pipeline_id

M = TypeVar("M", bound=SqlReadModel)


@dataclass(frozen=True)
class Readiness:
    """Whether a process can serve (``Crm.readiness``)."""

    reachable: bool
    """The store answered."""
    problem: str | None
    """Why the process is not ready; ``None`` when it is."""
    head_position: int = 0
    read_models_position: int = 0

    @property
    def ready(self) -> bool:
        return self.problem is None


@dataclass
class Crm:
    """Everything a process needs, built once; close it when done."""

    settings: Settings
    app: CrmApplication
    users: SqlUserDirectory
    db: Database
    """The read models' database: the store's own (PostgreSQL, SQLite), or an
    in-memory SQLite database beside the in-memory store."""
    keys: KeyStore
    exports: Exports
    """Exports and bulk reads of personal data: permission, limit, record."""
    datastore: Any = None
    read_datastore: Any = None
    pools: dict[str, Any] = field(default_factory=dict)
    """The process's PostgreSQL connection pools by purpose (for the metrics)."""
    router: ReplicaRouter | None = None
    """Where reads go when replicas are configured (``CRM_READ_DATABASE_URL``)."""
    read_db: Database = field(init=False)
    """The read models' database for reads only: a replica's when there is a usable
    one, else ``db``."""
    _models: dict[tuple[type[SqlReadModel], str], SqlReadModel] = field(
        default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        self.read_db = self.db if self.router is None else RoutedDatabase(self.router)

    def read_model(
        self, name: str, prefix: str = "", *, db: Database | None = None
    ) -> SqlReadModel:
        """The read model called ``name`` (its live tables; a rebuild's with
        ``prefix="rebuild_"``), over ``db`` (the store's own by default)."""
        context = registry.Context(db or self.db, self.settings, self.app.blind_index)
        return registry.build(name, context, prefix)

    def model(self, kind: type[M], prefix: str = "") -> M:
        """The read model of class ``kind``, typed (``read_model`` by its name); made
        once per process (a model holds no state but its table names, and the API
        asks for one per request). Its reads go to
        ``read_db``: a replica when there is one."""
        built = self._models.get((kind, prefix))
        if built is None:
            built = self.read_model(kind.name, prefix, db=self.read_db)
            self._models[(kind, prefix)] = built
        if not isinstance(built, kind):
            raise TypeError(f"read model {kind.name!r} is a {type(built).__name__}")
        return built

    def projector(self, names: Sequence[str] | None = None, *, setup: bool = True) -> Projector:
        """A projector for the named read models (all by default), set up (tables and
        tracking rows made or upgraded, under the schema lock) unless ``setup`` is
        false: to read positions and lag only, once the tables exist."""
        models = [self.read_model(name) for name in names or registry.NAMES]
        projector = Projector(
            self.app, self.db, models, batch_size=self.settings.projection_batch_size
        )
        if setup:
            projector.setup()
        return projector

    @asynccontextmanager
    async def reads(self) -> AsyncIterator[Reads]:
        """Reads for code on an event loop (the HTTP API), open while the block runs: on
        PostgreSQL, a pool of asynchronous connections; on SQLite, the read models'
        database in worker threads."""
        if self.settings.backend != "postgresql":
            yield ThreadedReads(self.db)
            return
        reads = postgres.AsyncReads(self.datastore, size=self.settings.pool_size)
        await reads.open()
        opened = {"reads": reads}  # by the name the metrics give its pool
        try:
            if self.router is not None:
                self.router.primary.reads = reads
                for replica in self.router.replicas:
                    datastore = replica.db.datastore
                    assert isinstance(datastore, postgres.SchemaDatastore)
                    replica.reads = postgres.AsyncReads(datastore, size=self.settings.pool_size)
                    opened[f"reads {replica.name}"] = replica.reads
                    await replica.reads.open(wait=False)  # one that is down is skipped
            self.pools.update((name, each.pool) for name, each in opened.items())
            yield reads if self.router is None else RoutedReads(self.router)
        finally:
            for name, each in opened.items():
                self.pools.pop(name, None)
                await each.close()

    def readiness(self) -> Readiness:
        """Whether this process can serve: the store answers, and every read model is
        within ``ready_max_lag`` events of its head (a lost database is reported, not
        raised)."""
        try:
            head = self.app.recorder.max_notification_id() or 0
            position = self.projector(setup=False).position()
        except TRANSIENT_ERRORS as error:
            unreachable = f"the database cannot be reached ({type(error).__name__})"
            return Readiness(reachable=False, problem=unreachable)
        lag, most = max(0, head - position), self.settings.ready_max_lag
        problem: str | None = None
        if lag > most:
            problem = f"the read models are {lag} events behind (CRM_READY_MAX_LAG is {most})"
        return Readiness(True, problem, head, position)

    def close(self) -> None:
        if self.router is not None:
            self.router.stop()
            for replica in self.router.replicas:
                replica.db.datastore.close()
        self.app.close()
        for store in (self.read_datastore, self.datastore):
            if store is not None:
                store.close()

    def __enter__(self) -> Crm:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def system_envelope(actor_id: str = "system") -> Envelope:
    return Envelope(
        actor_id=actor_id,
        actor_role="system",
        source="system",
        correlation_id=str(uuid.uuid4()),
    )


def _replicas(settings: Settings, primary: Database) -> ReplicaRouter:
    """The replicas of ``CRM_READ_DATABASE_URL``, watched from now on."""
    assert isinstance(primary, PostgresDatabase)
    replicas = [
        Target(
            describe_url(url),
            PostgresDatabase(
                postgres.connect(
                    url,
                    schema=settings.database_schema,
                    pool_size=settings.pool_size,
                    pool_timeout=settings.pool_timeout,
                    replica=True,
                )
            ),
        )
        for url in settings.read_database_urls
    ]
    router = ReplicaRouter(Target("primary", primary), replicas, settings.replica_max_lag)
    router.start()
    return router


class StoreMissing(Exception):
    """There is no store where the settings point, and this process may not create one.

    Only the commands that make a store (``crm demo``, ``serve``, ``import``, ``users
    add``) create it; any other would otherwise report on an empty store it had just
    made, and leave a new database and key file behind, when it was merely run from
    the wrong directory."""


def bootstrap(settings: Settings | None = None, *, create: bool = True) -> Crm:
    """Build the application on the configured store: ``memory:``, SQLite (the
    embedded default) or PostgreSQL. Tables are created on first start; a master key
    that does not open the store's keys stops the start with ``MasterKeyError``.
    Without ``create``, a store that does not exist yet (no SQLite file; no events
    table in the PostgreSQL schema) stops the start with ``StoreMissing`` before
    anything is made, the key file included.
    On PostgreSQL, processes starting at once take turns (``postgres.ddl_lock``), so
    that the tables, the data keys and the default pipeline are made once."""
    settings = settings or Settings.from_env()
    if settings.backend != "postgresql":
        return _build(settings, create=create)
    with postgres.ddl_lock(settings.database_url, settings.database_schema):
        return _build(settings, create=create)


def describe_store(settings: Settings) -> str:
    """The store's URL with any password hidden."""
    if settings.backend != "postgresql":
        return settings.database_url
    return f"{describe_url(settings.database_url)} (schema {settings.database_schema})"


def describe_url(url: str) -> str:
    """A PostgreSQL URL with any password hidden."""
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def _check_store_exists(settings: Settings) -> None:
    """Raise ``StoreMissing`` unless the configured store exists (memory always does)."""
    if settings.backend == "sqlite":
        path = settings.sqlite_path
        if not path.exists():
            shown = str(path) if path.is_absolute() or path.parts[:1] == ("..",) else f"./{path}"
            raise StoreMissing(
                f"no store at {shown} — set CRM_DATABASE_URL or run from the directory "
                "that holds it"
            )
    elif settings.backend == "postgresql" and not postgres.has_store(
        settings.database_url, settings.database_schema
    ):
        raise StoreMissing(
            f"no store at {describe_store(settings)} — set CRM_DATABASE_URL and "
            "CRM_DATABASE_SCHEMA to where it is"
        )


def _build(settings: Settings, *, create: bool) -> Crm:
    if not create:
        _check_store_exists(settings)
    recorder: EventRecorder
    key_table: KeyTable
    datastore: Any = None
    read_datastore: Any = None
    db: Database
    if settings.backend == "memory":
        key_table = MemoryKeyTable()
        recorder = memory.MemoryEventRecorder(key_table)
        read_datastore = SQLiteDatastore(
            db_name=f"file:crm-{uuid.uuid4().hex}?mode=memory&cache=shared", pool_size=4
        )
        db = SqliteDatabase(read_datastore)
        master_key = (
            decode_master_key(settings.master_key, origin="CRM_MASTER_KEY")
            if settings.master_key
            else secrets.token_bytes(32)
        )
    else:
        if settings.backend == "sqlite":
            master_key = load_master_key(
                settings.master_key, Path(settings.key_file), create=create
            )
            datastore = sqlite.connect(settings.sqlite_path)
            recorder = sqlite.SqliteEventRecorder(datastore)
            db = SqliteDatabase(datastore)
        else:
            master_key = load_master_key(settings.master_key, Path(settings.key_file), create=False)
            datastore = postgres.connect(
                settings.database_url,
                schema=settings.database_schema,
                pool_size=settings.pool_size,
                pool_timeout=settings.pool_timeout,
            )
            recorder = postgres.PostgresEventRecorder(datastore)
            db = PostgresDatabase(datastore)
        recorder.create_table()
        key_table = SqlKeyTable(db)
        key_table.create_tables()
    users = SqlUserDirectory(db)
    users.create_tables()
    export_counts = SqlExportCounts(db)
    export_counts.create_tables()
    keys = KeyStore(key_table, master_key)
    keys.open()
    if isinstance(recorder, postgres.PostgresEventRecorder):
        recorder.data_key_read = keys.learn  # a client's key comes with its events
    index_key = keys.key(BLIND_INDEX_SUBJECT, create=True)
    assert index_key is not None
    app = CrmApplication(
        recorder=recorder,
        mapper=CryptoMapper(OrjsonTranscoder(), keys),
        blind_index=HmacBlindIndex(index_key),
        staff=users,
        settings=settings,
        forget_keys=keys.forget,
        aggregate_cache=AggregateCache(size=settings.aggregate_cache_size, ttl=keys.ttl),
    )
    if pipeline_id(DEFAULT_PIPELINE) not in app.repository:
        app.execute(DefinePipeline(name=DEFAULT_PIPELINE, stages=DEFAULT_STAGES), system_envelope())
    return Crm(
        router=_replicas(settings, db) if settings.read_database_url else None,
        settings=settings,
        app=app,
        users=users,
        db=db,
        keys=keys,
        exports=Exports(app, export_counts, settings.export_rate_per_hour),
        datastore=datastore,
        read_datastore=read_datastore,
        pools={"commands": datastore.pool} if settings.backend == "postgresql" else {},
    )
