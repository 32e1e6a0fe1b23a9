"""The composition root: builds the whole object graph from settings."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from eventsourcing.sqlite import SQLiteDatastore

from adapters import memory, postgres, sqlite
from adapters.keys import HmacBlindIndex, load_master_key
from adapters.mapper import PydanticMapper
from adapters.projector import Projector
from adapters.read_models import registry
from adapters.read_models.base import SqlReadModel
from adapters.sql import Database, PostgresDatabase, SqliteDatabase
from adapters.transcoder import OrjsonTranscoder
from adapters.users import MemoryUserDirectory, SqlUserDirectory
from application.app import CrmApplication
from application.pipelines import DefinePipeline
from application.ports import EventRecorder, UserDirectory
from application.settings import Settings
from domain.envelope import Envelope
from domain.pipeline import DEFAULT_PIPELINE, DEFAULT_STAGES, pipeline_id


@dataclass
class Crm:
    """Everything a process needs, built once; close it when done."""

    settings: Settings
    app: CrmApplication
    users: UserDirectory
    db: Database
    """The read models' database: the store's own (PostgreSQL, SQLite), or an
    in-memory SQLite database beside the in-memory store."""
    datastore: Any = None
    read_datastore: Any = None

    def read_model(self, name: str, prefix: str = "") -> SqlReadModel:
        """The read model called ``name`` (its live tables; a rebuild's with
        ``prefix="rebuild_"``)."""
        context = registry.Context(self.db, self.settings, self.app.blind_index)
        return registry.build(name, context, prefix)

    def projector(self, names: Sequence[str] | None = None) -> Projector:
        """A projector for the named read models (all by default), set up."""
        models = [self.read_model(name) for name in names or registry.NAMES]
        projector = Projector(
            self.app, self.db, models, batch_size=self.settings.projection_batch_size
        )
        projector.setup()
        return projector

    def close(self) -> None:
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


def bootstrap(settings: Settings | None = None) -> Crm:
    """Build the application on the configured store: ``memory:``, SQLite (the
    embedded default) or PostgreSQL. Tables are created on first start."""
    settings = settings or Settings.from_env()
    recorder: EventRecorder
    users: MemoryUserDirectory | SqlUserDirectory
    datastore: Any = None
    read_datastore: Any = None
    db: Database
    if settings.backend == "memory":
        recorder = memory.MemoryEventRecorder()
        users = MemoryUserDirectory()
        read_datastore = SQLiteDatastore(
            db_name=f"file:crm-{uuid.uuid4().hex}?mode=memory&cache=shared", pool_size=4
        )
        db = SqliteDatabase(read_datastore)
        master_key = (
            load_master_key(settings.master_key, Path(), create=False)
            if (settings.master_key)
            else secrets.token_bytes(32)
        )
    elif settings.backend == "sqlite":
        datastore = sqlite.connect(settings.sqlite_path)
        recorder = sqlite.SqliteEventRecorder(datastore)
        recorder.create_table()
        db = SqliteDatabase(datastore)
        users = SqlUserDirectory(db)
        master_key = load_master_key(settings.master_key, Path(settings.key_file), create=True)
    else:
        master_key = load_master_key(settings.master_key, Path(settings.key_file), create=False)
        datastore = postgres.connect(
            settings.database_url, schema=settings.database_schema, pool_size=settings.pool_size
        )
        recorder = postgres.PostgresEventRecorder(datastore)
        recorder.create_table()
        db = PostgresDatabase(datastore)
        users = SqlUserDirectory(db)
    if isinstance(users, SqlUserDirectory):
        users.create_tables()
    app = CrmApplication(
        recorder=recorder,
        mapper=PydanticMapper(transcoder=OrjsonTranscoder()),
        blind_index=HmacBlindIndex(master_key),
        staff=users,
        settings=settings,
    )
    if pipeline_id(DEFAULT_PIPELINE) not in app.repository:
        app.execute(DefinePipeline(name=DEFAULT_PIPELINE, stages=DEFAULT_STAGES), system_envelope())
    return Crm(
        settings=settings,
        app=app,
        users=users,
        db=db,
        datastore=datastore,
        read_datastore=read_datastore,
    )
