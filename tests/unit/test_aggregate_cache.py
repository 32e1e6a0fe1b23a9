"""The aggregate cache lends each aggregate to one taker, and holds no more than
``size`` aggregates, none older than its time to live."""

from __future__ import annotations

from application.aggregate_cache import AggregateCache
from domain.client import Client
from domain.envelope import Envelope, recording


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def clients(n: int) -> list[Client]:
    envelope = Envelope(actor_id="alice", actor_role="admin", source="api", correlation_id="c")
    with recording(envelope):
        return [Client.register(name=f"Client {i}") for i in range(n)]


def test_an_aggregate_is_lent_to_one_taker_at_a_time() -> None:
    cache = AggregateCache(size=10, ttl=10, clock=Clock())
    (ann,) = clients(1)
    cache.keep([ann])
    assert cache.take(ann.id) is ann
    assert cache.take(ann.id) is None  # until it is kept again
    cache.keep([ann])
    assert cache.take(ann.id) is ann


def test_an_aggregate_expires_ttl_seconds_after_it_was_last_kept() -> None:
    clock = Clock()
    cache = AggregateCache(size=10, ttl=10, clock=clock)
    ann, bo = clients(2)
    cache.keep([ann, bo])
    clock.now += 6
    cache.keep([cache.take(bo.id) or bo])  # bo committed again: 10 s from now
    clock.now += 5  # 11 s after ann was kept, 5 s after bo
    assert cache.take(ann.id) is None
    assert cache.take(bo.id) is bo


def test_expired_aggregates_are_dropped_when_others_are_kept() -> None:
    clock = Clock()
    cache = AggregateCache(size=10, ttl=10, clock=clock)
    old = clients(5)
    cache.keep(old)
    clock.now += 10
    (new,) = clients(1)
    cache.keep([new])
    assert len(cache) == 1


def test_the_oldest_aggregates_go_beyond_size() -> None:
    cache = AggregateCache(size=3, ttl=10, clock=Clock())
    first, second, third, fourth = clients(4)
    cache.keep([first, second, third])
    cache.keep([cache.take(first.id) or first])  # kept again: now the newest
    cache.keep([fourth])
    assert len(cache) == 3
    assert cache.take(second.id) is None
    assert [cache.take(a.id) for a in (first, third, fourth)] == [first, third, fourth]


def test_a_cache_of_size_zero_keeps_nothing() -> None:
    cache = AggregateCache(size=0, ttl=10, clock=Clock())
    (ann,) = clients(1)
    cache.keep([ann])
    assert cache.take(ann.id) is None
