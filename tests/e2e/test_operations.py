"""What an operator reads: the access log (plain or JSON) and the metrics of errors,
retries and pools."""

from __future__ import annotations

import logging
import sys
import uuid

import orjson
import pytest

from api.logs import JsonFormatter
from tests.e2e.conftest import Api


def test_each_request_is_logged_once_with_its_route_status_duration_and_correlation_id(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    client_id = uuid.uuid4()
    with caplog.at_level(logging.INFO, logger="crm.access"):
        api.http.get(
            f"/clients/{client_id}", headers=api.auth("admin", **{"X-Correlation-ID": "trace-7"})
        )
    (line,) = [r for r in caplog.records if r.name == "crm.access"]
    assert line.__dict__["correlation_id"] == "trace-7"
    assert line.__dict__["method"] == "GET"
    assert line.__dict__["path"] == f"/clients/{client_id}"
    assert line.__dict__["route"].startswith("/clients/{client_id")  # the template, not the id
    assert line.__dict__["status"] == 404
    assert line.__dict__["duration_ms"] >= 0
    assert "trace-7" in line.getMessage()


def test_a_json_log_line_is_one_object_with_the_context_fields_and_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "crm.access", logging.ERROR, __file__, 1, "GET %s", ("/x",), sys.exc_info()
        )
    record.correlation_id = "c-1"
    record.status = 500

    entry = orjson.loads(JsonFormatter().format(record))

    assert entry["level"] == "error"
    assert entry["logger"] == "crm.access"
    assert entry["message"] == "GET /x"
    assert entry["correlation_id"] == "c-1"
    assert entry["status"] == 500
    assert "ValueError: boom" in entry["exception"]
    assert entry["time"].endswith("+00:00")
    assert "route" not in entry  # only the fields the line carries


def test_the_metrics_count_database_errors_and_the_projectors_retries(api: Api) -> None:
    text = api.http.get("/metrics", headers=api.auth("admin")).text
    for family in (
        "crm_database_errors_total",
        "crm_projector_retries_total",
        "crm_projector_restarts_total",
    ):
        assert f"# TYPE {family} counter" in text, family
