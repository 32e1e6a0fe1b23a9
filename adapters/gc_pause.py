"""Pausing Python's cycle collector while a batch of events is worked on.

A batch (a page of a replay, a batch of the projector) allocates hundreds of
thousands of short-lived objects — rows, decoded states, events, read-model rows —
and reference counting frees them as soon as the batch is done. The cycle collector
does not know that: every 700 allocations it walks the young objects, and every so
often every object in the process, again and again, a sizeable share of a rebuild
or a replay (docs/PERFORMANCE.md, Rebuild and Replay). Paused for a batch and resumed
after it, the collector still runs between batches, so cycles a long-running
projector makes are collected as ever.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_resume = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cycle collection during the block (threads may nest and overlap: the
    collector resumes when the last block ends, if it was running before the
    first began)."""
    global _depth, _resume  # noqa: PLW0603 (one collector per process)
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()
