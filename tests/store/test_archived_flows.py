"""An archived flow in the store: the inbox refuses what would start it, whatever the door, after the duplicate check.

Runs on SQLite, and on PostgreSQL when FLOWHOOK_TEST_POSTGRES is set.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store import Store, event_dispatch, flows
from store.clock import utcnow
from store.event_deliveries import enqueue
from store.event_dispatch import Settlement, pending
from store.ids import new_id
from store.invocations import AcceptRequest, accept_batch
from store.tables import analytics_events, event_deliveries, invocations
from store.triggers import insert_trigger

pytestmark = pytest.mark.anyio


def request(flow_id: str, key: str, mode: str = "live", users: tuple[str, ...] = ("u1",)) -> AcceptRequest:
    payload = {"targetUserIds": list(users)}
    return AcceptRequest("default", flow_id, None, f"req_{key}", mode, key, payload, log=None)


async def published_flow(store: Store) -> str:
    def write(conn: Connection) -> str:
        flow = flows.insert_flow(conn, "default", {"name": "f", "variables": [], "steps": []})
        flows.publish(conn, "default", flow.id)
        return flow.id

    return await store.write(write)


async def archive(store: Store, flow_id: str, *, archived: bool = True) -> None:
    await store.write(lambda conn: flows.set_archived(conn, "default", flow_id, archived=archived))


async def keys(store: Store) -> list[str]:
    query = sa.select(invocations.c.flow_invocation_id).order_by(invocations.c.seq)
    return list(await store.read(lambda conn: conn.execute(query).scalars().all()))


async def test_an_archived_flow_accepts_nothing_live_or_test_but_a_repeat_gets_its_answer(store: Store) -> None:
    flow_id = await published_flow(store)
    assert (await store.submit(accept_batch, request(flow_id, "before"))).verdict == "accepted"
    await archive(store, flow_id)
    batch = [
        request(flow_id, "before"),  # a sender's retry of what was accepted: answered as before
        request(flow_id, "before", users=("u2",)),  # the same key with another payload: still a conflict
        request(flow_id, "live"),
        request(flow_id, "test", "test"),
    ]
    verdicts = await store.write(lambda conn: accept_batch(conn, batch))
    assert [verdict.verdict for verdict in verdicts] == ["duplicate", "conflict", "flow_archived", "flow_archived"]
    await archive(store, flow_id, archived=False)
    assert (await store.submit(accept_batch, request(flow_id, "after"))).verdict == "accepted"
    assert await keys(store) == ["before", "after"]


async def test_an_archived_flow_is_refused_before_an_unpublished_one(store: Store) -> None:
    draft = await store.write(lambda conn: flows.insert_flow(conn, "default", {"name": "d"}))
    await archive(store, draft.id)
    assert (await store.submit(accept_batch, request(draft.id, "k"))).verdict == "flow_archived"


async def test_a_delivery_decided_before_the_archive_is_settled_skipped(store: Store) -> None:
    """The dispatcher maps outside any transaction: a flow archived meanwhile is caught where the delivery is
    settled, and the delivery is skipped (not failed) with the cause."""
    flow_id = await published_flow(store)
    mapping = {"kind": "passthrough"}
    trigger = await store.write(
        lambda conn: insert_trigger(
            conn, "default", flow_id, kind="event", mode="live", mapping=mapping, event_name="e"
        )
    )
    now = utcnow()
    row = {"id": new_id("evt"), "environment_id": "default", "event_name": "e", "timestamp": now, "end_user_id": "u1"}
    row |= {"flow_id": None, "event_source": "live", "properties": {}, "metadata": {}}

    def send(conn: Connection) -> None:
        conn.execute(sa.insert(analytics_events).values(**row))
        enqueue(conn, [row], 1, now=now)

    await store.write(send)
    [delivery] = await store.read(lambda conn: pending(conn, 10, utcnow()))
    assert delivery.target is not None and not delivery.target.flow_archived
    await archive(store, flow_id)
    payload = {"targetUserIds": ["u1"]}
    accept = AcceptRequest("default", flow_id, trigger.id, delivery.id, "live", delivery.id, payload, log=None)
    version = delivery.target.published_version  # what the mapping ran for
    settlement = Settlement(delivery.id, trigger.revision, event_dispatch.ACCEPTED, accept=accept, flow_version=version)
    settled = await store.write(lambda conn: event_dispatch.settle(conn, [settlement]))
    assert (settled.settled, settled.accepted) == (1, 0)
    query = sa.select(event_deliveries.c.status, event_deliveries.c.cause, event_deliveries.c.invocation_id)
    assert tuple(await store.read(lambda conn: conn.execute(query).one())) == ("skipped", "flow_archived", None)
    assert await keys(store) == []
