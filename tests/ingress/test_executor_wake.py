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
