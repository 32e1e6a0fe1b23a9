"""Every read model, by name, built from what read models need."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from adapters.read_models.audit import AuditReadModel
from adapters.read_models.base import SqlReadModel
from adapters.read_models.chain import ChainReadModel
from adapters.read_models.deals import DealsReadModel
from adapters.read_models.directory import DirectoryReadModel
from adapters.read_models.funnel import FunnelReadModel
from adapters.read_models.leads import LeadsReadModel
from adapters.read_models.lifecycle import LifecycleReadModel
from adapters.read_models.subscriptions import SubscriptionsReadModel
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
        c.db,
        blind_index=c.blind_index,
        prefix=prefix,
        default_country=c.settings.default_country,
    ),
    "work_queue": lambda c, prefix: WorkQueueReadModel(c.db, prefix=prefix),
    "chain": lambda c, prefix: ChainReadModel(c.db, prefix=prefix),
    "leads": lambda c, prefix: LeadsReadModel(c.db, prefix=prefix),
    "subscriptions": lambda c, prefix: SubscriptionsReadModel(c.db, prefix=prefix),
}
NAMES = tuple(FACTORIES)


def build(name: str, context: Context, prefix: str = "") -> SqlReadModel:
    """The read model called ``name``; ``KeyError`` lists the known names."""
    try:
        factory = FACTORIES[name]
    except KeyError:
        raise KeyError(f"no read model {name!r}; known: {', '.join(NAMES)}") from None
    return factory(context, prefix)


REBUILD_COST: dict[str, float] = {
    "audit": 1.33,
    "lifecycle": 1.27,
    "directory": 1.02,
    "funnel": 0.57,
    "chain": 0.24,
    "work_queue": 0.12,
    "deals": 0.06,
    "leads": 0.1,  # estimated: one row per client, like the work queue's follow-ups
    "subscriptions": 0.01,  # a handful of events
}
"""What each model's fold costs in a rebuild, as seconds per 100k events of a
generated history (the per-model figures of docs/PERFORMANCE.md, Rebuild; update
them together): only their proportions matter, to share the models of a parallel
rebuild out evenly."""


def groups(names: Sequence[str], count: int) -> list[list[str]]:
    """``names`` shared out into at most ``count`` groups of about equal rebuild cost
    (the costliest first, each to the cheapest group so far); no group is empty."""
    shares: list[list[str]] = [[] for _ in range(max(1, min(count, len(names))))]
    totals = [0.0] * len(shares)
    for name in sorted(names, key=lambda n: (-REBUILD_COST.get(n, 1.0), n)):
        cheapest = totals.index(min(totals))
        shares[cheapest].append(name)
        totals[cheapest] += REBUILD_COST.get(name, 1.0)
    return [share for share in shares if share]
