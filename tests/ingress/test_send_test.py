"""POST /v1/{env}/triggers/{triggerId}/send-test: the editor's Send test, a test run of the draft from a sample."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from store.tables import invocations

pytestmark = pytest.mark.anyio

#: Maps a sample `{"event_id", "user", "also"}` to a trigger request for the sample's users.
TO_USERS = {
    "kind": "javascript",
    "source": "function map(request) {\n"
    "  const body = request.body;\n"
    "  return {targetUserIds: [body.user, body.also], flowInvocationId: body.event_id};\n"
    "}",
}
SAMPLE = {"body": {"event_id": "evt_1", "user": "user-42", "also": "stranger"}}


async def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def draft_flow(flowhook) -> dict[str, Any]:
    """A published flow and template whose drafts differ from what was published: the draft flow's step id, its
    variable's default, the draft template's title."""
    api = flowhook.api
    template = await ok(
        await api.post("/v1/default/card-templates", json={"name": "t", "definition": {"title": "Live {{who}}"}}), 201
    )
    await ok(await api.post(f"/v1/default/card-templates/{template['id']}/publish"))
    await ok(
        await api.put(
            f"/v1/default/card-templates/{template['id']}", json={"name": "t", "definition": {"title": "Draft {{who}}"}}
        )
    )

    def draft(step: str, default: str) -> dict[str, Any]:
        return {
            "variables": [{"name": "who", "type": "string", "default": default}],
            "steps": [{"type": "send-card", "id": step, "cardTemplateId": template["id"]}],
        }

    created = await flowhook.flow(publish=True, **draft("live-step", "live"))
    await ok(
        await api.put(
            f"/v1/default/action-flows/{created['id']}", json={"name": "Welcome", **draft("draft-step", "draft")}
        )
    )
    return created


@pytest.fixture(scope="module")
async def testers(flowhook) -> None:
    for user in ("user-42", "user-43"):
        await ok(await flowhook.api.post("/v1/default/test-users", json={"userId": user}), 201)


async def sample(flowhook, trigger: dict[str, Any], body: dict[str, Any] | None = None) -> str:
    pasted = await ok(
        await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/samples", json=body or SAMPLE), 201
    )
    return str(pasted["id"])


async def send(flowhook, trigger: dict[str, Any], **body: Any) -> Any:
    return await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/send-test", json=body)


async def test_cards(flowhook, user: str) -> list[dict[str, Any]]:
    listed = await ok(await flowhook.api.get(f"/v1/default/users/{user}/cards", params={"eventSource": "test"}))
    return listed["data"]  # type: ignore[no-any-return]


test_cards.__test__ = False  # type: ignore[attr-defined]


async def test_a_test_send_reaches_test_users_with_the_draft_flow_and_template(flowhook, testers) -> None:
    flow = await draft_flow(flowhook)
    trigger = await flowhook.trigger(flow, mode="live", mapping=TO_USERS)
    answer = await ok(await send(flowhook, trigger, sampleId=await sample(flowhook, trigger)), 202)
    key = answer["flowInvocationId"]
    assert key.startswith("test:") and key != "evt_1"
    assert answer == {
        "flowInvocationId": key,
        "mappedFlowInvocationId": "evt_1",
        "mode": "test",
        "targetedUserIds": ["user-42"],
        "ignoredUserIds": ["stranger"],
    }
    await flowhook.expanded(flow, key)
    [card] = await test_cards(flowhook, "user-42")
    assert card["eventSource"] == "test" and card["flowInvocationId"] == key
    assert (card["stepId"], card["templateVersion"]) == ("draft-step", None)  # the draft flow, its draft template
    assert card["definition"]["title"] == "Draft draft"  # rendered with the draft's variable default
    assert await test_cards(flowhook, "stranger") == []
    invocation = await ok(await flowhook.api.get(f"/v1/default/action-flows/{flow['id']}/invocations/{key}?mode=test"))
    assert (invocation["mode"], invocation["ignoredUserIds"]) == ("test", ["stranger"])
    events = await ok(await flowhook.api.get("/v1/default/analytics/events", params={"flowId": flow["id"]}))
    started = [event for event in events["data"] if event["eventName"] == "action-flow-started"]
    assert [(event["eventSource"], event["properties"]["triggerId"]) for event in started] == [("test", trigger["id"])]
    # The live trigger stays live, and nothing reached its hook: its request log is empty.
    assert (await ok(await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}")))["mode"] == "live"
    assert await flowhook.log(trigger) == []


async def test_the_given_mapping_is_sent_unsaved_and_each_press_sends_again(flowhook, testers) -> None:
    flow = await flowhook.card_flow("Hi")
    saved = {"kind": "javascript", "source": "function map(r) { return {targetUserIds: ['user-43']}; }"}
    trigger = await flowhook.trigger(flow, mapping=saved, mode="disabled")
    sample_id = await sample(flowhook, trigger)
    first = await ok(await send(flowhook, trigger, sampleId=sample_id, mapping=TO_USERS), 202)
    second = await ok(await send(flowhook, trigger, sampleId=sample_id, mapping=TO_USERS), 202)
    assert first["flowInvocationId"] != second["flowInvocationId"]
    assert first["mappedFlowInvocationId"] == second["mappedFlowInvocationId"] == "evt_1"
    for answer in (first, second):
        assert answer["targetedUserIds"] == ["user-42"]
        await flowhook.expanded(flow, answer["flowInvocationId"])
    keys = [
        card["flowInvocationId"] for card in await test_cards(flowhook, "user-42") if card["flowConfigId"] == flow["id"]
    ]
    assert sorted(keys) == sorted([first["flowInvocationId"], second["flowInvocationId"]])  # two cards, newest first
    assert not [card for card in await test_cards(flowhook, "user-43") if card["flowConfigId"] == flow["id"]]
    # Without `mapping`, the saved one; a typed request instead of a sample; a disabled trigger stays disabled.
    by_saved = await ok(await send(flowhook, trigger, request={"body": {"anything": 1}}), 202)
    assert (by_saved["targetedUserIds"], by_saved["mappedFlowInvocationId"]) == (["user-43"], None)
    assert (await ok(await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}")))["mode"] == "disabled"


async def test_all_ignored_is_still_sent_and_says_so(flowhook, testers) -> None:
    trigger = await flowhook.trigger(await flowhook.card_flow(), mapping={"kind": "passthrough"})
    answer = await ok(await send(flowhook, trigger, request={"body": {"targetUserIds": ["nobody", "nobody"]}}), 202)
    assert (answer["targetedUserIds"], answer["ignoredUserIds"]) == ([], ["nobody"])


async def test_a_mapping_the_pipeline_would_refuse_is_a_422_with_its_result(flowhook) -> None:
    flow = await flowhook.flow(variables=[{"name": "plan", "type": "string", "required": True}])
    trigger = await flowhook.trigger(flow, mapping=TO_USERS)
    sample_id = await sample(flowhook, trigger)
    throws = {"kind": "javascript", "source": "function map(r) {\n  console.log('boom');\n  throw new Error('bad');\n}"}
    error = (await ok(await send(flowhook, trigger, sampleId=sample_id, mapping=throws), 422))["error"]
    assert error["code"] == "mapping_error" and "line 3" in error["message"]
    assert error["result"]["error"]["message"] == "bad" and error["result"]["logs"][0]["message"] == "boom"
    # The draft's required variable is missing: the validation errors, as a webhook lists them.
    error = (await ok(await send(flowhook, trigger, sampleId=sample_id), 422))["error"]
    assert error["code"] == "validation_error"
    assert [problem["path"] for problem in error["errors"]] == ["$.variables.plan"]
    assert error["result"]["ok"] is False
    unfinished = {"kind": "javascript", "source": "function map(r) {\n  return {\n}"}
    error = (await ok(await send(flowhook, trigger, sampleId=sample_id, mapping=unfinished), 422))["error"]
    assert error["code"] == "invalid_mapping" and error["line"] is not None
    skips = {"kind": "javascript", "source": "function map(r) { return null; }"}
    assert await ok(await send(flowhook, trigger, sampleId=sample_id, mapping=skips)) == {
        "skipped": True,
        "mode": "test",
    }
    stored = sa.select(sa.func.count()).select_from(invocations).where(invocations.c.flow_id == flow["id"])
    assert await flowhook.services.store.read(lambda conn: conn.execute(stored).scalar()) == 0


async def test_what_a_refusal_echoes_of_the_requests_secrets_is_redacted(flowhook) -> None:
    trigger = await flowhook.trigger(await flowhook.flow(), mapping={"kind": "passthrough"})
    echo = {
        "kind": "javascript",
        "source": "function map(r) { console.log(r.headers.authorization); throw new Error(r.headers.authorization); }",
    }
    request = {"headers": {"Authorization": "Bearer very-secret-token"}, "body": {}}
    error = (await ok(await send(flowhook, trigger, request=request, mapping=echo), 422))["error"]
    assert error["result"]["logs"][0]["message"] == "[redacted]"
    assert "very-secret" not in str(error) and "Error: [redacted]" in error["message"]


async def test_refusals(flowhook) -> None:
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow)
    no_token = flowhook.sender()
    answer = await no_token.post(f"/v1/default/triggers/{trigger['id']}/send-test", json={"request": {"body": {}}})
    assert answer.status_code == 401
    missing = await flowhook.api.post("/v1/default/triggers/trg_nope/send-test", json={"request": {"body": {}}})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "trigger_not_found")
    no_sample = await send(flowhook, trigger, sampleId="smp_nope")
    assert (no_sample.status_code, no_sample.json()["error"]["code"]) == (404, "sample_not_found")
    api_trigger = await flowhook.api.post(f"/v1/default/triggers/api_{flow['id']}/send-test", json={"sampleId": "x"})
    assert (api_trigger.status_code, api_trigger.json()["error"]["code"]) == (409, "not_a_mapped_trigger")
    for body, code in (({}, "invalid_field"), ({"request": {"body": {}}, "flowId": "x"}, "unknown_field")):
        refused = await send(flowhook, trigger, **body)
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, code)
    await ok(await flowhook.api.post(f"/v1/default/action-flows/{flow['id']}/archive"))
    archived = await send(flowhook, trigger, request={"body": {"targetUserIds": ["user-42"]}})
    assert (archived.status_code, archived.json()["error"]["code"]) == (409, "flow_archived")


async def test_the_openapi_document_declares_it(flowhook) -> None:
    document = await ok(await flowhook.sender().get("/openapi.json"))
    operation = document["paths"]["/v1/{env}/triggers/{triggerId}/send-test"]["post"]
    assert {"200", "202", "400", "401", "404", "409", "422", "500", "503"} <= set(operation["responses"])
    assert "SendTestInput" in document["components"]["schemas"]
