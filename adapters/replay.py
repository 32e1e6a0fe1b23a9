"""The replay sandbox: run a KPI class over the stored history, in memory only.

Events are streamed page by page (memory holds two pages, plus whatever the KPI keeps
in its own state), only the KPI's event classes are read and decoded, and nothing
is written anywhere: production read models are never touched. The next page is
read in a background thread while this one is decoded and folded, so the database's
time to answer overlaps the Python work instead of adding to it.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from adapters.gc_pause import gc_paused
from application.app import CrmApplication
from projections.base import Recorded
from projections.kpis import Kpi


class KpiLoadError(ValueError):
    """The KPI reference does not name a usable KPI class."""


def load_kpi(reference: str) -> Kpi[Any]:
    """``package.module:ClassName`` → an instance of that KPI class."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise KpiLoadError(f"{reference!r} must look like my_module:MyKpi")
    if os.getcwd() not in sys.path:  # like `python -m`: modules in the working directory
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise KpiLoadError(f"cannot import {module_name!r}: {error}") from None
    try:
        cls = getattr(module, attribute)
    except AttributeError:
        raise KpiLoadError(f"{module_name!r} has no {attribute!r}") from None
    kpi = cls() if isinstance(cls, type) else cls
    missing = [
        name for name in ("key", "events", "initial", "apply", "result") if not hasattr(kpi, name)
    ]
    if missing:
        raise KpiLoadError(f"{reference} is not a KPI: it lacks {', '.join(missing)}")
    return kpi  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ReplayReport:
    key: str
    value: Any
    as_of: datetime
    position: int
    """The last position read."""
    events_read: int
    events_folded: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events_read / self.seconds if self.seconds else 0.0


def replay(
    app: CrmApplication,
    kpi: Kpi[Any],
    *,
    until: datetime | None = None,
    position: int | None = None,
    page_size: int = 5000,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    """Fold the stored events (up to business time ``until`` and/or store position
    ``position``) through ``kpi`` and read it at ``until`` (default: now)."""
    started = time.perf_counter()
    as_of = until or datetime.now(UTC)
    head = app.recorder.max_notification_id() or 0
    stop = head if position is None else min(position, head)
    topics = sorted({get_topic(cls) for cls in kpi.events})
    app.recorder.refresh_statistics()
    state = kpi.initial()
    read = folded = 0
    for page in pages(app, topics, stop, page_size, progress):
        with gc_paused():
            for notification in page:
                event = app.mapper.to_domain_event(notification)
                read += 1
                if until is not None and event.occurred_at > until:  # type: ignore[attr-defined]
                    continue
                state = kpi.apply(state, Recorded(notification.id, event))  # type: ignore[arg-type]
                folded += 1
    return ReplayReport(
        key=kpi.key,
        value=kpi.result(state, as_of),
        as_of=as_of,
        position=stop,
        events_read=read,
        events_folded=folded,
        seconds=time.perf_counter() - started,
    )


def pages(
    app: CrmApplication,
    topics: list[str],
    stop: int,
    page_size: int,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Sequence[Notification]]:
    """The stored records of ``topics`` up to position ``stop``, page by page, each
    page read while the caller works on the one before."""

    def fetch(after: int) -> Sequence[Notification]:
        return app.recorder.select_notifications(
            start=after, limit=page_size, stop=stop, topics=topics, inclusive_of_start=False
        )

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-read") as reader:
        after = 0
        coming = reader.submit(fetch, after) if after < stop else None
        while coming is not None:
            page = coming.result()
            after = page[-1].id if len(page) == page_size else stop
            coming = reader.submit(fetch, after) if after < stop else None
            yield page
            if progress:
                progress(after, stop)
