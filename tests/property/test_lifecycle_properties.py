"""Properties of the client lifecycle (SPEC section 2) over random histories.

Histories are built to hit the edges: purchases at identical instants, gaps of exactly
``dormancy_days`` (give or take a microsecond), losses at or next to a purchase, facts
dated before registration, and small policy numbers so that every stage shows up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.lifecycle import (
    INACTIVITY,
    PAYING_STAGES,
    ClientFacts,
    LifecyclePolicy,
    Loss,
    Stage,
    StageInterval,
    stage_at,
    stage_intervals,
)

US = timedelta(microseconds=1)
EPOCH = datetime(2018, 1, 1, tzinfo=UTC)
REASONS = ("price", "service", "competitor", "moved", "no_need", "other")
FAST = settings(max_examples=200, deadline=None)

# ---------------------------------------------------------------- strategies

policies = st.builds(
    LifecyclePolicy,
    loyal_purchases=st.integers(1, 4),
    loyal_window_days=st.integers(1, 40),
    dormancy_days=st.integers(1, 20),
)


def gaps(policy: LifecyclePolicy, *, below_dormancy: bool = False) -> st.SearchStrategy[timedelta]:
    """Time between two consecutive purchases."""
    dormancy = timedelta(days=policy.dormancy_days)
    if below_dormancy:
        return st.one_of(
            st.just(timedelta(0)),
            st.sampled_from([dormancy - US, dormancy - 2 * US]),
            st.timedeltas(min_value=timedelta(0), max_value=dormancy - US),
        )
    return st.one_of(
        st.just(timedelta(0)),  # two purchases at the same instant
        st.timedeltas(min_value=timedelta(0), max_value=dormancy),
        st.sampled_from([dormancy - US, dormancy, dormancy + US, dormancy + 2 * US]),
        st.timedeltas(min_value=dormancy, max_value=timedelta(days=200)),
    )


@st.composite
def purchase_instants(
    draw: st.DrawFn,
    registered_at: datetime,
    policy: LifecyclePolicy,
    *,
    below_dormancy: bool = False,
    min_size: int = 0,
) -> tuple[datetime, ...]:
    first = registered_at + draw(
        st.one_of(
            st.just(timedelta(0)),
            st.timedeltas(min_value=timedelta(days=-30), max_value=-US),  # before registration
            st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3 * 365)),
        )
    )
    steps = draw(
        st.lists(
            gaps(policy, below_dormancy=below_dormancy), min_size=max(0, min_size - 1), max_size=14
        )
    )
    if min_size == 0 and draw(st.booleans()) and not steps:
        return ()
    instants = [first]
    for step in steps:
        instants.append(instants[-1] + step)
    return tuple(instants)


@st.composite
def loss_instants(
    draw: st.DrawFn,
    registered_at: datetime,
    purchases: tuple[datetime, ...],
    policy: LifecyclePolicy,
) -> datetime:
    anywhere = st.one_of(
        st.timedeltas(min_value=timedelta(days=-30), max_value=-US),  # before registration
        st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=4 * 365)),
    )
    if not purchases:
        return registered_at + draw(st.one_of(st.just(timedelta(0)), anywhere))
    near = draw(st.sampled_from(purchases))
    dormancy = timedelta(days=policy.dormancy_days)
    return draw(
        st.one_of(
            st.sampled_from([near, near - US, near + US]),  # ties with a purchase
            st.sampled_from([near + dormancy, near + dormancy + US, near + dormancy + 2 * US]),
            st.just(registered_at),
            anywhere.map(lambda offset: registered_at + offset),
            st.timedeltas(min_value=timedelta(0), max_value=3 * dormancy).map(
                lambda offset: near + offset
            ),
        )
    )


@st.composite
def histories(draw: st.DrawFn) -> tuple[ClientFacts, LifecyclePolicy]:
    policy = draw(policies)
    registered_at = EPOCH + draw(
        st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=6 * 365))
    )
    purchases = draw(purchase_instants(registered_at, policy))
    losses = tuple(
        Loss(draw(loss_instants(registered_at, purchases, policy)), draw(st.sampled_from(REASONS)))
        for _ in range(draw(st.integers(0, 4)))
    )
    return ClientFacts(registered_at, purchases, losses), policy


def probes(facts: ClientFacts, policy: LifecyclePolicy) -> list[datetime]:
    """Every instant where something may change, one microsecond either side, and the
    would-be deaths by inactivity."""
    dormancy = timedelta(days=policy.dormancy_days)
    marks = [facts.registered_at, *facts.purchases, *(loss.at for loss in facts.losses)]
    marks += [purchase + dormancy + US for purchase in facts.purchases]
    return sorted({mark + shift for mark in marks for shift in (-US, timedelta(0), US)})


random_instants = st.lists(
    st.timedeltas(min_value=timedelta(days=-60), max_value=timedelta(days=12 * 365)).map(
        lambda offset: EPOCH + offset
    ),
    max_size=5,
)


def start_of(facts: ClientFacts) -> datetime:
    return min([facts.registered_at, *facts.purchases, *(loss.at for loss in facts.losses)])


# ------------------------------------------------ an oracle written from the rules


def dead_by_rules(facts: ClientFacts, policy: LifecyclePolicy, at: datetime) -> bool:
    """SPEC: dead = has not paid for more than dormancy_days, or an explicit loss came
    after the last purchase; a client who never paid and was lost is also dead."""
    paid = [purchase for purchase in facts.purchases if purchase <= at]
    lost = [loss.at for loss in facts.losses if loss.at <= at]
    if not paid:
        return bool(lost)
    last = max(paid)
    return at - last > timedelta(days=policy.dormancy_days) or any(when > last for when in lost)


def stage_by_rules(facts: ClientFacts, policy: LifecyclePolicy, at: datetime) -> Stage | None:
    """The stage at ``at`` straight from the SPEC table, instant by instant."""
    if at < start_of(facts):
        return None
    paid = sorted(purchase for purchase in facts.purchases if purchase <= at)
    if not paid:
        return Stage.DEAD if any(loss.at <= at for loss in facts.losses) else Stage.POTENTIAL
    if dead_by_rules(facts, policy, at):
        return Stage.DEAD
    # The current paying stay began at the first purchase, or at the latest purchase
    # just before which the client was dead (instants are microsecond-grained).
    since = paid[0]
    for purchase in paid:
        if dead_by_rules(facts, policy, purchase - US):
            since = purchase
    # "Within the last N days" includes a purchase exactly N days old (the module's
    # documented reading, symmetric with "more than dormancy_days").
    window = timedelta(days=policy.loyal_window_days)
    loyal = any(
        sum(1 for other in paid if since <= other <= purchase and other >= purchase - window)
        >= policy.loyal_purchases
        for purchase in paid
        if purchase >= since
    )
    if loyal:
        return Stage.LOYAL
    was_dead_after_paying = dead_by_rules(facts, policy, since - US) and paid[0] < since
    return Stage.RETURNED if was_dead_after_paying else Stage.NEW


# ---------------------------------------------------------------- properties


@FAST
@given(data=st.data())
def test_a_client_buying_within_dormancy_is_never_dead_until_dormancy_after_the_last_purchase(
    data: st.DataObject,
) -> None:
    policy = data.draw(policies)
    registered_at = EPOCH + data.draw(st.timedeltas(timedelta(0), timedelta(days=365)))
    purchases = data.draw(purchase_instants(registered_at, policy, below_dormancy=True, min_size=1))
    facts = ClientFacts(registered_at, purchases)
    dormancy = timedelta(days=policy.dormancy_days)
    first, deadline = min(purchases), max(purchases) + dormancy

    intervals = stage_intervals(facts, policy)

    for interval in intervals:
        overlaps = interval.valid_from <= deadline and (
            interval.valid_to is None or interval.valid_to > first
        )
        assert not (overlaps and interval.stage is Stage.DEAD), intervals
    assert intervals[-1] == StageInterval(Stage.DEAD, deadline + US, None, INACTIVITY)


@FAST
@given(history=histories(), extra=random_instants)
def test_the_stage_at_an_instant_depends_only_on_facts_dated_up_to_it(
    history: tuple[ClientFacts, LifecyclePolicy], extra: list[datetime]
) -> None:
    facts, policy = history
    for at in [*probes(facts, policy), *extra]:
        assert stage_at(facts, policy, at) == stage_at(facts.up_to(at), policy, at), at


@FAST
@given(history=histories(), extra=random_instants)
def test_the_stage_at_any_instant_is_the_one_the_rules_give(
    history: tuple[ClientFacts, LifecyclePolicy], extra: list[datetime]
) -> None:
    facts, policy = history
    for at in [*probes(facts, policy), *extra]:
        assert stage_at(facts, policy, at) == stage_by_rules(facts, policy, at), at


@FAST
@given(history=histories())
def test_the_intervals_partition_time_from_the_first_known_instant(
    history: tuple[ClientFacts, LifecyclePolicy],
) -> None:
    facts, policy = history

    intervals = stage_intervals(facts, policy)

    assert intervals, "there is always at least one interval"
    assert intervals[0].valid_from == start_of(facts)
    assert intervals[-1].valid_to is None
    for before, after in pairwise(intervals):
        assert before.valid_to is not None, intervals
        assert before.valid_from < before.valid_to, intervals
        assert before.valid_to == after.valid_from, intervals
        assert before.stage != after.stage, intervals


@FAST
@given(data=st.data(), history=histories())
def test_the_intervals_do_not_depend_on_the_order_facts_are_given(
    data: st.DataObject, history: tuple[ClientFacts, LifecyclePolicy]
) -> None:
    facts, policy = history
    shuffled = ClientFacts(
        facts.registered_at,
        tuple(data.draw(st.permutations(facts.purchases))),
        tuple(data.draw(st.permutations(facts.losses))),
    )

    assert stage_intervals(shuffled, policy) == stage_intervals(facts, policy)


@FAST
@given(history=histories())
def test_only_a_dead_stay_has_a_reason_and_it_names_what_killed_the_client(
    history: tuple[ClientFacts, LifecyclePolicy],
) -> None:
    facts, policy = history
    dormancy = timedelta(days=policy.dormancy_days)

    for interval in stage_intervals(facts, policy):
        if interval.stage is not Stage.DEAD:
            assert interval.reason is None, interval
        elif interval.reason == INACTIVITY:
            # Dead one microsecond after last purchase + dormancy.
            earlier = [purchase for purchase in facts.purchases if purchase < interval.valid_from]
            assert earlier, interval
            assert interval.valid_from == max(earlier) + dormancy + US, interval
        else:
            assert Loss(interval.valid_from, str(interval.reason)) in facts.losses, interval


@FAST
@given(history=histories())
def test_a_returned_stay_follows_a_death_that_followed_a_paying_stay(
    history: tuple[ClientFacts, LifecyclePolicy],
) -> None:
    facts, policy = history
    stages = [interval.stage for interval in stage_intervals(facts, policy)]

    for index, stage in enumerate(stages):
        if stage is Stage.RETURNED:
            earlier_deaths = [i for i in range(index) if stages[i] is Stage.DEAD]
            assert earlier_deaths, stages
            assert any(stages[i] in PAYING_STAGES for i in range(earlier_deaths[-1])), stages


@FAST
@given(history=histories())
def test_potential_can_only_be_the_first_stay(
    history: tuple[ClientFacts, LifecyclePolicy],
) -> None:
    facts, policy = history
    stages = [interval.stage for interval in stage_intervals(facts, policy)]

    assert Stage.POTENTIAL not in stages[1:], stages
