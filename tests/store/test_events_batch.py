"""store.events.record_requests: concurrent requests to `POST /events` recorded in one writer batch.

A batch must answer each request as if the requests had come one after the
other: a client id stored by an earlier request of the batch is a repeat
(same event) or a conflict (another event) for a later one, and a request
refused for a conflict writes nothing while the others of its batch stand.
Runs on a new database each (SQLite, and PostgreSQL when FLOWHOOK_TEST_POSTGRES is set).
"""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store import Store, flows
from store.clock import utcnow
from store.events import ClientIdConflict, CustomEvent, EventsRequest, Recorded, record_requests
from store.tables import analytics_events, event_deliveries
from store.triggers import insert_trigger

pytestmark = pytest.mark.anyio
MAPPING = {"kind": "jmespath", "fields": {"targetUserIds": "body.endUserId"}}


@pytest.fixture(autouse=True)
async def listening(store: Store) -> None:
    """An event trigger on "paid"; none on other names."""

    def listen(conn: Connection) -> None:
        flow = flows.insert_flow(conn, "default", {"name": "f", "variables": [], "steps": []})
        insert_trigger(conn, "default", flow.id, kind="event", mode="live", mapping=MAPPING, event_name="paid")

    await store.write(listen)


def event(client_id: str | None, user: str = "u1", name: str = "paid") -> CustomEvent:
    return CustomEvent(
        "default", name, user, {"plan": "pro"}, {}, datetime(2026, 11, 27, tzinfo=utcnow().tzinfo), client_id
    )


async def record(store: Store, *requests: list[CustomEvent]) -> list[list[Recorded] | ClientIdConflict]:
    """All `requests` in one transaction, as the writer batches them."""
    now = utcnow()
    return await store.write(lambda conn: record_requests(conn, [EventsRequest(events, now) for events in requests]))


async def count(store: Store, table: sa.Table) -> int:
    return await store.read(lambda conn: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


async def test_a_client_id_stored_earlier_in_the_batch_is_a_repeat_with_the_original_deliveries(store: Store) -> None:
    first, repeat, other = await record(store, [event("a")], [event("a")], [event(None), event("b", name="other")])
    assert isinstance(first, list) and isinstance(repeat, list) and isinstance(other, list)
    assert [(r.deliveries, r.duplicate) for r in first] == [(1, False)]
    assert [(r.id, r.deliveries, r.duplicate) for r in repeat] == [(first[0].id, 1, True)]
    assert [(r.deliveries, r.duplicate) for r in other] == [(1, False), (0, False)]  # no trigger on "other"
    assert await count(store, analytics_events) == 3 and await count(store, event_deliveries) == 2


async def test_a_repeat_of_an_event_stored_by_an_earlier_batch_reports_its_deliveries(store: Store) -> None:
    (original,) = await record(store, [event("a")])
    (repeat,) = await record(store, [event("a"), event("c")])
    assert isinstance(original, list) and isinstance(repeat, list)
    assert [(r.id, r.deliveries, r.duplicate) for r in repeat[:1]] == [(original[0].id, 1, True)]
    assert (repeat[1].deliveries, repeat[1].duplicate) == (1, False)


async def test_a_conflicting_request_writes_nothing_and_the_rest_of_its_batch_stands(store: Store) -> None:
    first, conflicting, last = await record(
        store,
        [event("a")],
        [event("new"), event("a", user="someone-else")],  # "a" was just stored with another user
        [event("z")],
    )
    assert conflicting == ClientIdConflict([1])
    assert isinstance(first, list) and isinstance(last, list)
    ids = set(await store.read(lambda conn: conn.execute(sa.select(analytics_events.c.id)).scalars().all()))
    assert ids == {first[0].id, last[0].id}  # "new", of the refused request, was not stored
    assert await count(store, event_deliveries) == 2
