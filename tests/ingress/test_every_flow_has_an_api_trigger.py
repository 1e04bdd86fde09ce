"""Every flow has an API trigger, which cannot be removed (SPEC §5): listed first, read, refused everywhere else.

Each answer is also held to the OpenAPI document: its body must match the
schema the document gives for that path, method and status. The module runs
on SQLite, and on PostgreSQL too when FLOWHOOK_TEST_POSTGRES names a server.
"""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest
import sqlalchemy as sa
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from store.tables import flows

pytestmark = pytest.mark.anyio
JSON = "application/json"


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return either_database


@pytest.fixture(scope="module")
async def openapi(flowhook) -> dict[str, Any]:
    document: dict[str, Any] = (await flowhook.sender().get("/openapi.json")).json()
    return document


def described(document: dict[str, Any], path: str, method: str, response: httpx.Response) -> None:
    """`response` is one the document lists for `path` and `method`, and its body matches that answer's schema."""
    location = ["paths", path, method, "responses", str(response.status_code)]
    answer = document["paths"][path][method]["responses"].get(str(response.status_code))
    assert answer is not None, (path, method, response.status_code)
    if "$ref" in answer:
        location = answer["$ref"].removeprefix("#/").split("/")
        answer = document["components"]["responses"][location[-1]]
    if "content" not in answer:
        assert response.content == b""
        return
    pointer = "/".join(part.replace("~", "~0").replace("/", "~1") for part in [*location, "content", JSON, "schema"])
    registry: Registry = Registry().with_resource(
        "urn:flowhook:openapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    schema = {"$ref": f"urn:flowhook:openapi#/{pointer}"}
    jsonschema.Draft202012Validator(schema, registry=registry).validate(response.json())


async def api_trigger_of(flowhook, flow: dict[str, Any]) -> dict[str, Any]:
    listed = await flowhook.api.get(f"/v1/{flow['environmentId']}/action-flows/{flow['id']}/triggers")
    assert listed.status_code == 200, listed.text
    first: dict[str, Any] = listed.json()["data"][0]
    return first


def refused(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def test_the_listing_shows_the_api_trigger_first(flowhook, openapi) -> None:
    flow = await flowhook.flow()
    alone = await flowhook.api.get(f"/v1/default/action-flows/{flow['id']}/triggers")
    described(openapi, "/v1/{env}/action-flows/{flowId}/triggers", "get", alone)
    flow_url = f"http://flowhook.test/v1/default/action-flow/{flow['id']}"
    assert alone.json()["data"] == [
        {
            "id": f"api_{flow['id']}",
            "environmentId": "default",
            "flowId": flow["id"],
            "type": "api",
            "startUrl": f"{flow_url}/start",
            "testUrl": f"{flow_url}/test",
            "tokenUrl": "http://flowhook.test/oauth/token",
            "createdAt": flow["createdAt"],
        }
    ]
    first = await flowhook.trigger(flow)
    second = await flowhook.trigger(flow)
    listed = await flowhook.api.get(f"/v1/default/action-flows/{flow['id']}/triggers")
    described(openapi, "/v1/{env}/action-flows/{flowId}/triggers", "get", listed)
    assert [(item["id"], item["type"]) for item in listed.json()["data"]] == [
        (f"api_{flow['id']}", "api"),
        (first["id"], "webhook"),
        (second["id"], "webhook"),
    ]


async def test_an_unknown_flow_has_no_triggers_to_list(flowhook) -> None:
    response = await flowhook.api.get("/v1/default/action-flows/flw_missing/triggers")
    assert refused(response) == (404, "flow_not_found")


async def test_the_api_trigger_is_read_like_any_trigger_and_its_urls_start_the_flow(flowhook, openapi) -> None:
    flow = await flowhook.flow()
    api_trigger = await api_trigger_of(flowhook, flow)
    read = await flowhook.api.get(f"/v1/default/triggers/{api_trigger['id']}")
    described(openapi, "/v1/{env}/triggers/{triggerId}", "get", read)
    assert read.json() == api_trigger
    client = await flowhook.api_client()
    body = {"flows": [{"target": {"usersById": ["u1"]}, "flowInvocationId": "via-test-url"}]}
    started = await client.post(api_trigger["testUrl"], json=body)
    assert started.status_code == 202, started.text
    assert started.json()["flows"][0]["flowInvocationId"] == "via-test-url"
    unpublished = await client.post(api_trigger["startUrl"], json=body)
    assert refused(unpublished) == (409, "flow_not_published")  # /start is the live URL: it needs a published flow


async def test_the_api_trigger_cannot_be_deleted(flowhook, openapi) -> None:
    flow = await flowhook.flow()
    api_trigger = await api_trigger_of(flowhook, flow)
    url = f"/v1/default/triggers/{api_trigger['id']}"
    response = await flowhook.api.delete(url)
    described(openapi, "/v1/{env}/triggers/{triggerId}", "delete", response)
    assert refused(response) == (409, "api_trigger_required")
    assert "cannot be removed" in response.json()["error"]["message"]
    assert (await flowhook.api.get(url)).json() == api_trigger
    assert await api_trigger_of(flowhook, flow) == api_trigger


@pytest.mark.parametrize("body", [{"mode": "live"}, {"mapping": {"kind": "passthrough"}}, {}, {"type": "webhook"}])
async def test_nothing_about_the_api_trigger_can_be_changed(flowhook, openapi, body) -> None:
    flow = await flowhook.flow()
    api_trigger = await api_trigger_of(flowhook, flow)
    url = f"/v1/default/triggers/{api_trigger['id']}"
    response = await flowhook.api.patch(url, json=body)
    described(openapi, "/v1/{env}/triggers/{triggerId}", "patch", response)
    assert refused(response) == (409, "api_trigger_not_editable")
    assert (await flowhook.api.get(url)).json() == api_trigger


async def test_an_api_trigger_cannot_be_created(flowhook, openapi) -> None:
    flow = await flowhook.flow()
    url = f"/v1/default/action-flows/{flow['id']}/triggers"
    response = await flowhook.api.post(url, json={"type": "api"})
    described(openapi, "/v1/{env}/action-flows/{flowId}/triggers", "post", response)
    assert refused(response) == (409, "api_trigger_exists")
    assert f"api_{flow['id']}" in response.json()["error"]["message"]
    assert [item["type"] for item in (await flowhook.api.get(url)).json()["data"]] == ["api"]
    missing = await flowhook.api.post("/v1/default/action-flows/flw_missing/triggers", json={"type": "api"})
    assert refused(missing) == (404, "flow_not_found")
    created = await flowhook.api.post(url, json={"type": "webhook"})
    described(openapi, "/v1/{env}/action-flows/{flowId}/triggers", "post", created)
    assert created.status_code == 201


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("post", "/capture", None),
        ("delete", "/capture", None),
        ("post", "/samples", {"body": {"user": "u1"}}),
    ],
)
async def test_what_needs_a_hook_is_refused(flowhook, openapi, method, suffix, body) -> None:
    flow = await flowhook.flow()
    api_trigger = await api_trigger_of(flowhook, flow)
    response = await flowhook.api.request(
        method.upper(), f"/v1/default/triggers/{api_trigger['id']}{suffix}", json=body
    )
    described(openapi, f"/v1/{{env}}/triggers/{{triggerId}}{suffix}", method, response)
    assert refused(response) == (409, "not_a_webhook_trigger")
    assert "no hook" in response.json()["error"]["message"]


async def test_the_api_trigger_has_no_samples_and_no_logged_requests(flowhook, openapi) -> None:
    flow = await flowhook.flow()
    api_trigger = await api_trigger_of(flowhook, flow)
    client = await flowhook.api_client()
    started = await client.post(api_trigger["testUrl"], json={"flows": [{"target": {"usersById": ["u1"]}}]})
    assert started.status_code == 202, started.text
    samples = await flowhook.api.get(f"/v1/default/triggers/{api_trigger['id']}/samples")
    described(openapi, "/v1/{env}/triggers/{triggerId}/samples", "get", samples)
    assert samples.json() == {"data": []}
    logged = await flowhook.api.get(f"/v1/default/triggers/{api_trigger['id']}/requests")
    described(openapi, "/v1/{env}/triggers/{triggerId}/requests", "get", logged)
    assert logged.json() == {"data": [], "nextCursor": None}
    filtered = await flowhook.api.get("/v1/default/requests", params={"triggerId": api_trigger["id"]})
    assert filtered.json() == {"data": [], "nextCursor": None}


@pytest.mark.parametrize("trigger_id", ["api_flw_missing", "api_", "api_api_flw_missing", "flw_missing"])
@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/capture"), ("GET", "/samples")]
)
async def test_the_api_trigger_of_an_unknown_flow_is_not_found(flowhook, trigger_id, method, suffix) -> None:
    response = await flowhook.api.request(method, f"/v1/default/triggers/{trigger_id}{suffix}", json={})
    assert refused(response) == (404, "trigger_not_found")


async def test_a_webhook_trigger_id_with_the_api_prefix_is_not_a_trigger(flowhook) -> None:
    webhook = await flowhook.trigger()
    response = await flowhook.api.get(f"/v1/default/triggers/api_{webhook['id']}")
    assert refused(response) == (404, "trigger_not_found")


async def test_a_removed_flow_takes_its_api_trigger_with_it(flowhook) -> None:
    """Flows have no DELETE in the API; the API trigger follows the flow's row, whatever removes it."""
    flow = await flowhook.flow()
    api_trigger = await api_trigger_of(flowhook, flow)
    await flowhook.services.store.write(lambda conn: conn.execute(sa.delete(flows).where(flows.c.id == flow["id"])))
    for method in ("GET", "DELETE"):
        response = await flowhook.api.request(method, f"/v1/default/triggers/{api_trigger['id']}")
        assert refused(response) == (404, "trigger_not_found")


async def test_environments_do_not_share_api_triggers(flowhook) -> None:
    created = await flowhook.api.post("/v1/environments", json={"id": "api-triggers"})
    assert created.status_code == 201, created.text
    flow = await flowhook.flow(env="api-triggers")
    api_trigger = await api_trigger_of(flowhook, flow)
    assert api_trigger["environmentId"] == "api-triggers"
    assert api_trigger["startUrl"] == f"http://flowhook.test/v1/api-triggers/action-flow/{flow['id']}/start"
    assert (await flowhook.api.get(f"/v1/api-triggers/triggers/{api_trigger['id']}")).status_code == 200
    for method in ("GET", "DELETE", "PATCH"):
        response = await flowhook.api.request(method, f"/v1/default/triggers/{api_trigger['id']}", json={})
        assert refused(response) == (404, "trigger_not_found")


async def test_the_openapi_document_describes_both_kinds_of_trigger(openapi) -> None:
    schemas = openapi["components"]["schemas"]
    assert schemas["Trigger"]["discriminator"]["propertyName"] == "type"
    kinds = {
        schemas[item["$ref"].rsplit("/", 1)[1]]["properties"]["type"]["const"] for item in schemas["Trigger"]["oneOf"]
    }
    assert kinds == {"api", "webhook", "event", "segment", "sfmc", "marketo"}
    assert "mode" not in schemas["ApiTrigger"]["properties"]
    paths = openapi["paths"]
    for path, method, code in [
        ("/v1/{env}/action-flows/{flowId}/triggers", "post", "api_trigger_exists"),
        ("/v1/{env}/triggers/{triggerId}", "patch", "api_trigger_not_editable"),
        ("/v1/{env}/triggers/{triggerId}", "delete", "api_trigger_required"),
        ("/v1/{env}/triggers/{triggerId}/capture", "post", "not_a_webhook_trigger"),
        ("/v1/{env}/triggers/{triggerId}/samples", "post", "not_a_webhook_trigger"),
    ]:
        assert paths[path][method]["responses"]["409"]["description"].startswith(code), (path, method)
