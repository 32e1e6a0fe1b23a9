"""Group commit: batches form while a commit is in flight, and each write keeps its own
result or error."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext

import pytest

from adapters.group_commit import GroupCommitter, Write


def test_a_lone_write_is_committed_at_once_in_a_batch_of_its_own() -> None:
    batches: list[int] = []

    def write_batch(_: None, batch: list[Write]) -> None:
        batches.append(len(batch))
        for write in batch:
            write.positions = [1]

    assert GroupCommitter(nullcontext, write_batch).submit([], None) == [1]
    assert batches == [1]


def test_writes_that_arrive_during_a_commit_share_the_next_one() -> None:
    first_started = threading.Event()
    release_first = threading.Event()
    batches: list[int] = []
    counter = iter(range(1, 1000))

    def write_batch(_: None, batch: list[Write]) -> None:
        if not batches:
            first_started.set()
            release_first.wait(5)
        batches.append(len(batch))
        for write in batch:
            write.positions = [next(counter)]

    committer = GroupCommitter(nullcontext, write_batch)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(committer.submit, [], None)
        assert first_started.wait(5)
        others = [pool.submit(committer.submit, [], None) for _ in range(7)]
        while len(committer._queue) < 7:  # the seven are queued behind the commit
            threading.Event().wait(0.001)
        release_first.set()
        results = [first.result(), *(f.result() for f in others)]
    assert batches == [1, 7]
    assert sorted(p for r in results for p in r) == list(range(1, 9))


def test_a_write_that_fails_alone_does_not_fail_the_others() -> None:
    def write_batch(_: None, batch: list[Write]) -> None:
        for n, write in enumerate(batch):
            if n == 1:
                write.error = ValueError("this one conflicts")
            else:
                write.positions = [n]

    committer = GroupCommitter(nullcontext, write_batch)
    first, second = Write([], None), Write([], None)
    committer._queue = [first, second]  # queued before the leader came
    assert committer.submit([], None) == [2]  # the leader's own write, third in the batch
    assert (first.positions, first.error) == ([0], None)
    assert isinstance(second.error, ValueError)
    assert second.positions is None


def test_when_the_transaction_fails_every_write_in_it_fails() -> None:
    waiting = [Write([], None), Write([], None)]

    def write_batch(_: None, batch: list[Write]) -> None:
        for write in batch:
            write.positions = [1]
        raise ConnectionError("the commit failed")

    committer = GroupCommitter(nullcontext, write_batch)
    committer._queue = list(waiting)
    with pytest.raises(ConnectionError):
        committer.submit([], None)
    assert all(isinstance(w.error, ConnectionError) and w.positions is None for w in waiting)
    assert not any(w.done.locked() for w in waiting)  # all released


class Sessions:
    """Sessions as a pool hands them out: numbered, each taken and given back once."""

    def __init__(self) -> None:
        self.taken = 0
        self.open: set[int] = set()

    @contextmanager
    def __call__(self) -> Iterator[int]:
        self.taken += 1
        number = self.taken
        self.open.add(number)
        try:
            yield number
        finally:
            self.open.remove(number)


def test_the_leader_writes_the_batches_that_keep_coming_in_one_session_up_to_a_bound() -> None:
    sessions = Sessions()
    used: list[int] = []
    committer: GroupCommitter[int]

    def write_batch(session: int, batch: list[Write]) -> None:
        used.append(session)
        if len(used) < 5:  # another write arrives while this batch commits
            committer._queue.append(Write([], None))
        for write in batch:
            write.positions = [len(used)]

    committer = GroupCommitter(sessions, write_batch, batches_per_session=3)
    assert committer.submit([], None) == [1]
    assert used == [1, 1, 1, 2, 2]  # five batches; the session given back after three
    assert sessions.open == set()  # and after the last
    assert not committer._leading


def test_after_a_failed_batch_the_next_one_gets_a_new_session() -> None:
    sessions = Sessions()
    used: list[int] = []
    committer: GroupCommitter[int]
    later = Write([], None)

    def write_batch(session: int, batch: list[Write]) -> None:
        used.append(session)
        if len(used) == 1:
            committer._queue.append(later)
            raise ConnectionError("the connection broke")
        for write in batch:
            write.positions = [7]

    committer = GroupCommitter(sessions, write_batch)
    with pytest.raises(ConnectionError):
        committer.submit([], None)
    assert used == [1, 2]
    assert (later.positions, later.error, later.done.locked()) == ([7], None, False)
    assert sessions.open == set()
    assert not committer._leading


def test_a_session_that_cannot_be_had_fails_the_batch_and_the_leader_goes_on() -> None:
    refusals = iter([True, False])
    later = Write([], None)

    @contextmanager
    def session() -> Iterator[None]:
        if next(refusals):
            committer._queue.append(later)
            raise TimeoutError("no connection within the pool's timeout")
        yield None

    def write_batch(_: None, batch: list[Write]) -> None:
        for write in batch:
            write.positions = [1]

    committer = GroupCommitter(session, write_batch)
    with pytest.raises(TimeoutError):
        committer.submit([], None)
    assert (later.positions, later.done.locked()) == ([1], False)
    assert not committer._leading
