"""Event triggers on the trigger routes: create, list, read, change, delete; no hook; the delivery log.

Answers are held to the OpenAPI document's schemas. The app runs without the
executor (and so without the event dispatcher): deliveries stay pending. The
module runs on SQLite, and on PostgreSQL too when FLOWHOOK_TEST_POSTGRES
names a server.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from store import event_dispatch
from store.clock import iso, utcnow
from store.tables import event_deliveries

pytestmark = pytest.mark.anyio
DEFAULT_MAPPING = {"kind": "jmespath", "fields": {"targetUserIds": "body.endUserId", "variables": "body.properties"}}


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return {**either_database, "executor": False}


@pytest.fixture(scope="module")
async def openapi(flowhook) -> dict[str, Any]:
    document: dict[str, Any] = (await flowhook.sender().get("/openapi.json")).json()
    return document


@pytest.fixture(scope="module")
async def client(flowhook):
    return await flowhook.api_client()


def shaped(document: dict[str, Any], component: str, value: Any) -> None:
    """`value` matches the document's schema `component`."""
    registry: Registry = Registry().with_resource(
        "urn:flowhook:openapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    schema = {"$ref": f"urn:flowhook:openapi#/components/schemas/{component}"}
    jsonschema.Draft202012Validator(schema, registry=registry).validate(value)


def refused(response: Any) -> tuple[int, str, str | None]:
    error = response.json()["error"]
    return response.status_code, error["code"], error.get("path")


async def create(flowhook, flow: dict[str, Any] | None = None, **body: Any) -> Any:
    flow = flow or await flowhook.flow()
    return await flowhook.api.post(f"/v1/default/action-flows/{flow['id']}/triggers", json=body)


async def event_trigger(flowhook, event_name: str, **body: Any) -> dict[str, Any]:
    trigger: dict[str, Any] = await flowhook.trigger(type="event", eventName=event_name, **body)
    return trigger


async def send(client, name: str, count: int = 1) -> list[str]:
    body = {"events": [{"eventName": name, "endUserId": f"u{index}"} for index in range(count)]}
    response = await client.post("/v1/default/events", json=body)
    assert response.status_code == 202, response.text
    return [answer["id"] for answer in response.json()["events"]]


async def test_an_event_trigger_is_created_in_test_mode_with_the_default_mapping(flowhook, openapi) -> None:
    flow = await flowhook.flow()
    response = await create(flowhook, flow, type="event", eventName="checkout-completed")
    assert response.status_code == 201, response.text
    trigger = response.json()
    shaped(openapi, "Trigger", trigger)
    assert trigger == {
        "id": trigger["id"],
        "environmentId": "default",
        "flowId": flow["id"],
        "type": "event",
        "eventName": "checkout-completed",
        "mode": "test",
        "mapping": DEFAULT_MAPPING,
        "createdAt": trigger["createdAt"],
        "updatedAt": trigger["updatedAt"],
    }
    assert trigger["id"].startswith("trg_")
    assert (await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}")).json() == trigger


async def test_it_is_listed_among_the_flows_triggers_after_the_api_trigger(flowhook, openapi) -> None:
    flow = await flowhook.flow()
    webhook = await flowhook.trigger(flow)
    event = (await create(flowhook, flow, type="event", eventName="e", mode="live")).json()
    listed = await flowhook.api.get(f"/v1/default/action-flows/{flow['id']}/triggers")
    shaped(openapi, "Trigger", listed.json()["data"][2])
    assert [(item["id"], item["type"]) for item in listed.json()["data"]] == [
        (f"api_{flow['id']}", "api"),
        (webhook["id"], "webhook"),
        (event["id"], "event"),
    ]


async def test_a_mapping_and_mode_can_be_given(flowhook) -> None:
    mapping = {"kind": "javascript", "source": "function map(r) { return {targetUserIds: [r.body.endUserId]}; }"}
    response = await create(flowhook, type="event", eventName="signed-up", mode="disabled", mapping=mapping)
    assert response.status_code == 201, response.text
    assert (response.json()["mode"], response.json()["mapping"]) == ("disabled", mapping)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"type": "event"}, "$.eventName"),
        ({"type": "event", "eventName": ""}, "$.eventName"),
        ({"type": "event", "eventName": "x" * 129}, "$.eventName"),
        ({"type": "event", "eventName": 7}, "$.eventName"),
        ({"type": "event", "eventName": "e", "mode": "paused"}, "$.mode"),
        ({"type": "event", "eventName": "e", "verification": None}, "$.verification"),
        ({"type": "event", "eventName": "e", "allowedIps": []}, "$.allowedIps"),
        ({"eventName": "e"}, "$.eventName"),  # a webhook trigger
        ({"type": "manual"}, "$.type"),
    ],
)
async def test_invalid_settings_are_refused_with_their_path(flowhook, body, path) -> None:
    flow = await flowhook.flow()
    response = await create(flowhook, flow, **body)
    assert refused(response) == (422, "invalid_field", path)
    listed = await flowhook.api.get(f"/v1/default/action-flows/{flow['id']}/triggers")
    assert [item["type"] for item in listed.json()["data"]] == ["api"]


async def test_a_setting_of_the_other_kind_says_so(flowhook) -> None:
    response = await create(flowhook, type="event", eventName="e", verification={"secret": "s"})
    assert (
        "verification is a setting of webhook triggers; this is an event trigger" in response.json()["error"]["message"]
    )


async def test_an_unknown_field_and_a_broken_mapping_are_refused(flowhook) -> None:
    unknown = await create(flowhook, type="event", eventName="e", hookId="mine")
    assert refused(unknown) == (422, "unknown_field", "$.hookId")
    broken = await create(flowhook, type="event", eventName="e", mapping={"kind": "jmespath", "fields": {"x": "[("}})
    assert broken.status_code == 422 and broken.json()["error"]["code"] == "invalid_mapping"


async def test_event_name_mode_and_mapping_can_be_changed(flowhook, openapi) -> None:
    trigger = await event_trigger(flowhook, "before")
    mapping = {"kind": "jmespath", "expression": "{targetUserIds: [body.endUserId]}"}
    url = f"/v1/default/triggers/{trigger['id']}"
    response = await flowhook.api.patch(url, json={"eventName": "after", "mode": "live", "mapping": mapping})
    assert response.status_code == 200, response.text
    shaped(openapi, "Trigger", response.json())
    assert {key: response.json()[key] for key in ("eventName", "mode", "mapping")} == {
        "eventName": "after",
        "mode": "live",
        "mapping": mapping,
    }
    assert (await flowhook.api.get(url)).json() == response.json()


@pytest.mark.parametrize(
    ("body", "path", "code"),
    [
        ({"verification": None}, "$.verification", "invalid_field"),
        ({"allowedIps": ["10.0.0.0/8"]}, "$.allowedIps", "invalid_field"),
        ({"eventName": ""}, "$.eventName", "invalid_field"),
        ({"type": "webhook"}, "$.type", "unknown_field"),
    ],
)
async def test_a_change_an_event_trigger_cannot_have_is_refused(flowhook, body, path, code) -> None:
    trigger = await event_trigger(flowhook, "unchanged")
    url = f"/v1/default/triggers/{trigger['id']}"
    assert refused(await flowhook.api.patch(url, json=body)) == (422, code, path)
    assert (await flowhook.api.get(url)).json() == trigger


async def test_a_webhook_trigger_takes_no_event_name(flowhook) -> None:
    webhook = await flowhook.trigger()
    response = await flowhook.api.patch(f"/v1/default/triggers/{webhook['id']}", json={"eventName": "e"})
    assert refused(response) == (422, "invalid_field", "$.eventName")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("post", "/capture", None), ("delete", "/capture", None), ("post", "/samples", {"body": {"user": "u1"}})],
)
async def test_what_needs_a_hook_is_refused(flowhook, method, suffix, body) -> None:
    trigger = await event_trigger(flowhook, "no-hook")
    response = await flowhook.api.request(method.upper(), f"/v1/default/triggers/{trigger['id']}{suffix}", json=body)
    assert refused(response) == (409, "not_a_webhook_trigger", None)
    assert "is an event trigger" in response.json()["error"]["message"]


async def test_it_has_no_samples_and_no_logged_requests(flowhook) -> None:
    trigger = await event_trigger(flowhook, "no-log")
    samples = await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}/samples")
    assert samples.json() == {"data": []}
    logged = await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}/requests")
    assert logged.json() == {"data": [], "nextCursor": None}


async def test_deleting_it_removes_it_with_its_deliveries(flowhook, client) -> None:
    trigger = await event_trigger(flowhook, "going-away")
    [event_id] = await send(client, "going-away")
    url = f"/v1/default/triggers/{trigger['id']}"
    assert (await flowhook.api.delete(url)).status_code == 204
    assert refused(await flowhook.api.get(url)) == (404, "trigger_not_found", None)
    assert refused(await flowhook.api.get(f"{url}/deliveries")) == (404, "trigger_not_found", None)
    query = sa.select(sa.func.count()).select_from(event_deliveries).where(event_deliveries.c.event_id == event_id)
    assert await flowhook.services.store.read(lambda conn: conn.execute(query).scalar_one()) == 0
    again = await send(client, "going-away")
    assert again  # the event is stored; nothing listens any more


async def test_a_disabled_trigger_fires_nothing_until_enabled(flowhook, client) -> None:
    trigger = await event_trigger(flowhook, "switchable", mode="disabled")
    url = f"/v1/default/triggers/{trigger['id']}/deliveries"
    await send(client, "switchable")
    assert (await flowhook.api.get(url)).json() == {"data": [], "nextCursor": None}
    patched = await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"mode": "live"})
    assert patched.status_code == 200
    [event_id] = await send(client, "switchable")
    assert [item["eventId"] for item in (await flowhook.api.get(url)).json()["data"]] == [event_id]


async def test_the_delivery_log_pages_newest_first(flowhook, client, openapi) -> None:
    trigger = await event_trigger(flowhook, "paged")
    event_ids = await send(client, "paged", 5)
    url = f"/v1/default/triggers/{trigger['id']}/deliveries"
    first = await flowhook.api.get(url, params={"limit": 2})
    assert first.status_code == 200, first.text
    shaped(openapi, "DeliveryPage", first.json())
    seen = [item["eventId"] for item in first.json()["data"]]
    cursor = first.json()["nextCursor"]
    while cursor:
        page = await flowhook.api.get(url, params={"limit": 2, "cursor": cursor})
        seen += [item["eventId"] for item in page.json()["data"]]
        cursor = page.json()["nextCursor"]
    assert seen == list(reversed(event_ids))
    item = first.json()["data"][0]
    assert {key: item[key] for key in ("hop", "status", "cause", "detail", "invocationId", "flowInvocationId")} == {
        "hop": 1,
        "status": "pending",
        "cause": None,
        "detail": None,
        "invocationId": None,
        "flowInvocationId": None,
    }


async def test_the_delivery_log_filters_by_status_and_binds_its_cursors(flowhook, client) -> None:
    trigger = await event_trigger(flowhook, "filtered")
    other = await event_trigger(flowhook, "filtered")
    event_ids = await send(client, "filtered", 3)
    accepted = sa.update(event_deliveries).where(event_deliveries.c.event_id == event_ids[1]).values(status="accepted")
    await flowhook.services.store.write(lambda conn: conn.execute(accepted))
    url = f"/v1/default/triggers/{trigger['id']}/deliveries"
    only = await flowhook.api.get(url, params={"status": "accepted"})
    assert [item["eventId"] for item in only.json()["data"]] == [event_ids[1]]
    pending = await flowhook.api.get(url, params={"status": "pending", "limit": 1})
    cursor = pending.json()["nextCursor"]
    assert cursor is not None
    for elsewhere, params in (
        (f"/v1/default/triggers/{other['id']}/deliveries", {"status": "pending"}),
        (url, {}),
        (url, {"status": "failed"}),
        (f"/v1/default/triggers/{trigger['id']}/requests", {}),
    ):
        response = await flowhook.api.get(elsewhere, params={**params, "cursor": cursor})
        assert refused(response) == (400, "invalid_cursor", None), elsewhere
    rest = await flowhook.api.get(url, params={"status": "pending", "limit": 5, "cursor": cursor})
    assert [item["eventId"] for item in rest.json()["data"]] == [event_ids[0]]
    bad = await flowhook.api.get(url, params={"status": "done"})
    assert refused(bad) == (400, "invalid_parameter", None)


async def test_other_triggers_have_an_empty_delivery_log(flowhook) -> None:
    webhook = await flowhook.trigger()
    for trigger_id in (webhook["id"], f"api_{webhook['flowId']}"):
        response = await flowhook.api.get(f"/v1/default/triggers/{trigger_id}/deliveries")
        assert response.json() == {"data": [], "nextCursor": None}
    missing = await flowhook.api.get("/v1/default/triggers/trg_missing/deliveries")
    assert refused(missing) == (404, "trigger_not_found", None)


async def test_a_delivery_waiting_for_a_retry_shows_its_attempts_its_last_cause_and_its_next_attempt(
    flowhook, client, openapi
) -> None:
    trigger = await event_trigger(flowhook, "retried")
    url = f"/v1/default/triggers/{trigger['id']}/deliveries"
    await send(client, "retried")
    [fresh] = (await flowhook.api.get(url)).json()["data"]
    assert (fresh["attempts"], fresh["nextAttemptAt"]) == (0, fresh["createdAt"])  # due at once
    store = flowhook.services.store
    [read] = [
        delivery
        for delivery in await store.read(lambda conn: event_dispatch.pending(conn, 1000, utcnow()))
        if delivery.trigger_id == trigger["id"]
    ]
    assert read.target is not None
    retry_at = utcnow() + timedelta(minutes=1)
    crashed = {"ok": False, "error": {"type": "SandboxCrashed", "message": "the sandbox worker crashed"}}
    retried = event_dispatch.Settlement(
        read.id, read.target.trigger.revision, "pending", "sandbox_crashed", crashed, retry_at=retry_at
    )
    assert await store.submit(event_dispatch.settle_batches, [retried]) == event_dispatch.Settled(1, 0)
    page = (await flowhook.api.get(url, params={"status": "pending"})).json()
    shaped(openapi, "DeliveryPage", page)
    [item] = page["data"]
    assert {key: item[key] for key in ("status", "cause", "detail", "attempts", "nextAttemptAt")} == {
        "status": "pending",
        "cause": "sandbox_crashed",
        "detail": crashed,
        "attempts": 1,
        "nextAttemptAt": iso(retry_at),
    }
    failed = event_dispatch.Settlement(read.id, read.target.trigger.revision, "failed", "sandbox_crashed", attempts=1)
    assert await store.submit(event_dispatch.settle_batches, [failed]) == event_dispatch.Settled(1, 0)
    [item] = (await flowhook.api.get(url)).json()["data"]
    assert (item["status"], item["attempts"], item["nextAttemptAt"]) == ("failed", 2, None)
