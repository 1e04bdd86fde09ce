"""POST /v1/{env}/events: authentication, one event or a batch, the stored rows, idempotency by id, limits.

The app runs without the executor (and so without the event dispatcher): the
deliveries an event fires stay pending, as the API wrote them. The module
runs on SQLite, and on PostgreSQL too when FLOWHOOK_TEST_POSTGRES names a server.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from ingress.auth import token_hash
from store.tables import access_tokens, analytics_events, event_deliveries

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return {**either_database, "executor": False}


@pytest.fixture(scope="module")
async def client(flowhook):
    return await flowhook.api_client()


async def listening(flowhook, event_name: str, **body: Any) -> dict[str, Any]:
    """A new flow with an event trigger on `event_name`."""
    trigger: dict[str, Any] = await flowhook.trigger(await flowhook.flow(), type="event", eventName=event_name, **body)
    return trigger


async def send(client, body: Any, env: str = "default") -> Any:
    return await client.post(f"/v1/{env}/events", json=body)


def event(name: str = "checkout-completed", user: str = "u1", **fields: Any) -> dict[str, Any]:
    return {"eventName": name, "endUserId": user, **fields}


async def stored_events(flowhook, *ids: str) -> list[dict[str, Any]]:
    query = sa.select(analytics_events).where(analytics_events.c.id.in_(ids)).order_by(analytics_events.c.seq)
    rows = await flowhook.services.store.read(lambda conn: conn.execute(query).all())
    return [dict(row._mapping) for row in rows]


async def deliveries(flowhook, event_id: str) -> list[dict[str, Any]]:
    query = sa.select(event_deliveries).where(event_deliveries.c.event_id == event_id).order_by(event_deliveries.c.seq)
    rows = await flowhook.services.store.read(lambda conn: conn.execute(query).all())
    return [dict(row._mapping) for row in rows]


def refused(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def test_without_an_access_token_the_events_api_is_401(flowhook) -> None:
    missing = await send(flowhook.sender(), event())
    assert refused(missing) == (401, "unauthorized")
    assert missing.headers["www-authenticate"] == 'Bearer realm="flowhook"'
    assert refused(await send(flowhook.api, event())) == (401, "invalid_token")  # the admin token is no access token


async def test_a_token_without_the_events_role_or_of_another_environment_is_403(flowhook) -> None:
    assert (await flowhook.api.post("/v1/environments", json={"id": "events-elsewhere"})).status_code == 201
    elsewhere = await flowhook.api_client(env="events-elsewhere")
    assert refused(await send(elsewhere, event())) == (403, "environment_mismatch")
    roleless = await flowhook.api_client()
    hashed = token_hash(roleless.token["access_token"])
    await flowhook.services.store.write(
        lambda conn: conn.execute(sa.update(access_tokens).where(access_tokens.c.token_hash == hashed).values(roles=[]))
    )
    assert refused(await send(roleless, event())) == (403, "insufficient_scope")
    assert (await send(elsewhere, event(), env="events-elsewhere")).status_code == 202


async def test_one_event_is_stored_as_a_live_analytics_event_and_fires_its_triggers(flowhook, client) -> None:
    first = await listening(flowhook, "plan-upgraded")
    second = await listening(flowhook, "plan-upgraded", mode="live")
    await listening(flowhook, "plan-upgraded", mode="disabled")
    await listening(flowhook, "plan-downgraded")
    body = event("plan-upgraded", "u-42", properties={"plan": "pro"}, metadata={"source": "crm"})
    response = await send(client, {**body, "timestamp": "2026-03-01T12:00:00+02:00"})
    assert response.status_code == 202, response.text
    [answer] = response.json()["events"]
    assert answer["deliveries"] == 2 and answer["duplicate"] is False
    assert "idempotent-replayed" not in response.headers
    [row] = await stored_events(flowhook, answer["id"])
    assert {key: row[key] for key in ("event_name", "end_user_id", "properties", "metadata", "event_source")} == {
        "event_name": "plan-upgraded",
        "end_user_id": "u-42",
        "properties": {"plan": "pro"},
        "metadata": {"source": "crm"},
        "event_source": "live",
    }
    assert row["flow_id"] is None and row["flow_instance_id"] is None and row["card_instance_id"] is None
    assert row["timestamp"].isoformat() == "2026-03-01T10:00:00+00:00"
    fired = await deliveries(flowhook, answer["id"])
    assert sorted(delivery["trigger_id"] for delivery in fired) == sorted([first["id"], second["id"]])
    assert {(delivery["status"], delivery["hop"]) for delivery in fired} == {("pending", 1)}
    listed = await flowhook.api.get("/v1/default/analytics/events", params={"eventName": "plan-upgraded"})
    assert [item["id"] for item in listed.json()["data"]] == [answer["id"]]


async def test_an_event_no_trigger_listens_for_is_stored_and_fires_nothing(flowhook, client) -> None:
    response = await send(client, event("nobody-listens"))
    assert response.status_code == 202, response.text
    [answer] = response.json()["events"]
    assert answer["deliveries"] == 0
    assert len(await stored_events(flowhook, answer["id"])) == 1
    assert await deliveries(flowhook, answer["id"]) == []


async def test_defaults_properties_metadata_and_the_time_received(flowhook, client) -> None:
    response = await send(client, event("defaults-only"))
    [row] = await stored_events(flowhook, response.json()["events"][0]["id"])
    assert row["properties"] == {} and row["metadata"] == {}
    assert row["timestamp"].tzinfo is not None


async def test_a_batch_is_stored_whole_in_its_order(flowhook, client) -> None:
    trigger = await listening(flowhook, "batch-item")
    body = {"events": [event("batch-item", f"u{index}", properties={"n": index}) for index in range(100)]}
    response = await send(client, body)
    assert response.status_code == 202, response.text
    answers = response.json()["events"]
    assert [answer["deliveries"] for answer in answers] == [1] * 100
    rows = await stored_events(flowhook, *(answer["id"] for answer in answers))
    assert [row["properties"]["n"] for row in rows] == list(range(100))
    by_id = {row["id"]: row["properties"]["n"] for row in rows}
    assert [by_id[answer["id"]] for answer in answers] == list(range(100))
    fired = [await deliveries(flowhook, answer["id"]) for answer in answers[:3]]
    assert [[delivery["trigger_id"] for delivery in found] for found in fired] == [[trigger["id"]]] * 3


async def test_the_same_id_twice_stores_one_event_and_fires_its_triggers_once(flowhook, client) -> None:
    await listening(flowhook, "order-paid")
    await listening(flowhook, "order-paid")
    body = event("order-paid", properties={"order": 7}, id="order-7-paid")
    first = await send(client, body)
    again = await send(client, {**body, "timestamp": "2026-01-01T00:00:00Z"})  # the time is not compared
    assert first.status_code == again.status_code == 202, again.text
    assert again.headers["idempotent-replayed"] == "true"
    [original], [repeat] = first.json()["events"], again.json()["events"]
    assert repeat == {"id": original["id"], "deliveries": 2, "duplicate": True}
    assert original["deliveries"] == 2 and original["duplicate"] is False
    assert len(await stored_events(flowhook, original["id"])) == 1
    assert len(await deliveries(flowhook, original["id"])) == 2
    mixed = await send(client, {"events": [body, event("order-paid", id="order-8-paid")]})
    assert [answer["duplicate"] for answer in mixed.json()["events"]] == [True, False]
    assert "idempotent-replayed" not in mixed.headers


async def test_a_new_trigger_does_not_make_a_retry_fire_again(flowhook, client) -> None:
    body = event("late-listener", id="late-1")
    first = await send(client, body)
    assert first.json()["events"][0]["deliveries"] == 0
    await listening(flowhook, "late-listener")
    again = await send(client, body)
    assert again.json()["events"][0] == {"id": first.json()["events"][0]["id"], "deliveries": 0, "duplicate": True}
    assert await deliveries(flowhook, first.json()["events"][0]["id"]) == []


async def test_ids_are_per_environment(flowhook) -> None:
    assert (await flowhook.api.post("/v1/environments", json={"id": "events-ids"})).status_code == 201
    there = await flowhook.api_client(env="events-ids")
    here = await flowhook.api_client()
    body = event("per-environment", id="shared-id")
    ids = {
        (await send(client, body, env)).json()["events"][0]["id"]
        for client, env in ((here, "default"), (there, "events-ids"))
    }
    assert len(ids) == 2


async def test_an_id_reused_with_another_event_is_409_and_stores_nothing(flowhook, client) -> None:
    assert (await send(client, event("reused", "u1", id="reused-1"))).status_code == 202
    fresh = event("reused", "u2", id="reused-2")
    response = await send(client, {"events": [fresh, event("reused", "someone-else", id="reused-1")]})
    assert refused(response) == (409, "idempotency_conflict")
    assert response.json()["error"]["errors"] == [
        {"path": "$.events[1].id", "message": "already used with another eventName, endUserId, properties or metadata"}
    ]
    retried = await send(client, fresh)
    assert retried.json()["events"][0]["duplicate"] is False  # the first attempt stored nothing


async def test_a_test_event_is_stored_as_one_fires_its_triggers_and_has_its_own_ids(flowhook, client) -> None:
    """`/events/test`: the same body and answers; the event is a test event (its runs are test runs: the
    dispatcher's rule), and an `id` used for a live event is another event there."""
    trigger = await listening(flowhook, "trial-started", mode="live")
    live = await send(client, event("trial-started", id="crm-77"))
    tried = await client.post("/v1/default/events/test", json=event("trial-started", id="crm-77", properties={"x": 1}))
    assert (live.status_code, tried.status_code) == (202, 202), tried.text
    [live_event], [test_event] = live.json()["events"], tried.json()["events"]
    assert test_event["id"] != live_event["id"] and not test_event["duplicate"] and test_event["deliveries"] == 1
    [row] = await stored_events(flowhook, test_event["id"])
    assert (row["event_source"], row["properties"]) == ("test", {"x": 1})
    [delivery] = await deliveries(flowhook, test_event["id"])
    assert (delivery["trigger_id"], delivery["hop"]) == (trigger["id"], 1)


async def test_every_problem_is_listed_with_its_path_and_nothing_is_stored(flowhook, client) -> None:
    before = await flowhook.services.store.read(
        lambda conn: conn.execute(sa.select(sa.func.count()).select_from(analytics_events)).scalar_one()
    )
    body = {
        "events": [
            event("fine"),
            {"endUserId": "u1"},
            event("x" * 129, ""),
            event("bad-time", timestamp="yesterday"),
            event("no-zone", timestamp="2026-03-01T12:00:00"),
            event("typed", properties=[1], metadata="m", id=""),
            event("extra", color="red"),
            event("dup", id="same"),
            event("dup", id="same"),
            event("action-flow-started"),
            event("before-year-one", timestamp="0001-01-01T00:00:00+14:00"),
        ]
    }
    response = await send(client, body)
    assert refused(response) == (422, "validation_error")
    error = response.json()["error"]
    paths = [problem["path"] for problem in error["errors"]]
    assert error["path"] == paths[0] == "$.events[1]"
    for expected in (
        "$.events[2].eventName",
        "$.events[2].endUserId",
        "$.events[3].timestamp",
        "$.events[4].timestamp",
        "$.events[5].properties",
        "$.events[5].metadata",
        "$.events[5].id",
        "$.events[6]",
        "$.events[8].id",
        "$.events[9].eventName",
        "$.events[10].timestamp",
    ):
        assert expected in paths, expected
    assert {"path": "$.events[8].id", "message": "the same id as $.events[7] of this request"} in error["errors"]
    assert all(set(problem) == {"path", "message"} for problem in error["errors"])
    assert paths == sorted(paths, key=lambda path: int(path.split("[")[1].split("]")[0]))
    after = await flowhook.services.store.read(
        lambda conn: conn.execute(sa.select(sa.func.count()).select_from(analytics_events)).scalar_one()
    )
    assert after == before


@pytest.mark.parametrize(
    "name", ["action-flow-started", "action-flow-completed", "card-dismissed", "segment-entered", "segment-exited"]
)
async def test_names_flows_and_segments_emit_are_reserved(client, name) -> None:
    single = await send(client, event(name))
    assert refused(single) == (422, "reserved_event_name")
    assert single.json()["error"]["path"] == "$.eventName"
    batch = await send(client, {"events": [event("mine"), event(name)]})
    assert refused(batch) == (422, "reserved_event_name")
    assert batch.json()["error"]["path"] == "$.events[1].eventName"


async def test_the_single_form_names_paths_from_the_body(client) -> None:
    response = await send(client, {"eventName": "", "endUserId": "u1", "unknown": 1})
    assert refused(response) == (422, "validation_error")
    assert {problem["path"] for problem in response.json()["error"]["errors"]} == {"$", "$.eventName"}


@pytest.mark.parametrize(
    ("body", "path", "status"),
    [
        ({"events": [event()] * 101}, "$.events", 422),
        ({"events": []}, "$.events", 422),
        ({"events": {"eventName": "x"}}, "$.events", 422),
    ],
)
async def test_a_batch_holds_1_to_100_events(client, body, path, status) -> None:
    response = await send(client, body)
    assert refused(response) == (status, "validation_error")
    assert response.json()["error"]["path"] == path


async def test_deep_nesting_and_nul_are_refused_with_their_path(client) -> None:
    deep: Any = "bottom"
    for _ in range(70):
        deep = {"d": deep}
    nested = await send(client, event(properties=deep))
    assert refused(nested) == (422, "invalid_field")
    assert nested.json()["error"]["path"].startswith("$.properties.d.d")
    nul = await send(client, {"events": [event(), event(user="u\u0000")]})
    assert refused(nul) == (422, "invalid_field")
    assert nul.json()["error"]["path"] == "$.events[1].endUserId"


async def test_a_body_that_is_not_a_json_object_is_400(client) -> None:
    for content in (b"not json", b"[1, 2]"):
        response = await client.post(
            "/v1/default/events", content=content, headers={"content-type": "application/json"}
        )
        assert refused(response) == (400, "invalid_json")


async def test_the_openapi_document_describes_the_events_api(flowhook) -> None:
    document = (await flowhook.sender().get("/openapi.json")).json()
    operation = document["paths"]["/v1/{env}/events"]["post"]
    assert operation["security"] == [{"oauth2": ["events"]}]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Events"}
    assert {"202", "401", "403", "409", "422"} <= set(operation["responses"])
    assert document["components"]["schemas"]["Events"]["then"] == {"$ref": "#/components/schemas/Events/$defs/batch"}
