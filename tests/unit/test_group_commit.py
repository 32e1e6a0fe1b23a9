"""Group commit: batches form while a commit is in flight, and each write keeps its own
result or error."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from adapters.group_commit import GroupCommitter, Write


def test_a_lone_write_is_committed_at_once_in_a_batch_of_its_own() -> None:
    batches: list[int] = []

    def write_batch(batch: list[Write]) -> None:
        batches.append(len(batch))
        for write in batch:
            write.positions = [1]

    assert GroupCommitter(write_batch).submit([], None) == [1]
    assert batches == [1]


def test_writes_that_arrive_during_a_commit_share_the_next_one() -> None:
    first_started = threading.Event()
    release_first = threading.Event()
    batches: list[int] = []
    counter = iter(range(1, 1000))

    def write_batch(batch: list[Write]) -> None:
        if not batches:
            first_started.set()
            release_first.wait(5)
        batches.append(len(batch))
        for write in batch:
            write.positions = [next(counter)]

    committer = GroupCommitter(write_batch)
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
    def write_batch(batch: list[Write]) -> None:
        for n, write in enumerate(batch):
            if n == 1:
                write.error = ValueError("this one conflicts")
            else:
                write.positions = [n]

    committer = GroupCommitter(write_batch)
    first, second = Write([], None), Write([], None)
    committer._queue = [first, second]  # queued before the leader came
    assert committer.submit([], None) == [2]  # the leader's own write, third in the batch
    assert (first.positions, first.error) == ([0], None)
    assert isinstance(second.error, ValueError)
    assert second.positions is None


def test_when_the_transaction_fails_every_write_in_it_fails() -> None:
    waiting = [Write([], None), Write([], None)]

    def write_batch(batch: list[Write]) -> None:
        for write in batch:
            write.positions = [1]
        raise ConnectionError("the commit failed")

    committer = GroupCommitter(write_batch)
    committer._queue = list(waiting)
    with pytest.raises(ConnectionError):
        committer.submit([], None)
    assert all(isinstance(w.error, ConnectionError) and w.positions is None for w in waiting)
    assert all(w.done.is_set() for w in waiting)
