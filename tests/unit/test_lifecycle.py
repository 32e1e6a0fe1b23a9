"""The client lifecycle (SPEC section 2, "Client lifecycle (value stage)"), by hand.

Every expected interval below was worked out from the rules with a calendar, not read
off the function. Unless a test says otherwise the policy is the default one:
3 purchases within 365 days make a client loyal, and more than 90 days without a
purchase make a client dead (from last purchase + 90 days + 1 microsecond on).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args

import pytest

from domain.lifecycle import (
    ClientFacts,
    LifecyclePolicy,
    Loss,
    Stage,
    StageInterval,
    StageName,
    deaths,
    interval_at,
    stage_at,
    stage_intervals,
)

DEFAULT = LifecyclePolicy()

POTENTIAL = Stage.POTENTIAL
NEW = Stage.NEW
LOYAL = Stage.LOYAL
DEAD = Stage.DEAD
RETURNED = Stage.RETURNED


def t(year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, us: int = 0) -> datetime:
    """An aware UTC instant, to the microsecond."""
    return datetime(year, month, day, hour, minute, 0, us, tzinfo=UTC)


def facts(
    registered_at: datetime, purchases: tuple[datetime, ...] = (), losses: tuple[Loss, ...] = ()
) -> ClientFacts:
    return ClientFacts(registered_at=registered_at, purchases=purchases, losses=losses)


def stay(
    stage: Stage, valid_from: datetime, valid_to: datetime | None = None, reason: str | None = None
) -> StageInterval:
    return StageInterval(stage, valid_from, valid_to, reason)


def test_a_request_names_exactly_the_stages_there_are() -> None:
    assert get_args(StageName) == tuple(Stage)


# ------------------------------------------------------------------- potential


def test_a_client_who_never_paid_stays_potential_forever() -> None:
    history = facts(t(2023, 1, 10, 9))

    assert stage_intervals(history, DEFAULT) == [stay(POTENTIAL, t(2023, 1, 10, 9))]
    assert stage_at(history, DEFAULT, t(2023, 1, 10, 9)) is POTENTIAL
    assert stage_at(history, DEFAULT, t(2023, 6, 1)) is POTENTIAL  # no death by time
    assert stage_at(history, DEFAULT, t(2040, 1, 1)) is POTENTIAL


def test_there_is_no_stage_before_registration() -> None:
    history = facts(t(2023, 1, 10, 9))

    assert stage_at(history, DEFAULT, t(2023, 1, 10, 8, 59)) is None
    assert stage_at(history, DEFAULT, datetime(2023, 1, 10, 8, 59, 59, 999999, UTC)) is None
    assert stage_at(history, DEFAULT, t(2023, 1, 10, 9)) is POTENTIAL


# ------------------------------------------------------------------------- new


def test_the_first_purchase_makes_a_client_new() -> None:
    # Feb 1 + 90 days: 27 days to Feb 28, 31 to Mar 31, 30 to Apr 30, 2 to May 2.
    history = facts(t(2023, 1, 10), purchases=(t(2023, 2, 1, 12),))

    assert stage_intervals(history, DEFAULT) == [
        stay(POTENTIAL, t(2023, 1, 10), t(2023, 2, 1, 12)),
        stay(NEW, t(2023, 2, 1, 12), t(2023, 5, 2, 12, us=1)),
        stay(DEAD, t(2023, 5, 2, 12, us=1), None, "inactivity"),
    ]
    assert stage_at(history, DEFAULT, datetime(2023, 2, 1, 11, 59, 59, 999999, UTC)) is POTENTIAL
    assert stage_at(history, DEFAULT, t(2023, 2, 1, 12)) is NEW


def test_a_purchase_at_the_instant_of_registration_leaves_no_potential_stay() -> None:
    history = facts(t(2023, 3, 1, 10), purchases=(t(2023, 3, 1, 10),))

    # Mar 1 + 90 days = May 30.
    assert stage_intervals(history, DEFAULT) == [
        stay(NEW, t(2023, 3, 1, 10), t(2023, 5, 30, 10, us=1)),
        stay(DEAD, t(2023, 5, 30, 10, us=1), None, "inactivity"),
    ]


# ----------------------------------------------------------------------- loyal


def test_the_third_purchase_within_the_window_makes_a_client_loyal() -> None:
    history = facts(t(2023, 1, 1), purchases=(t(2023, 1, 10), t(2023, 3, 1), t(2023, 4, 15)))

    # Apr 15 + 90 days: 15 to Apr 30, 31 to May 31, 30 to Jun 30, 14 to Jul 14.
    assert stage_intervals(history, DEFAULT) == [
        stay(POTENTIAL, t(2023, 1, 1), t(2023, 1, 10)),
        stay(NEW, t(2023, 1, 10), t(2023, 4, 15)),
        stay(LOYAL, t(2023, 4, 15), t(2023, 7, 14, us=1)),
        stay(DEAD, t(2023, 7, 14, us=1), None, "inactivity"),
    ]
    assert stage_at(history, DEFAULT, t(2023, 3, 1)) is NEW  # two purchases are not enough
    assert stage_at(history, DEFAULT, t(2023, 4, 15)) is LOYAL


def test_purchases_spread_over_more_than_the_window_do_not_make_a_client_loyal() -> None:
    # A long dormancy so that the client stays alive between rare purchases.
    policy = LifecyclePolicy(loyal_purchases=3, loyal_window_days=365, dormancy_days=400)
    purchases = (t(2020, 1, 1), t(2020, 7, 1), t(2021, 3, 1))
    history = facts(t(2019, 12, 1), purchases=purchases)

    # On 2021-03-01 the last 365 days began 2020-03-01 (2020 is a leap year), so the
    # purchase of 2020-01-01 has left the window: 2 purchases in it, not 3.
    # 2021-03-01 + 400 days = 2022-03-01 + 35 days = 2022-04-05.
    assert stage_intervals(history, policy) == [
        stay(POTENTIAL, t(2019, 12, 1), t(2020, 1, 1)),
        stay(NEW, t(2020, 1, 1), t(2022, 4, 5, us=1)),
        stay(DEAD, t(2022, 4, 5, us=1), None, "inactivity"),
    ]

    # A fourth purchase a month later puts 3 purchases (Jul 1, Mar 1, Apr 1) in the window.
    # 2021-04-01 + 400 days = 2022-04-01 + 35 days = 2022-05-06.
    history = facts(t(2019, 12, 1), purchases=(*purchases, t(2021, 4, 1)))
    assert stage_intervals(history, policy) == [
        stay(POTENTIAL, t(2019, 12, 1), t(2020, 1, 1)),
        stay(NEW, t(2020, 1, 1), t(2021, 4, 1)),
        stay(LOYAL, t(2021, 4, 1), t(2022, 5, 6, us=1)),
        stay(DEAD, t(2022, 5, 6, us=1), None, "inactivity"),
    ]


def test_a_loyal_client_stays_loyal_while_buying_even_with_fewer_purchases_in_the_window() -> None:
    policy = LifecyclePolicy(loyal_purchases=3, loyal_window_days=30, dormancy_days=90)
    # Loyal on Jan 10; then one purchase every ~70 days: a single one in any 30-day window.
    history = facts(
        t(2023, 1, 1),
        purchases=(t(2023, 1, 2), t(2023, 1, 5), t(2023, 1, 10), t(2023, 3, 20), t(2023, 6, 1)),
    )

    # Jun 1 + 90 days: 29 to Jun 30, 31 to Jul 31, 30 to Aug 30.
    assert stage_intervals(history, policy) == [
        stay(POTENTIAL, t(2023, 1, 1), t(2023, 1, 2)),
        stay(NEW, t(2023, 1, 2), t(2023, 1, 10)),
        stay(LOYAL, t(2023, 1, 10), t(2023, 8, 30, us=1)),
        stay(DEAD, t(2023, 8, 30, us=1), None, "inactivity"),
    ]
    assert stage_at(history, policy, t(2023, 5, 1)) is LOYAL  # nothing in the window, still loyal


def test_two_purchases_at_the_same_instant_count_as_two_purchases() -> None:
    history = facts(t(2023, 1, 1), purchases=(t(2023, 1, 10), t(2023, 2, 1), t(2023, 2, 1)))

    # Feb 1 + 90 days = May 2.
    assert stage_intervals(history, DEFAULT) == [
        stay(POTENTIAL, t(2023, 1, 1), t(2023, 1, 10)),
        stay(NEW, t(2023, 1, 10), t(2023, 2, 1)),
        stay(LOYAL, t(2023, 2, 1), t(2023, 5, 2, us=1)),
        stay(DEAD, t(2023, 5, 2, us=1), None, "inactivity"),
    ]


# ------------------------------------------------------------------------ dead


def test_a_client_who_stops_buying_becomes_dead_after_dormancy() -> None:
    history = facts(t(2023, 3, 1, 9), purchases=(t(2023, 3, 1, 10),))

    # Mar 1 + 90 days: 30 to Mar 31, 30 to Apr 30, 30 to May 30.
    exactly_90_days = t(2023, 5, 30, 10)
    assert stage_at(history, DEFAULT, exactly_90_days) is NEW  # not *more than* 90 days yet
    assert stage_at(history, DEFAULT, t(2023, 5, 30, 10, us=1)) is DEAD
    assert stage_intervals(history, DEFAULT) == [
        stay(POTENTIAL, t(2023, 3, 1, 9), t(2023, 3, 1, 10)),
        stay(NEW, t(2023, 3, 1, 10), t(2023, 5, 30, 10, us=1)),
        stay(DEAD, t(2023, 5, 30, 10, us=1), None, "inactivity"),
    ]


def test_a_purchase_keeps_postponing_death_by_inactivity() -> None:
    # Gaps of 89 and 90 days: never more than 90 days without paying until the last one.
    history = facts(t(2023, 1, 1), purchases=(t(2023, 1, 1), t(2023, 3, 31), t(2023, 6, 29)))

    # Jan 1 + 89 days = Mar 31; Mar 31 + 90 days = Jun 29; Jun 29 + 90 days = Sep 27.
    assert stage_intervals(history, DEFAULT) == [
        stay(NEW, t(2023, 1, 1), t(2023, 6, 29)),
        stay(LOYAL, t(2023, 6, 29), t(2023, 9, 27, us=1)),
        stay(DEAD, t(2023, 9, 27, us=1), None, "inactivity"),
    ]


def test_a_purchase_at_the_very_instant_of_death_by_inactivity_keeps_the_client_alive() -> None:
    # Mar 1 10:00 + 90 days + 1 us is the first dead instant, but a purchase lands on it:
    # at that instant the client has just paid, so it was never dead and does not "return".
    history = facts(t(2023, 3, 1, 10), purchases=(t(2023, 3, 1, 10), t(2023, 5, 30, 10, us=1)))

    # May 30 + 90 days: 1 to May 31, 30 to Jun 30, 31 to Jul 31, 28 to Aug 28.
    assert stage_intervals(history, DEFAULT) == [
        stay(NEW, t(2023, 3, 1, 10), t(2023, 8, 28, 10, us=2)),
        stay(DEAD, t(2023, 8, 28, 10, us=2), None, "inactivity"),
    ]


def test_a_purchase_one_microsecond_after_death_by_inactivity_is_a_return() -> None:
    history = facts(t(2023, 3, 1, 10), purchases=(t(2023, 3, 1, 10), t(2023, 5, 30, 10, us=2)))

    assert stage_intervals(history, DEFAULT) == [
        stay(NEW, t(2023, 3, 1, 10), t(2023, 5, 30, 10, us=1)),
        stay(DEAD, t(2023, 5, 30, 10, us=1), t(2023, 5, 30, 10, us=2), "inactivity"),
        stay(RETURNED, t(2023, 5, 30, 10, us=2), t(2023, 8, 28, 10, us=3)),
        stay(DEAD, t(2023, 8, 28, 10, us=3), None, "inactivity"),
    ]


def test_an_explicit_loss_after_the_last_purchase_makes_the_client_dead_from_that_instant() -> None:
    history = facts(
        t(2023, 3, 1, 9),
        purchases=(t(2023, 3, 1, 10),),
        losses=(Loss(t(2023, 3, 15, 16, 30), "price"),),
    )

    assert stage_intervals(history, DEFAULT) == [
        stay(POTENTIAL, t(2023, 3, 1, 9), t(2023, 3, 1, 10)),
        stay(NEW, t(2023, 3, 1, 10), t(2023, 3, 15, 16, 30)),
        stay(DEAD, t(2023, 3, 15, 16, 30), None, "price"),
    ]
    assert stage_at(history, DEFAULT, datetime(2023, 3, 15, 16, 29, 59, 999999, UTC)) is NEW
    assert stage_at(history, DEFAULT, t(2023, 3, 15, 16, 30)) is DEAD


def test_a_loyal_client_explicitly_lost_is_dead_and_comes_back_as_returned() -> None:
    history = facts(
        t(2023, 1, 1),
        purchases=(t(2023, 1, 10), t(2023, 2, 10), t(2023, 3, 10), t(2023, 5, 1)),
        losses=(Loss(t(2023, 4, 1), "competitor"),),
    )

    # May 1 + 90 days = Jul 30.
    assert stage_intervals(history, DEFAULT) == [
        stay(POTENTIAL, t(2023, 1, 1), t(2023, 1, 10)),
        stay(NEW, t(2023, 1, 10), t(2023, 3, 10)),
        stay(LOYAL, t(2023, 3, 10), t(2023, 4, 1)),
        stay(DEAD, t(2023, 4, 1), t(2023, 5, 1), "competitor"),
        stay(RETURNED, t(2023, 5, 1), t(2023, 7, 30, us=1)),
        stay(DEAD, t(2023, 7, 30, us=1), None, "inactivity"),
    ]


def test_a_loss_at_the_same_instant_as_a_purchase_is_ignored() -> None:
    purchase = t(2023, 3, 1, 10)
    without_loss = facts(t(2023, 3, 1, 9), purchases=(purchase,))
    with_loss = facts(t(2023, 3, 1, 9), purchases=(purchase,), losses=(Loss(purchase, "service"),))

    expected = [
        stay(POTENTIAL, t(2023, 3, 1, 9), t(2023, 3, 1, 10)),
        stay(NEW, t(2023, 3, 1, 10), t(2023, 5, 30, 10, us=1)),
        stay(DEAD, t(2023, 5, 30, 10, us=1), None, "inactivity"),
    ]
    assert stage_intervals(without_loss, DEFAULT) == expected
    assert stage_intervals(with_loss, DEFAULT) == expected


def test_a_loss_at_the_instant_of_a_later_purchase_is_ignored_too() -> None:
    history = facts(
        t(2023, 3, 1, 9),
        purchases=(t(2023, 3, 1, 10), t(2023, 4, 1, 10)),
        losses=(Loss(t(2023, 4, 1, 10), "service"),),
    )

    # Apr 1 + 90 days: 29 to Apr 30, 31 to May 31, 30 to Jun 30.
    assert stage_intervals(history, DEFAULT) == [
        stay(POTENTIAL, t(2023, 3, 1, 9), t(2023, 3, 1, 10)),
        stay(NEW, t(2023, 3, 1, 10), t(2023, 6, 30, 10, us=1)),
        stay(DEAD, t(2023, 6, 30, 10, us=1), None, "inactivity"),
    ]


def test_a_loss_one_microsecond_after_a_purchase_counts() -> None:
    history = facts(
        t(2023, 3, 1, 10),
        purchases=(t(2023, 3, 1, 10),),
        losses=(Loss(t(2023, 3, 1, 10, us=1), "moved"),),
    )

    assert stage_intervals(history, DEFAULT) == [
        stay(NEW, t(2023, 3, 1, 10), t(2023, 3, 1, 10, us=1)),
        stay(DEAD, t(2023, 3, 1, 10, us=1), None, "moved"),
    ]


def test_a_second_loss_while_dead_changes_nothing() -> None:
    once = facts(
        t(2023, 3, 1, 9),
        purchases=(t(2023, 3, 1, 10),),
        losses=(Loss(t(2023, 3, 15), "price"),),
    )
    twice = facts(
        t(2023, 3, 1, 9),
        purchases=(t(2023, 3, 1, 10),),
        losses=(Loss(t(2023, 3, 15), "price"), Loss(t(2023, 4, 1), "moved")),
    )

    expected = [
        stay(POTENTIAL, t(2023, 3, 1, 9), t(2023, 3, 1, 10)),
        stay(NEW, t(2023, 3, 1, 10), t(2023, 3, 15)),
        stay(DEAD, t(2023, 3, 15), None, "price"),
    ]
    assert stage_intervals(once, DEFAULT) == expected
    assert stage_intervals(twice, DEFAULT) == expected


def test_a_loss_after_death_by_inactivity_keeps_inactivity_as_the_reason() -> None:
    history = facts(
        t(2023, 3, 1, 9),
        purchases=(t(2023, 3, 1, 10),),
        losses=(Loss(t(2023, 7, 1), "moved"),),
    )

    assert stage_intervals(history, DEFAULT) == [
        stay(POTENTIAL, t(2023, 3, 1, 9), t(2023, 3, 1, 10)),
        stay(NEW, t(2023, 3, 1, 10), t(2023, 5, 30, 10, us=1)),
        stay(DEAD, t(2023, 5, 30, 10, us=1), None, "inactivity"),
    ]


# -------------------------------------------------------------------- returned


def test_a_client_lost_who_buys_again_has_returned() -> None:
    history = facts(
        t(2023, 2, 20),
        purchases=(t(2023, 3, 1), t(2023, 6, 1)),
        losses=(Loss(t(2023, 4, 10), "competitor"),),
    )

    # Jun 1 + 90 days = Aug 30.
    assert stage_intervals(history, DEFAULT) == [
        stay(POTENTIAL, t(2023, 2, 20), t(2023, 3, 1)),
        stay(NEW, t(2023, 3, 1), t(2023, 4, 10)),
        stay(DEAD, t(2023, 4, 10), t(2023, 6, 1), "competitor"),
        stay(RETURNED, t(2023, 6, 1), t(2023, 8, 30, us=1)),
        stay(DEAD, t(2023, 8, 30, us=1), None, "inactivity"),
    ]


def test_a_client_dead_by_inactivity_who_buys_again_has_returned() -> None:
    history = facts(t(2023, 1, 1), purchases=(t(2023, 1, 15), t(2023, 6, 1)))

    # Jan 15 + 90 days: 16 to Jan 31, 28 to Feb 28, 31 to Mar 31, 15 to Apr 15.
    assert stage_intervals(history, DEFAULT) == [
        stay(POTENTIAL, t(2023, 1, 1), t(2023, 1, 15)),
        stay(NEW, t(2023, 1, 15), t(2023, 4, 15, us=1)),
        stay(DEAD, t(2023, 4, 15, us=1), t(2023, 6, 1), "inactivity"),
        stay(RETURNED, t(2023, 6, 1), t(2023, 8, 30, us=1)),
        stay(DEAD, t(2023, 8, 30, us=1), None, "inactivity"),
    ]


def test_a_returned_client_needs_the_loyal_count_of_purchases_since_the_return() -> None:
    history = facts(
        t(2023, 1, 1),
        purchases=(
            t(2023, 1, 10),
            t(2023, 2, 10),  # two purchases before the death: they do not count later
            t(2023, 4, 1),  # the return
            t(2023, 5, 1),  # 4 purchases in the last 365 days, but only 2 since the return
            t(2023, 6, 1),  # the third since the return
        ),
        losses=(Loss(t(2023, 3, 1), "service"),),
    )

    assert stage_intervals(history, DEFAULT) == [
        stay(POTENTIAL, t(2023, 1, 1), t(2023, 1, 10)),
        stay(NEW, t(2023, 1, 10), t(2023, 3, 1)),
        stay(DEAD, t(2023, 3, 1), t(2023, 4, 1), "service"),
        stay(RETURNED, t(2023, 4, 1), t(2023, 6, 1)),
        stay(LOYAL, t(2023, 6, 1), t(2023, 8, 30, us=1)),
        stay(DEAD, t(2023, 8, 30, us=1), None, "inactivity"),
    ]
    assert stage_at(history, DEFAULT, t(2023, 5, 1)) is RETURNED


def test_a_lead_lost_before_ever_paying_is_dead_and_becomes_new_when_it_pays() -> None:
    history = facts(
        t(2023, 1, 1),
        purchases=(t(2023, 5, 1),),
        losses=(Loss(t(2023, 2, 1), "no_need"),),
    )

    # May 1 + 90 days: 30 to May 31, 30 to Jun 30, 30 to Jul 30.
    assert stage_intervals(history, DEFAULT) == [
        stay(POTENTIAL, t(2023, 1, 1), t(2023, 2, 1)),
        stay(DEAD, t(2023, 2, 1), t(2023, 5, 1), "no_need"),
        stay(NEW, t(2023, 5, 1), t(2023, 7, 30, us=1)),
        stay(DEAD, t(2023, 7, 30, us=1), None, "inactivity"),
    ]


def test_a_lead_lost_and_never_paying_stays_dead_with_its_reason() -> None:
    history = facts(t(2023, 1, 1), losses=(Loss(t(2023, 2, 1), "no_need"),))

    assert stage_intervals(history, DEFAULT) == [
        stay(POTENTIAL, t(2023, 1, 1), t(2023, 2, 1)),
        stay(DEAD, t(2023, 2, 1), None, "no_need"),
    ]
    assert stage_at(history, DEFAULT, t(2030, 1, 1)) is DEAD


def test_a_lead_lost_at_the_instant_it_registers_is_dead_from_the_start() -> None:
    history = facts(t(2023, 1, 1, 12), losses=(Loss(t(2023, 1, 1, 12), "other"),))

    assert stage_intervals(history, DEFAULT) == [stay(DEAD, t(2023, 1, 1, 12), None, "other")]


# ------------------------------------------------------- late and back-dated facts


def test_back_dated_facts_given_in_any_order_give_the_same_intervals() -> None:
    expected = [
        stay(POTENTIAL, t(2023, 2, 20), t(2023, 3, 1)),
        stay(NEW, t(2023, 3, 1), t(2023, 4, 10)),
        stay(DEAD, t(2023, 4, 10), t(2023, 6, 1), "competitor"),
        stay(RETURNED, t(2023, 6, 1), t(2023, 8, 30, us=1)),
        stay(DEAD, t(2023, 8, 30, us=1), None, "inactivity"),
    ]
    in_order = facts(
        t(2023, 2, 20),
        purchases=(t(2023, 3, 1), t(2023, 6, 1)),
        losses=(Loss(t(2023, 4, 10), "competitor"),),
    )
    # The old purchase was imported after the newer one.
    imported_late = facts(
        t(2023, 2, 20),
        purchases=(t(2023, 6, 1), t(2023, 3, 1)),
        losses=(Loss(t(2023, 4, 10), "competitor"),),
    )

    assert stage_intervals(in_order, DEFAULT) == expected
    assert stage_intervals(imported_late, DEFAULT) == expected


def test_a_late_old_purchase_can_make_a_client_loyal_in_the_past() -> None:
    purchases = (t(2023, 4, 15), t(2023, 1, 10), t(2023, 3, 1))  # imported out of order
    history = facts(t(2023, 1, 1), purchases=purchases)

    assert stage_intervals(history, DEFAULT) == [
        stay(POTENTIAL, t(2023, 1, 1), t(2023, 1, 10)),
        stay(NEW, t(2023, 1, 10), t(2023, 4, 15)),
        stay(LOYAL, t(2023, 4, 15), t(2023, 7, 14, us=1)),
        stay(DEAD, t(2023, 7, 14, us=1), None, "inactivity"),
    ]


def test_a_purchase_dated_before_registration_starts_the_timeline_at_that_purchase() -> None:
    # Imported in 2023, the client bought in 2019.
    history = facts(t(2023, 6, 1), purchases=(t(2019, 5, 10),))

    # 2019-05-10 + 90 days: 21 to May 31, 30 to Jun 30, 31 to Jul 31, 8 to Aug 8.
    assert stage_intervals(history, DEFAULT) == [
        stay(NEW, t(2019, 5, 10), t(2019, 8, 8, us=1)),
        stay(DEAD, t(2019, 8, 8, us=1), None, "inactivity"),
    ]
    assert stage_at(history, DEFAULT, datetime(2019, 5, 9, 23, 59, 59, 999999, UTC)) is None
    assert stage_at(history, DEFAULT, t(2019, 5, 10)) is NEW
    assert stage_at(history, DEFAULT, t(2023, 6, 1)) is DEAD


# ---------------------------------------------------------------------- policy


def test_a_custom_policy_is_respected() -> None:
    policy = LifecyclePolicy(loyal_purchases=1, loyal_window_days=365, dormancy_days=30)
    history = facts(t(2023, 1, 1), purchases=(t(2023, 1, 15), t(2023, 3, 1)))

    # One purchase is enough to be loyal, also right after a return.
    # Jan 15 + 30 days = Feb 14; Mar 1 + 30 days = Mar 31.
    assert stage_intervals(history, policy) == [
        stay(POTENTIAL, t(2023, 1, 1), t(2023, 1, 15)),
        stay(LOYAL, t(2023, 1, 15), t(2023, 2, 14, us=1)),
        stay(DEAD, t(2023, 2, 14, us=1), t(2023, 3, 1), "inactivity"),
        stay(LOYAL, t(2023, 3, 1), t(2023, 3, 31, us=1)),
        stay(DEAD, t(2023, 3, 31, us=1), None, "inactivity"),
    ]
    assert stage_at(history, policy, t(2023, 2, 14)) is LOYAL
    assert stage_at(history, policy, t(2023, 2, 14, us=1)) is DEAD


def test_a_short_loyalty_window_counts_only_recent_purchases() -> None:
    policy = LifecyclePolicy(loyal_purchases=3, loyal_window_days=100, dormancy_days=90)
    # Day 0, 60, 120: on day 120 the window (day 20, day 120] holds 2; day 150 makes 3.
    history = facts(t(2023, 1, 1), purchases=(t(2023, 1, 1), t(2023, 3, 2), t(2023, 5, 1)))

    # May 1 + 90 days = Jul 30.
    assert stage_intervals(history, policy) == [
        stay(NEW, t(2023, 1, 1), t(2023, 7, 30, us=1)),
        stay(DEAD, t(2023, 7, 30, us=1), None, "inactivity"),
    ]
    history = facts(
        t(2023, 1, 1), purchases=(t(2023, 1, 1), t(2023, 3, 2), t(2023, 5, 1), t(2023, 5, 31))
    )
    # May 31 + 90 days: 30 to Jun 30, 31 to Jul 31, 29 to Aug 29.
    assert stage_intervals(history, policy) == [
        stay(NEW, t(2023, 1, 1), t(2023, 5, 31)),
        stay(LOYAL, t(2023, 5, 31), t(2023, 8, 29, us=1)),
        stay(DEAD, t(2023, 8, 29, us=1), None, "inactivity"),
    ]


def test_a_purchase_exactly_one_window_old_still_counts_towards_loyalty() -> None:
    policy = LifecyclePolicy(loyal_purchases=3, loyal_window_days=100, dormancy_days=90)
    # Jan 1 + 100 days = Apr 11: the third purchase on Apr 11 sees Jan 1 at the window's
    # inclusive edge, so it makes 3 purchases within the last 100 days.
    history = facts(t(2023, 1, 1), purchases=(t(2023, 1, 1), t(2023, 3, 1), t(2023, 4, 11)))
    # Apr 11 + 90 days: 19 to Apr 30, 31 to May 31, 30 to Jun 30, 10 to Jul 10.
    assert stage_intervals(history, policy) == [
        stay(NEW, t(2023, 1, 1), t(2023, 4, 11)),
        stay(LOYAL, t(2023, 4, 11), t(2023, 7, 10, us=1)),
        stay(DEAD, t(2023, 7, 10, us=1), None, "inactivity"),
    ]
    one_microsecond_later = facts(
        t(2023, 1, 1), purchases=(t(2023, 1, 1), t(2023, 3, 1), t(2023, 4, 11, us=1))
    )
    assert stage_at(one_microsecond_later, policy, t(2023, 4, 12)) is NEW


def test_a_loss_at_the_first_instant_of_death_by_inactivity_keeps_inactivity_as_reason() -> None:
    history = facts(
        t(2023, 1, 1),
        purchases=(t(2023, 1, 1),),
        losses=(Loss(t(2023, 4, 1, us=1), "price"),),  # Jan 1 + 90 days = Apr 1
    )
    assert stage_intervals(history, DEFAULT) == [
        stay(NEW, t(2023, 1, 1), t(2023, 4, 1, us=1)),
        stay(DEAD, t(2023, 4, 1, us=1), None, "inactivity"),
    ]


def test_a_policy_setting_must_be_positive() -> None:
    for settings in ({"loyal_purchases": 0}, {"loyal_window_days": 0}, {"dormancy_days": -1}):
        with pytest.raises(ValueError, match="positive"):
            LifecyclePolicy(**settings)


# ---------------------------------------------------------- deaths, interval_at


def test_deaths_lists_each_transition_to_dead_with_its_reason() -> None:
    history = facts(
        t(2023, 2, 20),
        purchases=(t(2023, 3, 1), t(2023, 6, 1)),
        losses=(Loss(t(2023, 4, 10), "competitor"),),
    )

    assert deaths(stage_intervals(history, DEFAULT)) == [
        stay(DEAD, t(2023, 4, 10), t(2023, 6, 1), "competitor"),
        stay(DEAD, t(2023, 8, 30, us=1), None, "inactivity"),
    ]
    assert deaths(stage_intervals(facts(t(2023, 2, 20)), DEFAULT)) == []


def test_interval_at_finds_the_half_open_interval_holding_an_instant() -> None:
    history = facts(
        t(2023, 3, 1, 9),
        purchases=(t(2023, 3, 1, 10),),
        losses=(Loss(t(2023, 3, 15), "price"),),
    )
    intervals = stage_intervals(history, DEFAULT)

    assert interval_at(intervals, datetime(2023, 3, 1, 8, 59, 59, 999999, UTC)) is None
    assert interval_at(intervals, t(2023, 3, 1, 9)) == intervals[0]
    assert interval_at(intervals, t(2023, 3, 1, 10)) == stay(NEW, t(2023, 3, 1, 10), t(2023, 3, 15))
    assert interval_at(intervals, t(2023, 3, 15)) == stay(DEAD, t(2023, 3, 15), None, "price")
    assert interval_at(intervals, t(2099, 1, 1)) == stay(DEAD, t(2023, 3, 15), None, "price")
