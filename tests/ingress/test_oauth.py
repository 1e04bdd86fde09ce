"""POST /oauth/token: the client credentials grant, driven by authlib and by hand (RFC 6749 error bodies)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.base_client import OAuthError

from ingress.app import create_app
from ingress.settings import Settings

pytestmark = pytest.mark.anyio

TOKEN_URL = "/oauth/token"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def basic_for(credential: dict[str, Any]) -> dict[str, str]:
    return basic(credential["clientId"], credential["clientSecret"])


async def start(client: httpx.AsyncClient, flow: dict[str, Any], env: str = "default", **headers: str) -> Any:
    body = {"flows": [{"target": {"usersById": ["u1"]}}]}
    return await client.post(f"/v1/{env}/action-flow/{flow['id']}/start", json=body, headers=headers)


async def test_authlib_with_basic_auth_gets_a_token_that_starts_a_flow(flowhook) -> None:
    flow = await flowhook.flow(publish=True)
    client = flowhook.oauth_client(await flowhook.credential())
    token = await client.fetch_token()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600 and token["scope"] == "events"
    assert token["access_token"].startswith("fh_at_")
    response = await start(client, flow)
    assert response.status_code == 202, response.text


async def test_authlib_with_form_fields_gets_a_token(flowhook) -> None:
    flow = await flowhook.flow(publish=True)
    client = flowhook.oauth_client(await flowhook.credential(), auth_method="client_secret_post")
    await client.fetch_token()
    assert (await start(client, flow)).status_code == 202


async def test_the_token_answer_is_not_cached_and_has_the_documented_shape(flowhook) -> None:
    credential = await flowhook.credential()
    form = {
        "grant_type": "client_credentials",
        "client_id": credential["clientId"],
        "client_secret": credential["clientSecret"],
    }
    response = await flowhook.sender().post(TOKEN_URL, data=form)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store" and response.headers["pragma"] == "no-cache"
    assert set(response.json()) == {"access_token", "token_type", "expires_in", "scope"}


async def test_a_wrong_secret_is_invalid_client(flowhook) -> None:
    credential = await flowhook.credential()
    client = flowhook.oauth_client({**credential, "clientSecret": credential["clientSecret"] + "x"})
    with pytest.raises(OAuthError) as raised:
        await client.fetch_token()
    assert raised.value.error == "invalid_client"
    response = await flowhook.sender().post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, headers=basic(credential["clientId"], "wrong")
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="flowhook"'
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"error": "invalid_client", "error_description": "client authentication failed"}


async def test_an_unknown_client_gets_the_same_answer_as_a_wrong_secret(flowhook) -> None:
    unknown = await flowhook.sender().post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, headers=basic("fh_ci_nobody", "secret")
    )
    assert unknown.status_code == 401
    assert unknown.json() == {"error": "invalid_client", "error_description": "client authentication failed"}


@pytest.mark.parametrize(
    ("form", "headers", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, {}, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "{id}"}, {}, 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, {"authorization": "Bearer abc"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, {"authorization": "Basic !!!"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_secret": "{secret}"}, "basic", 400, "invalid_request"),
        ({"grant_type": "client_credentials", "client_id": "other"}, "basic", 400, "invalid_request"),
        ({}, "basic", 400, "invalid_request"),
        ({"grant_type": "password", "username": "a", "password": "b"}, "basic", 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "scope": "admin"}, "basic", 400, "invalid_scope"),
        ({"grant_type": "client_credentials", "scope": "events admin"}, "basic", 400, "invalid_scope"),
    ],
)
async def test_rfc_6749_errors(flowhook, form: dict[str, str], headers: Any, status: int, error: str) -> None:
    credential = await flowhook.credential()
    values = {"id": credential["clientId"], "secret": credential["clientSecret"]}
    fields = {key: value.format(**values) for key, value in form.items()}
    sent = basic_for(credential) if headers == "basic" else headers
    response = await flowhook.sender().post(TOKEN_URL, data=fields, headers=sent)
    assert (response.status_code, response.json()["error"]) == (status, error), response.text
    assert response.json()["error_description"]


async def test_malformed_requests_are_invalid_request(flowhook) -> None:
    credential = await flowhook.credential()
    auth = basic_for(credential)
    sender = flowhook.sender()
    as_json = await sender.post(TOKEN_URL, json={"grant_type": "client_credentials"}, headers=auth)
    repeated_form = b"grant_type=client_credentials&grant_type=x"
    repeated = await sender.post(TOKEN_URL, content=repeated_form, headers={**auth, **FORM})
    not_a_form = await sender.post(TOKEN_URL, content=b"\xff\xfe", headers={**auth, **FORM})
    for response in (as_json, repeated, not_a_form):
        assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


async def test_a_requested_scope_is_granted_and_echoed(flowhook) -> None:
    credential = await flowhook.credential()
    form = {"grant_type": "client_credentials", "scope": "events"}
    response = await flowhook.sender().post(TOKEN_URL, data=form, headers=basic_for(credential))
    assert response.status_code == 200 and response.json()["scope"] == "events"


async def test_revoking_a_credential_ends_its_tokens_at_once(flowhook) -> None:
    flow = await flowhook.flow(publish=True)
    credential = await flowhook.credential()
    client = flowhook.oauth_client(credential)
    await client.fetch_token()
    other = await flowhook.api_client()  # another credential's token is unaffected
    assert (await start(client, flow)).status_code == 202
    assert (await flowhook.api.delete(f"/v1/default/credentials/{credential['clientId']}")).status_code == 204
    refused = await start(client, flow)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
    assert refused.headers["www-authenticate"] == 'Bearer realm="flowhook", error="invalid_token"'
    with pytest.raises(OAuthError) as raised:
        await client.fetch_token()
    assert raised.value.error == "invalid_client"
    assert (await start(other, flow)).status_code == 202


async def test_a_missing_or_unknown_bearer_token_is_401(flowhook) -> None:
    flow = await flowhook.flow(publish=True)
    missing = await start(flowhook.sender(), flow)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == 'Bearer realm="flowhook"'
    unknown = await start(flowhook.sender(), flow, authorization="Bearer fh_at_made-up")
    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "invalid_token"


async def test_the_admin_token_is_not_an_access_token(flowhook) -> None:
    flow = await flowhook.flow(publish=True)
    response = await start(flowhook.api, flow)  # the admin client
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"


async def test_an_access_token_is_not_the_admin_token(flowhook) -> None:
    client = await flowhook.api_client()
    for method, path in (
        ("GET", "/v1/default/action-flows"),
        ("GET", "/v1/default/credentials"),
        ("POST", "/v1/default/credentials"),
    ):
        response = await client.request(method, path, json={"name": "x", "roles": ["events"]})
        assert response.status_code == 401, (method, path)
        assert response.json()["error"]["code"] == "unauthorized"


async def test_a_token_cannot_touch_another_environment(flowhook) -> None:
    assert (await flowhook.api.post("/v1/environments", json={"id": "staging"})).status_code == 201
    flow = await flowhook.flow(publish=True)
    staging = await flowhook.api_client(env="staging")
    response = await start(staging, flow)
    assert response.status_code == 403 and response.json()["error"]["code"] == "environment_mismatch"
    same_flow_via_staging = await start(staging, flow, env="staging")
    assert same_flow_via_staging.status_code == 404  # the flow lives in `default`
    default_credential = await flowhook.credential()
    assert (await flowhook.api.get(f"/v1/staging/credentials/{default_credential['clientId']}")).status_code == 404
    assert (await flowhook.api.delete(f"/v1/staging/credentials/{default_credential['clientId']}")).status_code == 404


async def test_an_expired_token_is_refused(tmp_path: Path) -> None:
    """With a lifetime of 0 seconds every token is expired as soon as it is issued."""
    admin_token = "fh_admin_expiry-test-0123456789"
    admin = {"authorization": f"Bearer {admin_token}"}
    app = create_app(Settings(data_dir=tmp_path, admin_token=admin_token, sandbox_workers=1, access_token_seconds=0))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://flowhook.test") as client:
            flow = (await client.post("/v1/default/action-flows", json={"name": "F"}, headers=admin)).json()
            published = await client.post(f"/v1/default/action-flows/{flow['id']}/publish", headers=admin)
            assert published.status_code == 200
            body = {"name": "c", "roles": ["events"]}
            created = await client.post("/v1/default/credentials", json=body, headers=admin)
            form = {"grant_type": "client_credentials"}
            issued = await client.post(TOKEN_URL, data=form, headers=basic_for(created.json()))
            assert issued.status_code == 200 and issued.json()["expires_in"] == 0
            response = await start(client, flow, authorization=f"Bearer {issued.json()['access_token']}")
            assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"
