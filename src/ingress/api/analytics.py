"""`GET /analytics/events`: what flows did, in the order recorded, filtered, in cursor pages;
`GET /analytics/events/export`: every event the same filters select, as one streamed file.

The environment's `testAnalytics` setting decides whether events of test
runs appear at all; with `exclude` they are left out even when asked for.

The export reads a page at a time, each page in a read transaction of its
own, so it holds one page in memory and no transaction (nor SQLite's WAL, nor
PostgreSQL's oldest snapshot) open while a slow client downloads. It ends at
the last event recorded when it started, so it finishes under a steady
stream of new events, and takes the `testAnalytics` setting of that moment.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import orjson
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ingress.api.common import environment, query_int, services
from ingress.api.cursors import Binding
from ingress.api.flow_views import event_view
from ingress.api.queries import EVENT_SOURCES, choice, given, timestamp, until
from ingress.auth import admin_only
from store import Store
from store.analytics import AnalyticsEvent, EventFilter, last_seq, list_events
from store.environment_settings import get_settings

#: Events per read of an export: its memory is one page (the listing's largest page is twice this).
EXPORT_PAGE = 500
#: The export's CSV columns: an event's fields as the listing names them; properties and metadata as JSON text.
CSV_COLUMNS = (
    "id",
    "eventName",
    "timestamp",
    "environmentId",
    "endUserId",
    "flowConfigId",
    "flowInstanceId",
    "flowInvocationId",
    "cardInstanceId",
    "eventSource",
    "properties",
    "metadata",
)


def _filter(request: Request) -> EventFilter:
    return EventFilter(
        flow_id=given(request, "flowId"),
        event_name=given(request, "eventName"),
        event_source=choice(request, "eventSource", EVENT_SOURCES),
        user_id=given(request, "userId"),
        since=timestamp(request, "since"),
        until=until(request),
    )


def _shown(conn: Connection, env: str, where: EventFilter) -> EventFilter:
    """`where`, without test events when the environment's `testAnalytics` is `exclude`."""
    settings = get_settings(conn, env)
    return where if settings and settings["testAnalytics"] == "include" else replace(where, include_test=False)


@admin_only
async def list_analytics_events(request: Request) -> Response:
    env = await environment(request)
    where = _filter(request)
    bound = (env, where.flow_id, where.event_name, where.event_source, where.user_id, where.since, where.until)
    cursors = Binding("analytics-events", "flowId, eventName, eventSource, userId, since or until", bound)
    after, limit = cursors.requested(request), query_int(request, "limit", 100, 1, 1000)

    def page(conn: Connection) -> tuple[list[AnalyticsEvent], int | None]:
        return list_events(conn, env, _shown(conn, env, where), after=after, limit=limit)

    events, next_seq = await services(request).store.read(page)
    return cursors.page([event_view(event) for event in events], next_seq)


@dataclass(frozen=True)
class Encoding:
    """How an export writes its events: a media type, a file name extension, a first line, and a page's bytes."""

    media_type: str
    extension: str
    head: bytes
    page: Callable[[list[dict[str, Any]]], bytes]


def _ndjson(views: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(view, option=orjson.OPT_APPEND_NEWLINE) for view in views)


def _csv(views: list[dict[str, Any]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")  # RFC 4180
    writer.writerows([_csv_cell(view[column]) for column in CSV_COLUMNS] for view in views)
    return text.getvalue().encode()


def _csv_cell(value: Any) -> str:
    """Text as it is, null as an empty cell, an object as its JSON text."""
    if value is None or isinstance(value, str):
        return value or ""
    return orjson.dumps(value).decode()


ENCODINGS = {
    "ndjson": Encoding("application/x-ndjson", "ndjson", b"", _ndjson),
    "csv": Encoding("text/csv; charset=utf-8", "csv", ",".join(CSV_COLUMNS).encode() + b"\r\n", _csv),
}


@admin_only
async def export_analytics_events(request: Request) -> Response:
    env = await environment(request)
    where = _filter(request)
    encoding = ENCODINGS[choice(request, "format", tuple(ENCODINGS)) or "ndjson"]
    store = services(request).store

    def start(conn: Connection) -> tuple[EventFilter, int | None]:
        return _shown(conn, env, where), last_seq(conn, env)

    shown, through = await store.read(start)
    disposition = f'attachment; filename="analytics-events-{env}.{encoding.extension}"'
    return StreamingResponse(
        _export(store, env, shown, through, encoding),
        media_type=encoding.media_type,
        headers={"Content-Disposition": disposition, "Cache-Control": "no-store"},
    )


async def _export(
    store: Store, env: str, where: EventFilter, through: int | None, encoding: Encoding
) -> AsyncIterator[bytes]:
    """The file, a page at a time, up to event `through` (None: the environment had none)."""
    if encoding.head:
        yield encoding.head
    after: int | None = None
    while through is not None:
        read = partial(list_events, environment_id=env, where=where, after=after, limit=EXPORT_PAGE, through=through)
        events, after = await store.read(read)
        if events:
            yield encoding.page([event_view(event) for event in events])
        if after is None:
            break


routes = [
    Route("/analytics/events", list_analytics_events, methods=["GET"]),
    Route("/analytics/events/export", export_analytics_events, methods=["GET"]),
]
