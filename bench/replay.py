"""replay: ``replay(app, AvgCheck())`` over a generated history.

Two rates: events folded per second (the ``PurchaseMade`` events the KPI reads and
decodes) and store positions covered per second (the whole history swept, whatever
its topics). The baseline, in the same run: ``SELECT`` the same ``PurchaseMade``
rows page by page on a plain connection and ``orjson.loads`` each state.
"""

from __future__ import annotations

from typing import Any, cast

from eventsourcing.utils import get_topic

from adapters.replay import replay
from bench.common import Histories, Options, ratio, table, title
from bench.rebuild import raw_read
from domain.client import Client
from examples.kpis import AvgCheck
from projections.kpis import Kpi


def run(options: Options, histories: Histories) -> None:
    history = histories.get(options.backend, options.history_events)
    kpi = cast("Kpi[Any]", AvgCheck())  # its events tuple is narrower than Kpi says
    title(
        "replay",
        {
            "backend": options.backend,
            "events": f"{history.head:,}",
            "kpi": "examples.kpis:AvgCheck (reads PurchaseMade only)",
        },
    )
    raw = raw_read(history, [get_topic(Client.PurchaseMade)])
    report = replay(history.crm.app, kpi)
    folded = report.events_folded / report.seconds if report.seconds else 0.0
    covered = report.position / report.seconds if report.seconds else 0.0
    raw_covered = history.head / raw.seconds if raw.seconds else 0.0
    table(
        ["what", "events read", "seconds", "events/s", "vs raw", "positions/s", "vs raw"],
        [
            [
                "raw SELECT + orjson.loads",
                raw.rows,
                raw.seconds,
                raw.rows_per_second,
                "1.00x",
                raw_covered,
                "1.00x",
            ],
            [
                "replay AvgCheck",
                report.events_read,
                report.seconds,
                folded,
                ratio(folded, raw.rows_per_second),
                covered,
                ratio(covered, raw_covered),
            ],
        ],
    )
    print(f"   avg_check = {report.value} over {report.events_folded:,} purchases")
