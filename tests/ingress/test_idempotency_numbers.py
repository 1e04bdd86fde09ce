"""A repeat is the same JSON, not the same spelling: `2` and `2.0` are one number (webhooks and the API).

Runs on SQLite and, when FLOWHOOK_TEST_POSTGRES names a server, on
PostgreSQL too (the module's app runs once per database). The bodies are
written as bytes, so each number reaches the service spelled as the test
says.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.tables import invocations

pytestmark = pytest.mark.anyio

FLOW_VARIABLES = [{"name": "plan", "type": "string", "default": "basic"}, {"name": "amount", "type": "number"}]

# The fields of one trigger request besides its users, as bytes. The same JSON as `SAME[0]`, spelled
# otherwise: integral floats, exponents, negative zeros, keys reordered.
SAME = [
    b'"variables": {"amount": 2, "items": [1, {"n": 100}], "zero": 0}, "metadata": {"a": 1}',
    b'"variables": {"amount": 2.0, "items": [1.0, {"n": 1e2}], "zero": -0.0}, "metadata": {"a": 1}',
    b'"metadata": {"a": 1.00}, "variables": {"zero": -0, "items": [1E0, {"n": 100.0}], "amount": 2e0}',
]
# Each differs from SAME[0] in one value that only looks alike.
DIFFERENT = [
    b'"variables": {"amount": 2.5, "items": [1, {"n": 100}], "zero": 0}, "metadata": {"a": 1}',
    b'"variables": {"amount": 2, "items": [1, {"n": 100}], "zero": 0}, "metadata": {"a": true}',
    b'"variables": {"amount": 2, "items": [true, {"n": 100}], "zero": 0}, "metadata": {"a": 1}',
    b'"variables": {"amount": 2, "items": [1, {"n": "100"}], "zero": 0}, "metadata": {"a": 1}',
    b'"variables": {"amount": 2, "items": [1, {"n": 100}], "zero": false}, "metadata": {"a": 1}',
    b'"variables": {"amount": 2, "items": [1, {"n": 100}, 1], "zero": 0}, "metadata": {"a": 1}',
    b'"variables": {"amount": 2, "items": [1, {"n": 100}]}, "metadata": {"a": 1}',
    # `plan` is the flow's default, but the first request did not say it: another request.
    b'"variables": {"amount": 2, "items": [1, {"n": 100}], "zero": 0, "plan": "basic"}, "metadata": {"a": 1}',
]


def webhook_body(fields: bytes, key: str) -> bytes:
    return b'{"targetUserIds": ["u1"], "flowInvocationId": "%s", %s}' % (key.encode(), fields)


def api_body(fields: bytes, key: str) -> bytes:
    return b'{"flows": [{"target": {"usersById": ["u1"]}, "flowInvocationId": "%s", "payload": {%s}}]}' % (
        key.encode(),
        fields,
    )


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return either_database


async def stored_keys(flowhook, flow_id: str) -> list[str]:
    """The flowInvocationId of every invocation of the flow, read through the service's own store."""

    def read(conn: Connection) -> list[str]:
        query = sa.select(invocations.c.flow_invocation_id).where(invocations.c.flow_id == flow_id)
        return list(conn.execute(query.order_by(invocations.c.seq)).scalars())

    return list(await flowhook.services.store.read(read))


@pytest.fixture(scope="module")
async def hook(flowhook) -> dict[str, Any]:
    flow = await flowhook.flow(variables=FLOW_VARIABLES, publish=True)
    return await flowhook.trigger(flow, mode="live", mapping={"kind": "passthrough"})


async def test_webhook_numbers_spelled_otherwise_are_a_repeat(flowhook, hook) -> None:
    for first, index in ((SAME[0], 0), (SAME[1], 1), (SAME[2], 2)):
        key = f"wh-same-{index}"
        original = await flowhook.post(hook, webhook_body(first, key))
        assert original.status_code == 202, original.text
        for again in SAME:
            repeat = await flowhook.post(hook, webhook_body(again, key))
            assert (repeat.status_code, repeat.json()) == (202, original.json()), again
            assert repeat.headers["idempotent-replayed"] == "true"
    assert await stored_keys(flowhook, hook["flowId"]) == ["wh-same-0", "wh-same-1", "wh-same-2"]


async def test_webhook_values_that_only_look_alike_are_409(flowhook, hook) -> None:
    assert (await flowhook.post(hook, webhook_body(SAME[1], "wh-diff"))).status_code == 202
    for other in DIFFERENT:
        conflict = await flowhook.post(hook, webhook_body(other, "wh-diff"))
        assert conflict.status_code == 409, other
        assert conflict.json()["error"]["code"] == "idempotency_conflict"
    causes = [entry["cause"] for entry in await flowhook.log(hook, limit=len(DIFFERENT) + 1)]
    assert causes == ["idempotency_conflict"] * len(DIFFERENT) + ["accepted"]


async def test_api_numbers_spelled_otherwise_are_a_repeat_and_look_alikes_409(flowhook, hook) -> None:
    client = await flowhook.api_client()
    url = f"/v1/default/action-flow/{hook['flowId']}/start"
    headers = {"content-type": "application/json"}
    original = await client.post(url, content=api_body(SAME[1], "api-1"), headers=headers)
    assert original.status_code == 202, original.text
    for again in SAME:
        repeat = await client.post(url, content=api_body(again, "api-1"), headers=headers)
        assert (repeat.status_code, repeat.json()) == (202, original.json()), again
        assert repeat.headers["idempotent-replayed"] == "true"
    for other in DIFFERENT:
        conflict = await client.post(url, content=api_body(other, "api-1"), headers=headers)
        assert conflict.status_code == 409, other
        assert conflict.json()["error"]["code"] == "idempotency_conflict"
    # A webhook carrying the same request, spelled otherwise, is the same invocation too.
    hooked = await flowhook.post(hook, webhook_body(SAME[2], "api-1"))
    assert (hooked.status_code, hooked.headers.get("idempotent-replayed")) == (202, "true")
    assert (await stored_keys(flowhook, hook["flowId"])).count("api-1") == 1


async def test_concurrent_repeats_spelled_otherwise_store_one_invocation(flowhook, hook) -> None:
    bodies = [webhook_body(SAME[index % len(SAME)], "burst") for index in range(30)]
    responses = await asyncio.gather(*(flowhook.post(hook, body) for body in bodies))
    assert {response.status_code for response in responses} == {202}
    assert len({response.content for response in responses}) == 1  # everyone got the original answer
    assert [response.headers.get("idempotent-replayed") for response in responses].count(None) == 1
    assert (await stored_keys(flowhook, hook["flowId"])).count("burst") == 1
