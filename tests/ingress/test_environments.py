"""The Environments API, and a new environment working like `default`: flows, webhooks, credentials, test users."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytestmark = pytest.mark.anyio

ID_RULE = "id must be 1-63 lower-case letters, digits and hyphens, not starting with a hyphen, and not 'environments'"


async def create(flowhook, **body: Any) -> dict[str, Any]:
    response = await flowhook.api.post("/v1/environments", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_create_list_and_read(flowhook) -> None:
    created = await create(flowhook, id="qa", name="Quality")
    assert set(created) == {"id", "name", "createdAt"} and created["createdAt"].endswith("Z")
    assert (created["id"], created["name"]) == ("qa", "Quality")
    assert (await create(flowhook, id="qa-2"))["name"] == "qa-2"  # the name defaults to the id
    listed = (await flowhook.api.get("/v1/environments")).json()["data"]
    ids = [environment["id"] for environment in listed]
    assert ids[0] == "default" and ids.index("qa") < ids.index("qa-2")  # oldest first
    assert created in listed
    assert (await flowhook.api.get("/v1/environments/qa")).json() == created
    missing = await flowhook.api.get("/v1/environments/nowhere")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "environment_not_found", "message": "no environment 'nowhere'"}}


async def test_ids_and_names_at_their_limits_are_accepted(flowhook) -> None:
    longest = "0" + "-" * 61 + "z"
    assert (await create(flowhook, id=longest, name="n" * 200))["id"] == longest
    assert (await flowhook.api.get(f"/v1/{longest}/action-flows")).status_code == 200


@pytest.mark.parametrize(
    ("body", "code", "path"),
    [
        ({}, "invalid_field", "$.id"),
        ({"id": None}, "invalid_field", "$.id"),
        ({"id": 7}, "invalid_field", "$.id"),
        ({"id": ""}, "invalid_field", "$.id"),
        ({"id": "Staging"}, "invalid_field", "$.id"),
        ({"id": "-staging"}, "invalid_field", "$.id"),
        ({"id": "stag ing"}, "invalid_field", "$.id"),
        ({"id": "stag_ing"}, "invalid_field", "$.id"),
        ({"id": "staging\n"}, "invalid_field", "$.id"),
        ({"id": "a" * 64}, "invalid_field", "$.id"),
        ({"id": "environments"}, "invalid_field", "$.id"),
        ({"id": "refused", "name": ""}, "invalid_field", "$.name"),
        ({"id": "refused", "name": "   "}, "invalid_field", "$.name"),
        ({"id": "refused", "name": "n" * 201}, "invalid_field", "$.name"),
        ({"id": "refused", "name": 3}, "invalid_field", "$.name"),
        ({"id": "refused", "settings": {}}, "unknown_field", "$.settings"),
    ],
)
async def test_bad_input_is_refused_with_a_path(flowhook, body, code, path) -> None:
    response = await flowhook.api.post("/v1/environments", json=body)
    assert response.status_code == 422, response.text
    assert (response.json()["error"]["code"], response.json()["error"]["path"]) == (code, path)
    if path == "$.id" and code == "invalid_field" and "id" in body:
        assert response.json()["error"]["message"] == ID_RULE
    assert (await flowhook.api.get("/v1/environments/refused")).status_code == 404


async def test_bodies_must_be_json_objects(flowhook) -> None:
    for content in (b"{nope", b"[]"):
        response = await flowhook.api.post("/v1/environments", content=content)
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"


async def test_an_existing_id_is_a_conflict(flowhook) -> None:
    await create(flowhook, id="twice", name="First")
    for environment_id in ("twice", "default"):
        response = await flowhook.api.post("/v1/environments", json={"id": environment_id, "name": "Second"})
        assert response.status_code == 409
        assert response.json()["error"] == {
            "code": "environment_exists",
            "message": f"environment {environment_id!r} exists already",
            "path": "$.id",
        }
    assert (await flowhook.api.get("/v1/environments/twice")).json()["name"] == "First"


async def test_concurrent_creations_of_one_id_make_one_environment(flowhook) -> None:
    responses = await asyncio.gather(
        *(flowhook.api.post("/v1/environments", json={"id": "race", "name": f"n{i}"}) for i in range(10))
    )
    assert sorted(response.status_code for response in responses) == [201] + [409] * 9
    listed = (await flowhook.api.get("/v1/environments")).json()["data"]
    assert [environment["id"] for environment in listed].count("race") == 1


async def test_the_admin_token_is_required(flowhook) -> None:
    anonymous = flowhook.sender()
    access_token = await flowhook.api_client()  # an API credential's token is not the admin token either
    for client, headers in ((anonymous, {}), (anonymous, {"authorization": "Bearer wrong"}), (access_token, {})):
        for method, path in (
            ("POST", "/v1/environments"),
            ("GET", "/v1/environments"),
            ("GET", "/v1/environments/default"),
        ):
            response = await client.request(method, path, json={"id": "sneaky"}, headers=headers)
            assert response.status_code == 401, (method, path)
            assert response.json()["error"]["code"] == "unauthorized"
    assert (await flowhook.api.get("/v1/environments/sneaky")).status_code == 404


async def test_environments_cannot_be_deleted(flowhook) -> None:
    for path in ("/v1/environments", "/v1/environments/default"):
        response = await flowhook.api.delete(path)
        assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
    assert (await flowhook.api.get("/v1/environments/default")).status_code == 200


@pytest.fixture(scope="module")
async def staging(flowhook) -> dict[str, Any]:
    return await create(flowhook, id="staging", name="Staging")


async def test_a_webhook_in_a_new_environment_is_logged_there_only(flowhook, staging) -> None:
    flow = await flowhook.flow(env="staging", variables=[], steps=[])
    trigger = await flowhook.trigger(flow, type="webhook")
    assert (flow["environmentId"], trigger["environmentId"]) == ("staging", "staging")
    assert trigger["url"] == f"http://flowhook.test/hooks/{trigger['hookId']}"
    response = await flowhook.post(trigger, b'{"targetUserIds": ["u1"], "flowInvocationId": "staging-hook"}')
    assert response.status_code == 202, response.text
    assert response.json()["mode"] == "test"
    request_id = response.json()["requestId"]

    staging_log = (await flowhook.api.get("/v1/staging/requests")).json()["data"]
    default_log = (await flowhook.api.get("/v1/default/requests")).json()["data"]
    assert request_id in [entry["id"] for entry in staging_log]
    assert request_id not in [entry["id"] for entry in default_log]
    assert (await flowhook.api.get(f"/v1/staging/requests/{request_id}")).json()["cause"] == "accepted"
    assert (await flowhook.api.get(f"/v1/default/requests/{request_id}")).status_code == 404
    assert (await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}")).status_code == 404
    await flowhook.expanded(flow, "staging-hook")  # the executor serves every environment


async def test_credentials_test_users_and_settings_belong_to_the_new_environment(flowhook, staging) -> None:
    flow = await flowhook.flow(env="staging", variables=[], steps=[])
    default_flow = await flowhook.flow(variables=[], steps=[])
    added = await flowhook.api.post("/v1/staging/test-users", json={"userId": "tester"})
    assert added.status_code == 201, added.text
    default_test_users = (await flowhook.api.get("/v1/default/test-users")).json()["data"]
    assert "tester" not in [user["userId"] for user in default_test_users]

    staging_client = await flowhook.api_client(env="staging")
    body = {"flows": [{"target": {"usersById": ["tester", "customer"]}, "flowInvocationId": "staging-api"}]}
    started = await staging_client.post(f"/v1/staging/action-flow/{flow['id']}/test", json=body)
    assert started.status_code == 202, started.text
    [entry] = started.json()["flows"]
    assert (entry["targetedUserIds"], entry["ignoredUserIds"]) == (["tester"], ["customer"])
    await flowhook.expanded(flow, "staging-api")

    default_client = await flowhook.api_client()
    for client, env, target in ((staging_client, "default", default_flow), (default_client, "staging", flow)):
        refused = await client.post(f"/v1/{env}/action-flow/{target['id']}/test", json=body)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "environment_mismatch"

    assert (await flowhook.api.get("/v1/staging/settings")).json() == {"testAnalytics": "include"}
    patched = await flowhook.api.patch("/v1/staging/settings", json={"testAnalytics": "exclude"})
    assert patched.json() == {"testAnalytics": "exclude"}
    assert (await flowhook.api.get("/v1/default/settings")).json() == {"testAnalytics": "include"}


async def test_the_openapi_document_describes_the_environments_api(flowhook) -> None:
    document = (await flowhook.sender().get("/openapi.json")).json()
    paths = document["paths"]
    create_op = paths["/v1/environments"]["post"]
    assert create_op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EnvironmentInput"
    }
    assert set(create_op["responses"]) >= {"201", "401", "409", "422"}
    assert set(paths["/v1/environments"]) == {"get", "post"} and set(paths["/v1/environments/{envId}"]) >= {"get"}
    assert "delete" not in paths["/v1/environments/{envId}"]
    schemas = document["components"]["schemas"]
    assert schemas["Environment"]["required"] == ["id", "name", "createdAt"]
    assert schemas["EnvironmentInput"]["properties"]["id"]["pattern"] == "^[a-z0-9][a-z0-9-]{0,62}$"
