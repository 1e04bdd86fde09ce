"""Customer profiles and segments over HTTP: CRUD, validation, and membership with its enter/exit events.

Every entry and exit must be a `segment-entered` / `segment-exited`
analytics event, and nothing else may write one: a profile written again
unchanged, or a member who still matches an edited segment, emits nothing.
The app is shared by the module, so each test's segments match only its own
customers (a `cohort` attribute of its own). Runs on SQLite, and on
PostgreSQL too when FLOWHOOK_TEST_POSTGRES names a server.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import sqlalchemy as sa

from store import segments
from store.tables import analytics_events, segment_members

pytestmark = pytest.mark.anyio
_cohorts = itertools.count()


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return {**either_database, "executor": False}


@pytest.fixture
def cohort() -> str:
    return f"cohort-{next(_cohorts)}"


async def put(flowhook, user: str, attributes: Any, status: int | None = None) -> dict[str, Any]:
    response = await flowhook.api.put(f"/v1/default/customers/{user}", json={"attributes": attributes})
    if status is not None:
        assert response.status_code == status, response.text
    else:
        assert response.status_code in (200, 201), response.text
    found: dict[str, Any] = response.json()
    return found


async def create_segment(flowhook, name: str, *rules: dict[str, Any], combinator: str = "all") -> dict[str, Any]:
    response = await flowhook.api.post("/v1/default/segments", json={"name": name, "rules": {combinator: list(rules)}})
    assert response.status_code == 201, response.text
    found: dict[str, Any] = response.json()
    return found


def eq(attribute: str, value: Any) -> dict[str, Any]:
    return {"attribute": attribute, "op": "eq", "value": value}


async def segment_events(flowhook, *users: str) -> list[tuple[str, str, str]]:
    """(event name, user, segment id) of every segment event of `users`, in order."""
    query = (
        sa.select(analytics_events)
        .where(
            analytics_events.c.end_user_id.in_(users),
            analytics_events.c.event_name.in_((segments.ENTERED, segments.EXITED)),
        )
        .order_by(analytics_events.c.seq)
    )
    rows = await flowhook.services.store.read(lambda conn: conn.execute(query).all())
    for row in rows:
        assert (row.event_source, row.flow_id, row.environment_id) == ("live", None, "default")
        assert set(row.properties) == {"segmentId", "segmentName"}
    return [(row.event_name, row.end_user_id, row.properties["segmentId"]) for row in rows]


def refused(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


# --- profiles ---


async def test_a_profile_is_created_replaced_read_listed_and_deleted(flowhook) -> None:
    created = await put(flowhook, "cus-ann", {"plan": "pro", "tags": ["a", "b"], "seats": 3}, status=201)
    assert created["userId"] == "cus-ann"
    assert (created["attributes"], created["segmentIds"]) == ({"plan": "pro", "tags": ["a", "b"], "seats": 3}, [])
    replaced = await put(flowhook, "cus-ann", {"plan": "free"}, status=200)
    assert replaced["attributes"] == {"plan": "free"}  # replaced, not merged
    assert replaced["createdAt"] == created["createdAt"]
    read = (await flowhook.api.get("/v1/default/customers/cus-ann")).json()
    assert read == replaced
    assert refused(await flowhook.api.get("/v1/default/customers/cus-nobody")) == (404, "customer_not_found")
    assert (await flowhook.api.delete("/v1/default/customers/cus-ann")).status_code == 204
    assert refused(await flowhook.api.delete("/v1/default/customers/cus-ann")) == (404, "customer_not_found")
    assert (await flowhook.api.get("/v1/default/customers/cus-ann")).status_code == 404


async def test_user_ids_may_hold_slashes(flowhook) -> None:
    await put(flowhook, "org/42/user", {"plan": "pro"}, status=201)
    assert (await flowhook.api.get("/v1/default/customers/org/42/user")).json()["userId"] == "org/42/user"


async def test_customers_are_listed_in_cursor_pages_bound_to_the_listing(flowhook) -> None:
    assert (await flowhook.api.post("/v1/environments", json={"id": "customers-paged"})).status_code == 201
    for user in ("p1", "p2", "p3"):
        response = await flowhook.api.put(f"/v1/customers-paged/customers/{user}", json={"attributes": {}})
        assert response.status_code == 201
    first = (await flowhook.api.get("/v1/customers-paged/customers", params={"limit": 2})).json()
    assert [customer["userId"] for customer in first["data"]] == ["p1", "p2"]
    rest = await flowhook.api.get("/v1/customers-paged/customers", params={"limit": 2, "cursor": first["nextCursor"]})
    assert ([c["userId"] for c in rest.json()["data"]], rest.json()["nextCursor"]) == (["p3"], None)
    elsewhere = await flowhook.api.get("/v1/default/customers", params={"cursor": first["nextCursor"]})
    assert refused(elsewhere) == (400, "invalid_cursor")


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"attributes": []}, "$.attributes"),
        ({"attributes": {"address": {"city": "Wellington"}}}, '$.attributes["address"]'),
        ({"attributes": {"tags": ["a", {"b": 1}]}}, '$.attributes["tags"][1]'),
        ({"attributes": {"tags": list(range(101))}}, '$.attributes["tags"]'),
        ({"attributes": {f"a{index}": index for index in range(101)}}, "$.attributes"),
        ({"attributes": {"x" * 129: 1}}, f'$.attributes["{"x" * 129}"]'),
        ({"attributes": {f"a{index}": "x" * 1000 for index in range(70)}}, "$.attributes"),  # over 64 KiB
        ({}, "$.attributes"),
    ],
)
async def test_invalid_attributes_are_a_422_with_the_path(flowhook, body: dict[str, Any], path: str) -> None:
    response = await flowhook.api.put("/v1/default/customers/cus-invalid", json=body)
    assert refused(response) == (422, "invalid_customer")
    assert response.json()["error"]["path"] == path
    assert (await flowhook.api.get("/v1/default/customers/cus-invalid")).status_code == 404


async def test_unknown_fields_nul_and_overlong_user_ids_are_refused(flowhook) -> None:
    unknown = await flowhook.api.put("/v1/default/customers/cus-x", json={"attributes": {}, "traits": {}})
    assert refused(unknown) == (422, "unknown_field")
    nul = await flowhook.api.put("/v1/default/customers/cus-x", json={"attributes": {"plan": "a\x00b"}})
    assert refused(nul) == (422, "invalid_field")
    overlong = await flowhook.api.put(f"/v1/default/customers/{'u' * 257}", json={"attributes": {}})
    assert refused(overlong) == (400, "invalid_parameter")
    assert refused(await flowhook.api.get("/v1/nowhere/customers/cus-x")) == (404, "environment_not_found")


# --- segments ---


@pytest.mark.parametrize(
    ("rules", "path"),
    [
        ({"all": []}, "$.rules.all"),
        ({"all": [{"attribute": "plan", "op": "like", "value": "p%"}]}, "$.rules.all[0].op"),
        ({"any": [{"all": [{"event": "checkout", "op": "count_gte", "value": "2"}]}]}, "$.rules.any[0].all[0].value"),
        ({"all": [{"event": "segment-entered", "op": "count_gte", "value": 1}]}, "$.rules.all[0].event"),  # reserved
    ],
)
async def test_invalid_segments_are_a_422_with_every_path(flowhook, rules: dict[str, Any], path: str) -> None:
    response = await flowhook.api.post("/v1/default/segments", json={"name": "bad", "rules": rules})
    assert refused(response) == (422, "invalid_segment")
    assert path in [problem["path"] for problem in response.json()["error"]["errors"]]


async def test_a_segment_is_read_listed_edited_and_deleted(flowhook, cohort) -> None:
    segment = await create_segment(flowhook, "Pro", eq("cohort", cohort))
    assert (segment["name"], segment["revision"], segment["memberCount"]) == ("Pro", 1, 0)
    assert segment["evaluation"]["complete"] is True
    url = f"/v1/default/segments/{segment['id']}"
    assert (await flowhook.api.get(url)).json() == segment  # with its evaluation, as the answer showed it
    assert segment["id"] in [found["id"] for found in (await flowhook.api.get("/v1/default/segments")).json()["data"]]
    edited = await flowhook.api.put(url, json={"name": "Pro (edited)", "rules": {"any": [eq("cohort", cohort)]}})
    assert (edited.json()["name"], edited.json()["revision"]) == ("Pro (edited)", 2)
    assert (await flowhook.api.delete(url)).status_code == 204
    assert refused(await flowhook.api.get(url)) == (404, "segment_not_found")
    assert refused(await flowhook.api.put(url, json={"name": "x", "rules": {"all": [eq("a", 1)]}})) == (
        404,
        "segment_not_found",
    )


# --- membership ---


async def test_a_profile_enters_and_exits_as_it_matches_with_an_event_each_time(flowhook, cohort) -> None:
    segment = await create_segment(flowhook, "Pro", eq("cohort", cohort), eq("plan", "pro"))
    user = f"{cohort}-u"
    assert (await put(flowhook, user, {"cohort": cohort, "plan": "free"}))["segmentIds"] == []
    assert await segment_events(flowhook, user) == []
    assert (await put(flowhook, user, {"cohort": cohort, "plan": "pro"}))["segmentIds"] == [segment["id"]]
    assert await segment_events(flowhook, user) == [(segments.ENTERED, user, segment["id"])]
    await put(flowhook, user, {"cohort": cohort, "plan": "pro", "seats": 2})  # still matches: nothing new
    assert len(await segment_events(flowhook, user)) == 1
    assert (await put(flowhook, user, {"cohort": cohort, "plan": "free"}))["segmentIds"] == []
    assert await segment_events(flowhook, user) == [
        (segments.ENTERED, user, segment["id"]),
        (segments.EXITED, user, segment["id"]),
    ]
    query = sa.select(analytics_events.c.properties).where(analytics_events.c.end_user_id == user)
    properties = await flowhook.services.store.read(lambda conn: conn.execute(query).scalars().all())
    assert properties[0] == {"segmentId": segment["id"], "segmentName": "Pro"}


async def test_creating_a_segment_enters_the_customers_who_match_already(flowhook, cohort) -> None:
    for user, plan in ((f"{cohort}-a", "pro"), (f"{cohort}-b", "pro"), (f"{cohort}-c", "free")):
        await put(flowhook, user, {"cohort": cohort, "plan": plan})
    segment = await create_segment(flowhook, "Pro", eq("cohort", cohort), eq("plan", "pro"))
    assert (segment["memberCount"], segment["evaluation"]["entered"], segment["evaluation"]["exited"]) == (2, 2, 0)
    members = (await flowhook.api.get(f"/v1/default/segments/{segment['id']}/members")).json()
    assert [member["userId"] for member in members["data"]] == [f"{cohort}-a", f"{cohort}-b"]
    assert members["nextCursor"] is None


async def test_editing_a_segment_follows_the_seed_exit_stay_enter(flowhook, cohort) -> None:
    """Members who no longer match exit, members who still match stay without an event, new matches enter."""
    leaves, stays, joins = f"{cohort}-leaves", f"{cohort}-stays", f"{cohort}-joins"
    await put(flowhook, leaves, {"cohort": cohort, "plan": "pro", "country": "NZ"})
    await put(flowhook, stays, {"cohort": cohort, "plan": "pro", "country": "AU"})
    await put(flowhook, joins, {"cohort": cohort, "plan": "free", "country": "AU"})
    segment = await create_segment(flowhook, "Pro", eq("cohort", cohort), eq("plan", "pro"))
    edited = await flowhook.api.put(
        f"/v1/default/segments/{segment['id']}",
        json={"name": "Australia", "rules": {"all": [eq("cohort", cohort), eq("country", "AU")]}},
    )
    assert edited.status_code == 200, edited.text
    evaluation = edited.json()["evaluation"]
    assert (evaluation["revision"], evaluation["entered"], evaluation["exited"], evaluation["complete"]) == (
        2,
        1,
        1,
        True,
    )
    assert evaluation["customersExamined"] >= 3
    assert await segment_events(flowhook, leaves, stays, joins) == [
        (segments.ENTERED, leaves, segment["id"]),
        (segments.ENTERED, stays, segment["id"]),
        (segments.EXITED, leaves, segment["id"]),
        (segments.ENTERED, joins, segment["id"]),
    ]
    members = (await flowhook.api.get(f"/v1/default/segments/{segment['id']}/members")).json()["data"]
    assert sorted(member["userId"] for member in members) == [joins, stays]


async def test_a_segment_evaluates_its_customers_a_chunk_per_transaction(flowhook, cohort, monkeypatch) -> None:
    monkeypatch.setattr(segments, "CHUNK", 2)
    users = [f"{cohort}-{index}" for index in range(5)]
    for user in users:
        await put(flowhook, user, {"cohort": cohort})
    segment = await create_segment(flowhook, "Chunked", eq("cohort", cohort))
    assert (segment["memberCount"], segment["evaluation"]["entered"]) == (5, 5)
    url = f"/v1/default/segments/{segment['id']}/members"
    page = (await flowhook.api.get(url, params={"limit": 3})).json()
    rest = (await flowhook.api.get(url, params={"limit": 3, "cursor": page["nextCursor"]})).json()
    assert [member["userId"] for member in page["data"] + rest["data"]] == users
    other = await create_segment(flowhook, "Other", eq("cohort", "none"))
    elsewhere = await flowhook.api.get(
        f"/v1/default/segments/{other['id']}/members", params={"cursor": page["nextCursor"]}
    )
    assert refused(elsewhere) == (400, "invalid_cursor")


async def test_an_evaluation_of_an_older_revision_stops_as_superseded(flowhook, cohort) -> None:
    segment = await create_segment(flowhook, "Pro", eq("cohort", cohort))
    await flowhook.api.put(
        f"/v1/default/segments/{segment['id']}", json={"name": "Pro", "rules": {"all": [eq("cohort", cohort)]}}
    )
    chunk = await flowhook.services.store.write(
        lambda conn: segments.evaluate_chunk(conn, segment["id"], 1, None, limit=10)
    )
    assert (chunk.evaluation, chunk.advanced) == (None, False)


async def test_event_conditions_count_custom_events_sent_to_the_api(flowhook, cohort) -> None:
    segment = await create_segment(
        flowhook, "Buyers", eq("cohort", cohort), {"event": f"{cohort}-checkout", "op": "count_gte", "value": 2}
    )
    buyer, stranger = f"{cohort}-buyer", f"{cohort}-stranger"
    await put(flowhook, buyer, {"cohort": cohort})
    client = await flowhook.api_client()
    for _ in range(2):
        sent = await client.post("/v1/default/events", json={"eventName": f"{cohort}-checkout", "endUserId": buyer})
        assert sent.status_code == 202, sent.text
        sent = await client.post("/v1/default/events", json={"eventName": f"{cohort}-checkout", "endUserId": stranger})
        assert sent.status_code == 202, sent.text
    assert await segment_events(flowhook, buyer, stranger) == [(segments.ENTERED, buyer, segment["id"])]
    # a user without a profile is no customer; its events count once it has one
    assert (await put(flowhook, stranger, {"cohort": cohort}))["segmentIds"] == [segment["id"]]


async def test_test_events_count_for_no_segment(flowhook, cohort) -> None:
    segment = await create_segment(
        flowhook, "Buyers", eq("cohort", cohort), {"event": f"{cohort}-checkout", "op": "count_gte", "value": 1}
    )
    tester = f"{cohort}-tester"
    await put(flowhook, tester, {"cohort": cohort})
    client = await flowhook.api_client()
    sent = await client.post("/v1/default/events/test", json={"eventName": f"{cohort}-checkout", "endUserId": tester})
    assert sent.status_code == 202, sent.text
    assert await segment_events(flowhook, tester) == []
    assert (await put(flowhook, tester, {"cohort": cohort, "seen": True}))["segmentIds"] == []  # nor when re-evaluated
    live = await client.post("/v1/default/events", json={"eventName": f"{cohort}-checkout", "endUserId": tester})
    assert live.status_code == 202, live.text
    assert await segment_events(flowhook, tester) == [(segments.ENTERED, tester, segment["id"])]


async def test_deleting_a_customer_exits_its_segments_with_events(flowhook, cohort) -> None:
    first = await create_segment(flowhook, "One", eq("cohort", cohort))
    second = await create_segment(flowhook, "Two", eq("cohort", cohort))
    user = f"{cohort}-gone"
    await put(flowhook, user, {"cohort": cohort})
    assert (await flowhook.api.delete(f"/v1/default/customers/{user}")).status_code == 204
    exits = [event for event in await segment_events(flowhook, user) if event[0] == segments.EXITED]
    assert sorted(exits) == sorted([(segments.EXITED, user, first["id"]), (segments.EXITED, user, second["id"])])
    assert (await flowhook.api.get(f"/v1/default/segments/{first['id']}")).json()["memberCount"] == 0


async def test_deleting_a_segment_removes_its_members_without_exit_events(flowhook, cohort) -> None:
    user = f"{cohort}-member"
    await put(flowhook, user, {"cohort": cohort})
    segment = await create_segment(flowhook, "Temporary", eq("cohort", cohort))
    assert (await flowhook.api.delete(f"/v1/default/segments/{segment['id']}")).status_code == 204
    assert await segment_events(flowhook, user) == [(segments.ENTERED, user, segment["id"])]
    query = sa.select(sa.func.count()).where(segment_members.c.segment_id == segment["id"])
    assert await flowhook.services.store.read(lambda conn: conn.execute(query).scalar_one()) == 0
    assert (await put(flowhook, user, {"cohort": cohort}))["segmentIds"] == []
