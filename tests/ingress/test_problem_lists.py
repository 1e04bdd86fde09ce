"""The two 422s that list problems, the webhook's and the Action Flow API's, list them alike:
`{path, message}` each, the same message for the same fault, the first 100, the message counting all."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def client(flowhook):
    return await flowhook.api_client()


async def test_the_api_lists_100_problems_and_counts_them_all(flowhook, client) -> None:
    flow = await flowhook.flow(publish=True)
    body = {"flows": [{"target": {"usersById": []}}] * 150}
    response = await client.post(f"/v1/default/action-flow/{flow['id']}/start", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"] == "the request is not valid (150 problems; the first 100 are listed); nothing was started"
    assert error["errors"] == [
        {"path": f"$.flows[{index}].target.usersById", "message": "has 0 items, fewer than the 1 required"}
        for index in range(100)
    ]


@pytest.mark.parametrize(
    ("mapped", "entry", "where", "message"),
    [
        (
            {"targetUserIds": []},
            {"target": {"usersById": []}},
            "target.usersById",
            "has 0 items, fewer than the 1 required",
        ),
        (
            {"targetUserIds": [7]},
            {"target": {"usersById": [7]}},
            "target.usersById[0]",
            "must be a string, not a number",
        ),
        (
            {"targetUserIds": ["u1"], "flowInvocationId": "k" * 129},
            {"target": {"usersById": ["u1"]}, "flowInvocationId": "k" * 129},
            "flowInvocationId",
            "has 129 characters, more than the 128 allowed",
        ),
        (
            {"targetUserIds": ["u1"], "variables": []},
            {"target": {"usersById": ["u1"]}, "payload": {"variables": []}},
            "payload.variables",
            "must be an object, not an array",
        ),
    ],
    ids=["no-users", "number-id", "long-key", "variables-list"],
)
async def test_the_same_fault_gets_the_same_message_from_both(
    flowhook, client, mapped: dict[str, Any], entry: dict[str, Any], where: str, message: str
) -> None:
    flow = await flowhook.flow(publish=True)
    trigger = await flowhook.trigger(flow, mapping={"kind": "passthrough"})
    hooked = await flowhook.post(trigger, orjson.dumps(mapped))
    called = await client.post(f"/v1/default/action-flow/{flow['id']}/start", json={"flows": [entry]})
    assert (hooked.status_code, called.status_code) == (422, 422)
    [from_hook] = hooked.json()["error"]["errors"]
    [from_api] = called.json()["error"]["errors"]
    assert from_hook["message"] == from_api["message"] == message
    assert from_api["path"] == f"$.flows[0].{where}"
