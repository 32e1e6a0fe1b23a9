"""The stays' length buckets, their running histograms per period, and the walk to the
middle stay a histogram gives (``projections.funnel``)."""

from __future__ import annotations

from collections import Counter
from statistics import median_high, median_low

from hypothesis import given
from hypothesis import strategies as st

from projections.funnel import (
    SHORTEST_LENGTH,
    Middle,
    length_bucket,
    length_floor,
    middle,
    running_histograms,
)

lengths = st.integers(min_value=0, max_value=10**15)  # up to about 31 years in µs


def test_short_lengths_have_a_bucket_each_then_sixteen_per_doubling() -> None:
    # below 32 µs: the length itself; 32-63 µs: 16 buckets of 2 µs; 64-127: of 4 µs
    assert [length_bucket(m) for m in (0, 1, 31)] == [0, 1, 31]
    assert [length_bucket(m) for m in (32, 33, 34, 62, 63)] == [32, 32, 33, 47, 47]
    assert [length_bucket(m) for m in (64, 67, 68, 127, 128)] == [48, 48, 49, 63, 64]
    assert [length_floor(b) for b in (0, 31, 32, 33, 47, 48, 49, 64)] == [
        0,
        31,
        32,
        34,
        62,
        64,
        68,
        128,
    ]


def test_every_negative_length_shares_the_lowest_bucket() -> None:
    assert length_bucket(-1) == length_bucket(-(10**12)) == -1
    assert length_floor(-1) == SHORTEST_LENGTH
    assert length_floor(0) == 0


@given(lengths)
def test_a_length_lies_between_its_buckets_floor_and_the_next_ones(micros: int) -> None:
    bucket = length_bucket(micros)
    assert length_floor(bucket) <= micros < length_floor(bucket + 1)
    if micros >= 32:  # narrow: the walk passes a bucket's stays
        assert (length_floor(bucket + 1) - length_floor(bucket)) * 16 <= length_floor(bucket)


@given(lengths, lengths)
def test_a_longer_length_is_never_in_a_lower_bucket(a: int, b: int) -> None:
    if a <= b:
        assert length_bucket(a) <= length_bucket(b)


def test_the_running_histograms_add_each_periods_stays_to_the_periods_before() -> None:
    # period 10: two stays in bucket 5; 12: one in 5, one in 7; 11: none
    changes = {10: {5: 2}, 11: {}, 12: {5: 1, 7: 1}}
    assert running_histograms({}, [], changes) == [(10, {5: 2}), (12, {5: 3, 7: 1})]


def test_a_change_moves_every_later_histogram_and_a_period_left_without_stays_goes() -> None:
    before = {3: 1}  # one stay before period 10
    stored = [(10, {3: 1, 5: 2}), (12, {3: 1, 5: 3, 7: 1})]
    # a stay in bucket 7 added in period 11; the one in bucket 5 of period 12 goes
    assert running_histograms(before, stored, {11: {7: 1}, 12: {5: -1}}) == [
        (10, {3: 1, 5: 2}),
        (11, {3: 1, 5: 2, 7: 1}),
        (12, {3: 1, 5: 2, 7: 2}),
    ]
    # period 12's only stay goes: so does its histogram
    assert running_histograms({}, [(10, {5: 1}), (12, {5: 2})], {12: {5: -1}}) == [(10, {5: 1})]


Stay = tuple[int, int]
"""(period, bucket)."""


def histograms_of(stays: list[Stay]) -> list[tuple[int, dict[int, int]]]:
    """Each period with a stay and the histogram of the stays up to it, counted anew."""
    return [
        (
            period,
            dict(sorted(Counter(bucket for p, bucket in stays if p <= period).items())),
        )
        for period in sorted({p for p, _ in stays})
    ]


stays = st.lists(st.tuples(st.integers(0, 12), st.integers(0, 6)), max_size=25)


@given(stays, stays, st.data())
def test_changed_histograms_are_those_of_the_stays_counted_anew(
    old: list[Stay], added: list[Stay], data: st.DataObject
) -> None:
    removed = data.draw(st.lists(st.sampled_from(old), unique=True) if old else st.just([]))
    remaining = list(old)
    for stay in removed:
        remaining.remove(stay)
    new = remaining + added
    changes: dict[int, dict[int, int]] = {}
    for (period, bucket), n in [*((s, 1) for s in added), *((s, -1) for s in removed)]:
        changes.setdefault(period, {})
        changes[period][bucket] = changes[period].get(bucket, 0) + n
    if not changes:
        return
    first = min(changes)
    earlier = [(p, h) for p, h in histograms_of(old) if p < first]
    before = earlier[-1][1] if earlier else {}
    stored = [(p, h) for p, h in histograms_of(old) if p >= first]
    assert running_histograms(before, stored, changes) == [
        (p, h) for p, h in histograms_of(new) if p >= first
    ]


def test_the_middle_of_an_odd_count_is_one_stay_of_its_bucket() -> None:
    # five stays: two in bucket 3, one in 5, two in 9 -> the third (rank 2) is bucket 5's
    assert middle({3: 2, 5: 1, 9: 2}) == Middle(length_floor(5), length_floor(6), 0, 1)
    # ranks 3 of 7: bucket 3 holds ranks 0-3 -> its fourth stay
    assert middle({3: 4, 9: 3}) == Middle(length_floor(3), length_floor(4), 3, 1)


def test_the_middle_of_an_even_count_may_span_two_buckets() -> None:
    # four stays: ranks 1 and 2, the second of bucket 3 and the first of bucket 5
    assert middle({3: 2, 5: 2}) == Middle(length_floor(3), length_floor(6), 1, 2)
    assert middle({3: 1, 4: 2, 8: 1}) == Middle(length_floor(4), length_floor(5), 0, 2)
    assert middle({}) is None
    assert middle({3: 0}) is None


@given(st.lists(st.integers(0, 10**12), min_size=1, max_size=60))
def test_the_walk_the_histogram_gives_reaches_the_middle_stays(stays: list[int]) -> None:
    histogram: dict[int, int] = {}
    for micros in stays:
        histogram[length_bucket(micros)] = histogram.get(length_bucket(micros), 0) + 1
    found = middle(histogram)
    assert found is not None
    walked = sorted(m for m in stays if found.shortest <= m < found.beyond)
    expected = [median_low(stays)] if len(stays) % 2 else [median_low(stays), median_high(stays)]
    assert walked[found.offset : found.offset + found.take] == expected
