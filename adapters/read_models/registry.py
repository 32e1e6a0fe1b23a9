"""Every read model, by name, built from what read models need."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from adapters.read_models.audit import AuditReadModel
from adapters.read_models.base import SqlReadModel
from adapters.read_models.chain import ChainReadModel
from adapters.read_models.deals import DealsReadModel
from adapters.read_models.directory import DirectoryReadModel
from adapters.read_models.funnel import FunnelReadModel
from adapters.read_models.lifecycle import LifecycleReadModel
from adapters.read_models.work_queue import WorkQueueReadModel
from adapters.sql import Database
from application.ports import BlindIndex
from application.settings import Settings


@dataclass(frozen=True)
class Context:
    db: Database
    settings: Settings
    blind_index: BlindIndex


Factory = Callable[[Context, str], SqlReadModel]

FACTORIES: dict[str, Factory] = {
    "lifecycle": lambda c, prefix: LifecycleReadModel(
        c.db, policy=c.settings.lifecycle_policy, prefix=prefix
    ),
    "audit": lambda c, prefix: AuditReadModel(c.db, prefix=prefix),
    "funnel": lambda c, prefix: FunnelReadModel(c.db, prefix=prefix),
    "deals": lambda c, prefix: DealsReadModel(c.db, prefix=prefix),
    "directory": lambda c, prefix: DirectoryReadModel(
        c.db, blind_index=c.blind_index, prefix=prefix
    ),
    "work_queue": lambda c, prefix: WorkQueueReadModel(c.db, prefix=prefix),
    "chain": lambda c, prefix: ChainReadModel(c.db, prefix=prefix),
}
NAMES = tuple(FACTORIES)


def build(name: str, context: Context, prefix: str = "") -> SqlReadModel:
    """The read model called ``name``; ``KeyError`` lists the known names."""
    try:
        factory = FACTORIES[name]
    except KeyError:
        raise KeyError(f"no read model {name!r}; known: {', '.join(NAMES)}") from None
    return factory(context, prefix)
