"""Input no store keeps alike is refused at the edge, with the same answer on SQLite and PostgreSQL.

A NUL character (U+0000) fits in SQLite text but not in PostgreSQL's, where
it was a 500 (and a NUL user id accepted by the Action Flow API stopped the
executor's queue); JSON nested deeper than the validators and the store's
encoder recurse was a 500 too.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

pytestmark = pytest.mark.anyio

NUL = "\u0000"
MAX_DEPTH = 64  # documented: docs/webhooks.md, management API


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return either_database


def nested_branches(levels: int) -> dict[str, Any]:
    """A branch step whose `then` holds a branch, `levels` deep."""
    step: dict[str, Any] = {"type": "branch", "id": f"b{levels}", "condition": "`true`", "then": []}
    for level in range(levels - 1, 0, -1):
        step = {"type": "branch", "id": f"b{level}", "condition": "`true`", "then": [step]}
    return step


def nested_list(levels: int) -> str:
    return "[" * levels + "]" * levels


def refused(response: Any, status: int, code: str, path: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    if path is not None:
        assert error["path"] == path
    if code == "invalid_field":  # shaped like the 422s that list every problem, as the OpenAPI document says
        assert error["errors"] == [{"path": error["path"], "message": error["message"]}]


@pytest.mark.parametrize(
    ("url", "body", "path"),
    [
        ("/v1/default/test-users", {"userId": f"a{NUL}b"}, "$.userId"),
        ("/v1/default/credentials", {"name": f"a{NUL}b", "roles": ["events"]}, "$.name"),
        ("/v1/environments", {"id": "nul-env", "name": f"a{NUL}b"}, "$.name"),
        (
            "/v1/default/card-templates",
            {"name": "T", "definition": {"body": ["ok", f"x{NUL}"]}},
            "$.definition.body[1]",
        ),
        ("/v1/default/card-templates", {"name": "T", "definition": {f"k{NUL}": "v"}}, f"$.definition.k{NUL}"),
    ],
)
async def test_a_nul_in_a_body_is_refused_and_nothing_is_stored(flowhook, url: str, body: Any, path: str) -> None:
    before = (await flowhook.api.get(url)).json()["data"]
    refused(await flowhook.api.post(url, json=body), 422, "invalid_field", path)
    assert (await flowhook.api.get(url)).json()["data"] == before


async def test_an_escaped_backslash_before_u0000_is_plain_text(flowhook) -> None:
    created = await flowhook.api.post("/v1/default/test-users", content=rb'{"userId": "a\\u0000b"}')
    assert created.status_code == 201, created.text
    assert created.json()["userId"] == "a\\u0000b"


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/v1/default/action-flows/a%00b"),
        ("PUT", "/v1/default/card-templates/a%00b"),
        ("GET", "/v1/default/credentials/a%00b"),
        ("DELETE", "/v1/default/test-users/a%00b"),
        ("GET", "/v1/a%00b/settings"),
        ("GET", "/v1/environments/a%00b"),
        ("GET", "/v1/default/analytics/events?userId=a%00b"),
        ("GET", "/v1/default/analytics/events?flowId=x&eventName=a%00"),
    ],
)
async def test_a_nul_in_a_parameter_is_a_400(flowhook, method: str, url: str) -> None:
    body = {"name": "T", "definition": {"title": "t"}} if method == "PUT" else None
    refused(await flowhook.api.request(method, url, json=body), 400, "invalid_parameter")


async def test_the_action_flow_api_refuses_a_nul_and_keeps_starting_flows(flowhook) -> None:
    flow = await flowhook.flow(publish=True)
    client = await flowhook.api_client()
    start = f"/v1/default/action-flow/{flow['id']}/start"
    poison = {"flows": [{"target": {"usersById": ["u-1", f"u{NUL}2"]}}]}
    refused(await client.post(start, json=poison), 422, "invalid_field", "$.flows[0].target.usersById[1]")
    keyed = {"flows": [{"target": {"usersById": ["u-1"]}, "flowInvocationId": f"k{NUL}"}]}
    refused(await client.post(f"/v1/default/action-flow/{flow['id']}/test", json=keyed), 422, "invalid_field")
    refused(await client.post("/v1/default/action-flow/a%00b/start", json=poison), 400, "invalid_parameter")
    fine = await client.post(start, json={"flows": [{"target": {"usersById": ["u-1"]}, "flowInvocationId": "k-1"}]})
    assert fine.status_code == 202, fine.text
    url = f"/v1/default/action-flows/{flow['id']}/invocations/k-1"
    assert (await flowhook.api.get(url)).json()["status"] in ("pending", "done")


async def test_a_nul_client_id_is_an_invalid_client(flowhook) -> None:
    basic = base64.b64encode(f"fh_ci_{NUL}:secret".encode()).decode()
    for headers, form in (
        ({"authorization": f"Basic {basic}"}, {"grant_type": "client_credentials"}),
        ({}, {"grant_type": "client_credentials", "client_id": f"fh_ci_{NUL}", "client_secret": "secret"}),
    ):
        response = await flowhook.sender().post("/oauth/token", data=form, headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_client"


async def test_bodies_nested_deeper_than_the_limit_are_refused(flowhook) -> None:
    too_deep = await flowhook.api.post("/v1/default/action-flows", json={"name": "F", "steps": [nested_branches(80)]})
    refused(too_deep, 422, "invalid_field")
    assert too_deep.json()["error"]["path"].startswith("$.steps[0].then[0].then[0]")
    definition = '{"name": "T", "definition": {"a": ' + nested_list(300) + "}}"
    refused(await flowhook.api.post("/v1/default/card-templates", content=definition), 422, "invalid_field")


async def test_nesting_up_to_the_limit_is_accepted(flowhook) -> None:
    levels = (MAX_DEPTH - 2) // 2  # the body and its steps list, then a step object and its then list per level
    flow = await flowhook.api.post("/v1/default/action-flows", json={"name": "F", "steps": [nested_branches(levels)]})
    assert flow.status_code == 201, flow.text
    definition = '{"name": "T", "definition": {"a": ' + nested_list(MAX_DEPTH - 2) + "}}"
    assert (await flowhook.api.post("/v1/default/card-templates", content=definition)).status_code == 201
