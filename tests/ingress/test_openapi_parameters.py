"""The OpenAPI document says what the server takes, so a request valid by it is not refused for its form.

A contract checker (schemathesis) sent cursors and `status` filters the
loose `string` schemas allowed and the server refused, extra fields in an
API-key roll's body, and found `submitAsyncAction`'s 408 undocumented.
"""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

pytestmark = pytest.mark.anyio


async def document(flowhook) -> dict[str, Any]:
    found: dict[str, Any] = (await flowhook.sender().get("/openapi.json")).json()
    return found


def query_schema(operation: dict[str, Any], name: str) -> Draft202012Validator:
    schema = next(p["schema"] for p in operation["parameters"] if p["in"] == "query" and p["name"] == name)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


async def test_issued_cursors_fit_the_cursor_schema_and_text_no_cursor_has_does_not(flowhook) -> None:
    cursor = query_schema((await document(flowhook))["paths"]["/v1/{env}/triggers"]["get"], "cursor")
    for _ in range(2):
        await flowhook.flow()
        await flowhook.api.put(f"/v1/default/customers/c-{_}", json={"attributes": {}})
    for url in ("/v1/default/triggers?limit=1", "/v1/default/customers?limit=1"):  # by time and id; by sequence
        issued = (await flowhook.api.get(url)).json()["nextCursor"]
        assert issued is not None and cursor.is_valid(issued), (url, issued)
    for invalid in ("", "é", "a+b/c=" * 10, "abc"):
        assert not cursor.is_valid(invalid), invalid
        answer = await flowhook.api.get("/v1/default/triggers", params={"cursor": invalid})
        assert answer.status_code == 400, answer.text


@pytest.mark.parametrize(
    ("value", "valid"),
    [("202", True), ("4xx", True), ("5XX", True), ("4x", False), ("abc", False), ("6xx", False), ("2020", False)],
)
async def test_the_status_schema_takes_what_the_server_takes(flowhook, value: str, valid: bool) -> None:
    listing = (await document(flowhook))["paths"]["/v1/{env}/requests"]["get"]
    assert query_schema(listing, "status").is_valid(value) is valid
    answer = await flowhook.api.get("/v1/default/requests", params={"status": value})
    assert answer.status_code == (200 if valid else 400), answer.text


async def test_the_roll_refuses_unknown_fields_and_names_marketo_triggers(flowhook) -> None:
    roll = (await document(flowhook))["paths"]["/v1/{env}/triggers/{triggerId}/api-key/roll"]
    body = roll["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["additionalProperties"] is False
    trigger = next(p for p in roll["parameters"] if p["name"] == "triggerId")
    assert "Marketo" in trigger["description"]


async def test_submit_async_action_lists_every_answer_it_gives(flowhook) -> None:
    submit = (await document(flowhook))["paths"]["/marketo/{key}/submitAsyncAction"]["post"]
    assert {"201", "400", "401", "403", "404", "408", "409", "413", "422"} <= set(submit["responses"])
