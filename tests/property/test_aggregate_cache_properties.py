"""The aggregate cache changes nothing a command decides or records: over random
histories, two processes with caches of their own, taking turns on one store (so
that each one's cache is often behind the other's writes), accept and refuse the
same commands and record the same events as one process without a cache."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from uuid import UUID

from hypothesis import given

from api.bootstrap import Crm, bootstrap
from application import clients, deals
from application.errors import ApplicationError
from domain.errors import DomainError
from tests.conftest import fresh_product
from tests.property.test_audit_properties import BACKENDS, ENVELOPE, PROPERTY, STEPS, Step, command

Shape = tuple[list[bool], list[tuple[int, int, str]]]


def run(steps: list[Step], products: list[Crm]) -> Shape:
    """Step ``i`` runs on ``products[i % len(products)]``. Returns which commands
    were accepted, and every stored event as (its aggregate's order of first
    appearance, version, topic): ids and times differ between runs, not these."""
    products[0].users.add("maria", "manager")
    products[0].users.add("ivan", "manager")
    ids: list[UUID] = []
    deal_ids: list[UUID] = []
    accepted = []
    for i, step in enumerate(steps):
        cmd = command(step, ids, deal_ids)
        try:
            result = products[i % len(products)].app.execute(
                cmd, replace(ENVELOPE, actor_id=step.actor)
            )
        except (DomainError, ApplicationError):
            accepted.append(False)
            continue
        accepted.append(True)
        if isinstance(cmd, clients.RegisterClient):
            ids.append(result.id)
        elif isinstance(cmd, deals.OpenDeal):
            deal_ids.append(result.id)
    order: dict[UUID, int] = {}
    stored = products[0].app.recorder.select_notifications(start=1, limit=1_000_000)
    events = [
        (order.setdefault(n.originator_id, len(order)), n.originator_version, n.topic)
        for n in stored
    ]
    return accepted, events


@BACKENDS
@PROPERTY
@given(steps=STEPS)
def test_two_cached_processes_decide_and_record_as_one_without_a_cache(
    backend: str, tmp_path: Path, steps: list[Step]
) -> None:
    with fresh_product(backend, tmp_path, aggregate_cache_size=0) as plain:
        expected = run(steps, [plain])
    with fresh_product(backend, tmp_path) as first, bootstrap(first.settings) as second:
        assert run(steps, [first, second]) == expected
