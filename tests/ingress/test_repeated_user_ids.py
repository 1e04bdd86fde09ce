"""A user listed twice is started once, whether a webhook mapping or an Action Flow API entry lists it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.anyio

TESTERS = ("rep-u1", "rep-u2")


@pytest.fixture(scope="module")
async def testers(flowhook) -> tuple[str, ...]:
    for user_id in TESTERS:
        response = await flowhook.api.post("/v1/default/test-users", json={"userId": user_id})
        assert response.status_code == 201, response.text
    return TESTERS


async def started(flowhook, flow: dict[str, Any], key: str) -> dict[str, Any]:
    """The test invocation `key`, once the executor has started its users."""
    await flowhook.expanded(flow, key)
    response = await flowhook.api.get(f"/v1/default/action-flows/{flow['id']}/invocations/{key}?mode=test")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_a_webhook_mappings_repeated_ids_start_each_user_once(flowhook, testers) -> None:
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow, mapping={"kind": "passthrough"})
    body = {"targetUserIds": ["rep-u1", "rep-u2", "rep-u1", "stranger", "stranger"], "flowInvocationId": "rep-hook"}
    response = await flowhook.post(trigger, orjson.dumps(body))
    assert response.status_code == 202, response.text
    invocation = await started(flowhook, flow, "rep-hook")
    assert (invocation["targetedUserIds"], invocation["ignoredUserIds"]) == (["rep-u1", "rep-u2"], ["stranger"])
    assert len(invocation["instances"]) == 3
    repeat = await flowhook.post(trigger, orjson.dumps(body))
    assert (repeat.status_code, repeat.headers["idempotent-replayed"]) == (202, "true")


async def test_an_api_entrys_repeated_ids_are_started_and_answered_once(flowhook, testers) -> None:
    flow = await flowhook.flow(publish=True)
    client = await flowhook.api_client()
    users = ["rep-u1", "rep-u2", "rep-u1", "stranger", "stranger"]
    body = {"flows": [{"target": {"usersById": users}, "flowInvocationId": "rep-api"}]}
    tested = await client.post(f"/v1/default/action-flow/{flow['id']}/test", json=body)
    assert tested.status_code == 202, tested.text
    answer = {"flowInvocationId": "rep-api", "targetedUserIds": ["rep-u1", "rep-u2"], "ignoredUserIds": ["stranger"]}
    assert tested.json()["flows"] == [answer]
    invocation = await started(flowhook, flow, "rep-api")
    assert (invocation["targetedUserIds"], invocation["ignoredUserIds"]) == (["rep-u1", "rep-u2"], ["stranger"])
    assert len(invocation["instances"]) == 3
    repeat = await client.post(f"/v1/default/action-flow/{flow['id']}/test", json=body)
    assert (repeat.status_code, repeat.json()["flows"]) == (202, [answer])

    live = await client.post(f"/v1/default/action-flow/{flow['id']}/start", json=body)
    assert live.status_code == 202, live.text
    everyone = {
        "flowInvocationId": "rep-api",
        "targetedUserIds": ["rep-u1", "rep-u2", "stranger"],
        "ignoredUserIds": [],
    }
    assert live.json()["flows"] == [everyone]


async def test_the_invocation_lists_its_users_in_the_order_the_answer_did(flowhook, testers) -> None:
    """First appearance in the request, not the order of the ids: the view and the 202 agree."""
    flow = await flowhook.flow()
    client = await flowhook.api_client()
    users = ["stranger-b", "rep-u2", "stranger-a", "rep-u1", "rep-u2"]
    body = {"flows": [{"target": {"usersById": users}, "flowInvocationId": "rep-order"}]}
    tested = await client.post(f"/v1/default/action-flow/{flow['id']}/test", json=body)
    assert tested.status_code == 202, tested.text
    [answer] = tested.json()["flows"]
    assert (answer["targetedUserIds"], answer["ignoredUserIds"]) == (["rep-u2", "rep-u1"], ["stranger-b", "stranger-a"])
    invocation = await started(flowhook, flow, "rep-order")
    assert (invocation["targetedUserIds"], invocation["ignoredUserIds"]) == (
        answer["targetedUserIds"],
        answer["ignoredUserIds"],
    )
    assert [instance["userId"] for instance in invocation["instances"]] == users[:4]


@pytest.mark.parametrize("path", ["webhook", "api"])
async def test_the_10000_limit_counts_the_list_as_given(flowhook, path: str) -> None:
    """Repeats are forgiven, not discounted: both paths refuse 10,001 ids of one user alike."""
    flow = await flowhook.flow(publish=True)
    problem = {"message": "has 10001 items, more than the 10000 allowed"}
    if path == "webhook":
        trigger = await flowhook.trigger(flow, mapping={"kind": "passthrough"})
        response = await flowhook.post(trigger, orjson.dumps({"targetUserIds": ["u1"] * 10_001}))
        problem["path"] = "$.targetUserIds"
    else:
        client = await flowhook.api_client()
        body = {"flows": [{"target": {"usersById": ["u1"] * 10_001}}]}
        response = await client.post(f"/v1/default/action-flow/{flow['id']}/start", json=body)
        problem["path"] = "$.flows[0].target.usersById"
    assert response.status_code == 422, response.text
    assert response.json()["error"]["errors"] == [problem]
