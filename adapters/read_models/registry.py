"""Every read model, by name, built for a database and the settings."""

from __future__ import annotations

from collections.abc import Callable

from adapters.read_models.audit import AuditReadModel
from adapters.read_models.base import SqlReadModel
from adapters.read_models.deals import DealsReadModel
from adapters.read_models.funnel import FunnelReadModel
from adapters.read_models.lifecycle import LifecycleReadModel
from adapters.sql import Database
from application.settings import Settings

Factory = Callable[[Database, Settings, str], SqlReadModel]

FACTORIES: dict[str, Factory] = {
    "lifecycle": lambda db, settings, prefix: LifecycleReadModel(
        db, policy=settings.lifecycle_policy, prefix=prefix
    ),
    "audit": lambda db, _settings, prefix: AuditReadModel(db, prefix=prefix),
    "funnel": lambda db, _settings, prefix: FunnelReadModel(db, prefix=prefix),
    "deals": lambda db, _settings, prefix: DealsReadModel(db, prefix=prefix),
}
NAMES = tuple(FACTORIES)


def build(name: str, db: Database, settings: Settings, prefix: str = "") -> SqlReadModel:
    """The read model called ``name``; ``KeyError`` lists the known names."""
    try:
        factory = FACTORIES[name]
    except KeyError:
        raise KeyError(f"no read model {name!r}; known: {', '.join(NAMES)}") from None
    return factory(db, settings, prefix)


def build_all(db: Database, settings: Settings) -> list[SqlReadModel]:
    return [build(name, db, settings) for name in NAMES]
