"""Saving flows and card templates: every problem with its JSON path; templates' versions; publishing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio

BAD_FLOW = {
    "name": "",
    "variables": [{"name": "a", "type": "number", "default": "x"}, {"name": "a"}],
    "steps": [
        {"type": "send-card", "id": "s1"},
        {"type": "wait", "id": "w1", "duration": "P1M"},
        {"type": "wait", "id": "w2", "for": {"action": "card-completed", "stepId": "nope"}, "timeout": "P1D"},
        {"type": "wait", "id": "w3", "for": {"action": "card-completed", "stepId": "s1"}},
        {"type": "wait", "id": "w4", "duration": "PT0S"},
        {"type": "branch", "id": "s1", "condition": "variables.(", "then": []},
        {"type": "jump", "id": "j"},
        {
            "type": "branch",
            "id": "b2",
            "condition": "variables.a",
            "then": [{"type": "send-card", "id": "inner", "cardTemplateId": "t"}],
            "else": [
                {"type": "wait", "id": "w5", "for": {"action": "card-dismissed", "stepId": "inner"}, "timeout": "P1D"}
            ],
        },
    ],
}


async def test_a_bad_flow_is_refused_with_every_problem(flowhook) -> None:
    for method, url in (
        ("POST", "/v1/default/action-flows"),
        ("PUT", f"/v1/default/action-flows/{(await flowhook.flow([]))['id']}"),
    ):
        response = await flowhook.api.request(method, url, json=BAD_FLOW)
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "invalid_flow"
        assert {problem["path"] for problem in error["errors"]} == {
            "$.name",
            "$.variables[0].default",
            "$.variables[1].name",
            "$.steps[0].cardTemplateId",
            "$.steps[1].duration",
            "$.steps[2].for.stepId",
            "$.steps[3].timeout",
            "$.steps[4].duration",
            "$.steps[5].id",
            "$.steps[5].condition",
            "$.steps[6].type",
            "$.steps[7].else[0].for.stepId",
        }
        assert error["path"] == error["errors"][0]["path"]
        assert all(problem["message"] for problem in error["errors"])


@pytest.mark.parametrize("options", [[None, None], "P1D", 7])
async def test_card_options_that_are_not_an_object_are_a_problem_not_a_crash(flowhook, options) -> None:
    step = {"type": "send-card", "id": "c", "cardTemplateId": "ctp_x", "cardOptions": options}
    response = await flowhook.api.post("/v1/default/action-flows", json={"name": "f", "steps": [step]})
    assert response.status_code == 422, response.text
    assert "$.steps[0].cardOptions" in {problem["path"] for problem in response.json()["error"]["errors"]}


async def test_a_good_flow_round_trips(flowhook) -> None:
    template = await flowhook.template({"title": "x"})
    steps = [
        {"type": "send-card", "id": "s", "cardTemplateId": template["id"], "cardOptions": {"expiresAfter": "P7D"}},
        {"type": "wait", "id": "w", "for": {"action": "card-completed", "stepId": "s"}, "timeout": "P1DT12H"},
        {"type": "branch", "id": "b", "condition": "steps.w.outcome == 'timeout'", "then": [], "else": []},
    ]
    flow = await flowhook.flow(
        steps, description="welcome", variables=[{"name": "n", "type": "number", "required": True}]
    )
    stored = await flowhook.ok("GET", f"/v1/default/action-flows/{flow['id']}")
    assert (stored["steps"], stored["description"]) == (steps, "welcome")


async def test_card_template_problems_and_lifecycle(flowhook) -> None:
    bad = {"name": "x", "definition": {"title": "{{ first name }}", "body": ["{{open"]}, "colour": 1}
    response = await flowhook.api.post("/v1/default/card-templates", json=bad)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_card_template"
    assert [problem["path"] for problem in error["errors"]] == [
        "$.colour",
        "$.definition.title",
        "$.definition.body[0]",
    ]
    missing = await flowhook.api.post("/v1/default/card-templates", json={"name": "x"})
    assert missing.json()["error"]["path"] == "$.definition"

    template = await flowhook.template({"title": "v1"})
    url = f"/v1/default/card-templates/{template['id']}"
    assert (template["draftRevision"], template["publishedVersion"]) == (1, None)
    edited = await flowhook.ok("PUT", url, json={"name": "Card", "definition": {"title": "v2"}})
    assert (edited["draftRevision"], edited["definition"]) == (2, {"title": "v2"})
    assert (await flowhook.ok("POST", f"{url}/publish"))["publishedVersion"] == 1
    listed = await flowhook.ok("GET", "/v1/default/card-templates")
    assert template["id"] in [item["id"] for item in listed["data"]]
    assert (await flowhook.api.delete(url)).status_code == 204
    assert (await flowhook.api.get(url)).status_code == 404
    assert (await flowhook.api.delete(url)).status_code == 404


async def test_publishing_a_flow_needs_its_templates_published(flowhook) -> None:
    template = await flowhook.template({"title": "x"})
    flow = await flowhook.flow(
        [
            {"type": "send-card", "id": "a", "cardTemplateId": template["id"]},
            {"type": "send-card", "id": "b", "cardTemplateId": "ctp_missing"},
        ]
    )
    url = f"/v1/default/action-flows/{flow['id']}/publish"
    refused = await flowhook.api.post(url)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "flow_not_publishable"
    assert [problem["path"] for problem in error["errors"]] == [
        "$.steps[0].cardTemplateId",
        "$.steps[1].cardTemplateId",
    ]
    await flowhook.ok("POST", f"/v1/default/card-templates/{template['id']}/publish")
    await flowhook.ok("PUT", f"/v1/default/action-flows/{flow['id']}", json={"name": "F", "steps": flow["steps"][:1]})
    assert (await flowhook.ok("POST", url))["publishedVersion"] == 1


async def test_a_card_template_a_flow_sends_cannot_be_deleted(flowhook) -> None:
    used = await flowhook.template({"title": "x"}, publish=True)
    unused = await flowhook.template({"title": "y"})
    step = {"type": "send-card", "id": "s", "cardTemplateId": used["id"]}
    flow = await flowhook.flow([{"type": "branch", "id": "b", "condition": "`true`", "then": [step]}], publish=True)
    refused = await flowhook.api.delete(f"/v1/default/card-templates/{used['id']}")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "card_template_in_use")
    assert flow["id"] in refused.json()["error"]["message"]
    # Once only the published version sends it, it is still in use; once neither does, it can go.
    await flowhook.ok("PUT", f"/v1/default/action-flows/{flow['id']}", json={"name": "Flow", "steps": []})
    assert (await flowhook.api.delete(f"/v1/default/card-templates/{used['id']}")).status_code == 409
    await flowhook.ok("POST", f"/v1/default/action-flows/{flow['id']}/publish")
    assert (await flowhook.api.delete(f"/v1/default/card-templates/{used['id']}")).status_code == 204
    assert (await flowhook.api.delete(f"/v1/default/card-templates/{unused['id']}")).status_code == 204


async def test_a_card_template_a_run_under_way_will_send_cannot_be_deleted(flowhook) -> None:
    template = await flowhook.template({"title": "later"})
    steps = [
        {"type": "wait", "id": "w", "duration": "PT1H"},
        {"type": "send-card", "id": "s", "cardTemplateId": template["id"]},
    ]
    flow = await flowhook.flow(steps)
    trigger = await flowhook.trigger(flow)
    await flowhook.test_user("later-u1")
    await flowhook.start(trigger, ["later-u1"])
    await flowhook.settle()  # waiting an hour, on the draft it started with
    await flowhook.ok("PUT", f"/v1/default/action-flows/{flow['id']}", json={"name": "Flow", "steps": []})
    refused = await flowhook.api.delete(f"/v1/default/card-templates/{template['id']}")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "card_template_in_use")
    assert flow["id"] in refused.json()["error"]["message"]


async def test_a_long_value_keeps_the_reason_in_its_problem(flowhook) -> None:
    """A message quotes the value first and says why last: cut at the end, the why was lost."""
    response = await flowhook.api.post("/v1/default/card-templates", json={"name": "n" * 5000, "definition": {}})
    assert response.status_code == 422, response.text
    [problem] = [found for found in response.json()["error"]["errors"] if found["path"] == "$.name"]
    assert problem["message"].endswith("is too long")
    assert len(problem["message"]) <= 300
