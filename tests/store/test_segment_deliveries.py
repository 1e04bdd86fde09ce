"""store.event_deliveries.enqueue for segment events: a segment trigger fires only for its own segment.

An event trigger on `segment-entered` hears every segment's entries; a
segment trigger hears its segment's entries (or exits) and nothing else.
Runs on a new database each (SQLite, and PostgreSQL when FLOWHOOK_TEST_POSTGRES is set).
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store import Store, flows
from store.clock import utcnow
from store.event_deliveries import enqueue
from store.segments import ENTERED, EXITED
from store.tables import event_deliveries
from store.triggers import insert_trigger

pytestmark = pytest.mark.anyio
MAPPING = {"kind": "jmespath", "fields": {"targetUserIds": "body.endUserId"}}


def event(event_id: str) -> dict[str, Any]:
    """What enqueue reads of a `segment-entered` event's analytics row."""
    return {"id": event_id, "environment_id": "default", "event_name": ENTERED, "flow_id": None}


async def test_a_segment_trigger_fires_for_its_segment_only_and_an_event_trigger_for_any(store: Store) -> None:
    def write(conn: Connection) -> dict[str, str]:
        flow = flows.insert_flow(conn, "default", {"name": "f", "variables": [], "steps": []})

        def trigger(event_name: str, segment_id: str | None = None) -> str:
            kind = "event" if segment_id is None else "segment"
            found = insert_trigger(
                conn,
                "default",
                flow.id,
                kind=kind,
                mode="live",
                mapping=MAPPING,
                event_name=event_name,
                segment_id=segment_id,
            )
            return found.id

        return {
            "a-entered": trigger(ENTERED, "seg_a"),
            "a-exited": trigger(EXITED, "seg_a"),
            "b-entered": trigger(ENTERED, "seg_b"),
            "any-entered": trigger(ENTERED),
        }

    made = await store.write(write)
    fired = [event("evt_1")]
    assert await store.write(lambda conn: enqueue(conn, fired, 1, now=utcnow(), segment_ids=["seg_a"]).total()) == 2
    query = sa.select(event_deliveries.c.trigger_id).where(event_deliveries.c.event_id == "evt_1")
    found = set(await store.read(lambda conn: conn.execute(query).scalars().all()))
    assert found == {made["a-entered"], made["any-entered"]}
    # an event of no segment (a flow's, say, under that name) fires no segment trigger
    unsegmented = [event("evt_2")]
    assert await store.write(lambda conn: enqueue(conn, unsegmented, 1, now=utcnow()).total()) == 1
