"""Rebuilding read models, in one pass over the store or in several processes.

A group of read models is rebuilt in one pass (each event read and decoded once for
all of them) beside the live tables, then swapped in (``adapters.projector``).
Several groups run in processes of their own, each with its own connections, so
that one group's Python work overlaps another's and PostgreSQL's: the projector is
bound by one core's Python, and a machine has more. Each group swaps its tables in
when it is done; an interrupted group resumes where it stopped on the next run.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from queue import Empty
from typing import Any

from adapters.projector import rebuild_many
from api.bootstrap import Crm, bootstrap
from application.settings import Settings

BATCH_SIZE = 5000
"""Events per transaction of a rebuild."""

GroupProgress = Callable[[int, int, int], None]
"""Called with (group index, position reached, head) after each batch."""


@dataclass(frozen=True)
class Rebuilt:
    names: tuple[str, ...]
    position: int
    """The position the swapped-in tables are at."""
    seconds: float


class RebuildFailed(RuntimeError):
    """A group's rebuild failed (its models keep their live tables)."""


def rebuild_groups(
    crm: Crm,
    groups: Sequence[Sequence[str]],
    *,
    progress: GroupProgress | None = None,
    batch_size: int = BATCH_SIZE,
) -> list[Rebuilt]:
    """Rebuild each group of read models (by name) and swap it in: one group in this
    process, several in a process each."""
    if len(groups) == 1:
        (names,) = groups
        return [
            _rebuild(
                crm, names, batch_size, lambda done, head: progress and progress(0, done, head)
            )
        ]
    if crm.settings.backend == "memory":
        raise RebuildFailed("a rebuild in several processes needs a database they share")
    context = multiprocessing.get_context("spawn")
    messages: Any = context.Queue()
    workers = [
        context.Process(
            target=_child,
            args=(crm.settings, list(names), batch_size, index, messages),
            daemon=True,
        )
        for index, names in enumerate(groups)
    ]
    for worker in workers:
        worker.start()
    try:
        finished = _collect(workers, messages, progress)
    except BaseException:  # Ctrl-C, SIGTERM: stop them all; the rebuild resumes next time
        for worker in workers:
            worker.terminate()
        raise
    finally:
        for worker in workers:
            worker.join()
    failures = [
        f"{', '.join(groups[i])}: {outcome}"
        for i, outcome in sorted(finished.items())
        if isinstance(outcome, str)
    ]
    if failures:
        raise RebuildFailed("; ".join(failures))
    return [outcome for _, outcome in sorted(finished.items()) if isinstance(outcome, Rebuilt)]


def _collect(
    workers: list[Any], messages: Any, progress: GroupProgress | None
) -> dict[int, Rebuilt | str]:
    """Each group's outcome (or what went wrong), relaying progress meanwhile."""
    finished: dict[int, Rebuilt | str] = {}
    while len(finished) < len(workers):
        try:
            kind, index, *rest = messages.get(timeout=0.5)
        except Empty:
            for i, worker in enumerate(workers):
                if i not in finished and worker.exitcode not in (None, 0):
                    finished[i] = f"its process died (exit code {worker.exitcode})"
            continue
        if kind == "progress" and progress:
            progress(index, *rest)
        elif kind in ("done", "failed"):
            finished[index] = rest[0]
    return finished


def _rebuild(
    crm: Crm, names: Sequence[str], batch_size: int, progress: Callable[[int, int], Any]
) -> Rebuilt:
    started = time.perf_counter()
    position = rebuild_many(
        crm.app,
        crm.db,
        lambda prefix: [crm.read_model(name, prefix) for name in names],
        progress=progress,
        batch_size=batch_size,
    )
    return Rebuilt(tuple(names), position, time.perf_counter() - started)


def _child(
    settings: Settings, names: list[str], batch_size: int, index: int, messages: Any
) -> None:
    """One group's process: its own connections, its outcome as a message. Ctrl-C is
    the parent's to handle (it stops every group)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with bootstrap(settings) as crm:
            rebuilt = _rebuild(
                crm,
                names,
                batch_size,
                lambda done, head: messages.put(("progress", index, done, head)),
            )
        messages.put(("done", index, rebuilt))
    except Exception as error:  # noqa: BLE001 - reported to the parent, which fails
        messages.put(("failed", index, f"{type(error).__name__}: {error}"))
