"""Charts of the console, drawn on the server as SVG: no script, nothing from another
host, printable, and readable by a screen reader (a title and a description; each
chart stands beside a table of the same figures).

Colours are the Okabe-Ito palette, told apart by people with any common colour
vision deficiency; every bar also carries its figure as text where it fits, and the
legend names each colour, so a chart printed in grey still reads.

Every text that reaches the SVG is escaped here: stage names of pipelines and loss
reasons come from users.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from markupsafe import Markup, escape

PALETTE = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
)
STAGE_COLOURS = {
    "potential": "#56B4E9",
    "new": "#009E73",
    "loyal": "#0072B2",
    "returned": "#E69F00",
    "dead": "#D55E00",
}
"""Each lifecycle stage keeps its colour on every chart."""
_DARK = frozenset({"#0072B2", "#009E73", "#D55E00", "#000000", "#CC79A7"})
"""Fills on which a label is written in white."""
_FONT = 12
_CHAR = 7.0
"""About the width of a character of the 12-pixel labels, to decide what fits."""


@dataclass(frozen=True)
class Series:
    """One coloured part of a stacked chart: its name and a value per column."""

    name: str
    values: Sequence[float]
    colour: str


def colour_of(name: str, index: int) -> str:
    """A stage's own colour, else the palette's colour for the ``index``-th series."""
    return STAGE_COLOURS.get(name, PALETTE[index % len(PALETTE)])


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round axis ticks from 0 to at least ``top`` (steps of 1, 2 or 5 × 10^k)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(step, 1.0) if top >= 1 else step
    ticks = [0.0]
    while ticks[-1] < top:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _text(x: float, y: float, text: str, *, anchor: str = "start", **attributes: str) -> str:
    extra = "".join(f' {name.replace("_", "-")}="{escape(v)}"' for name, v in attributes.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def _svg(width: int, height: int, title: str, description: str, body: list[str]) -> Markup:
    ident = "c" + hashlib.sha256(f"{title}\n{description}".encode()).hexdigest()[:10]
    return Markup(  # noqa: S704 - every text inside was escaped where it was added
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img"'
        f' aria-labelledby="{ident}t {ident}d" xmlns="http://www.w3.org/2000/svg"'
        f' font-size="{_FONT}" fill="#1b1f23">'
        f'<title id="{ident}t">{escape(title)}</title>'
        f'<desc id="{ident}d">{escape(description)}</desc>' + "".join(body) + "</svg>"
    )


def _legend(items: Sequence[tuple[str, str]], x: float, y: float, width: float) -> list[str]:
    """Legend swatches and names, wrapped to ``width``."""
    parts, cx, cy = [], x, y
    for name, colour in items:
        span = 18 + len(name) * _CHAR + 16
        if cx + span > x + width and cx > x:
            cx, cy = x, cy + 18
        parts.append(
            f'<rect x="{cx:.1f}" y="{cy - 10:.1f}" width="12" height="12" fill="{colour}"'
            ' stroke="#333" stroke-width="0.5"/>'
        )
        parts.append(_text(cx + 17, cy, name))
        cx += span
    return parts


def legend_rows(names: Sequence[str], width: float) -> int:
    """How many lines the legend of ``names`` takes at ``width``."""
    rows, cx = 1, 0.0
    for name in names:
        span = 18 + len(name) * _CHAR + 16
        if cx + span > width and cx > 0:
            rows, cx = rows + 1, 0.0
        cx += span
    return rows


def stacked_columns(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    description: str,
    x_label: str,
    y_label: str,
    width: int = 760,
    plot_height: int = 260,
) -> Markup:
    """Columns, one per label, each stacked from ``series`` (first at the bottom),
    with a labelled value axis, the column totals on top and a legend."""
    left, right, top = 64, 16, 24
    plot_width = width - left - right
    legend_top = top + plot_height + 52
    height = legend_top + 18 * legend_rows([s.name for s in series], plot_width) + 8
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    ticks = nice_ticks(max(totals, default=0))
    scale = plot_height / ticks[-1]
    body = [_axis_y(ticks, left, top, plot_width, plot_height, y_label)]
    slot = plot_width / max(len(labels), 1)
    bar = max(2.0, min(48.0, slot * 0.7))
    label_every = max(1, math.ceil(len(labels) * 44 / plot_width))
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar) / 2
        y: float = top + plot_height
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            h = value * scale
            y -= h
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}"'
                f' fill="{s.colour}" stroke="#fff" stroke-width="0.5">'
                f"<title>{escape(f'{label} · {s.name}: {_number(value)}')}</title></rect>"
            )
            if h >= _FONT + 2 and bar >= len(_number(value)) * _CHAR:
                body.append(
                    _text(
                        x + bar / 2,
                        y + h / 2 + 4,
                        _number(value),
                        anchor="middle",
                        fill="#fff" if s.colour in _DARK else "#000",
                    )
                )
        if bar >= len(_number(totals[i])) * (_CHAR - 1):
            body.append(_text(x + bar / 2, y - 4, _number(totals[i]), anchor="middle"))
        if i % label_every == 0:
            body.append(
                _text(x + bar / 2, top + plot_height + 16, label, anchor="middle", class_="tick")
            )
    body.append(
        _text(
            left + plot_width / 2, top + plot_height + 36, x_label, anchor="middle", class_="axis"
        )
    )
    body += _legend([(s.name, s.colour) for s in series], left, legend_top, plot_width)
    return _svg(width, height, title, description, body)


def _axis_y(
    ticks: Sequence[float], left: float, top: float, width: float, height: float, label: str
) -> str:
    scale = height / ticks[-1]
    parts = []
    for tick in ticks:
        y = top + height - tick * scale
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + width}" y2="{y:.1f}"'
            ' stroke="#ccc" stroke-width="0.5"/>'
        )
        parts.append(_text(left - 6, y + 4, _number(tick), anchor="end", class_="tick"))
    parts.append(
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + height}" stroke="#333"/>'
        f'<line x1="{left}" y1="{top + height}" x2="{left + width}" y2="{top + height}"'
        ' stroke="#333"/>'
    )
    parts.append(
        f'<text x="14" y="{top + height / 2:.1f}" text-anchor="middle" class="axis"'
        f' transform="rotate(-90 14 {top + height / 2:.1f})">{escape(label)}</text>'
    )
    return "".join(parts)


def horizontal_bars(
    rows: Sequence[tuple[str, float]],
    *,
    title: str,
    description: str,
    x_label: str,
    colours: Sequence[str] | None = None,
    width: int = 760,
    value_text: Sequence[str] | None = None,
) -> Markup:
    """One bar per row (label, value), its figure written after it, on a labelled
    value axis. ``value_text`` replaces the written figures (e.g. with a share)."""
    label_width = min(220, max((len(label) for label, _ in rows), default=4) * _CHAR + 12)
    left, right, top, row = label_width + 8, 96, 12, 26
    plot_width = width - left - right
    plot_height = row * max(len(rows), 1)
    height = top + plot_height + 44
    ticks = nice_ticks(max((value for _, value in rows), default=0))
    scale = plot_width / ticks[-1]
    body = []
    for tick in ticks:
        x = left + tick * scale
        body.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_height}"'
            ' stroke="#ccc" stroke-width="0.5"/>'
        )
        body.append(_text(x, top + plot_height + 16, _number(tick), anchor="middle", class_="tick"))
    for i, (label, value) in enumerate(rows):
        y = top + row * i
        colour = (colours[i] if colours else None) or PALETTE[0]
        w = max(0.0, value * scale)
        shown = value_text[i] if value_text else _number(value)
        body.append(_text(left - 8, y + row / 2 + 4, label, anchor="end"))
        body.append(
            f'<rect x="{left}" y="{y + 4:.1f}" width="{w:.1f}" height="{row - 8}"'
            f' fill="{colour}"><title>{escape(f"{label}: {shown}")}</title></rect>'
        )
        body.append(_text(left + w + 6, y + row / 2 + 4, shown))
    body.append(
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_height}" stroke="#333"/>'
    )
    body.append(
        _text(
            left + plot_width / 2, top + plot_height + 36, x_label, anchor="middle", class_="axis"
        )
    )
    return _svg(width, height, title, description, body)


@dataclass(frozen=True)
class Stay:
    """One stage interval on a client's lifecycle strip."""

    stage: str
    start: datetime
    end: datetime | None
    reason: str | None = None


def lifecycle_strip(
    stays: Sequence[Stay], *, now: datetime, title: str, width: int = 760
) -> Markup:
    """A client's stages as one strip of coloured intervals from registration to
    ``now`` (an open stay runs to ``now``; stays that begin later are left out), with
    a time axis and a legend of the stages shown."""
    shown = [s for s in stays if s.start <= now]
    left, right, top, band = 8, 8, 8, 34
    plot_width = width - left - right
    names = list(dict.fromkeys(s.stage for s in shown))
    legend_top = top + band + 40
    height = legend_top + 18 * legend_rows(names, plot_width) + 4
    if not shown:
        return _svg(width, height, title, "no stage yet", [])
    begin = shown[0].start
    span = max((now - begin).total_seconds(), 1.0)

    def x_of(at: datetime) -> float:
        return left + plot_width * (min(at, now) - begin).total_seconds() / span

    body = []
    for stay in shown:
        x0, x1 = x_of(stay.start), x_of(stay.end or now)
        colour = STAGE_COLOURS.get(stay.stage, PALETTE[0])
        until = stay.end.date().isoformat() if stay.end else "now"
        why = f" ({stay.reason})" if stay.reason else ""
        tip = f"{stay.stage}{why}: {stay.start.date().isoformat()} – {until}"
        body.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 1.0):.1f}" height="{band}"'
            f' fill="{colour}" stroke="#fff" stroke-width="1"><title>{escape(tip)}</title></rect>'
        )
        if x1 - x0 >= len(stay.stage) * _CHAR + 8:
            body.append(
                _text(
                    (x0 + x1) / 2,
                    top + band / 2 + 4,
                    stay.stage,
                    anchor="middle",
                    fill="#fff" if colour in _DARK else "#000",
                )
            )
    for tick, label in time_ticks(begin, now):
        x = x_of(tick)
        body.append(
            f'<line x1="{x:.1f}" y1="{top + band}" x2="{x:.1f}" y2="{top + band + 5}"'
            ' stroke="#333"/>'
        )
        half = len(label) * _CHAR / 2  # kept inside the strip, not cut at its ends
        at = min(max(x, left + half), left + plot_width - half)
        body.append(_text(at, top + band + 18, label, anchor="middle", class_="tick"))
    body.append(
        f'<line x1="{left}" y1="{top + band}" x2="{left + plot_width}" y2="{top + band}"'
        ' stroke="#333"/>'
    )
    body += _legend([(n, STAGE_COLOURS.get(n, PALETTE[0])) for n in names], left, legend_top, 600)
    description = "; ".join(
        f"{s.stage} from {s.start.date().isoformat()}"
        + (f" to {s.end.date().isoformat()}" if s.end and s.end <= now else "")
        for s in shown
    )
    return _svg(width, height, title, description, body)


def time_ticks(begin: datetime, end: datetime, most: int = 8) -> list[tuple[datetime, str]]:
    """Calendar ticks between two instants: the first of each month, quarter or year
    (whichever gives at most ``most``), or days for a short span."""
    if end - begin <= timedelta(days=45):
        step = max(1, (end - begin).days // most + 1)
        first = datetime(begin.year, begin.month, begin.day, tzinfo=UTC) + timedelta(days=1)
        return [
            (first + timedelta(days=d), (first + timedelta(days=d)).strftime("%d %b"))
            for d in range(0, (end - first).days + 1, step)
        ]
    for months in (1, 3, 6, 12, 24, 60):
        ticks = _month_ticks(begin, end, months)
        if len(ticks) <= most:
            return [(t, t.strftime("%b %Y") if months < 12 else str(t.year)) for t in ticks]
    return []


def _month_ticks(begin: datetime, end: datetime, months: int) -> list[datetime]:
    index = begin.year * 12 + begin.month  # the month after begin's, counted from 1
    index += (-index) % months  # aligned to the step (quarters start in Jan, Apr…)
    ticks: list[datetime] = []
    while True:
        year, month = divmod(index, 12)
        tick = datetime(year, month + 1, 1, tzinfo=UTC)
        if tick > end:
            return ticks
        if tick > begin:
            ticks.append(tick)
        index += months
