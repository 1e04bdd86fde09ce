"""The inbox's idempotency on both databases: a repeat is the same JSON, however its numbers are spelled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from tests.support.transactions import until_blocked

from store import Store
from store.flows import insert_flow
from store.invocations import AcceptRequest, accept_batch, payload_hash
from store.tables import invocations
from store.triggers import api_trigger_id, delete_trigger, insert_trigger

pytestmark = pytest.mark.anyio


def accept(flow_id: str, key: str, payload: dict[str, Any], given: dict[str, Any] | None = None) -> AcceptRequest:
    return AcceptRequest("default", flow_id, None, f"req_{key}", "test", key, payload, log=None, given=given)


async def test_numbers_spelled_otherwise_in_one_batch_and_across_batches(store: Store) -> None:
    flow = await store.write(lambda conn: insert_flow(conn, "default", {"name": "f"}))
    given = {"targetUserIds": ["u1"], "variables": {"amount": 2.0, "list": [0.5, -0.0]}}
    with_default = {**given, "variables": {**given["variables"], "plan": "basic"}}
    respelled = {"targetUserIds": ["u1"], "variables": {"list": [0.5, 0], "amount": 2}}
    batch = [accept(flow.id, "k", with_default, given), accept(flow.id, "k", respelled)]
    verdicts = await store.write(lambda conn: accept_batch(conn, batch))
    assert [verdict.verdict for verdict in verdicts] == ["accepted", "duplicate"]
    later = await store.submit(accept_batch, accept(flow.id, "k", respelled))
    boolean = await store.submit(accept_batch, accept(flow.id, "k", {**respelled, "variables": {"amount": True}}))
    assert (later.verdict, boolean.verdict) == ("duplicate", "conflict")


async def test_invocations_under_the_old_hash_compare_numbers_by_value_too(store: Store) -> None:
    flow = await store.write(lambda conn: insert_flow(conn, "default", {"name": "f"}))
    payload = {"targetUserIds": ["u1"], "flowInvocationId": "k-old", "variables": {"amount": 100}}
    assert (await store.submit(accept_batch, accept(flow.id, "k-old", payload))).verdict == "accepted"
    stamp = sa.update(invocations).where(invocations.c.flow_invocation_id == "k-old")
    await store.write(lambda conn: conn.execute(stamp.values(payload_hash=payload_hash(payload))))
    respelled = await store.submit(accept_batch, accept(flow.id, "k-old", {**payload, "variables": {"amount": 1e2}}))
    other = await store.submit(accept_batch, accept(flow.id, "k-old", {**payload, "variables": {"amount": "100"}}))
    assert (respelled.verdict, other.verdict) == ("duplicate", "conflict")


async def test_a_request_whose_stored_trigger_was_deleted_meanwhile_starts_nothing(store: Store) -> None:
    """A Journey Builder execute whose trigger was deleted while its mapping ran used to start the flow (only
    webhooks, which are logged, were checked). An API trigger (`api_…`) has no row and is never 'deleted'."""
    flow = await store.write(lambda conn: insert_flow(conn, "default", {"name": "f"}))
    trigger = await store.write(
        lambda conn: insert_trigger(conn, "default", flow.id, kind="sfmc", mode="test", mapping={"kind": "passthrough"})
    )
    await store.write(lambda conn: delete_trigger(conn, "default", trigger.id))
    payload = {"targetUserIds": ["u1"]}

    def request(trigger_id: str, key: str) -> AcceptRequest:
        return AcceptRequest("default", flow.id, trigger_id, f"req_{key}", "test", key, payload, log=None)

    verdicts = await store.write(
        lambda conn: accept_batch(conn, [request(trigger.id, "k1"), request(api_trigger_id(flow.id), "k2")])
    )
    assert [verdict.verdict for verdict in verdicts] == ["trigger_deleted", "accepted"]
    keys = await store.read(lambda conn: conn.execute(sa.select(invocations.c.flow_invocation_id)).scalars().all())
    assert keys == ["k2"]


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    ("payload", "verdict"), [({"targetUserIds": ["u1"]}, "duplicate"), ({"targetUserIds": ["u2"]}, "conflict")]
)
async def test_a_key_another_process_commits_meanwhile_is_decided_on_not_an_error(
    store: Store, database: sa.URL, payload: dict[str, Any], verdict: str
) -> None:
    """Two `serve` processes accepting one flowInvocationId at once: the second's insert waits on the first's
    uncommitted row, then meets the unique index. It used to fail the request (503 on a webhook, 500 on an API
    start); the write tried again sees the row and answers as for any repeat."""
    flow = await store.write(lambda conn: insert_flow(conn, "default", {"name": "f"}))
    engine = sa.create_engine(database)
    try:
        with engine.connect() as held, held.begin():
            assert accept_batch(held, [accept(flow.id, "k", {"targetUserIds": ["u1"]})])[0].verdict == "accepted"
            rival = asyncio.create_task(store.submit(accept_batch, accept(flow.id, "k", payload)))
            await asyncio.to_thread(until_blocked, engine, held)
        acceptance = await rival
    finally:
        engine.dispose()
    assert acceptance.verdict == verdict
    rows = await store.read(lambda conn: conn.execute(sa.select(invocations.c.payload)).scalars().all())
    assert rows == [{"targetUserIds": ["u1"]}]
