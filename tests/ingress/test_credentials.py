"""The Credentials API: secret shown once and stored hashed, list/get/revoke, admin token only."""

from __future__ import annotations

import sqlite3

import pytest

pytestmark = pytest.mark.anyio


def database_bytes(flowhook) -> bytes:
    return b"".join(path.read_bytes() for path in flowhook.data_dir.glob("flowhook.db*"))


def secret_hashes(flowhook, *client_ids: str) -> list[str]:
    marks = ", ".join("?" for _ in client_ids)
    with sqlite3.connect(flowhook.data_dir / "flowhook.db") as db:
        rows = db.execute(f"SELECT secret_hash FROM credentials WHERE client_id IN ({marks})", client_ids)
        return [row[0] for row in rows]


async def test_the_secret_is_shown_once_and_stored_hashed(flowhook) -> None:
    created = await flowhook.credential()
    assert created["clientId"].startswith("fh_ci_") and created["clientSecret"].startswith("fh_cs_")
    assert created["roles"] == ["events"] and created["environmentId"] == "default"
    assert created["tokenUrl"] == "http://flowhook.test/oauth/token"
    listed = await flowhook.api.get("/v1/default/credentials")
    one = await flowhook.api.get(f"/v1/default/credentials/{created['clientId']}")
    for response in (listed, one):
        assert response.status_code == 200
        assert created["clientSecret"] not in response.text and "secret" not in response.text.lower()
    assert one.json() == {key: created[key] for key in ("clientId", "environmentId", "name", "roles", "createdAt")}
    assert created["clientId"] in [credential["clientId"] for credential in listed.json()["data"]]
    [stored] = secret_hashes(flowhook, created["clientId"])
    assert stored.startswith("scrypt$16384$8$1$")
    assert created["clientSecret"].encode() not in database_bytes(flowhook)


async def test_access_tokens_are_stored_hashed(flowhook) -> None:
    client = await flowhook.api_client()
    assert client.token["access_token"].encode() not in database_bytes(flowhook)


async def test_two_credentials_never_share_a_secret_or_a_salt(flowhook) -> None:
    one, two = await flowhook.credential(), await flowhook.credential()
    assert one["clientSecret"] != two["clientSecret"]
    salts = {stored.split("$")[4] for stored in secret_hashes(flowhook, one["clientId"], two["clientId"])}
    assert len(salts) == 2


async def test_delete_revokes_and_is_then_gone(flowhook) -> None:
    created = await flowhook.credential()
    path = f"/v1/default/credentials/{created['clientId']}"
    assert (await flowhook.api.delete(path)).status_code == 204
    gone = await flowhook.api.get(path)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "credential_not_found"
    assert (await flowhook.api.delete(path)).status_code == 404
    listed = (await flowhook.api.get("/v1/default/credentials")).json()["data"]
    assert created["clientId"] not in [credential["clientId"] for credential in listed]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"roles": ["events"]}, "$.name"),
        ({"name": "", "roles": ["events"]}, "$.name"),
        ({"name": "CRM"}, "$.roles"),
        ({"name": "CRM", "roles": []}, "$.roles"),
        ({"name": "CRM", "roles": ["admin"]}, "$.roles"),
        ({"name": "CRM", "roles": ["events", "events"]}, "$.roles"),
        ({"name": "CRM", "roles": "events"}, "$.roles"),
        ({"name": "CRM", "roles": ["events"], "secret": "mine"}, "$.secret"),
    ],
)
async def test_invalid_bodies_are_422_with_the_path(flowhook, body: dict[str, object], path: str) -> None:
    response = await flowhook.api.post("/v1/default/credentials", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["path"] == path


async def test_the_admin_token_is_required(flowhook) -> None:
    created = await flowhook.credential()
    anonymous = flowhook.sender()
    for method, path in (
        ("POST", "/v1/default/credentials"),
        ("GET", "/v1/default/credentials"),
        ("GET", f"/v1/default/credentials/{created['clientId']}"),
        ("DELETE", f"/v1/default/credentials/{created['clientId']}"),
    ):
        assert (await anonymous.request(method, path)).status_code == 401, (method, path)
        with_secret = await anonymous.request(
            method, path, headers={"authorization": f"Bearer {created['clientSecret']}"}
        )
        assert with_secret.status_code == 401, (method, path)
    assert (await flowhook.api.get(f"/v1/default/credentials/{created['clientId']}")).status_code == 200


async def test_an_unknown_environment_is_404(flowhook) -> None:
    response = await flowhook.api.post("/v1/nowhere/credentials", json={"name": "CRM", "roles": ["events"]})
    assert response.status_code == 404 and response.json()["error"]["code"] == "environment_not_found"
