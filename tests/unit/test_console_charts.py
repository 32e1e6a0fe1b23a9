"""The console's server-side charts and the definitions shown beside its figures."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from api.ui import charts
from api.ui.definitions import KPI_DEFINITIONS, KPI_LABELS
from projections.kpis import KEYS


def test_every_kpi_the_api_serves_has_a_definition_and_a_label() -> None:
    assert set(KPI_DEFINITIONS) == set(KEYS)
    assert set(KPI_LABELS) == set(KEYS)


def test_labels_from_users_are_escaped_inside_the_svg() -> None:
    svg = charts.horizontal_bars(
        [("<script>alert(1)</script>", 3.0)],
        title="a <b> title",
        description="d & e",
        x_label="deals",
    )
    assert "<script>" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "a &lt;b&gt; title" in svg
    assert "d &amp; e" in svg


def test_a_stacked_chart_writes_each_column_total_and_names_every_series() -> None:
    svg = charts.stacked_columns(
        ["2024-01", "2024-02"],
        [
            charts.Series("potential", [1, 0], charts.STAGE_COLOURS["potential"]),
            charts.Series("dead", [2, 5], charts.STAGE_COLOURS["dead"]),
        ],
        title="t",
        description="d",
        x_label="month",
        y_label="clients",
    )
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert {"3", "5", "potential", "dead", "month", "clients", "2024-01", "2024-02"} <= set(texts)
    for part in ('role="img"', "<title", "<desc"):
        assert part in svg


def test_value_axes_step_in_ones_twos_or_fives() -> None:
    assert charts.nice_ticks(0) == [0.0, 1.0]
    assert charts.nice_ticks(3) == [0.0, 1.0, 2.0, 3.0]
    assert charts.nice_ticks(86) == [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    assert charts.nice_ticks(149) == [0.0, 50.0, 100.0, 150.0]


def test_the_time_axis_marks_months_quarters_or_years_as_the_span_needs() -> None:
    def labels(begin: str, end: str) -> list[str]:
        first, last = (datetime.fromisoformat(t).replace(tzinfo=UTC) for t in (begin, end))
        return [label for _, label in charts.time_ticks(first, last)]

    assert labels("2024-01-10", "2024-05-20") == ["Feb 2024", "Mar 2024", "Apr 2024", "May 2024"]
    assert labels("2023-11-10", "2025-03-01") == [
        "Jan 2024", "Apr 2024", "Jul 2024", "Oct 2024", "Jan 2025",
    ]  # fmt: skip
    assert labels("2019-06-01", "2025-03-01") == ["2020", "2021", "2022", "2023", "2024", "2025"]


def test_the_lifecycle_strip_runs_to_now_and_leaves_out_stays_yet_to_begin() -> None:
    now = datetime(2024, 7, 1, tzinfo=UTC)
    stays = [
        charts.Stay("new", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),
        charts.Stay("loyal", datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 9, 1, tzinfo=UTC)),
        charts.Stay("dead", datetime(2024, 9, 1, tzinfo=UTC), None, "inactivity"),
    ]
    svg = charts.lifecycle_strip(stays, now=now, title="stages")
    assert "new from 2024-01-01 to 2024-03-01; loyal from 2024-03-01" in svg
    assert "dead" not in svg
    widths = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="8" width="([\d.]+)"', svg)]
    assert round(sum(widths)) == 744  # the whole strip: registration to now
