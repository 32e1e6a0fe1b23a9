"""The composition root: builds the whole object graph from settings."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from adapters import memory, postgres, sqlite
from adapters.keys import HmacBlindIndex, load_master_key
from adapters.mapper import PydanticMapper
from adapters.sql import PostgresDatabase, SqliteDatabase
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
    datastore: Any = None

    def close(self) -> None:
        self.app.close()
        if self.datastore is not None:
            self.datastore.close()

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
    if settings.backend == "memory":
        recorder = memory.MemoryEventRecorder()
        users = MemoryUserDirectory()
        master_key = (
            load_master_key(settings.master_key, Path(), create=False)
            if (settings.master_key)
            else secrets.token_bytes(32)
        )
    elif settings.backend == "sqlite":
        datastore = sqlite.connect(settings.sqlite_path)
        recorder = sqlite.SqliteEventRecorder(datastore)
        recorder.create_table()
        users = SqlUserDirectory(SqliteDatabase(datastore))
        master_key = load_master_key(settings.master_key, Path(settings.key_file), create=True)
    else:
        master_key = load_master_key(settings.master_key, Path(settings.key_file), create=False)
        datastore = postgres.connect(
            settings.database_url, schema=settings.database_schema, pool_size=settings.pool_size
        )
        recorder = postgres.PostgresEventRecorder(datastore)
        recorder.create_table()
        users = SqlUserDirectory(PostgresDatabase(datastore))
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
    return Crm(settings=settings, app=app, users=users, datastore=datastore)
