"""Removing test data a chunk at a time, on both databases (store.test_data), with the executor between chunks.

The executor runs as the service runs it (`run_batches` through the store's writer), between the removal's
chunks, on an invocation still being expanded: it must neither fail nor start the users it had not reached.
"""

from __future__ import annotations

from functools import partial

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flows.batch import Caches, run_batches
from flows.interpreter import RetryPolicy
from ingress.api.test_data import remove
from store import Store, test_data
from store.analytics import flowless_event_row
from store.clock import utcnow
from store.flows import insert_flow
from store.idempotent import insert_new
from store.invocations import AcceptRequest, accept_batch
from store.tables import analytics_events, event_deliveries, flow_instances, invocations
from store.test_users import add_test_user

pytestmark = pytest.mark.anyio

USERS = [f"tester-{index}" for index in range(5)]
WAIT_A_DAY = [{"type": "wait", "id": "w", "duration": "P1D"}]


async def accepted(store: Store, flow_id: str, mode: str, key: str) -> str:
    request = AcceptRequest("default", flow_id, None, f"req_{key}", mode, key, {"targetUserIds": USERS}, log=None)

    def accept(conn: Connection) -> str:
        [acceptance] = accept_batch(conn, [request])
        assert acceptance.invocation is not None
        return acceptance.invocation.id

    return await store.write(accept)


async def executor_batch(store: Store, budget: int) -> None:
    await store.submit(run_batches, (Caches(), RetryPolicy(), budget))


async def instances_of(store: Store, invocation_id: str) -> list[tuple[str, str]]:
    query = sa.select(flow_instances.c.user_id, flow_instances.c.status).where(
        flow_instances.c.invocation_id == invocation_id
    )
    return sorted(tuple(row) for row in await store.read(lambda conn: conn.execute(query).all()))  # type: ignore[misc]


async def test_a_test_run_being_expanded_is_stopped_then_removed_a_slice_at_a_time(store: Store) -> None:
    for user in USERS:
        await store.write(partial(add_test_user, environment_id="default", user_id=user, kind="external", name=None))
    flow = await store.write(lambda conn: insert_flow(conn, "default", {"name": "f", "steps": WAIT_A_DAY}))
    test_run = await accepted(store, flow.id, "test", "k-test")
    await executor_batch(store, 3)  # three users started, two still to come: the invocation is pending
    assert [status for _, status in await instances_of(store, test_run)] == ["waiting"] * 3
    through = await store.read(partial(test_data.last_seq, table=invocations))

    first = await store.write(
        partial(test_data.remove_test_runs, environment_id="default", from_flow="", through=through, limit=2)
    )

    assert (first.invocations, first.instances, first.next_flow) == (0, 2, flow.id)
    await executor_batch(store, 100)  # between chunks: it starts none of the two users left, and does not fail
    assert len(await instances_of(store, test_run)) == 1
    assert await remove(store, "default", chunk=2) == {
        "invocations": 1,
        "flowInstances": 1,
        "cards": 0,
        "analyticsEvents": 3,  # action-flow-started of each user started
        "eventDeliveries": 0,
    }
    await executor_batch(store, 100)
    assert await instances_of(store, test_run) == []
    assert (
        await store.read(lambda conn: conn.execute(sa.select(sa.func.count()).select_from(invocations)).scalar()) == 0
    )


async def test_events_go_a_bounded_window_at_a_time_with_their_deliveries(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(test_data, "SCAN", 3)  # windows of three sequence numbers
    now = utcnow()
    sources = ["live", "test", "test", "test", "live", "live", "live", "test", "test"]
    rows = [
        flowless_event_row(f"evt_{index}", "default", "e", now, "u", {}, event_source=source)
        for index, source in enumerate(sources)
    ]
    deliveries = [
        {
            "id": f"dlv_{row['id']}",
            "environment_id": "default",
            "trigger_id": "trg_x",
            "event_id": row["id"],
            "hop": 1,
            "status": "pending",
            "created_at": now,
            "updated_at": now,
            "due_at": now,
        }
        for row in rows
    ]

    def write(conn: Connection) -> None:
        insert_new(conn, analytics_events, rows)
        insert_new(conn, event_deliveries, deliveries)

    await store.write(write)
    through = await store.read(partial(test_data.last_seq, table=analytics_events))
    after: int | None = 0
    chunks = []
    while after is not None:
        chunk = await store.write(
            partial(test_data.remove_test_events, environment_id="default", after=after, through=through, limit=2)
        )
        chunks.append(chunk.deleted)
        after = chunk.next_after
    assert chunks == [2, 1, 2]  # two of the first window's three; the rest of it; the last window's two
    left = await store.read(lambda conn: conn.execute(sa.select(analytics_events.c.id).order_by("seq")).scalars().all())
    assert left == [row["id"] for row in rows if row["event_source"] == "live"]
    kept = await store.read(lambda conn: conn.execute(sa.select(event_deliveries.c.event_id)).scalars().all())
    assert sorted(kept) == sorted(left)
