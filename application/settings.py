"""Settings, read once from the environment (``CRM_*``) and validated.

With no configuration at all the product runs on an embedded SQLite file,
``./crm.db``; ``CRM_DATABASE_URL=postgresql://…`` switches to PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from domain.client import DEFAULT_CONSENT_PURPOSES
from domain.lifecycle import LifecyclePolicy
from domain.values import SLUG

DEFAULT_DATABASE_URL = "sqlite:///crm.db"
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class SettingsError(ValueError):
    """The configuration is invalid; the message names the variable."""


class Settings(BaseModel):
    """Every knob of the product. Environment variable = ``CRM_`` + upper-cased name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str = DEFAULT_DATABASE_URL
    """``sqlite:///path.db`` (default ``sqlite:///crm.db``), ``postgresql://…`` or ``memory:``."""
    read_database_url: str | None = None
    """PostgreSQL streaming replicas to read from, comma-separated ``postgresql://…``
    URLs: the read models and the routes that only read use the first that answers
    and is within ``replica_max_lag``, else the primary (``database_url``)."""
    replica_max_lag: float = Field(default=5.0, ge=0)
    """Seconds of the primary's log a replica may be behind and still be read from."""
    database_schema: str = Field(default="crm", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """PostgreSQL schema that holds every table of the product."""
    pool_size: int = Field(default=10, ge=1, le=200)
    """The most PostgreSQL connections a process's pool opens (an API process has two
    pools: one for commands and the projector, one for reads on the event loop). Idle
    pools shrink to one connection each."""
    pool_timeout: float = Field(default=1.5, gt=0, le=60)
    """Seconds a request waits for a database connection before it is answered 503
    with ``Retry-After`` (the database unreachable, or every connection busy)."""
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    """The one currency the business books amounts in (ISO 4217)."""
    default_country: str | None = None
    """The country (ISO 3166 alpha-2, ``UA``) whose national phone numbers are read
    without a country code (``067 111 22 33`` is ``+380671112233``). Unset: a phone
    must carry its country code."""
    loyal_purchases: int = Field(default=3, ge=1)
    loyal_window_days: int = Field(default=365, ge=1)
    dormancy_days: int = Field(default=90, ge=1)
    aggregate_cache_size: int = Field(default=10_000, ge=0, le=1_000_000)
    """Aggregates a process keeps in memory after a command, so that the next command
    on one need not read its events (0: none). Entries expire after 10 s."""
    projection_batch_size: int = Field(default=2000, ge=1, le=100_000)
    """Events per projector transaction."""
    embedded_projector: bool = True
    """``crm serve`` also keeps the read models up to date (turn off when a separate
    ``crm project`` runs, as in docker-compose)."""
    ready_max_lag: int = Field(default=10_000, ge=0)
    """``/health/ready`` and ``crm health --ready`` fail while the read models are
    more than this many events behind the store."""
    export_rate_per_hour: int = Field(default=30, ge=1, le=10_000)
    """Exports (audit trail, client list, a subject's data) and bulk reads of personal
    values (pages of the feed, the directory and the audit trail; histories) a user
    may make in each clock hour, counted in the store for every process."""
    consent_purposes: tuple[str, ...] = DEFAULT_CONSENT_PURPOSES
    """The purposes a client may consent to, comma-separated slugs: a closed set, so
    that no purpose (kept in clear, also after the client's erasure) is personal data.
    Removing one later leaves given consents withdrawable."""
    master_key: str | None = None
    """Base64 of 32 random bytes; protects the keys that protect personal data."""
    key_file: str = "crm.key"
    """Where the master key lives when ``CRM_MASTER_KEY`` is not set (created on first
    run for the embedded default)."""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object a line (time, level, logger, message, and on the
    access log correlation id, method, route, status, duration)."""
    access_log: bool = True
    """``crm serve`` logs one line per request (logger ``crm.access``, level info)."""
    webhook_timeout: float = Field(default=5.0, gt=0, le=60)
    """Seconds a webhook receiver has to answer before the delivery counts as failed."""
    webhook_max_age: float = Field(default=24 * 3600.0, gt=0)
    """Seconds of failed deliveries after which a subscription is paused as
    ``failing`` (``CRM_WEBHOOK_MAX_AGE``: seconds, or a number with ``s``, ``m``, ``h``
    or ``d``: ``24h``)."""
    webhook_allow_private: bool = False
    """Webhook destinations on loopback, private, link-local or otherwise reserved
    addresses are refused unless this is true (a test rig, a receiver on the same
    host)."""
    lead_response_minutes: float = Field(default=120.0, gt=0, le=60 * 24 * 365)
    """A lead neither contacted nor given a follow-up this long after its registration
    is unanswered (``Lead.Unanswered``, the ``unanswered_leads`` KPI)."""
    bootstrap_admin: str | None = None
    """A user name: when ``crm serve`` starts and no user of that name exists, it creates
    one with the admin role and prints its token once, so that a fresh deployment has
    someone who can call the API (every route needs a token). An existing user of that
    name, active or revoked, is left as it is. Empty or unset: nothing is created."""

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("sqlite:", "postgresql://", "postgres://", "memory:")):
            raise ValueError("must start with sqlite:, postgresql:// or memory:")
        return url

    @field_validator("default_country")
    @classmethod
    def _known_country(cls, country: str | None) -> str | None:
        from application.phones import SUPPORTED_COUNTRIES

        if not country:
            return None
        if country.upper() not in SUPPORTED_COUNTRIES:
            raise ValueError(f"{country!r} is not a country code with a numbering plan (UA, DE…)")
        return country.upper()

    @field_validator("consent_purposes", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):  # as the environment gives it
            return [purpose.strip() for purpose in value.split(",") if purpose.strip()]
        return value

    @field_validator("consent_purposes")
    @classmethod
    def _purposes(cls, purposes: tuple[str, ...]) -> tuple[str, ...]:
        if not purposes:
            raise ValueError("name at least one purpose")
        if bad := [purpose for purpose in purposes if not SLUG.fullmatch(purpose)]:
            raise ValueError(
                f"{', '.join(map(repr, bad))}: a purpose is 1-40 lower-case letters, digits"
                " or '_', starting with a letter"
            )
        return tuple(dict.fromkeys(purposes))

    @field_validator("webhook_max_age", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, str) and value.strip()[-1:].lower() in _UNITS:
            text = value.strip()
            try:
                return float(text[:-1]) * _UNITS[text[-1].lower()]
            except ValueError:
                raise ValueError("must be seconds, or a number with s, m, h or d") from None
        return value

    @field_validator("bootstrap_admin")
    @classmethod
    def _empty_is_none(cls, name: str | None) -> str | None:
        # ``CRM_BOOTSTRAP_ADMIN=`` (as docker compose's .env may say) means no one
        return name or None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``CRM_*`` variables; unknown ``CRM_*`` names are refused, not ignored."""
        environ = os.environ if environ is None else environ
        values: dict[str, str] = {}
        for key, value in environ.items():
            if not key.startswith("CRM_") or key.startswith("CRM_TEST_"):
                continue
            name = key.removeprefix("CRM_").lower()
            if name not in cls.model_fields:
                raise SettingsError(f"unknown setting {key}")
            values[name] = value
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = "; ".join(
                f"CRM_{str(e['loc'][0]).upper()}: {e['msg']}" for e in error.errors()
            )
            raise SettingsError(problems) from None

    @field_validator("read_database_url")
    @classmethod
    def _postgres_replicas(cls, urls: str | None, info: ValidationInfo) -> str | None:
        if urls is None:
            return None
        if not all(
            url.strip().startswith(("postgresql://", "postgres://")) for url in urls.split(",")
        ):
            raise ValueError("must be postgresql:// URLs, separated by commas")
        if not str(info.data.get("database_url", "")).startswith(("postgresql://", "postgres://")):
            raise ValueError("replicas are for a PostgreSQL store: set CRM_DATABASE_URL to it")
        return urls

    @property
    def read_database_urls(self) -> list[str]:
        return [url.strip() for url in (self.read_database_url or "").split(",") if url.strip()]

    @property
    def backend(self) -> Literal["sqlite", "postgresql", "memory"]:
        if self.database_url.startswith("sqlite:"):
            return "sqlite"
        if self.database_url.startswith("memory:"):
            return "memory"
        return "postgresql"

    @property
    def sqlite_path(self) -> Path:
        """``sqlite:///crm.db`` and ``sqlite:crm.db`` are relative; ``sqlite:////abs`` is
        absolute."""
        path = self.database_url.removeprefix("sqlite:")
        if path.startswith("///"):
            path = path[3:]
        elif path.startswith("//"):
            path = path[2:]
        return Path(path or "crm.db")

    @property
    def lifecycle_policy(self) -> LifecyclePolicy:
        return LifecyclePolicy(
            loyal_purchases=self.loyal_purchases,
            loyal_window_days=self.loyal_window_days,
            dormancy_days=self.dormancy_days,
        )

    @property
    def lead_response(self) -> timedelta:
        return timedelta(minutes=self.lead_response_minutes)
