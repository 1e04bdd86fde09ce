"""store.event_deliveries.enqueue for segment events: a segment trigger fires only for its own segment.

An event trigger on `segment-entered` hears every segment's entries; a
segment trigger hears its segment's entries (or exits) and nothing else.
Runs on a new database each (SQLite, and PostgreSQL when FLOWHOOK_TEST_POSTGRES is set).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from store import Store, flows
from store.clock import utcnow
from store.event_deliveries import FiredEvent, enqueue
from store.segments import ENTERED, EXITED
from store.tables import event_deliveries
from store.triggers import insert_trigger

pytestmark = pytest.mark.anyio
MAPPING = {"kind": "jmespath", "fields": {"targetUserIds": "body.endUserId"}}


@pytest.fixture
async def store(database: URL) -> AsyncIterator[Store]:
    opened = await Store.open(database, fsync=False)
    yield opened
    await opened.close()


async def test_a_segment_trigger_fires_for_its_segment_only_and_an_event_trigger_for_any(store: Store) -> None:
    def write(conn: Connection) -> dict[str, str]:
        flow = flows.insert_flow(conn, "default", {"name": "f", "variables": [], "steps": []})

        def trigger(event_name: str, segment_id: str | None = None) -> str:
            found = insert_trigger(
                conn, "default", flow.id, mode="live", mapping=MAPPING, event_name=event_name, segment_id=segment_id
            )
            return found.id

        return {
            "a-entered": trigger(ENTERED, "seg_a"),
            "a-exited": trigger(EXITED, "seg_a"),
            "b-entered": trigger(ENTERED, "seg_b"),
            "any-entered": trigger(ENTERED),
        }

    made = await store.write(write)
    fired = [FiredEvent("evt_1", "default", ENTERED, None, segment_id="seg_a")]
    assert await store.write(lambda conn: enqueue(conn, fired, hop=1, now=utcnow())) == 2
    query = sa.select(event_deliveries.c.trigger_id).where(event_deliveries.c.event_id == "evt_1")
    found = set(await store.read(lambda conn: conn.execute(query).scalars().all()))
    assert found == {made["a-entered"], made["any-entered"]}
    # an event of no segment (a flow's, say, under that name) fires no segment trigger
    unsegmented = [FiredEvent("evt_2", "default", ENTERED, None)]
    assert await store.write(lambda conn: enqueue(conn, unsegmented, hop=1, now=utcnow())) == 1
