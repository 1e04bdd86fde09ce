"""POST /v1/{env}/action-flows/{flowId}/manual-starts: a published flow for selected existing customers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import sqlalchemy as sa

from store.clock import utcnow
from store.tables import customers, invocations, segment_members, segments

pytestmark = pytest.mark.anyio

VARIABLES = [{"name": "firstName", "type": "string", "default": "there"}, {"name": "amount", "type": "number"}]


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return either_database


@pytest.fixture(scope="module")
async def flow(flowhook) -> dict[str, Any]:
    return await flowhook.flow(variables=VARIABLES, publish=True)


async def write(flowhook, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Rows straight into the store (customers and segments are another module's API)."""
    await flowhook.services.store.write(lambda conn: conn.execute(sa.insert(table), rows))


async def add_customers(flowhook, *profiles: tuple[str, dict[str, Any]]) -> None:
    now = utcnow()
    await write(
        flowhook,
        customers,
        [
            {
                "environment_id": "default",
                "user_id": user,
                "attributes": attributes,
                "created_at": now,
                "updated_at": now,
            }
            for user, attributes in profiles
        ],
    )


async def start(flowhook, flow: dict[str, Any], body: dict[str, Any]) -> Any:
    return await flowhook.api.post(f"/v1/default/action-flows/{flow['id']}/manual-starts", json=body)


async def finished(flowhook, task_id: str, within_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        task: dict[str, Any] = (await flowhook.api.get(f"/v1/default/bulk-tasks/{task_id}")).json()
        if task["status"] in ("done", "failed"):
            return task
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish within {within_s} s")


async def run(flowhook, flow: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    response = await start(flowhook, flow, body)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    task = await finished(flowhook, response.json()["id"])
    assert task["total"] == response.json()["total"]
    return task


async def started(flowhook, task_id: str) -> list[tuple[list[str], dict[str, Any], str]]:
    """The task's invocations: users, variables, mode."""
    query = (
        sa.select(invocations.c.payload, invocations.c.mode)
        .where(invocations.c.request_id == task_id)
        .order_by(invocations.c.seq)
    )
    rows = await flowhook.services.store.read(lambda conn: conn.execute(query).all())
    return [(payload["targetUserIds"], payload.get("variables"), mode) for payload, mode in rows]


async def test_by_ids_starts_existing_customers_and_skips_the_others(flowhook, flow) -> None:
    await add_customers(flowhook, ("man-1", {}), ("man-2", {"plan": "gold"}))
    task = await run(
        flowhook,
        flow,
        {"userIds": ["man-1", "ghost", "man-2", "man-1"], "variables": {"amount": 5}, "metadata": {"by": "ops"}},
    )
    assert (task["kind"], task["status"], task["total"], task["processed"], task["started"]) == (
        "manual",
        "done",
        3,
        3,
        2,
    )
    assert task["skipped"] == [
        {
            "userId": "ghost",
            "code": "no_customer_profile",
            "reason": "no customer profile: manual starts reach existing customers only",
        }
    ]
    assert await started(flowhook, task["id"]) == [
        (["man-1"], {"firstName": "there", "amount": 5}, "live"),
        (["man-2"], {"firstName": "there", "amount": 5}, "live"),
    ]


async def test_by_segment_starts_its_members(flowhook, flow) -> None:
    now = utcnow()
    await add_customers(flowhook, ("seg-1", {}), ("seg-2", {}))
    segment = {"environment_id": "default", "name": "VIP", "rules": {}, "revision": 1, "created_at": now}
    await write(flowhook, segments, [{**segment, "id": "seg_vip", "updated_at": now}])
    await write(
        flowhook,
        segment_members,
        [
            {"segment_id": "seg_vip", "user_id": user, "environment_id": "default", "entered_at": now}
            for user in ("seg-1", "seg-2")
        ],
    )
    task = await run(flowhook, flow, {"segmentId": "seg_vip"})
    assert (task["total"], task["started"], task["skipped"]) == (2, 2, [])
    assert sorted(users for users, _, _ in await started(flowhook, task["id"])) == [["seg-1"], ["seg-2"]]
    missing = await start(flowhook, flow, {"segmentId": "seg_nope"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "segment_not_found"


async def test_by_filter_the_conditions_are_and_combined(flowhook, flow) -> None:
    await add_customers(
        flowhook,
        ("fil-1", {"team": "red", "level": 3, "beta": True}),
        ("fil-2", {"team": "red", "level": 4, "beta": True}),
        ("fil-3", {"team": "blue", "level": 3, "beta": True}),
    )
    one = await run(flowhook, flow, {"filter": {"attribute": "team", "op": "eq", "value": "red"}})
    assert sorted(users for users, _, _ in await started(flowhook, one["id"])) == [["fil-1"], ["fil-2"]]
    conditions = [{"attribute": "level", "op": "eq", "value": 3}, {"attribute": "beta", "value": True}]
    both = await run(flowhook, flow, {"filter": conditions})
    assert sorted(users for users, _, _ in await started(flowhook, both["id"])) == [["fil-1"], ["fil-3"]]


async def test_a_filter_compares_values_as_segment_rules_do(flowhook, flow) -> None:
    """1 equals 1.0 (a profile written by a Python client) but not the string "1"."""
    await add_customers(flowhook, ("eq-int", {"score": 1}), ("eq-float", {"score": 1.0}), ("eq-text", {"score": "1"}))
    by_number = await run(flowhook, flow, {"filter": {"attribute": "score", "value": 1}})
    assert sorted(users for users, _, _ in await started(flowhook, by_number["id"])) == [["eq-float"], ["eq-int"]]
    by_text = await run(flowhook, flow, {"filter": {"attribute": "score", "value": "1"}})
    assert [users for users, _, _ in await started(flowhook, by_text["id"])] == [["eq-text"]]


async def test_a_selection_over_the_limit_is_refused_with_its_size(flowhook, flow) -> None:
    await add_customers(flowhook, *[(f"lim-{n}", {"cohort": "lim"}) for n in range(3)])
    response = await start(flowhook, flow, {"filter": {"attribute": "cohort", "value": "lim"}, "limit": 2.0})
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["selected"], error["limit"]) == ("selection_over_limit", 3, 2)
    assert error["message"] == "the selection has 3 customers; at most 2 can be started at once"
    ids = await start(flowhook, flow, {"userIds": [f"id-{n}" for n in range(10_001)]})
    assert ids.status_code == 422 and ids.json()["error"]["selected"] == 10_001


@pytest.mark.parametrize(
    ("body", "code", "path"),
    [
        ({}, "invalid_field", "$"),
        ({"userIds": ["a"], "segmentId": "s"}, "invalid_field", "$"),
        ({"userIds": []}, "invalid_field", "$.userIds"),
        ({"userIds": ["a"], "limit": 0}, "invalid_field", "$.limit"),
        ({"userIds": ["a"], "limit": 10_001}, "invalid_field", "$.limit"),
        ({"userIds": ["a"], "limit": 2.5}, "invalid_field", "$.limit"),
        ({"userIds": ["a"], "variables": []}, "invalid_field", "$.variables"),
        ({"userIds": ["a"], "nope": 1}, "unknown_field", "$.nope"),
        ({"filter": {"attribute": "a", "op": "between", "value": 1}}, "invalid_field", "$.filter.op"),
        ({"filter": [{"attribute": "", "value": 1}]}, "invalid_field", "$.filter[0].attribute"),
        ({"filter": {"attribute": "a", "value": {"b": 1}}}, "invalid_field", "$.filter.value"),
        ({"filter": []}, "invalid_field", "$.filter"),
    ],
)
async def test_a_body_that_cannot_select_is_a_422(flowhook, flow, body: dict[str, Any], code: str, path: str) -> None:
    response = await start(flowhook, flow, body)
    assert response.status_code == 422, response.text
    assert (response.json()["error"]["code"], response.json()["error"]["path"]) == (code, path)


async def test_variables_are_checked_before_anything_is_stored(flowhook, flow) -> None:
    response = await start(flowhook, flow, {"userIds": ["x"], "variables": {"amount": "five"}})
    assert response.status_code == 422
    assert response.json()["error"]["errors"] == [
        {"path": "$.variables.amount", "message": "variable 'amount' must be a number"}
    ]


async def test_only_published_flows_and_the_admin_token(flowhook, flow) -> None:
    draft = await flowhook.flow(variables=VARIABLES)
    refused = await start(flowhook, draft, {"userIds": ["x"]})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "flow_not_published"
    missing = await start(flowhook, {"id": "flw_nope"}, {"userIds": ["x"]})
    assert missing.status_code == 404
    path = f"/v1/default/action-flows/{flow['id']}/manual-starts"
    assert (await flowhook.sender().post(path, json={"userIds": ["x"]})).status_code == 401
    client = await flowhook.api_client()
    assert (await client.post(path, json={"userIds": ["x"]})).status_code == 401  # an access token is no admin token
