"""Prometheus metrics at `GET /metrics` (admin token): webhook answers, their latency, and the backlog.

Webhook counts and latencies are kept by each process. `serve --workers N`
points every process at one directory (prometheus_client's multiprocess
mode: `PROMETHEUS_MULTIPROC_DIR`, which `serve` empties and sets), so a
scrape answered by any of them covers them all. The backlog is read from the
store at scrape time (store.backlog), the same whichever process answers and
whichever runs the executor. A store that does not answer leaves the backlog
out of that scrape, not the rest: `flowhook_store_up 0` says so, and the
webhook counters show the 503s of exactly that outage. docs/operations.md
lists every metric.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response

from ingress.auth import admin_only
from ingress.errors import store_unavailable, unavailable_log
from store import Store
from store.backlog import Backlog, backlog
from store.clock import utcnow

MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable

WEBHOOK_REQUESTS = Counter(
    "flowhook_webhook_requests",
    "Requests to webhook URLs, by the status and cause they were answered with (as the request log records them).",
    ["status", "cause"],
)
WEBHOOK_SECONDS = Histogram(
    "flowhook_webhook_request_duration_seconds",
    "From a webhook request's arrival to its answer: reading, verifying, mapping, and the durable commit.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

_BACKLOG: tuple[tuple[str, str, str], ...] = (
    ("invocations_pending", "flowhook_invocations_pending", "Accepted invocations not yet expanded into flows."),
    ("instances_due", "flowhook_flow_instances_due", "Flow instances whose next step or timer is due."),
    ("deliveries_due", "flowhook_event_deliveries_due", "Events' deliveries to their triggers, due and not yet run."),
    ("bulk_tasks_open", "flowhook_bulk_tasks_open", "Manual, CSV and Marketo tasks pending or running."),
    (
        "executor_lag_seconds",
        "flowhook_executor_lag_seconds",
        "How long the oldest due executor work has waited; 0 when none is due.",
    ),
)
STORE_UP = ("flowhook_store_up", "1 if the store answered this scrape's backlog read; 0 if not, and no backlog.")
#: How long a scrape waits for the backlog: well within Prometheus' default scrape timeout (10 s).
STORE_TIMEOUT_SECONDS = 5.0


class WebhookMetrics:
    """The per-request counters, with each (status, cause) pair's child looked up once, not per request."""

    def __init__(self) -> None:
        self._counters: dict[tuple[int, str], Counter] = {}

    def record(self, status: int, cause: str, seconds: float) -> None:
        counter = self._counters.get((status, cause))
        if counter is None:
            counter = self._counters[status, cause] = WEBHOOK_REQUESTS.labels(str(status), cause)
        counter.inc()
        WEBHOOK_SECONDS.observe(seconds)


class _StoreCollector:
    """Whether the store answered, and the backlog it reported (None: it did not)."""

    def __init__(self, figures: Backlog | None) -> None:
        self._figures = figures

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(*STORE_UP, value=0 if self._figures is None else 1)
        if self._figures is not None:
            for field, name, documentation in _BACKLOG:
                yield GaugeMetricFamily(name, documentation, value=getattr(self._figures, field))


def prepare_directory(directory: Path) -> None:
    """Empty the multiprocess directory before the processes start: counts of an earlier run would add up."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def _exposition(figures: Backlog | None) -> bytes:
    if os.environ.get(MULTIPROCESS_DIRECTORY):
        processes = CollectorRegistry()
        MultiProcessCollector(processes)  # type: ignore[no-untyped-call]  # registers itself
        counted = generate_latest(processes)
    else:
        counted = generate_latest(REGISTRY)
    current = CollectorRegistry(auto_describe=False)
    current.register(_StoreCollector(figures))
    return counted + generate_latest(current)


async def _backlog(store: Store) -> Backlog | None:
    """The backlog, or None if the store does not answer within STORE_TIMEOUT_SECONDS."""
    try:
        return await asyncio.wait_for(store.read(lambda conn: backlog(conn, utcnow())), STORE_TIMEOUT_SECONDS)
    except Exception as error:
        if not (isinstance(error, TimeoutError) or store_unavailable(error)):
            raise  # a bug: a 500
        unavailable_log.note(error, "GET /metrics")
        return None


@admin_only
async def metrics_endpoint(request: Request) -> Response:
    figures = await _backlog(request.app.state.services.store)
    return Response(_exposition(figures), media_type=CONTENT_TYPE_LATEST)
