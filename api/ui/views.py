"""What every console page shares: reading dates from forms, rendering a page with
its navigation, and the filters templates format figures with. Every instant is UTC,
and says so."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Request
from litestar.exceptions import ClientException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template import TemplateConfig

from api.bootstrap import Crm
from api.ui.access import Need, may
from api.ui.security import form_token
from application.access import Principal

TEMPLATES = Path(__file__).parent / "templates"
MAX_MONTHS = 36
"""The most months a month-by-month page reads (one query per month)."""
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str
    need: Need


NAV = (
    NavItem("/ui/", "Dashboard", "read_models"),
    NavItem("/ui/clients", "Clients", "read_models"),
    NavItem("/ui/audit", "Audit trail", "audit"),
    NavItem("/ui/lifecycle", "Lifecycle", "read_models"),
    NavItem("/ui/funnel", "Funnel", "read_models"),
    NavItem("/ui/chain", "Chain", "audit"),
    NavItem("/ui/projections", "Projections", "operations"),
)


def crm_of(request: Request[Any, Any, Any]) -> Crm:
    crm: Crm = request.app.state["crm"]
    return crm


def user_of(request: Request[Any, Any, Any]) -> Principal:
    user: Principal = request.user
    return user


def render(
    request: Request[Any, Any, Any], template: str, *, status_code: int = 200, **context: Any
) -> Template:
    """The page ``template`` with what the layout needs: the user, the pages they may
    open, and the token their forms carry."""
    user: Principal | None = request.scope.get("user")
    session: str | None = request.scope.get("auth")
    return Template(
        template_name=template,
        status_code=status_code,
        context={
            "user": user,
            "nav": [item for item in NAV if user is not None and may(user, item.need)],
            "form_token": form_token(session) if session else "",
            "here": request.url.path,
            **context,
        },
    )


# ----------------------------------------------------------------------- dates


def parse_day(text: str | None, name: str) -> date | None:
    """A date typed in a form (``2025-03-31``); ``None`` when left empty."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ClientException(f"{name} must be a date such as 2025-03-31") from None


def parse_month(text: str | None, name: str) -> date | None:
    """A month typed in a form (``2025-03``) as its first day; ``None`` when empty."""
    if not text:
        return None
    match = _MONTH.fullmatch(text)
    if match is None or not 1 <= int(match[2]) <= 12:
        raise ClientException(f"{name} must be a month such as 2025-03")
    return date(int(match[1]), int(match[2]), 1)


def start_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def instant_of(day: date | None, now: datetime) -> datetime:
    """The figures "as of" a chosen day: its last instant (UTC), or now for today or
    no day at all."""
    if day is None or day == now.date():
        return now
    return start_of(day + timedelta(days=1)) - _MICROSECOND


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def months_between(first: date, last: date) -> list[date]:
    """The first day of each month from ``first``'s to ``last``'s, both included."""
    months, month = [], date(first.year, first.month, 1)
    while month <= last:
        months.append(month)
        month = next_month(month)
    return months


def quarter_start(day: date) -> date:
    return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)


def previous_quarter(day: date) -> tuple[date, date]:
    """The calendar quarter before ``day``'s: its first and last day."""
    end = quarter_start(day)
    start = quarter_start(end - timedelta(days=1))
    return start, end - timedelta(days=1)


# --------------------------------------------------------------------- filters


def utc(value: datetime | None, seconds: bool = False) -> str:
    """An instant as ``2025-03-31 14:05 UTC`` (with seconds if asked)."""
    if value is None:
        return "—"
    text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{text} UTC"


def day_text(value: datetime | date | None) -> str:
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d")


def number(value: float | Decimal | None, places: int = 0) -> str:
    """A figure with thousands separated, ``—`` for none (a ratio over nothing)."""
    if value is None:
        return "—"
    return f"{value:,.{places}f}"


def percent(value: float | None, places: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{places}f} %"


def money(value: Decimal | str | None) -> str:
    if value is None:
        return "—"
    return f"{Decimal(value):,.2f}"


def templates() -> TemplateConfig[JinjaTemplateEngine]:
    """The console's templates: escaped everywhere (HTML and SVG alike), and an
    undefined name is an error rather than an empty string."""
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(utc=utc, day=day_text, number=number, percent=percent, money=money)
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))
