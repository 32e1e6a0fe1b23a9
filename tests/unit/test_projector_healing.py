"""The projector rides out the database's failures (``follow_until_stopped``) and
gives up only on what retrying cannot fix; its pauses grow, capped and jittered."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError
from hypothesis import given
from hypothesis import strategies as st

from adapters.keys import MasterKeyError
from adapters.projector import Backoff, follow_until_stopped
from adapters.telemetry import PROJECTOR_RESTARTS, PROJECTOR_RETRIES


class ScriptedProjector:
    """A projector whose ``follow`` fails as scripted, or runs (then stops the loop)."""

    def __init__(self, outcome: BaseException | None, stop: threading.Event) -> None:
        self.outcome = outcome
        self.stop = stop

    def follow(self, stop: threading.Event, **options: Any) -> None:
        if self.outcome is not None:
            raise self.outcome
        options["on_running"]()
        self.stop.set()


def scripted(outcomes: list[BaseException | None], stop: threading.Event) -> Any:
    made: list[ScriptedProjector] = []

    def make() -> ScriptedProjector:
        made.append(ScriptedProjector(outcomes[len(made)], stop))
        return made[-1]

    make.made = made  # type: ignore[attr-defined]
    return make


def quick() -> Backoff:
    return Backoff(first=0.001, cap=0.002)


def test_a_projector_that_loses_the_database_tries_again_and_logs_the_episode_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()
    lost = OperationalError("server closed the connection unexpectedly")
    make = scripted([lost, lost, lost, None], stop)
    retries, restarts = PROJECTOR_RETRIES._value.get(), PROJECTOR_RESTARTS._value.get()

    with caplog.at_level(logging.INFO, logger="adapters.projector"):
        follow_until_stopped(make, stop, backoff=quick())

    assert len(make.made) == 4  # made again after each failure, then ran
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings  # the failure once, and the recovery
    assert "server closed the connection" in warnings[0]
    assert "running again" in warnings[1]
    assert "3 retries" in warnings[1]
    assert PROJECTOR_RETRIES._value.get() - retries == 3
    assert PROJECTOR_RESTARTS._value.get() - restarts == 1


@pytest.mark.parametrize(
    "fatal", [MasterKeyError("the master key does not open the store"), ValueError("bad schema")]
)
def test_an_error_that_retrying_cannot_fix_stops_the_projector(fatal: Exception) -> None:
    stop = threading.Event()
    make = scripted([OperationalError("lost"), fatal, None], stop)

    with pytest.raises(type(fatal)):
        follow_until_stopped(make, stop, backoff=quick())
    assert len(make.made) == 2


def test_a_projector_stopped_while_waiting_to_retry_stops_without_running() -> None:
    stop = threading.Event()
    made = 0

    def make() -> ScriptedProjector:
        nonlocal made
        made += 1
        stop.set()  # SIGTERM arrives while the database is down
        return ScriptedProjector(OperationalError("lost"), stop)

    follow_until_stopped(make, stop, backoff=Backoff(first=60, cap=60))  # no 60 s wait
    assert made == 1


@given(st.floats(0.001, 1.0), st.floats(1.0, 30.0), st.integers(1, 40))
def test_pauses_double_up_to_the_cap_each_drawn_from_its_upper_half(
    first: float, cap: float, count: int
) -> None:
    backoff = Backoff(first=first, cap=cap)
    ceiling = first
    for _ in range(count):
        pause = backoff.pause()
        assert ceiling / 2 <= pause <= ceiling
        ceiling = min(cap, ceiling * 2)
    backoff.reset()
    assert first / 2 <= backoff.pause() <= first
