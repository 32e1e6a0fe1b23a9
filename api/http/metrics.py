"""``GET /metrics``: Prometheus metrics, including each read model's lag."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from litestar import Request, Response, get
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from adapters.telemetry import PoolCollector
from api.bootstrap import Crm
from api.http.auth import requires
from application.access import Permission

REQUESTS = PrometheusConfig(app_name="crm", prefix="crm_http", group_path=True)
"""Request counts and latencies per route (litestar's Prometheus middleware)."""


class ProjectionCollector(Collector):
    """Reads the store's head and each read model's position at scrape time (a few
    reads: no schema work, which would wait for any process starting up)."""

    def __init__(self, crm: Crm) -> None:
        self.projector = crm.projector(setup=False)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        head = GaugeMetricFamily("crm_events_head_position", "Position of the newest event")
        position = GaugeMetricFamily(
            "crm_projection_position", "Position a read model has applied", labels=["read_model"]
        )
        lag_events = GaugeMetricFamily(
            "crm_projection_lag_events", "Events a read model is behind", labels=["read_model"]
        )
        lag_seconds = GaugeMetricFamily(
            "crm_projection_lag_seconds",
            "Age of the oldest event a read model has not applied",
            labels=["read_model"],
        )
        statuses = self.projector.status()
        head.add_metric([], statuses[0].head if statuses else 0)
        for status in statuses:
            position.add_metric([status.name], status.position)
            lag_events.add_metric([status.name], status.lag_events)
            lag_seconds.add_metric([status.name], status.lag_seconds)
        yield from (head, position, lag_events, lag_seconds)


def projection_registry(crm: Crm) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProjectionCollector(crm))
    registry.register(PoolCollector(crm.pools))
    return registry


@get(
    "/metrics",
    guards=[requires(Permission.AUDIT)],
    tags=["operations"],
    sync_to_thread=True,
    media_type="text/plain; version=0.0.4; charset=utf-8",
    summary="Prometheus metrics",
)
def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text format: HTTP requests per route; per read model its position
    and lag (events and seconds) behind the store; database errors worth a retry,
    the embedded projector's retries and recoveries; each connection pool's size,
    idle connections and waiting requests."""
    body = generate_latest(REGISTRY) + generate_latest(request.app.state["metrics"])
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
