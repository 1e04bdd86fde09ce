"""POST /v1/{env}/action-flow/{flowId}/start and /test: the Atomic body, validation, idempotency, test users."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid
from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.anyio

VARIABLES = [
    {"name": "firstName", "type": "string", "required": True},
    {"name": "plan", "type": "string", "default": "free"},
    {"name": "amount", "type": "number"},
]


def entry(*users: str, key: str | None = None, extra: dict[str, Any] | None = None, **variables: Any) -> dict[str, Any]:
    """One entry of the body: `variables` as keywords, other payload fields in `extra`."""
    item: dict[str, Any] = {"target": {"usersById": list(users)}, "payload": {"variables": variables, **(extra or {})}}
    if key is not None:
        item["flowInvocationId"] = key
    return item


def stored(flowhook, flow_id: str) -> list[dict[str, Any]]:
    """Every invocation of the flow, read from the database file."""
    with sqlite3.connect(flowhook.data_dir / "flowhook.db") as db:
        rows = db.execute(
            "SELECT flow_invocation_id, mode, flow_version, payload, trigger_id"
            " FROM invocations WHERE flow_id = ? ORDER BY seq",
            (flow_id,),
        )
        return [
            {"key": key, "mode": mode, "version": version, "payload": orjson.loads(payload), "trigger": trigger}
            for key, mode, version, payload, trigger in rows
        ]


async def add_test_user(flowhook, user_id: str, kind: str = "external") -> None:
    response = await flowhook.api.post("/v1/default/test-users", json={"userId": user_id, "kind": kind})
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
async def client(flowhook):
    return await flowhook.api_client()


@pytest.fixture(scope="module")
async def flow(flowhook) -> dict[str, Any]:
    return await flowhook.flow(variables=VARIABLES, publish=True)


async def post(client, flow: dict[str, Any], *entries: dict[str, Any], path: str = "start") -> Any:
    return await client.post(f"/v1/default/action-flow/{flow['id']}/{path}", json={"flows": list(entries)})


async def test_start_stores_one_live_invocation_per_entry(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    response = await post(
        client,
        flow,
        entry("u1", "u2", firstName="Ann", extra={"cardOptions": {"priority": 5}, "metadata": {"source": "crm"}}),
        entry("u3", key="order-3", firstName="Bo", plan="gold", extra={"notificationDetail": {"title": "Hi"}}),
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["mode"] == "live"
    first, second = body["flows"]
    uuid.UUID(first["flowInvocationId"])  # generated
    assert first["targetedUserIds"] == ["u1", "u2"] and first["ignoredUserIds"] == []
    assert second == {"flowInvocationId": "order-3", "targetedUserIds": ["u3"], "ignoredUserIds": []}
    assert "idempotent-replayed" not in response.headers
    assert stored(flowhook, flow["id"]) == [
        {
            "key": first["flowInvocationId"],
            "mode": "live",
            "version": 1,
            "trigger": f"api_{flow['id']}",  # the flow's API trigger
            "payload": {
                "targetUserIds": ["u1", "u2"],
                "variables": {"firstName": "Ann", "plan": "free"},
                "cardOptions": {"priority": 5},
                "metadata": {"source": "crm"},
            },
        },
        {
            "key": "order-3",
            "mode": "live",
            "version": 1,
            "trigger": f"api_{flow['id']}",  # the flow's API trigger
            "payload": {
                "targetUserIds": ["u3"],
                "variables": {"firstName": "Bo", "plan": "gold"},
                "notificationDetail": {"title": "Hi"},
            },
        },
    ]


async def test_every_problem_is_reported_with_its_path_and_nothing_is_stored(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    body = {
        "flows": [
            entry("u1", firstName="Ann"),
            {"target": {"usersById": []}, "payload": {"variables": 3, "extra": 1}, "flowInvocationId": ""},
            {"target": {"usersById": ["u1", "u1", 7]}},
            "not an entry",
        ],
        "unknown": True,
    }
    response = await client.post(f"/v1/default/action-flow/{flow['id']}/start", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert sorted({problem["path"] for problem in error["errors"]}) == [
        "$",
        "$.flows[1].flowInvocationId",
        "$.flows[1].payload",
        "$.flows[1].payload.variables",
        "$.flows[1].target.usersById",
        "$.flows[2].target.usersById[2]",  # the repeated u1 is no problem: it is started once
        "$.flows[3]",
    ]
    assert stored(flowhook, flow["id"]) == []


async def test_an_entry_the_schema_refuses_does_not_hide_the_others_problems(flowhook, client, flow) -> None:
    response = await post(
        client, flow, entry("u1", plan="gold"), {"target": {"usersById": []}}, entry("u3", amount="1")
    )
    assert response.status_code == 422
    assert [problem["path"] for problem in response.json()["error"]["errors"]] == [
        "$.flows[0].payload.variables.firstName",
        "$.flows[1].target.usersById",
        "$.flows[2].payload.variables.firstName",
        "$.flows[2].payload.variables.amount",
    ]


async def test_a_card_expiry_given_by_the_caller_must_be_a_duration(flowhook, client, flow) -> None:
    entries = [
        {**entry(f"u{n}", firstName="Ann"), "payload": {"variables": {"firstName": "Ann"}, "cardOptions": options}}
        for n, options in enumerate([{"expiresAfter": "banana"}, {"expiresAfter": 5}, {"expiresAfter": "P1D"}])
    ]
    response = await post(client, flow, *entries)
    assert response.status_code == 422
    assert [problem["path"] for problem in response.json()["error"]["errors"]] == [
        "$.flows[0].payload.cardOptions.expiresAfter",
        "$.flows[1].payload.cardOptions.expiresAfter",
    ]


async def test_required_variables_and_types_follow_the_flow(flowhook, client, flow) -> None:
    response = await post(
        client,
        flow,
        entry("u1", firstName="Ann"),
        entry("u2", plan="gold"),
        entry("u3", firstName=7, amount="12"),
    )
    assert response.status_code == 422
    assert [(problem["path"], problem["message"]) for problem in response.json()["error"]["errors"]] == [
        ("$.flows[1].payload.variables.firstName", "required variable 'firstName' is missing"),
        ("$.flows[2].payload.variables.firstName", "variable 'firstName' must be a string"),
        ("$.flows[2].payload.variables.amount", "variable 'amount' must be a number"),
    ]
    assert stored(flowhook, flow["id"]) == []


async def test_start_uses_the_published_variables_and_test_the_draft(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    relaxed = {"name": "Welcome", "variables": [{"name": "plan", "type": "string", "default": "trial"}]}
    assert (await flowhook.api.put(f"/v1/default/action-flows/{flow['id']}", json=relaxed)).status_code == 200
    live = await post(client, flow, entry("u1"))
    assert live.status_code == 422  # the published version still requires firstName
    tester = "tester-1"
    await add_test_user(flowhook, tester)
    test = await post(client, flow, entry(tester), path="test")
    assert test.status_code == 202, test.text
    [invocation] = stored(flowhook, flow["id"])
    assert (invocation["mode"], invocation["version"]) == ("test", None)
    assert invocation["payload"]["variables"] == {"plan": "trial"}


async def test_only_test_users_are_targeted_by_test(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES)  # a draft: /test needs no published version
    await add_test_user(flowhook, "member-1", kind="member")
    response = await post(
        client,
        flow,
        entry("customer-1", "member-1", "customer-2", firstName="Ann"),
        entry("customer-3", firstName="Bo"),
        path="test",
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["mode"] == "test"
    assert [(item["targetedUserIds"], item["ignoredUserIds"]) for item in body["flows"]] == [
        (["member-1"], ["customer-1", "customer-2"]),
        ([], ["customer-3"]),
    ]
    assert {invocation["mode"] for invocation in stored(flowhook, flow["id"])} == {"test"}


async def test_start_targets_everyone_including_test_users(flowhook, client, flow) -> None:
    await add_test_user(flowhook, "member-2", kind="member")
    response = await post(client, flow, entry("member-2", "customer-9", firstName="Ann"))
    assert response.json()["flows"][0]["targetedUserIds"] == ["member-2", "customer-9"]
    assert response.json()["flows"][0]["ignoredUserIds"] == []


async def test_unknown_and_unpublished_flows(flowhook, client) -> None:
    unknown = await client.post("/v1/default/action-flow/flw_nope/start", json={"flows": [entry("u1")]})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "flow_not_found"
    draft_only = await flowhook.flow()
    refused = await post(client, draft_only, entry("u1"))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "flow_not_published"
    assert stored(flowhook, draft_only["id"]) == []


async def test_a_body_that_is_not_json_is_400(client, flow) -> None:
    path = f"/v1/default/action-flow/{flow['id']}/start"
    for content in (b"{nope", b"[1, 2]"):
        response = await client.post(path, content=content, headers={"content-type": "application/json"})
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"


async def test_a_repeat_gets_the_original_answer_and_creates_nothing(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    first = await post(client, flow, entry("u1", key="k-1", firstName="Ann"), entry("u2", key="k-2", firstName="Bo"))
    again = await post(client, flow, entry("u1", key="k-1", firstName="Ann"), entry("u2", key="k-2", firstName="Bo"))
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    partly_new = await post(
        client, flow, entry("u1", key="k-1", firstName="Ann"), entry("u3", key="k-3", firstName="Cy")
    )
    assert partly_new.status_code == 202 and "idempotent-replayed" not in partly_new.headers
    assert [invocation["key"] for invocation in stored(flowhook, flow["id"])] == ["k-1", "k-2", "k-3"]


async def test_a_reused_key_with_another_payload_is_409_and_stores_nothing(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    assert (await post(client, flow, entry("u1", key="k-1", firstName="Ann"))).status_code == 202
    conflict = await post(
        client, flow, entry("u9", key="k-new", firstName="Di"), entry("u1", key="k-1", firstName="Changed")
    )
    assert conflict.status_code == 409
    error = conflict.json()["error"]
    assert error["code"] == "idempotency_conflict"
    assert [problem["path"] for problem in error["errors"]] == ["$.flows[1].flowInvocationId"]
    assert [invocation["key"] for invocation in stored(flowhook, flow["id"])] == ["k-1"]  # k-new was not stored either


async def test_keys_are_per_mode_a_test_run_never_uses_up_a_live_key(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    tested = await post(client, flow, entry("u1", key="shared", firstName="Ann"), path="test")
    live = await post(client, flow, entry("u1", key="shared", firstName="Bo"))
    assert (tested.status_code, tested.json()["mode"]) == (202, "test")
    assert (live.status_code, live.json()["mode"]) == (202, "live") and "idempotent-replayed" not in live.headers
    repeats = [
        await post(client, flow, entry("u1", key="shared", firstName="Ann"), path="test"),
        await post(client, flow, entry("u1", key="shared", firstName="Bo")),
    ]
    assert [repeat.headers.get("idempotent-replayed") for repeat in repeats] == ["true", "true"]
    changed = await post(client, flow, entry("u1", key="shared", firstName="Cy"), path="test")
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "idempotency_conflict"
    assert [(i["key"], i["mode"]) for i in stored(flowhook, flow["id"])] == [("shared", "test"), ("shared", "live")]


async def test_the_invocation_of_a_key_is_read_per_mode(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    url = f"/v1/default/action-flows/{flow['id']}/invocations/both"
    assert (await post(client, flow, entry("u1", key="both", firstName="Ann"), path="test")).status_code == 202
    assert (await flowhook.api.get(url)).json()["mode"] == "test"  # the only one
    assert (await flowhook.api.get(url, params={"mode": "live"})).status_code == 404
    assert (await post(client, flow, entry("u1", key="both", firstName="Ann"))).status_code == 202
    modes = [(await flowhook.api.get(url, params=params)).json()["mode"] for params in ({}, {"mode": "test"})]
    assert modes == ["live", "test"]
    assert (await flowhook.api.get(url, params={"mode": "staging"})).status_code == 400


async def test_a_key_twice_in_one_request_is_422(flowhook, client, flow) -> None:
    response = await post(client, flow, entry("u1", key="dup", firstName="A"), entry("u2", key="dup", firstName="A"))
    assert response.status_code == 422
    [problem] = response.json()["error"]["errors"]
    assert problem["path"] == "$.flows[1].flowInvocationId" and "$.flows[0]" in problem["message"]


async def test_concurrent_duplicates_store_one_invocation(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    responses = await asyncio.gather(
        *(post(client, flow, entry("u1", "u2", key="burst", firstName="Ann")) for _ in range(30))
    )
    assert {response.status_code for response in responses} == {202}
    assert len({response.content for response in responses}) == 1
    assert [response.headers.get("idempotent-replayed") for response in responses].count(None) == 1
    assert [invocation["key"] for invocation in stored(flowhook, flow["id"])] == ["burst"]


async def test_concurrent_conflicting_requests_let_exactly_one_through(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    responses = await asyncio.gather(
        *(post(client, flow, entry("u1", key="race", firstName=f"n{i}")) for i in range(20))
    )
    assert sorted(response.status_code for response in responses) == [202] + [409] * 19
    assert len(stored(flowhook, flow["id"])) == 1


async def test_the_openapi_document_describes_the_api_trigger_endpoints(flowhook) -> None:
    document = (await flowhook.sender().get("/openapi.json")).json()
    paths = document["paths"]
    token = paths["/oauth/token"]["post"]
    assert token["security"] == [] and "application/x-www-form-urlencoded" in token["requestBody"]["content"]
    for path in ("/v1/{env}/action-flow/{flowId}/start", "/v1/{env}/action-flow/{flowId}/test"):
        assert paths[path]["post"]["security"] == [{"oauth2": ["events"]}]
        assert paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ActionFlowStart"
        }
    assert set(paths["/v1/{env}/credentials"]) >= {"get", "post"}
    assert set(paths["/v1/{env}/credentials/{clientId}"]) >= {"get", "delete"}
    oauth2 = document["components"]["securitySchemes"]["oauth2"]
    client_credentials = oauth2["flows"]["clientCredentials"]
    assert client_credentials["tokenUrl"] == "/oauth/token" and list(client_credentials["scopes"]) == ["events"]
    text = orjson.dumps(document).decode()
    for name in set(re.findall(r'"#/components/schemas/([A-Za-z]+)"', text)):
        assert name in document["components"]["schemas"], name
