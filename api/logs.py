"""How the processes log: plain text for a terminal, or one JSON object a line
(``CRM_LOG_FORMAT=json``) for a log collector, with the request's correlation id,
route, status and duration on the access log's lines."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from application.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = ("correlation_id", "method", "route", "path", "status", "duration_ms")
"""Context a log line may carry (``extra=``), kept as fields of its own in JSON."""


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, the context fields
    the line carries, and the exception's traceback if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(settings: Settings) -> None:
    """Every logger of the process (uvicorn's included, which propagate to the root)
    writes to standard error in the configured format and level."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
