"""``/metrics`` in Prometheus's text format (no key needed: names and counts, no data).

- ``lgsp_runs_total``, ``lgsp_run_rows_in_total``, ``lgsp_run_rows_out_total``,
  ``lgsp_run_dlq_total``, ``lgsp_run_duration_seconds`` (histogram), by run kind and name
  (connector, route, archive, ...): every finished run of the run history, read once each;
- ``lgsp_consumer_lag_records`` by consumer group and topic, ``lgsp_archive_lag_records`` by
  topic: acknowledged publishes minus committed reads, from the offsets the bus records;
- ``lgsp_log_behind_bytes``, ``lgsp_log_behind_seconds``, ``lgsp_log_warnings`` and
  ``lgsp_log_over_limit`` by connector, for each ``mode: log`` source: how far its replication
  slot (retained WAL) or binlog read is behind the server, and what its ``log:`` limits say
  (``bus.connector_service.slots``, the same figures as ``lgsp connector show``);
  ``lgsp_log_status_up`` is 0 for a source whose database did not answer (the sources are
  asked at once, ``LOG_READERS`` at a time);
- ``lgsp_api_requests_total`` and ``lgsp_api_request_seconds`` by method, route and status.

Label values are bounded so that no client can grow the metrics without end: a method outside
``METHODS`` and a path no route matches count as ``other`` (a route's template, never the raw
path); at most ``MAX_OPEN_RUNS`` unfinished runs are remembered between scrapes (the newest:
an older one still open is a crashed run, which never finishes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from sqlalchemy import or_, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bus import broker_guard
from bus.api.auth import context
from bus.archive.archiver import GROUP_ID as ARCHIVE_GROUP
from bus.connector_service import slots
from bus.context import Context
from bus.db import session_scope
from bus.db.models import Run

router = APIRouter(tags=["metrics"])
DURATION_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"
MAX_OPEN_RUNS = 1000
LOG_READERS = 8  # log sources' databases asked at once per scrape


def _figure(key: str) -> Callable[[dict[str, Any]], float | None]:
    def value(status: dict[str, Any]) -> float | None:
        figure = status.get(key)
        return figure if "error" not in status and isinstance(figure, int | float) else None

    return value


# the log gauges by name: their help text and their value from a source's log status
# (``bus.connector_service.slots.log_status``; None leaves the gauge out for that source)
LOG_GAUGES: dict[str, tuple[str, Callable[[dict[str, Any]], float | None]]] = {
    "lgsp_log_behind_bytes": (
        "How many bytes of log (PostgreSQL WAL the slot retains, MariaDB binlog) a mode: log "
        "source is behind its server",
        _figure("behind_bytes"),
    ),
    "lgsp_log_behind_seconds": (
        "Age of the last change a mode: log source read, while the log has moved on "
        "(MariaDB binlog)",
        _figure("behind_seconds"),
    ),
    "lgsp_log_warnings": (
        "Warnings of a mode: log source's log: limits",
        lambda s: None if "error" in s else len(s.get("warnings") or []),
    ),
    "lgsp_log_over_limit": (
        "1 when a mode: log source is past its hard limit log.max_bytes",
        lambda s: None if "error" in s else (1 if s.get("over_limit") else 0),
    ),
    "lgsp_log_status_up": (
        "0 when a mode: log source's database did not answer the status query",
        lambda s: 0 if "error" in s else 1,
    ),
}


class Metrics:
    """The app's metrics in a registry of its own."""

    def __init__(self, max_open_runs: int = MAX_OPEN_RUNS) -> None:
        self.registry = CollectorRegistry()
        self.max_open_runs = max_open_runs
        by_run = ["kind", "name"]
        self.runs = Counter(
            "lgsp_runs", "Finished runs", [*by_run, "status"], registry=self.registry
        )
        self.rows_in = Counter("lgsp_run_rows_in", "Rows read", by_run, registry=self.registry)
        self.rows_out = Counter("lgsp_run_rows_out", "Rows written", by_run, registry=self.registry)
        self.dlq = Counter(
            "lgsp_run_dlq", "Records parked in a DLQ", by_run, registry=self.registry
        )
        self.duration = Histogram(
            "lgsp_run_duration_seconds",
            "Run durations",
            by_run,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.lag = Gauge(
            "lgsp_consumer_lag_records",
            "Records published but not yet read, per consumer group and topic",
            ["group", "topic"],
            registry=self.registry,
        )
        self.archive_lag = Gauge(
            "lgsp_archive_lag_records",
            "Records published but not yet archived, per topic",
            ["topic"],
            registry=self.registry,
        )
        self.log = {
            name: Gauge(name, text, ["connector"], registry=self.registry)
            for name, (text, _) in LOG_GAUGES.items()
        }
        self.requests = Counter(
            "lgsp_api_requests",
            "API requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lgsp_api_request_seconds",
            "API request latency",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._last_run = 0
        self._open: set[int] = set()
        self._lock = threading.Lock()

    def read_runs(self, ctx: Context) -> None:
        """Count the runs finished since the last scrape (each run once)."""
        with self._lock, session_scope(ctx.settings) as s:
            query = select(Run).where(or_(Run.id > self._last_run, Run.id.in_(sorted(self._open))))
            for run in s.scalars(query.order_by(Run.id)):
                self._last_run = max(self._last_run, run.id)
                if run.finished_at is None:
                    self._open.add(run.id)
                    continue
                self._open.discard(run.id)
                labels = (run.kind, run.name)
                self.runs.labels(*labels, run.status).inc()
                self.rows_in.labels(*labels).inc(run.rows_in or 0)
                self.rows_out.labels(*labels).inc(run.rows_out or 0)
                self.dlq.labels(*labels).inc(run.dlq or 0)
                seconds = (run.finished_at - run.started_at).total_seconds()
                self.duration.labels(*labels).observe(max(0.0, seconds))
            if len(self._open) > self.max_open_runs:
                self._open = set(sorted(self._open)[-self.max_open_runs :])

    def read_lag(self, ctx: Context) -> None:
        lag = broker_guard.consumer_lag(ctx.settings)
        self.lag.clear()
        self.archive_lag.clear()
        for group, topics in lag.items():
            for topic, behind in topics.items():
                self.lag.labels(group, topic).set(behind)
                if group == ARCHIVE_GROUP:
                    self.archive_lag.labels(topic).set(behind)

    def read_log(self, ctx: Context) -> None:
        """The log gauges of every ``mode: log`` source, from its status (a figure the
        status lacks, such as PostgreSQL's time behind, is left out, not set to 0). The
        sources' databases are asked at once (``LOG_READERS`` at a time), so that one that does
        not answer delays the scrape by its own connect timeout, not by one per source; the
        gauges are replaced only once every answer is in."""
        names = [stored.name for stored in ctx.connectors.list()]
        with ThreadPoolExecutor(
            max_workers=max(1, min(LOG_READERS, len(names))), thread_name_prefix="metrics-log"
        ) as pool:
            statuses = list(pool.map(lambda name: slots.log_status(ctx, name), names))
        for gauge in self.log.values():
            gauge.clear()
        for connector, status in zip(names, statuses, strict=True):
            if status is None:
                continue
            for name, (_, value) in LOG_GAUGES.items():
                figure = value(status)
                if figure is not None:
                    self.log[name].labels(connector).set(figure)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, ctx: Context = Depends(context)) -> Response:
    state: Metrics = request.app.state.metrics
    state.read_runs(ctx)
    state.read_lag(ctx)
    state.read_log(ctx)
    return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)


def instrument(app: FastAPI) -> None:
    """Count and time every request by its route's template (not its raw path)."""
    app.state.metrics = Metrics()
    app.add_middleware(_Timed, metrics=app.state.metrics)


class _Timed:
    """The timing middleware, plain ASGI (Starlette's ``BaseHTTPMiddleware`` runs each
    request through extra tasks and streams: about a third of a ``/healthz`` answer's CPU)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            labels = request_labels(scope, status)
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - started)


def request_labels(scope: Scope, status: int) -> tuple[str, str, str]:
    """(method, route, status) of a request, each from a bounded set (``other`` outside it)."""
    method = scope["method"] if scope["method"] in METHODS else OTHER
    template = getattr(scope.get("route"), "path", None)
    return method, template if isinstance(template, str) else OTHER, str(status)
