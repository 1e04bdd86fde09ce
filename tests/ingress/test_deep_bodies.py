"""A JSON body nested past what orjson reads (1,024 levels) is answered as one nested 65 to 1,024 levels deep.

The API promises a 422 `invalid_field` with the path of the first place past
64 levels (docs/webhooks.md, management API); past 1,024 levels the same
bodies were a 400 `invalid_json` ("depth limit exceeded"), though they are
valid JSON. A webhook's body is the sender's, for its mapping to read: past
1,024 levels no mapping can be given it, a 400 `invalid_body` saying so.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.anyio

MAX_DEPTH = 64  # documented: docs/webhooks.md, management API
# Each is a body whose `definition.a` nests `levels` lists; its 65th level is at this path.
DEEP_PATH = "$.definition.a[1]" + "[0]" * (MAX_DEPTH - 3)


def card_template(levels: int) -> bytes:
    """A card template whose definition's second item nests `levels` lists: the path passes a key, an index
    other than 0 and a key with an escaped quote, as the text of a document too deep to parse is read."""
    lists = "[" * levels + "]" * levels
    return ('{"name": "T", "x\\"y": ["{", "[\\"", 2], "definition": {"a": [0, ' + lists + "]}}").encode()


async def test_a_body_too_deep_to_parse_gets_the_422_of_any_body_too_deep(flowhook) -> None:
    answers = [await flowhook.api.post("/v1/default/card-templates", content=card_template(n)) for n in (100, 2000)]
    errors = [answer.json()["error"] for answer in answers]
    assert [answer.status_code for answer in answers] == [422, 422], answers[1].text
    assert errors[1] == errors[0]
    assert errors[1]["code"] == "invalid_field"
    assert errors[1]["path"] == DEEP_PATH
    assert errors[1]["message"] == f"the body nests deeper than {MAX_DEPTH} levels"
    assert errors[1]["errors"] == [{"path": DEEP_PATH, "message": errors[1]["message"]}]


def too_deep(levels: int) -> str:
    return '{"a": ' + "[" * levels + "]" * levels + "}"


@pytest.mark.parametrize(
    "url",
    [
        "/v1/default/action-flows",
        "/v1/default/mappings/preview",
        "/v1/default/test-users",
        "/v1/environments",
    ],
)
async def test_every_json_body_of_the_api_answers_alike(flowhook, url: str) -> None:
    answer = await flowhook.api.post(url, content=too_deep(5000))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["path"] == "$.a" + "[0]" * (MAX_DEPTH - 1)


async def test_samples_the_action_flow_api_and_events_answer_alike(flowhook) -> None:
    trigger = await flowhook.trigger()
    sample = await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/samples", content=too_deep(1100))
    assert (sample.status_code, sample.json()["error"]["code"]) == (422, "invalid_field"), sample.text
    flow = await flowhook.flow(publish=True)
    client = await flowhook.api_client()
    for url in (f"/v1/default/action-flow/{flow['id']}/start", "/v1/default/events"):
        answer = await client.post(url, content=too_deep(1100))
        assert (answer.status_code, answer.json()["error"]["code"]) == (422, "invalid_field"), answer.text


async def test_an_array_too_deep_to_parse_is_not_an_object(flowhook) -> None:
    for levels in (100, 2000):
        answer = await flowhook.api.post("/v1/default/test-users", content="[" * levels + "]" * levels)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == {"code": "invalid_json", "message": "the body must be a JSON object"}


async def test_a_marketo_submission_too_deep_to_parse_is_a_422(flowhook) -> None:
    flow = await flowhook.card_flow()
    created = await flowhook.api.post(f"/v1/default/action-flows/{flow['id']}/triggers", json={"type": "marketo"})
    trigger = created.json()
    url = trigger["serviceUrl"].removeprefix("http://flowhook.test") + "submitAsyncAction"
    headers = {"x-api-key": trigger["apiKey"], "content-type": "application/json"}
    for levels in (100, 2000):
        answer = await flowhook.sender().post(url, content=too_deep(levels), headers=headers)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["path"] == "$.a" + "[0]" * (MAX_DEPTH - 1)


async def test_a_webhook_body_too_deep_to_parse_is_a_400_that_says_so(flowhook: Any) -> None:
    trigger = await flowhook.trigger(mapping={"kind": "jmespath", "fields": {"targetUserIds": "'u-1'"}})
    answer = await flowhook.post(trigger, too_deep(2000))
    assert answer.status_code == 400, answer.text
    message = "body is nested deeper than 1024 levels, more than is read"
    assert answer.json()["error"]["code"] == "invalid_body"
    entry = await flowhook.entry(answer.json()["error"]["requestId"])
    assert (entry["status"], entry["cause"]) == (400, "invalid_body")
    assert message in str(entry)
    assert (await flowhook.post(trigger, too_deep(1000))).status_code == 202  # the mapping reads no deeper
