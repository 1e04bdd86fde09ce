"""A failure of flowhook's own while handling a webhook: a 500 the sender can retry, and a log entry.

No input is known to cause one (each that did is fixed with its own test);
the fault is injected into the mapping stage, the last step before the
durable accept, to prove the safety net: the connection used to be reset,
with nothing in the request log.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.anyio


async def test_an_unexpected_failure_is_a_logged_500_not_a_reset(flowhook, monkeypatch: pytest.MonkeyPatch) -> None:
    flow = await flowhook.flow(publish=True, variables=[], steps=[])
    trigger = await flowhook.trigger(flow, type="webhook", mapping={"kind": "passthrough"})

    async def broken(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(flowhook.services.runner, "run", broken)
    answer = await flowhook.post(trigger, b'{"targetUserIds": ["u1"]}')
    assert answer.status_code == 500, answer.text
    error = answer.json()["error"]
    assert error["code"] == "internal_error" and "a bug" not in answer.text
    [entry] = await flowhook.log(trigger)
    assert (entry["id"], entry["status"], entry["cause"]) == (error["requestId"], 500, "internal_error")
    assert (await flowhook.entry(entry["id"]))["body"] == '{"targetUserIds": ["u1"]}'
    monkeypatch.undo()
    again = await flowhook.post(trigger, b'{"targetUserIds": ["u1"]}')
    assert again.status_code == 202, again.text
