"""Accepted work starts at once: the executor is woken, not left to its next poll.

This module's app polls every 60 s, so an invocation that is expanded within
a few seconds of its acceptance can only have been started by the wake-up.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytestmark = pytest.mark.anyio

PROMPT_S = 10.0  # far below the poll interval, far above a loaded CI machine's batch time


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    return {"executor_poll_seconds": 60.0, "durability": "os"}


async def idle_flow(flowhook: Any) -> dict[str, Any]:
    flow = await flowhook.flow(variables=[], steps=[])
    await asyncio.sleep(0.2)  # the executor has looked once at start and is now in its long idle wait
    return flow


async def test_an_accepted_webhook_starts_before_the_next_poll(flowhook: Any) -> None:
    flow = await idle_flow(flowhook)
    trigger = await flowhook.trigger(flow, type="webhook", mode="test", mapping={"kind": "passthrough"})
    response = await flowhook.post(trigger, b'{"targetUserIds": ["u1"], "flowInvocationId": "wake-hook"}')
    assert response.status_code == 202, response.text
    await flowhook.expanded(flow, "wake-hook", PROMPT_S)


async def test_an_api_start_starts_before_the_next_poll(flowhook: Any) -> None:
    flow = await idle_flow(flowhook)
    client = await flowhook.api_client()
    body = {"flows": [{"target": {"usersById": ["u1"]}, "flowInvocationId": "wake-api"}]}
    response = await client.post(f"/v1/default/action-flow/{flow['id']}/test", json=body)
    assert response.status_code == 202, response.text
    await flowhook.expanded(flow, "wake-api", PROMPT_S)


async def test_a_flows_event_fires_another_flows_event_trigger_before_the_next_poll(flowhook: Any) -> None:
    """The executor wakes the event dispatcher when its batch fired event triggers (a webhook does not)."""
    created = await flowhook.api.post("/v1/default/test-users", json={"userId": "chain-user"})
    assert created.status_code == 201, created.text  # a test run reaches test users only
    first = await idle_flow(flowhook)
    hook = await flowhook.trigger(first, type="webhook", mode="test", mapping={"kind": "passthrough"})
    second = await flowhook.flow(variables=[], steps=[])
    listener = await flowhook.trigger(second, type="event", mode="test", eventName="action-flow-completed")
    response = await flowhook.post(hook, b'{"targetUserIds": ["chain-user"], "flowInvocationId": "wake-chain"}')
    assert response.status_code == 202, response.text
    started = asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - started < PROMPT_S:
        deliveries = (await flowhook.api.get(f"/v1/default/triggers/{listener['id']}/deliveries")).json()["data"]
        if [delivery["status"] for delivery in deliveries] == ["accepted"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the flow's event was not dispatched within {PROMPT_S} s: {deliveries}")
