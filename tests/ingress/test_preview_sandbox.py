"""Previews run in a sandbox worker of their own, started at the first preview.

The app under test has one live sandbox worker (tests/ingress/conftest.py), so
a preview run in the live pool would hold every webhook up for the mapping's
whole time limit.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ingress.preview_sandbox import PreviewSandbox
from mapper import Limits

pytestmark = pytest.mark.anyio

URL = "/v1/default/mappings/preview"
LOOPING = {"kind": "javascript", "source": "function map(request) {\n  while (true) {}\n}"}
REQUEST = {
    "method": "POST",
    "path": "/",
    "headers": {},
    "query": {},
    "body": {"user": "u1"},
    "rawBody": "",
    "contentType": "application/json",
    "receivedAt": "2026-11-27T00:00:00Z",
}
MAPPED = {"kind": "javascript", "source": "function map(request) { return {targetUserIds: [request.body.user]}; }"}


async def test_a_looping_preview_does_not_hold_up_live_webhooks(flowhook: Any) -> None:
    trigger = await flowhook.trigger(mapping=MAPPED)
    preview = asyncio.create_task(flowhook.api.post(URL, json={"mapping": LOOPING, "request": {"body": {}}}))
    while not any(worker.in_flight for worker in flowhook.services.previews.workers):
        assert not preview.done(), (await preview).text
        await asyncio.sleep(0.01)
    answer = await flowhook.post(trigger, b'{"user": "u1"}')
    assert answer.status_code == 202, answer.text
    assert not preview.done()  # the webhook did not wait for the loop to reach its time limit
    looped = (await preview).json()
    assert looped["ok"] is False and looped["error"]["type"] == "TimeLimitExceeded"
    assert [worker.in_flight for worker in flowhook.services.pool.workers] == [0]


async def test_previews_share_one_worker_apart_from_the_live_ones(flowhook: Any) -> None:
    pids = []
    for user in ("u1", "u2"):
        answer = await flowhook.api.post(URL, json={"mapping": MAPPED, "request": {"body": {"user": user}}})
        assert answer.status_code == 200 and answer.json()["output"] == {"targetUserIds": [user]}
        [worker] = flowhook.services.previews.workers
        pids.append(worker.pid)
    assert pids[0] == pids[1] is not None
    assert pids[0] not in {live.pid for live in flowhook.services.pool.workers}


async def test_the_worker_starts_at_the_first_javascript_preview_and_stops_with_the_app() -> None:
    sandbox = PreviewSandbox(Limits())
    jmespath = await sandbox.run({"kind": "jmespath", "fields": {"targetUserIds": "body.user"}}, None, REQUEST)
    assert jmespath.output == {"targetUserIds": ["u1"]} and sandbox.workers == []
    for _ in range(2):
        javascript = await sandbox.run(MAPPED, None, REQUEST)
        assert javascript.output == {"targetUserIds": ["u1"]}
        [worker] = sandbox.workers
        assert worker.pid is not None
    await sandbox.close()
    assert sandbox.workers == []
