"""Rolling a Marketo trigger's API key over HTTP: the new key works, the old one at once or after its overlap.

Runs on SQLite, and on PostgreSQL too when FLOWHOOK_TEST_POSTGRES names a server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ingress.marketo_keys import accepts, new_key, previous_expires_at, rolled

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return {**either_database, "executor": False}


async def marketo_trigger(flowhook) -> dict[str, Any]:
    flow = await flowhook.card_flow()
    created = await flowhook.api.post(f"/v1/default/action-flows/{flow['id']}/triggers", json={"type": "marketo"})
    assert created.status_code == 201, created.text
    trigger: dict[str, Any] = created.json()
    return trigger


async def roll(flowhook, trigger: dict[str, Any], **body: Any) -> Any:
    return await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/api-key/roll", json=body or None)


async def status_code(flowhook, trigger: dict[str, Any], key: str) -> int:
    """What Marketo's nightly status call gets with `key`."""
    url = trigger["serviceUrl"].removeprefix("http://flowhook.test") + "status"
    answered = await flowhook.sender().get(url, headers={"x-api-key": key})
    return answered.status_code


async def test_a_roll_without_overlap_replaces_the_key_at_once(flowhook) -> None:
    trigger = await marketo_trigger(flowhook)
    rolled_trigger = await roll(flowhook, trigger)
    assert rolled_trigger.status_code == 200, rolled_trigger.text
    view = rolled_trigger.json()
    assert view["apiKey"] != trigger["apiKey"] and len(view["apiKey"]) == 43
    assert view["previousApiKeyExpiresAt"] is None
    assert view["serviceUrl"] == trigger["serviceUrl"]  # nothing to reinstall in Marketo
    assert await status_code(flowhook, trigger, view["apiKey"]) == 200
    assert await status_code(flowhook, trigger, trigger["apiKey"]) == 401


async def test_a_roll_with_overlap_keeps_the_old_key_until_it_expires(flowhook) -> None:
    trigger = await marketo_trigger(flowhook)
    before = datetime.now(UTC)
    answered = await roll(flowhook, trigger, previousKeyExpiresInSeconds=3600.0)  # an integer, as JSON counts
    assert answered.status_code == 200, answered.text
    view = answered.json()
    expires = datetime.fromisoformat(view["previousApiKeyExpiresAt"].replace("Z", "+00:00"))
    assert before + timedelta(seconds=3599) <= expires <= datetime.now(UTC) + timedelta(seconds=3600)
    assert await status_code(flowhook, trigger, view["apiKey"]) == 200
    assert await status_code(flowhook, trigger, trigger["apiKey"]) == 200
    read = (await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}")).json()
    assert read["apiKey"] == "••••" + view["apiKey"][-4:]  # never again in full
    assert read["previousApiKeyExpiresAt"] == view["previousApiKeyExpiresAt"]
    assert trigger["apiKey"] not in str(read)


async def test_rolling_again_ends_the_running_overlap(flowhook) -> None:
    trigger = await marketo_trigger(flowhook)
    first = (await roll(flowhook, trigger, previousKeyExpiresInSeconds=3600)).json()
    second = (await roll(flowhook, trigger, previousKeyExpiresInSeconds=3600)).json()
    assert await status_code(flowhook, trigger, trigger["apiKey"]) == 401
    assert await status_code(flowhook, trigger, first["apiKey"]) == 200
    assert await status_code(flowhook, trigger, second["apiKey"]) == 200


async def test_a_roll_bumps_the_revision(flowhook) -> None:
    trigger = await marketo_trigger(flowhook)
    etag = (await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}")).headers["etag"]
    answered = await roll(flowhook, trigger)
    assert answered.headers["etag"] != etag


@pytest.mark.parametrize(
    "body",
    [
        {"previousKeyExpiresInSeconds": -1},
        {"previousKeyExpiresInSeconds": 604_801},
        {"previousKeyExpiresInSeconds": 1.5},
        {"previousKeyExpiresInSeconds": True},
        {"previousKeyExpiresInSeconds": "60"},
    ],
)
async def test_an_invalid_overlap_is_a_422_and_keeps_the_key(flowhook, body: dict[str, Any]) -> None:
    trigger = await marketo_trigger(flowhook)
    answered = await roll(flowhook, trigger, **body)
    assert answered.status_code == 422
    assert answered.json()["error"] == {
        "code": "invalid_field",
        "message": "previousKeyExpiresInSeconds must be an integer from 0 to 604800 (seven days)",
        "path": "$.previousKeyExpiresInSeconds",
    }
    assert await status_code(flowhook, trigger, trigger["apiKey"]) == 200


async def test_unknown_fields_and_bad_json_are_refused(flowhook) -> None:
    trigger = await marketo_trigger(flowhook)
    unknown = await roll(flowhook, trigger, overlap=60)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (422, "unknown_field")
    url = f"/v1/default/triggers/{trigger['id']}/api-key/roll"
    broken = await flowhook.api.post(url, content=b"{", headers={"content-type": "application/json"})
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "invalid_json")
    assert await status_code(flowhook, trigger, trigger["apiKey"]) == 200


async def test_only_marketo_triggers_have_a_key_to_roll(flowhook) -> None:
    flow = await flowhook.card_flow()
    webhook = await flowhook.api.post(f"/v1/default/action-flows/{flow['id']}/triggers", json={"type": "webhook"})
    for trigger_id in (webhook.json()["id"], f"api_{flow['id']}"):
        answered = await flowhook.api.post(f"/v1/default/triggers/{trigger_id}/api-key/roll")
        assert (answered.status_code, answered.json()["error"]["code"]) == (409, "not_a_marketo_trigger"), trigger_id
    missing = await flowhook.api.post("/v1/default/triggers/trg_nope/api-key/roll")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "trigger_not_found")


async def test_rolling_needs_the_admin_token(flowhook) -> None:
    trigger = await marketo_trigger(flowhook)
    answered = await flowhook.sender().post(f"/v1/default/triggers/{trigger['id']}/api-key/roll")
    assert answered.status_code == 401
    assert await status_code(flowhook, trigger, trigger["apiKey"]) == 200


async def test_the_openapi_document_describes_the_roll(flowhook) -> None:
    document = (await flowhook.api.get("/openapi.json")).json()
    roll_op = document["paths"]["/v1/{env}/triggers/{triggerId}/api-key/roll"]["post"]
    assert set(roll_op["responses"]) >= {"200", "401", "404", "409", "422"}
    assert "previousApiKeyExpiresAt" in document["components"]["schemas"]["MarketoTrigger"]["properties"]


def test_the_replaced_key_works_only_inside_its_overlap() -> None:
    keys = rolled(new_key(), timedelta(hours=1), NOW)
    old = keys["previousSecret"]
    assert accepts(keys, old, NOW + timedelta(minutes=59))
    assert not accepts(keys, old, NOW + timedelta(hours=1))
    assert previous_expires_at(keys, NOW + timedelta(hours=1)) is None
    assert accepts(keys, keys["secret"], NOW + timedelta(days=30))


def test_no_key_and_an_empty_key_accept_nothing() -> None:
    assert not accepts(None, "", NOW)
    assert not accepts({"secret": ""}, "", NOW)
    assert not accepts({"secret": "k" * 43, "previousSecret": "", "previousExpiresAt": NOW.isoformat()}, "", NOW)
