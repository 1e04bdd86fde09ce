"""A preview made for a trigger judges the output with the flow variables its requests apply: the published
version's for a live trigger, the draft's for a test (or disabled) one; `variablesOf` picks one explicitly."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.anyio

URL = "/v1/default/mappings/preview"
MAPPING = {"kind": "jmespath", "fields": {"targetUserIds": "body.user"}}
REQUEST = {"body": {"user": "u-1"}}
PUBLISHED = [{"name": "firstName", "type": "string", "default": "there"}]
#: The draft, edited since the publish, requires a variable the mapping does not give.
DRAFT = [*PUBLISHED, {"name": "plan", "type": "string", "required": True}]
MISSING_PLAN = [{"path": "$.variables.plan", "message": "required variable 'plan' is missing"}]


async def edited_flow(flowhook: Any) -> dict[str, Any]:
    """A flow published with PUBLISHED, whose draft has since become DRAFT."""
    flow: dict[str, Any] = await flowhook.flow(publish=True, variables=PUBLISHED)
    replaced = await flowhook.api.put(
        f"/v1/default/action-flows/{flow['id']}", json={"name": flow["name"], "variables": DRAFT, "steps": []}
    )
    assert replaced.status_code == 200, replaced.text
    return flow


async def preview(flowhook: Any, **body: Any) -> Any:
    return await flowhook.api.post(URL, json={"mapping": MAPPING, "request": REQUEST, **body})


async def test_a_live_triggers_preview_applies_the_published_variables_as_its_requests_do(flowhook) -> None:
    flow = await edited_flow(flowhook)
    trigger = await flowhook.trigger(flow, mapping=MAPPING, mode="live")
    live = await flowhook.post(trigger, '{"user": "u-1"}')
    assert live.status_code == 202, live.text
    answer = (await preview(flowhook, triggerId=trigger["id"])).json()
    assert (answer["ok"], answer["validationErrors"], answer["variablesOf"]) == (True, [], "published")
    assert answer["output"]["variables"] == {"firstName": "there"}


@pytest.mark.parametrize("mode", ["test", "disabled"])
async def test_a_test_or_disabled_triggers_preview_applies_the_draft_variables(flowhook, mode: str) -> None:
    flow = await edited_flow(flowhook)
    trigger = await flowhook.trigger(flow, mapping=MAPPING, mode=mode)
    answer = (await preview(flowhook, triggerId=trigger["id"])).json()
    assert (answer["ok"], answer["validationErrors"], answer["variablesOf"]) == (False, MISSING_PLAN, "draft")


async def test_a_test_triggers_preview_agrees_with_its_requests(flowhook) -> None:
    flow = await edited_flow(flowhook)
    trigger = await flowhook.trigger(flow, mapping=MAPPING)
    refused = await flowhook.post(trigger, '{"user": "u-1"}')
    assert (refused.status_code, refused.json()["error"]["errors"]) == (422, MISSING_PLAN)
    assert (await preview(flowhook, triggerId=trigger["id"])).json()["validationErrors"] == MISSING_PLAN


async def test_a_live_trigger_of_a_flow_never_published_previews_with_the_draft_as_its_requests_map(flowhook) -> None:
    flow = await flowhook.flow(variables=DRAFT)
    trigger = await flowhook.trigger(flow, mapping=MAPPING, mode="live")
    answer = (await preview(flowhook, triggerId=trigger["id"])).json()
    assert (answer["validationErrors"], answer["variablesOf"]) == (MISSING_PLAN, "draft")


@pytest.mark.parametrize(("mode", "of", "errors"), [("live", "draft", MISSING_PLAN), ("test", "published", [])])
async def test_variables_of_overrides_the_triggers_mode(flowhook, mode: str, of: str, errors: list[Any]) -> None:
    flow = await edited_flow(flowhook)
    trigger = await flowhook.trigger(flow, mapping=MAPPING, mode=mode)
    answer = (await preview(flowhook, triggerId=trigger["id"], variablesOf=of)).json()
    assert (answer["validationErrors"], answer["variablesOf"]) == (errors, of)


async def test_a_flow_id_alone_means_the_draft_unless_variables_of_says_otherwise(flowhook) -> None:
    flow = await edited_flow(flowhook)
    draft = (await preview(flowhook, flowId=flow["id"])).json()
    assert (draft["validationErrors"], draft["variablesOf"]) == (MISSING_PLAN, "draft")
    published = (await preview(flowhook, flowId=flow["id"], variablesOf="published")).json()
    assert (published["ok"], published["variablesOf"]) == (True, "published")


async def test_the_answer_says_when_the_variables_were_given_or_none_applied(flowhook) -> None:
    given = (await preview(flowhook, variables=DRAFT)).json()
    assert (given["validationErrors"], given["variablesOf"]) == (MISSING_PLAN, "given")
    assert (await preview(flowhook)).json()["variablesOf"] is None


async def test_the_published_variables_of_a_flow_never_published_are_409(flowhook) -> None:
    flow = await flowhook.flow(variables=DRAFT)
    answer = await preview(flowhook, flowId=flow["id"], variablesOf="published")
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "flow_not_published")
    assert answer.json()["error"]["path"] == "$.variablesOf"


async def refusal(flowhook: Any, **body: Any) -> tuple[int, str, str | None]:
    answer = await preview(flowhook, **body)
    error = answer.json()["error"]
    return answer.status_code, error["code"], error.get("path")


async def test_what_a_preview_cannot_use_is_refused_at_its_path(flowhook) -> None:
    flow = await edited_flow(flowhook)
    trigger = await flowhook.trigger(flow, mapping=MAPPING)
    other = await flowhook.flow()
    assert await refusal(flowhook, triggerId="trg_nope") == (404, "trigger_not_found", None)
    assert await refusal(flowhook, triggerId=5) == (422, "invalid_field", "$.triggerId")
    assert await refusal(flowhook, triggerId=f"api_{flow['id']}") == (422, "invalid_field", "$.triggerId")
    assert await refusal(flowhook, triggerId=trigger["id"], flowId=other["id"]) == (422, "invalid_field", "$.flowId")
    assert await refusal(flowhook, flowId=flow["id"], variablesOf="live") == (422, "invalid_field", "$.variablesOf")
    assert await refusal(flowhook, variablesOf="draft") == (422, "invalid_field", "$.variablesOf")
    both = {"flowId": flow["id"], "variables": DRAFT, "variablesOf": "draft"}
    assert await refusal(flowhook, **both) == (422, "invalid_field", "$.variablesOf")
    same_flow = (await preview(flowhook, triggerId=trigger["id"], flowId=flow["id"])).json()
    assert same_flow["variablesOf"] == "draft"


async def test_openapi_describes_the_preview_for_a_trigger(flowhook) -> None:
    document = (await flowhook.sender().get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    properties = schemas["PreviewInput"]["properties"]
    assert properties["variablesOf"]["enum"] == ["draft", "published"]
    assert "published version's for a live trigger" in properties["triggerId"]["description"]
    assert "draft's, unless" in properties["flowId"]["description"]
    answer = document["paths"]["/v1/{env}/mappings/preview"]["post"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Preview"}
