"""The management API: admin token, flows, triggers, errors, OpenAPI."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.anyio


async def test_the_admin_token_is_required(flowhook) -> None:
    anonymous = flowhook.sender()
    token = flowhook.admin_token
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {token}"}):
        response = await anonymous.get("/v1/default/action-flows", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
    authorized = await anonymous.get("/v1/default/action-flows", headers={"authorization": f"Bearer {token}"})
    assert authorized.status_code == 200


async def test_unknown_environment_is_404(flowhook) -> None:
    response = await flowhook.api.get("/v1/staging/action-flows")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "environment_not_found", "message": "no environment 'staging'"}}


async def test_flow_draft_and_versions(flowhook) -> None:
    flow = await flowhook.flow(variables=[{"name": "plan", "type": "string", "default": "free"}], steps=[])
    assert (flow["name"], flow["draftRevision"], flow["publishedVersion"]) == ("Welcome", 1, None)
    url = f"/v1/default/action-flows/{flow['id']}"
    edited = await flowhook.api.put(url, json={"name": "Welcome v2", "variables": []})
    assert edited.status_code == 200 and edited.json()["draftRevision"] == 2
    published = await flowhook.api.post(f"{url}/publish")
    assert published.json()["publishedVersion"] == 1
    assert (await flowhook.api.get(url)).json()["name"] == "Welcome v2"
    listed = (await flowhook.api.get("/v1/default/action-flows")).json()["data"]
    assert flow["id"] in [item["id"] for item in listed]
    assert (await flowhook.api.get("/v1/default/action-flows/flw_missing")).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "code", "path"),
    [
        ({}, 422, "invalid_flow", "$.name"),
        ({"name": "x", "variables": [{"name": "a", "type": "date"}]}, 422, "invalid_flow", "$.variables[0].type"),
        ({"name": "x", "colour": "red"}, 422, "invalid_flow", "$.colour"),
    ],
)
async def test_bad_flows_are_refused_with_a_path(flowhook, body, status, code, path) -> None:
    response = await flowhook.api.post("/v1/default/action-flows", json=body)
    assert response.status_code == status
    assert (response.json()["error"]["code"], response.json()["error"]["path"]) == (code, path)


async def test_bodies_must_be_json_objects(flowhook) -> None:
    broken = await flowhook.api.post("/v1/default/action-flows", content=b"{nope")
    listed = await flowhook.api.post("/v1/default/action-flows", json=[1])
    assert (broken.status_code, listed.status_code) == (400, 400)
    assert broken.json()["error"]["code"] == "invalid_json"


async def test_trigger_lifecycle(flowhook) -> None:
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow)
    assert trigger["mode"] == "test"  # new triggers start in test mode
    assert trigger["mapping"] == {"kind": "passthrough"}
    assert trigger["url"] == f"http://flowhook.test/hooks/{trigger['hookId']}"
    assert len(trigger["hookId"]) >= 32
    url = f"/v1/default/triggers/{trigger['id']}"
    patched = await flowhook.api.patch(url, json={"mode": "disabled", "allowedIps": ["192.0.2.0/24"]})
    assert (patched.json()["mode"], patched.json()["allowedIps"]) == ("disabled", ["192.0.2.0/24"])
    listed = (await flowhook.api.get(f"/v1/default/action-flows/{flow['id']}/triggers")).json()["data"]
    assert [item["id"] for item in listed] == [f"api_{flow['id']}", trigger["id"]]  # the API trigger leads
    assert (await flowhook.api.delete(url)).status_code == 204
    assert (await flowhook.api.get(url)).status_code == 404
    assert (await flowhook.post(trigger)).status_code == 404  # the URL is dead at once
    assert (await flowhook.api.delete(url)).status_code == 404


async def test_a_mapping_that_does_not_compile_is_refused_with_its_location(flowhook) -> None:
    flow = await flowhook.flow()
    url = f"/v1/default/action-flows/{flow['id']}/triggers"
    syntax = await flowhook.api.post(
        url, json={"mapping": {"kind": "javascript", "source": "function map(r) {\n  return {;\n}"}}
    )
    assert syntax.status_code == 422
    error = syntax.json()["error"]
    assert (error["code"], error["line"]) == ("invalid_mapping", 2)
    assert "column" in error
    no_map = await flowhook.api.post(url, json={"mapping": {"kind": "javascript", "source": "const x = 1;"}})
    assert no_map.status_code == 422 and no_map.json()["error"]["code"] == "invalid_mapping"
    jmes = await flowhook.api.post(url, json={"mapping": {"kind": "jmespath", "fields": {"targetUserIds": "body.["}}})
    assert jmes.status_code == 422 and jmes.json()["error"]["path"].startswith("$.fields")
    kind = await flowhook.api.post(url, json={"mapping": {"kind": "xslt"}})
    assert kind.status_code == 422
    trigger = await flowhook.trigger(flow)
    patched = await flowhook.api.patch(
        f"/v1/default/triggers/{trigger['id']}", json={"mapping": {"kind": "javascript", "source": "map("}}
    )
    assert patched.status_code == 422
    assert (await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}")).json()["mapping"] == {
        "kind": "passthrough"
    }


async def test_trigger_input_is_checked(flowhook) -> None:
    flow = await flowhook.flow()
    url = f"/v1/default/action-flows/{flow['id']}/triggers"
    for body, code, path in [
        ({"type": "manual"}, "invalid_field", "$.type"),
        ({"type": ["webhook"]}, "invalid_field", "$.type"),  # any JSON: a list or an object is no kind either
        ({"type": {"kind": "webhook"}}, "invalid_field", "$.type"),
        ({"mode": "on"}, "invalid_field", "$.mode"),
        ({"hookId": "mine"}, "unknown_field", "$.hookId"),
    ]:
        response = await flowhook.api.post(url, json=body)
        assert response.status_code == 422
        assert (response.json()["error"]["code"], response.json()["error"]["path"]) == (code, path)
    missing = await flowhook.api.post("/v1/default/action-flows/flw_missing/triggers", json={})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "flow_not_found"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"type": "manual"},
            "type must be webhook, event, segment, sfmc or marketo (the API trigger comes with the flow; other "
            "trigger types have their own APIs)",
        ),
        ({"type": "event"}, "an event trigger needs eventName, the event it listens for"),
        ({"type": "segment"}, "a segment trigger needs segmentId, the segment"),
        ({"type": "sfmc"}, "an sfmc trigger needs signingSecret, the installed package's JWT signing secret"),
        ({"type": "marketo", "eventName": "e"}, "eventName is a setting of event triggers; this is a marketo trigger"),
        (
            {"type": "sfmc", "signingSecret": "s" * 16, "allowedIps": []},
            "allowedIps is a setting of webhook triggers; this is an sfmc trigger",  # was "a sfmc" before
        ),
    ],
)
async def test_a_trigger_kind_says_what_it_takes(flowhook, body, message) -> None:
    flow = await flowhook.flow()
    response = await flowhook.api.post(f"/v1/default/action-flows/{flow['id']}/triggers", json=body)
    assert response.status_code == 422 and response.json()["error"]["message"] == message


async def test_openapi_describes_every_route(flowhook) -> None:
    document = (await flowhook.sender().get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    for path, method in [
        ("/hooks/{hookId}", "post"),
        ("/hooks/{hookId}", "put"),
        ("/v1/{env}/action-flows", "post"),
        ("/v1/{env}/action-flows/{flowId}", "put"),
        ("/v1/{env}/action-flows/{flowId}/publish", "post"),
        ("/v1/{env}/action-flows/{flowId}/triggers", "post"),
        ("/v1/{env}/triggers/{triggerId}", "patch"),
        ("/v1/{env}/triggers/{triggerId}", "delete"),
        ("/v1/{env}/triggers/{triggerId}/capture", "post"),
        ("/v1/{env}/triggers/{triggerId}/samples", "post"),
        ("/v1/{env}/mappings/preview", "post"),
        ("/v1/{env}/triggers/{triggerId}/requests", "get"),
        ("/v1/{env}/requests/{requestId}", "get"),
        ("/v1/{env}/requests/{requestId}/replay", "post"),
    ]:
        assert method in paths[path], (path, method)
    routes = {route.path for route in flowhook.app.routes}
    mounted = next(route for route in flowhook.app.routes if route.path == "/v1/{env}")
    described = {path.removeprefix("/v1/{env}") for path in paths}
    for route in mounted.routes:
        assert (
            route.path.replace(":path}", "}")  # a user id or invocation key may hold a slash
            .replace("flow_id", "flowId")
            .replace("trigger_id", "triggerId")
            .replace("request_id", "requestId")
            in described
        ), route.path
    assert "/hooks/{hook_id}" in routes


def _references(node: object) -> list[str]:
    if isinstance(node, dict):
        return [ref for key, value in node.items() for ref in ([value] if key == "$ref" else _references(value))]
    if isinstance(node, list):
        return [ref for item in node for ref in _references(item)]
    return []


async def test_every_openapi_reference_resolves_within_the_document(flowhook) -> None:
    """Tools that ignore an embedded schema's `$id` must still find `$defs` (flows, verification, API starts)."""
    document = (await flowhook.sender().get("/openapi.json")).json()
    references = set(_references(document))
    assert "#/components/schemas/FlowInput/$defs/step" in references
    for reference in references:
        node = document
        for part in reference.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, reference
            node = node[part]
    assert '"$id"' not in str(document).replace("'", '"')


async def test_the_openapi_document_is_valid_openapi_3_1(flowhook) -> None:
    """What Postman, Insomnia and client generators import must pass the specification's own schema."""
    document = (await flowhook.sender().get("/openapi.json")).json()
    validate(document)


#: The service's probes, which answer without the store (`/metrics` leaves the store's figures out).
PROBES = ("/healthz", "/openapi.json", "/readyz", "/metrics")


async def test_every_operation_on_the_store_documents_its_outage_and_its_bugs(flowhook) -> None:
    """A client generated from the document must expect a 503 to retry after `Retry-After` (the store down) and a
    500 (a bug of flowhook's) from any call that reads or writes the store."""
    document = (await flowhook.sender().get("/openapi.json")).json()
    shared = document["components"]["responses"]
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method == "parameters" or path in PROBES:
                continue
            answers = op["responses"]
            assert "500" in answers, (path, method)
            unavailable = answers["503"]
            unavailable = shared[unavailable["$ref"].rsplit("/", 1)[1]] if "$ref" in unavailable else unavailable
            assert "unavailable" in unavailable["description"], (path, method)  # OAuth's: temporarily_unavailable
            assert "Retry-After" in unavailable["headers"], (path, method)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/default/action-flows", "GET, HEAD, POST"),  # one route per method on this path
        ("POST", "/v1/default/triggers/trg_x", "DELETE, GET, HEAD, PATCH"),
        ("GET", "/hooks/some-hook", "POST, PUT"),
        ("PATCH", "/v1/environments", "GET, HEAD, POST"),
    ],
)
async def test_a_405_lists_every_method_of_the_path(flowhook, method, path, allowed) -> None:
    response = await flowhook.api.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_an_oversized_json_body_is_a_413(flowhook) -> None:
    """Refused from its Content-Length, and while streaming when it sends none (chunked)."""
    oversized = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    declared = await flowhook.api.post("/v1/default/action-flows", content=oversized)
    assert (declared.status_code, declared.json()["error"]["code"]) == (413, "body_too_large")

    async def chunks():
        for start in range(0, len(oversized), 65536):
            yield oversized[start : start + 65536]

    streamed = await flowhook.api.post("/v1/default/action-flows", content=chunks())
    assert (streamed.status_code, streamed.json()["error"]["code"]) == (413, "body_too_large")
    assert declared.headers["connection"] == streamed.headers["connection"] == "close"  # the rest is never read


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "/v1/default/triggers/trg_missing", "trigger_not_found"),
        ("DELETE", "/v1/default/triggers/trg_missing", "trigger_not_found"),
        ("GET", "/v1/default/triggers/trg_missing/samples", "trigger_not_found"),
        ("GET", "/v1/default/requests/req_missing", "request_not_found"),
        ("GET", "/v1/default/cards/crd_missing", "card_not_found"),
        ("GET", "/v1/environments/missing", "environment_not_found"),
        ("GET", "/v1/default/credentials/fh_ci_missing", "credential_not_found"),
        ("DELETE", "/v1/default/credentials/fh_ci_missing", "credential_not_found"),
        ("DELETE", "/v1/default/test-users/nobody", "test_user_not_found"),
        ("DELETE", "/v1/default/card-templates/ctp_missing", "card_template_not_found"),
        ("GET", "/v1/default/action-flows/flw_missing/invocations/key", "invocation_not_found"),
    ],
)
async def test_what_does_not_exist_is_a_404_naming_its_kind(flowhook, method, path, code) -> None:
    response = await flowhook.api.request(method, path)
    assert (response.status_code, response.json()["error"]["code"]) == (404, code)


async def test_a_credential_of_another_environment_is_not_found(flowhook) -> None:
    created = await flowhook.api.post("/v1/environments", json={"id": "elsewhere"})
    assert created.status_code == 201, created.text
    credential = await flowhook.credential(env="elsewhere")
    response = await flowhook.api.get(f"/v1/default/credentials/{credential['clientId']}")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "credential_not_found")
    assert (await flowhook.api.get(f"/v1/elsewhere/credentials/{credential['clientId']}")).status_code == 200
