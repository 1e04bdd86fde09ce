"""GET /v1/{env}/analytics/events/export: every event the listing's filters select, as NDJSON or CSV."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from ingress.api import analytics
from store.analytics import EventFilter, flowless_event_row
from store.tables import analytics_events

pytestmark = pytest.mark.anyio

EXPORT = "/v1/default/analytics/events/export"
_names = itertools.count()
START = datetime(2026, 3, 1, tzinfo=UTC)


async def record(flowhook, count: int, *, source: str = "live", past: bool = False) -> str:
    """`count` events of a new name, recorded in order of `n`; with `past`, each one's time is earlier
    than the one before (events sent with their own times). The name."""
    name = f"export-{next(_names)}"
    step = timedelta(minutes=-1 if past else 1)
    rows = [
        flowless_event_row(
            f"evt_{name}_{n}", "default", name, START + n * step, f"u-{n % 3}", {"n": n}, event_source=source
        )
        for n in range(count)
    ]
    await flowhook.services.store.write(lambda conn: conn.execute(sa.insert(analytics_events), rows))
    return name


def lines(response: Any) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in response.content.splitlines()]


async def test_the_export_is_every_event_the_listing_pages_through(flowhook, monkeypatch) -> None:
    monkeypatch.setattr(analytics, "EXPORT_PAGE", 4)  # 10 events: three reads
    name = await record(flowhook, 10, past=True)
    response = await flowhook.api.get(EXPORT, params={"eventName": name})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["content-disposition"] == 'attachment; filename="analytics-events-default.ndjson"'
    exported = lines(response)
    assert exported == await flowhook.events(eventName=name)
    assert [event["properties"]["n"] for event in exported] == list(range(10))  # recorded order, not timestamp
    by_user = await flowhook.api.get(EXPORT, params={"eventName": name, "userId": "u-1"})
    assert [event["properties"]["n"] for event in lines(by_user)] == [1, 4, 7]
    until = exported[5]["timestamp"]  # times go back: the events at or before it are the later ones
    recent = await flowhook.api.get(EXPORT, params={"eventName": name, "until": until})
    assert [event["properties"]["n"] for event in lines(recent)] == [5, 6, 7, 8, 9]
    none = await flowhook.api.get(EXPORT, params={"eventName": "export-none"})
    assert (none.status_code, none.content) == (200, b"")


async def test_a_csv_export_has_a_header_and_a_row_per_event(flowhook) -> None:
    name = await record(flowhook, 2)
    response = await flowhook.api.get(EXPORT, params={"eventName": name, "format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="analytics-events-default.csv"'
    assert response.content.startswith(b"id,eventName,timestamp,") and b"\r\n" in response.content
    rows = list(csv.DictReader(io.StringIO(response.text)))
    [listed, _] = await flowhook.events(eventName=name)
    assert list(rows[0]) == list(analytics.CSV_COLUMNS)
    assert rows[0] == {
        **listed,
        "flowConfigId": "",
        "flowInstanceId": "",
        "flowInvocationId": "",
        "cardInstanceId": "",
        "properties": '{"n":0}',
        "metadata": "{}",
    }
    assert len(rows) == 2


async def test_the_export_keeps_the_test_events_setting(flowhook) -> None:
    name = await record(flowhook, 2, source="test")
    assert len(lines(await flowhook.api.get(EXPORT, params={"eventName": name}))) == 2
    await flowhook.ok("PATCH", "/v1/default/settings", json={"testAnalytics": "exclude"})
    try:
        for params in ({"eventName": name}, {"eventName": name, "eventSource": "test"}):
            assert (await flowhook.api.get(EXPORT, params=params)).content == b""
    finally:
        await flowhook.ok("PATCH", "/v1/default/settings", json={"testAnalytics": "include"})


async def test_an_export_ends_at_the_last_event_recorded_when_it_started(flowhook, monkeypatch) -> None:
    """Read a page at a time, it would otherwise chase a steady stream of new events for ever."""
    monkeypatch.setattr(analytics, "EXPORT_PAGE", 2)
    name = await record(flowhook, 3)
    store = flowhook.services.store
    through = await store.read(lambda conn: analytics.last_seq(conn, "default"))
    export = analytics._export(store, "default", EventFilter(event_name=name), through, analytics.ENCODINGS["ndjson"])
    first = await anext(export)
    late = flowless_event_row(f"evt_{name}_late", "default", name, START, "u-0", {"n": 3})
    await store.write(lambda conn: conn.execute(sa.insert(analytics_events).values(**late)))
    rest = [chunk async for chunk in export]
    assert [orjson.loads(line)["properties"]["n"] for line in b"".join([first, *rest]).splitlines()] == [0, 1, 2]


@pytest.mark.parametrize(
    ("url", "headers", "status", "code"),
    [
        (f"{EXPORT}?format=xml", {}, 400, "invalid_parameter"),
        (f"{EXPORT}?since=yesterday", {}, 400, "invalid_parameter"),
        (f"{EXPORT}?eventSource=x", {}, 400, "invalid_parameter"),
        ("/v1/nowhere/analytics/events/export", {}, 404, "environment_not_found"),
        (EXPORT, {"authorization": "Bearer wrong"}, 401, "unauthorized"),
    ],
)
async def test_an_export_that_cannot_start_is_refused_before_any_byte(
    flowhook, url: str, headers: dict[str, str], status: int, code: str
) -> None:
    response = await flowhook.api.get(url, headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
