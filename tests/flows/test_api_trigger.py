"""The Action Flow API feeds the same executor: an OAuth2 client starts a flow, cards reach the users."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def access_token(flowhook) -> str:
    credential = await flowhook.ok("POST", "/v1/default/credentials", 201, json={"name": "crm", "roles": ["events"]})
    response = await flowhook.api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(credential["clientId"], credential["clientSecret"]),  # replaces the admin token's header
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]  # type: ignore[no-any-return]


async def test_start_and_test_through_the_api(flowhook) -> None:
    template = await flowhook.template({"title": "{{plan}} for {{name}}"}, publish=True)
    variables = [{"name": "plan", "type": "string", "required": True}, {"name": "name", "type": "string"}]
    step = {"type": "send-card", "id": "offer", "cardTemplateId": template["id"]}
    flow = await flowhook.flow([step], publish=True, variables=variables)
    bearer = {"authorization": f"Bearer {await access_token(flowhook)}"}
    body = {
        "flows": [
            {"target": {"usersById": ["api-u1"]}, "payload": {"variables": {"plan": "Gold", "name": "Ann"}}},
            {"target": {"usersById": ["api-u2", "api-u3"]}, "payload": {"variables": {"plan": "Silver"}}},
        ]
    }
    started = await flowhook.api.post(f"/v1/default/action-flow/{flow['id']}/start", json=body, headers=bearer)
    assert started.status_code == 202, started.text
    await flowhook.settle()
    titles = {
        user: [card["definition"]["title"] for card in await flowhook.cards(user)]
        for user in ("api-u1", "api-u2", "api-u3")
    }
    assert titles == {"api-u1": ["Gold for Ann"], "api-u2": ["Silver for "], "api-u3": ["Silver for "]}
    [entry, _] = started.json()["flows"]
    invocation = await flowhook.invocation(flow, entry["flowInvocationId"])
    assert (invocation["mode"], invocation["flowVersion"]) == ("live", 1)
    assert invocation["triggerId"] == f"api_{flow['id']}"  # the flow's API trigger, as listed among its triggers
    [started_event] = await flowhook.events(flowId=flow["id"], eventName="action-flow-started", userId="api-u1")
    assert started_event["properties"]["triggerId"] == invocation["triggerId"]

    await flowhook.test_user("api-tester")
    test_body = {
        "flows": [
            {"target": {"usersById": ["api-tester", "api-stranger"]}, "payload": {"variables": {"plan": "Trial"}}}
        ]
    }
    tested = await flowhook.api.post(f"/v1/default/action-flow/{flow['id']}/test", json=test_body, headers=bearer)
    assert tested.status_code == 202, tested.text
    [answer] = tested.json()["flows"]
    assert (answer["targetedUserIds"], answer["ignoredUserIds"]) == (["api-tester"], ["api-stranger"])
    await flowhook.settle()
    invocation = await flowhook.invocation(flow, answer["flowInvocationId"])
    assert (invocation["targetedUserIds"], invocation["ignoredUserIds"]) == (["api-tester"], ["api-stranger"])
    assert [card["eventSource"] for card in await flowhook.cards("api-tester")] == ["test"]
    assert await flowhook.cards("api-stranger") == []


async def test_the_payloads_card_expiry_ends_a_wait_on_the_card(flowhook) -> None:
    """The trigger's `cardOptions.expiresAfter` reaches the card, and its expiry settles the wait."""
    template = await flowhook.template({"title": "t"})
    wait = {"type": "wait", "id": "answer", "for": {"action": "card-completed", "stepId": "c"}, "timeout": "PT1H"}
    flow = await flowhook.flow([{"type": "send-card", "id": "c", "cardTemplateId": template["id"]}, wait])
    await flowhook.test_user("api-exp")
    bearer = {"authorization": f"Bearer {await access_token(flowhook)}"}
    body = {"flows": [{"target": {"usersById": ["api-exp"]}, "payload": {"cardOptions": {"expiresAfter": "PT1S"}}}]}
    tested = await flowhook.api.post(f"/v1/default/action-flow/{flow['id']}/test", json=body, headers=bearer)
    assert tested.status_code == 202, tested.text
    key = tested.json()["flows"][0]["flowInvocationId"]
    await flowhook.settle()

    async def settled() -> dict | None:
        [instance] = (await flowhook.invocation(flow, key))["instances"]
        return instance if instance["status"] == "completed" else None

    assert (await flowhook.eventually(settled))["outcomes"] == {"answer": {"outcome": "card-expired"}}
    assert [card["status"] for card in await flowhook.cards("api-exp")] == ["expired"]
