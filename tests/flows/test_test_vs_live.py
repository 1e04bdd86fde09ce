"""Test runs against live runs: who is reached, which versions are used, what analytics show."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def test_a_test_run_reaches_test_users_only(flowhook) -> None:
    template = await flowhook.template({"title": "t"})
    flow = await flowhook.flow([{"type": "send-card", "id": "s", "cardTemplateId": template["id"]}])
    trigger = await flowhook.trigger(flow)
    await flowhook.test_user("tvl-tester", name="Tess")
    await flowhook.test_user("tvl-member", kind="member")
    key = await flowhook.start(trigger, ["tvl-tester", "tvl-stranger", "tvl-member"])
    await flowhook.settle()
    invocation = await flowhook.invocation(flow, key)
    assert invocation["targetedUserIds"] == ["tvl-tester", "tvl-member"]  # in the order the request listed them
    assert invocation["ignoredUserIds"] == ["tvl-stranger"]
    statuses = {instance["userId"]: instance["status"] for instance in invocation["instances"]}
    assert statuses == {"tvl-tester": "completed", "tvl-member": "completed", "tvl-stranger": "ignored"}
    assert await flowhook.cards("tvl-stranger") == []
    assert await flowhook.events(userId="tvl-stranger") == []
    assert [card["eventSource"] for card in await flowhook.cards("tvl-tester")] == ["test"]


async def test_live_runs_use_published_versions_and_test_runs_the_drafts(flowhook) -> None:
    template = await flowhook.template({"title": "published {{n}}"}, publish=True)
    await flowhook.ok(
        "PUT",
        f"/v1/default/card-templates/{template['id']}",
        json={"name": "Card", "definition": {"title": "draft {{n}}"}},
    )
    send = {"type": "send-card", "cardTemplateId": template["id"]}
    flow = await flowhook.flow(
        [{**send, "id": "live-step"}], publish=True, variables=[{"name": "n", "type": "number", "default": 1}]
    )
    await flowhook.ok(
        "PUT", f"/v1/default/action-flows/{flow['id']}", json={"name": "Flow", "steps": [{**send, "id": "draft-step"}]}
    )
    live, test = await flowhook.trigger(flow, "live"), await flowhook.trigger(flow, "test")
    await flowhook.test_user("vers-tester")
    live_key = await flowhook.start(live, ["vers-anyone", "vers-tester"], variables={"n": 2})
    test_key = await flowhook.start(test, ["vers-tester"])
    await flowhook.settle()
    [anyone] = await flowhook.cards("vers-anyone")
    assert (anyone["stepId"], anyone["definition"], anyone["templateVersion"], anyone["eventSource"]) == (
        "live-step",
        {"title": "published 2"},
        1,
        "live",
    )
    tester = {card["eventSource"]: card for card in await flowhook.cards("vers-tester")}
    assert (tester["live"]["stepId"], tester["test"]["stepId"]) == ("live-step", "draft-step")
    # the draft flow declares no `n`, and the test request gave none: the placeholder renders empty
    assert (tester["test"]["definition"], tester["test"]["templateVersion"]) == ({"title": "draft "}, None)
    assert (await flowhook.invocation(flow, live_key))["flowVersion"] == 1
    assert (await flowhook.invocation(flow, test_key))["flowVersion"] is None
    assert [card["stepId"] for card in await flowhook.cards("vers-tester", eventSource="test")] == ["draft-step"]


async def test_a_waiting_test_run_keeps_the_draft_it_started_with(flowhook) -> None:
    template = await flowhook.template({"title": "t"})
    send = {"type": "send-card", "cardTemplateId": template["id"]}
    steps = [{**send, "id": "before"}, {"type": "wait", "id": "w", "duration": "PT0.3S"}, {**send, "id": "after"}]
    flow = await flowhook.flow(steps)
    trigger = await flowhook.trigger(flow)
    await flowhook.test_user("snap-u1")
    await flowhook.start(trigger, ["snap-u1"])
    await flowhook.settle()
    await flowhook.ok("PUT", f"/v1/default/action-flows/{flow['id']}", json={"name": "Flow", "steps": steps[:1]})

    async def sent() -> list[str] | None:
        found = [card["stepId"] for card in await flowhook.cards("snap-u1")]
        return found if len(found) == 2 else None

    assert await flowhook.eventually(sent) == ["after", "before"]


async def test_the_test_analytics_setting(flowhook) -> None:
    template = await flowhook.template({"title": "t"}, publish=True)
    flow = await flowhook.flow([{"type": "send-card", "id": "s", "cardTemplateId": template["id"]}], publish=True)
    await flowhook.test_user("ana-tester")
    await flowhook.start(await flowhook.trigger(flow, "live"), ["ana-tester"])
    await flowhook.start(await flowhook.trigger(flow, "test"), ["ana-tester"])
    await flowhook.settle()
    assert await flowhook.ok("GET", "/v1/default/settings") == {"testAnalytics": "include"}
    sources = {event["eventSource"] for event in await flowhook.events(flowId=flow["id"])}
    assert sources == {"live", "test"}
    assert await flowhook.ok("PATCH", "/v1/default/settings", json={"testAnalytics": "exclude"}) == {
        "testAnalytics": "exclude"
    }
    try:
        assert {event["eventSource"] for event in await flowhook.events(flowId=flow["id"])} == {"live"}
        assert await flowhook.events(flowId=flow["id"], eventSource="test") == []
        assert len(await flowhook.cards("ana-tester")) == 2  # the cards themselves are still there
    finally:
        await flowhook.ok("PATCH", "/v1/default/settings", json={"testAnalytics": "include"})
    for bad in ({"testAnalytics": "sometimes"}, {"colour": "red"}):
        assert (await flowhook.api.patch("/v1/default/settings", json=bad)).status_code == 422


async def test_the_test_users_api(flowhook) -> None:
    await flowhook.test_user("tu-ext", name="External")
    await flowhook.test_user("tu-member", kind="member")
    listed = {user["userId"]: user for user in (await flowhook.ok("GET", "/v1/default/test-users"))["data"]}
    assert (listed["tu-ext"]["kind"], listed["tu-ext"]["name"]) == ("external", "External")
    assert listed["tu-member"]["kind"] == "member"
    duplicate = await flowhook.api.post("/v1/default/test-users", json={"userId": "tu-ext"})
    assert (duplicate.status_code, duplicate.json()["error"]["code"]) == (409, "test_user_exists")
    for bad, path in (({"userId": ""}, "$.userId"), ({}, "$.userId"), ({"userId": "x", "kind": "boss"}, "$.kind")):
        response = await flowhook.api.post("/v1/default/test-users", json=bad)
        assert (response.status_code, response.json()["error"]["path"]) == (422, path)
    assert (await flowhook.api.delete("/v1/default/test-users/tu-ext")).status_code == 204
    assert (await flowhook.api.delete("/v1/default/test-users/tu-ext")).status_code == 404
    remaining = [user["userId"] for user in (await flowhook.ok("GET", "/v1/default/test-users"))["data"]]
    assert "tu-ext" not in remaining and "tu-member" in remaining
