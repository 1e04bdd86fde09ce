"""An unknown field in a trigger's body is refused naming only the fields that kind of trigger takes.

PATCHing a Marketo trigger with a misspelt field listed `allowedIps`,
`eventName`, `signingSecret`, `verification` as allowed: sending one of them
was then another 422, as they are settings of other kinds.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def created(flowhook, kind: str, **body: object) -> dict[str, object]:
    flow = await flowhook.card_flow()
    answer = await flowhook.api.post(f"/v1/default/action-flows/{flow['id']}/triggers", json={"type": kind, **body})
    assert answer.status_code == 201, answer.text
    trigger: dict[str, object] = answer.json()
    return trigger


@pytest.mark.parametrize(
    ("kind", "body", "allowed"),
    [
        ("marketo", {}, "mapping, mode"),
        ("webhook", {}, "allowedIps, mapping, mode, verification"),
        ("event", {"eventName": "signed-up"}, "eventName, mapping, mode"),
        ("sfmc", {"signingSecret": "s" * 32}, "mapping, mode, signingSecret"),
    ],
)
async def test_a_patch_lists_only_what_the_kind_takes(
    flowhook, kind: str, body: dict[str, object], allowed: str
) -> None:
    trigger = await created(flowhook, kind, **body)
    answer = await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"modes": "live"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == {
        "code": "unknown_field",
        "message": f"unknown field 'modes'; allowed: {allowed}",
        "path": "$.modes",
    }


async def test_a_setting_of_another_kind_says_whose_it_is(flowhook) -> None:
    trigger = await created(flowhook, "marketo")
    answer = await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"eventName": "x", "modes": 1})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["message"] == "eventName is a setting of event triggers; this is a marketo trigger"


async def test_creating_one_lists_only_what_its_kind_takes(flowhook) -> None:
    flow = await flowhook.card_flow()
    url = f"/v1/default/action-flows/{flow['id']}/triggers"
    answer = await flowhook.api.post(url, json={"type": "marketo", "hookId": "x"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["message"] == "unknown field 'hookId'; allowed: mapping, mode, type"
