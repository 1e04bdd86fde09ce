"""`GET /v1/{env}/triggers`: every trigger of an environment, its flows' API triggers among them, newest first.

Each test works in an environment of its own, so that it knows every
trigger there is. The module runs on SQLite, and on PostgreSQL too when
FLOWHOOK_TEST_POSTGRES names a server.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ingress.api.cursors import Binding
from store.ids import new_id

pytestmark = pytest.mark.anyio

SECRET = "whsec-listing-0123456789abcdef"
SIGNING_SECRET = "s" * 32


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return either_database


async def new_environment(flowhook) -> str:
    env = new_id("lst").replace("_", "-")
    response = await flowhook.api.post("/v1/environments", json={"id": env})
    assert response.status_code == 201, response.text
    return env


async def listed(flowhook, env: str, **params: Any) -> dict[str, Any]:
    response = await flowhook.api.get(f"/v1/{env}/triggers", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def walk(flowhook, env: str, limit: int, cursor: str | None = None, **params: Any) -> list[dict[str, Any]]:
    """Every trigger the listing gives from `cursor` on, page after page of `limit`, following `nextCursor`."""
    items: list[dict[str, Any]] = []
    while True:
        page = await listed(flowhook, env, limit=limit, **params, **({"cursor": cursor} if cursor else {}))
        assert len(page["data"]) <= limit
        items += page["data"]
        cursor = page["nextCursor"]
        if cursor is None:
            return items


async def refused(flowhook, env: str, status: int, code: str, **params: Any) -> str:
    response = await flowhook.api.get(f"/v1/{env}/triggers", params=params)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    message: str = error["message"]
    return message


async def flow_triggers(flowhook, flow: dict[str, Any]) -> list[dict[str, Any]]:
    """The flow's listing: its API trigger first, then its stored triggers, oldest first."""
    response = await flowhook.api.get(f"/v1/{flow['environmentId']}/action-flows/{flow['id']}/triggers")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]
    return found


async def two_flows(flowhook, env: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A flow with a webhook (signed) and an event trigger, then one with an SFMC and a Marketo trigger."""
    first = await flowhook.flow(env=env, name="First")
    await flowhook.trigger(first, verification={"preset": "github", "secret": SECRET})
    await flowhook.trigger(first, type="event", eventName="order-paid")
    second = await flowhook.flow(env=env, name="Second")
    await flowhook.trigger(second, type="sfmc", signingSecret=SIGNING_SECRET)
    await flowhook.trigger(second, type="marketo")
    return first, second


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


async def test_every_trigger_is_listed_newest_first_as_its_flows_listing_shows_it(flowhook) -> None:
    env = await new_environment(flowhook)
    first, second = await two_flows(flowhook, env)
    # Created in this order, each after the last: the API trigger with its flow, then the flow's own.
    created = [*await flow_triggers(flowhook, first), *await flow_triggers(flowhook, second)]
    assert [item["type"] for item in created] == ["api", "webhook", "event", "api", "sfmc", "marketo"]

    everything = await listed(flowhook, env)
    assert everything == {"data": created[::-1], "nextCursor": None}
    for limit in (1, 2, 5):
        assert await walk(flowhook, env, limit) == created[::-1]


async def test_secrets_are_masked_as_in_the_flows_listing(flowhook) -> None:
    env = await new_environment(flowhook)
    flow = await flowhook.flow(env=env)
    await flowhook.trigger(flow, verification={"preset": "github", "secret": SECRET})
    await flowhook.trigger(flow, type="sfmc", signingSecret=SIGNING_SECRET)
    api_key = (await flowhook.trigger(flow, type="marketo"))["apiKey"]  # shown in full this once
    response = await flowhook.api.get(f"/v1/{env}/triggers")
    assert not any(secret in response.text for secret in (SECRET, SIGNING_SECRET, api_key))
    by_type = {item["type"]: item for item in response.json()["data"]}
    masked = [
        by_type["webhook"]["verification"]["secret"],
        by_type["sfmc"]["signingSecret"],
        by_type["marketo"]["apiKey"],
    ]
    assert all(value.startswith("••••") for value in masked), masked


async def test_filters_by_type_mode_and_flow(flowhook) -> None:
    env = await new_environment(flowhook)
    first, second = await two_flows(flowhook, env)
    webhook = next(item for item in await flow_triggers(flowhook, first) if item["type"] == "webhook")
    live = await flowhook.api.patch(f"/v1/{env}/triggers/{webhook['id']}", json={"mode": "live"})
    assert live.status_code == 200, live.text
    everything = (await listed(flowhook, env))["data"]

    def only(check) -> list[str]:
        return [item["id"] for item in everything if check(item)]

    assert ids(await walk(flowhook, env, 1, type="api")) == only(lambda item: item["type"] == "api")
    assert ids(await walk(flowhook, env, 1, type="marketo")) == only(lambda item: item["type"] == "marketo")
    assert ids(await walk(flowhook, env, 1, mode="live")) == [webhook["id"]]
    # An API trigger has no mode: any mode leaves it out.
    assert ids(await walk(flowhook, env, 1, mode="test")) == only(lambda item: item.get("mode") == "test")
    assert ids(await walk(flowhook, env, 1, flowId=second["id"])) == ids(await flow_triggers(flowhook, second))[::-1]
    assert ids(await walk(flowhook, env, 1, flowId=first["id"], type="api")) == [f"api_{first['id']}"]
    assert await walk(flowhook, env, 1, flowId=first["id"], type="api", mode="test") == []
    assert ids(await walk(flowhook, env, 1, flowId=first["id"], mode="live")) == [webhook["id"]]


async def test_a_bad_filter_or_limit_is_a_400_and_an_unknown_flow_a_404(flowhook) -> None:
    env = await new_environment(flowhook)
    other = await flowhook.flow(env=await new_environment(flowhook))
    assert "type must be one of api, webhook" in await refused(flowhook, env, 400, "invalid_parameter", type="hook")
    assert "mode must be one of" in await refused(flowhook, env, 400, "invalid_parameter", mode="paused")
    for limit in ("0", "201", "ten"):
        await refused(flowhook, env, 400, "invalid_parameter", limit=limit)
    await refused(flowhook, env, 400, "invalid_parameter", flowId="flw_\x00")
    await refused(flowhook, env, 404, "flow_not_found", flowId="flw_missing")
    await refused(flowhook, env, 404, "flow_not_found", flowId=other["id"])  # another environment's
    await refused(flowhook, "nowhere", 404, "environment_not_found")


async def test_a_cursor_is_refused_with_other_filters_another_environment_or_altered(flowhook) -> None:
    env = await new_environment(flowhook)
    first, _ = await two_flows(flowhook, env)
    cursor = (await listed(flowhook, env, limit=1, type="api"))["nextCursor"]
    assert cursor is not None
    assert len((await listed(flowhook, env, limit=1, type="api", cursor=cursor))["data"]) == 1
    for other in ({}, {"type": "webhook"}, {"mode": "test"}, {"flowId": first["id"]}):
        message = await refused(flowhook, env, 400, "invalid_cursor", limit=1, cursor=cursor, **other)
        assert "another listing (type, mode or flowId)" in message
    elsewhere = await new_environment(flowhook)
    await refused(flowhook, elsewhere, 400, "invalid_cursor", type="api", cursor=cursor)
    log_cursor = Binding("request-log", "", (env, None, None, None, None, None)).next_cursor(1)
    altered = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
    for bad in (altered, log_cursor, "12345", "x", cursor + "!"):
        await refused(flowhook, env, 400, "invalid_cursor", type="api", cursor=bad)


async def test_a_made_up_cursor_no_store_could_compare_is_a_400(flowhook) -> None:
    """The digest is public: a cursor can be made for any time and id. One holding NUL, which PostgreSQL
    cannot compare, is refused rather than a 500."""
    env = await new_environment(flowhook)
    binding = Binding("triggers", "type, mode or flowId", (env, None, None, None))
    made_up = binding.next_cursor((datetime.now(UTC), "trg_\x00"))
    assert "not by this API" in await refused(flowhook, env, 400, "invalid_cursor", cursor=made_up)
    fine = binding.next_cursor((datetime.now(UTC), "trg_made-up"))
    assert await listed(flowhook, env, cursor=fine) == {"data": [], "nextCursor": None}


async def test_environments_are_isolated(flowhook) -> None:
    env, elsewhere = await new_environment(flowhook), await new_environment(flowhook)
    await two_flows(flowhook, env)
    assert await listed(flowhook, elsewhere) == {"data": [], "nextCursor": None}
    ours = await flowhook.flow(env=elsewhere)
    assert ids((await listed(flowhook, elsewhere))["data"]) == [f"api_{ours['id']}"]
    assert all(item["environmentId"] == env for item in await walk(flowhook, env, 2))


async def test_deleted_triggers_are_gone_even_the_one_a_cursor_points_at(flowhook) -> None:
    env = await new_environment(flowhook)
    await two_flows(flowhook, env)
    before = await walk(flowhook, env, 200)
    page = await listed(flowhook, env, limit=2)
    assert ids(page["data"]) == ids(before[:2])
    for gone in page["data"][1], before[3]:  # the cursor's own trigger (marketo) and the event trigger
        deleted = await flowhook.api.delete(f"/v1/{env}/triggers/{gone['id']}")
        assert deleted.status_code == 204, deleted.text
    rest = await walk(flowhook, env, 2, cursor=page["nextCursor"])
    assert ids(rest) == [before[2]["id"], *ids(before[4:])]
    assert ids(await walk(flowhook, env, 200)) == [before[0]["id"], before[2]["id"], *ids(before[4:])]


async def test_the_openapi_document_describes_the_listing_and_its_pages(flowhook) -> None:
    document = (await flowhook.sender().get("/openapi.json")).json()
    operation = document["paths"]["/v1/{env}/triggers"]["get"]
    parameters = {param["name"]: param["schema"] for param in operation["parameters"]}
    assert set(parameters) == {"type", "mode", "flowId", "limit", "cursor"}
    assert parameters["type"]["enum"] == ["api", "webhook", "event", "segment", "sfmc", "marketo"]
    assert parameters["mode"]["enum"] == ["test", "live", "disabled"]
    assert {"200", "400", "401", "404"} <= set(operation["responses"])
    registry: Registry = Registry().with_resource(
        "urn:flowhook:openapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    page = {
        "$ref": "urn:flowhook:openapi#/paths/~1v1~1{env}~1triggers/get/responses/200/content/application~1json/schema"
    }
    validator = jsonschema.Draft202012Validator(page, registry=registry)
    env = await new_environment(flowhook)
    await two_flows(flowhook, env)
    first = await listed(flowhook, env, limit=3)
    for body in first, await listed(flowhook, env, limit=3, cursor=first["nextCursor"]):
        validator.validate(body)
