"""`{{variable}}` placeholders in card templates, through HTTP: escaping and list items."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def _rendered(flowhook, definition: dict, user: str, variables: dict) -> dict:
    template = await flowhook.template(definition)
    flow = await flowhook.flow([{"type": "send-card", "id": "s", "cardTemplateId": template["id"]}])
    await flowhook.test_user(user)
    await flowhook.start(await flowhook.trigger(flow), [user], variables=variables)
    await flowhook.settle()
    [card] = await flowhook.cards(user)
    return card["definition"]  # type: ignore[no-any-return]


async def test_an_escaped_opening_is_a_literal_one(flowhook) -> None:
    definition = {"title": "\\{{name}} shows {{name}}", "hint": "type \\{{ to start a placeholder"}
    rendered = await _rendered(flowhook, definition, "ph-u1", {"name": "Ada"})
    assert rendered == {"title": "{{name}} shows Ada", "hint": "type {{ to start a placeholder"}


async def test_an_unescaped_unclosed_opening_is_still_refused(flowhook) -> None:
    response = await flowhook.api.post(
        "/v1/default/card-templates", json={"name": "t", "definition": {"title": "\\{{ok}} then {{broken"}}
    )
    assert response.status_code == 422
    assert response.json()["error"]["errors"] == [
        {"path": "$.definition.title", "message": "a placeholder opened with {{ is never closed with }}"}
    ]


async def test_a_number_in_a_path_picks_a_list_item(flowhook) -> None:
    definition = {"first": "{{order.items.0.name}}", "second": "{{order.items.1}}", "beyond": "[{{order.items.9}}]"}
    order = {"items": [{"name": "tea"}, 2]}
    rendered = await _rendered(flowhook, definition, "ph-u2", {"order": order})
    assert rendered == {"first": "tea", "second": "2", "beyond": "[]"}
