"""The inbox's idempotency on both databases: a repeat is the same JSON, however its numbers are spelled."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from store import Store
from store.flows import insert_flow
from store.invocations import AcceptRequest, accept_batch, payload_hash
from store.tables import invocations

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
