"""Reading analytics events: in the order recorded, filtered by timestamp, bounded for an export; both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from store import Store
from store.analytics import EventFilter, flowless_event_row, last_seq, list_events
from store.tables import analytics_events

pytestmark = pytest.mark.anyio

#: Recorded in this order; the second was sent with a time in the past.
TIMES = [
    datetime(2026, 1, 1, 10, tzinfo=UTC),
    datetime(2025, 6, 1, tzinfo=UTC),
    datetime(2026, 1, 1, 11, tzinfo=UTC),
]


@pytest.fixture
async def recorded(store: Store) -> Store:
    rows = [
        flowless_event_row(f"evt_{n}", "default", "e", at, "u", {"n": n}, event_source="test" if n == 2 else "live")
        for n, at in enumerate(TIMES)
    ]
    await store.write(lambda conn: conn.execute(sa.insert(analytics_events), rows))
    return store


async def read(
    store: Store, where: EventFilter, *, after: int | None = None, through: int | None = None
) -> tuple[list[int], int | None]:
    """The `n` of each event of a page of at most two, and the next page's position."""
    events, next_seq = await store.read(
        lambda conn: list_events(conn, "default", where, after=after, limit=2, through=through)
    )
    return [event.properties["n"] for event in events], next_seq


async def test_events_come_in_the_order_recorded_and_filter_by_timestamp(recorded: Store) -> None:
    first, after = await read(recorded, EventFilter())
    assert first == [0, 1] and after is not None
    assert (await read(recorded, EventFilter(), after=after)) == ([2], None)
    assert (await read(recorded, EventFilter(since=TIMES[0])))[0] == [0, 2]
    assert (await read(recorded, EventFilter(until=TIMES[0])))[0] == [0, 1]
    assert (await read(recorded, EventFilter(since=TIMES[0], include_test=False)))[0] == [0]


async def test_an_export_ends_at_the_last_event_of_its_start(recorded: Store) -> None:
    through = await recorded.read(lambda conn: last_seq(conn, "default"))
    late = flowless_event_row("evt_late", "default", "e", TIMES[0], "u", {"n": 3})
    await recorded.write(lambda conn: conn.execute(sa.insert(analytics_events).values(**late)))
    _, after = await read(recorded, EventFilter(), through=through)
    assert (await read(recorded, EventFilter(), after=after, through=through)) == ([2], None)
    assert (await read(recorded, EventFilter(), after=after)) == ([2, 3], None)
    assert await recorded.read(lambda conn: last_seq(conn, "elsewhere")) is None
