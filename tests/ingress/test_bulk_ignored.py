"""The test sender (…/csv-task/test) reports, per started row, the users it ignored (not test users), as `/test`
answers `ignoredUserIds`: a row whose every user is ignored is started (its invocation exists) and says so."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from tests.ingress.test_bulk_csv import finished, run, upload

from store.bulk_tasks import MAX_IGNORED_LISTED
from store.clock import utcnow
from store.tables import customers

pytestmark = pytest.mark.anyio

VARIABLES = [{"name": "firstName", "type": "string", "required": True}]


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return either_database


@pytest.fixture(scope="module")
async def client(flowhook):
    for user in ("tu-1", "tu-2"):
        response = await flowhook.api.post("/v1/default/test-users", json={"userId": user})
        assert response.status_code == 201, response.text
    return await flowhook.api_client()


async def test_each_started_row_names_the_users_it_ignored(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES)
    text = (
        "payload.target.usersById,payload.variables.firstName\n"
        "not-a-tester|also-not,X\n"  # row 2: nobody is a test user
        "tu-1|stranger|tu-1,Y\n"  # row 3: one of two is
        "tu-1|tu-2,Z\n"  # row 4: both are
        "stranger,\n"  # row 5: skipped (firstName is required): nothing ignored, nothing started
    )
    task = await run(client, flow, text, test=True)
    assert (task["kind"], task["total"], task["processed"], task["started"]) == ("csv-test", 4, 4, 3)
    assert [skip["row"] for skip in task["skipped"]] == [5]
    assert task["ignored"] == [
        {"row": 2, "userIds": ["not-a-tester", "also-not"], "count": 2},
        {"row": 3, "userIds": ["stranger"], "count": 1},
    ]
    # As /test answers the same entry.
    answer = await client.post(
        f"/v1/default/action-flow/{flow['id']}/test",
        json={"flows": [{"target": {"usersById": ["tu-1", "stranger"]}, "payload": {"variables": {"firstName": "Y"}}}]},
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["flows"][0]["ignoredUserIds"] == ["stranger"]


async def test_customers_matched_by_attributes_are_reported_too(flowhook, client) -> None:
    now = utcnow()
    rows = [
        {
            "environment_id": "default",
            "user_id": user,
            "attributes": {"team": "ign"},
            "created_at": now,
            "updated_at": now,
        }
        for user in ("tu-2", "ign-customer")
    ]
    await flowhook.services.store.write(lambda conn: conn.execute(sa.insert(customers), rows))
    flow = await flowhook.flow(variables=VARIABLES)
    task = await run(client, flow, "target.attributes.team,payload.variables.firstName\nign,A\n", test=True)
    assert (task["started"], task["ignored"]) == (1, [{"row": 2, "userIds": ["ign-customer"], "count": 1}])


async def test_a_row_lists_the_first_ignored_users_and_counts_them_all(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES)
    users = [f"stranger-{n}" for n in range(MAX_IGNORED_LISTED + 5)]
    task = await run(
        client, flow, f"payload.target.usersById,payload.variables.firstName\n{'|'.join(users)},A\n", test=True
    )
    assert task["ignored"] == [{"row": 2, "userIds": users[:MAX_IGNORED_LISTED], "count": len(users)}]


async def test_a_repeated_row_starts_nothing_and_ignores_nobody_again(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES)
    text = "payload.target.usersById,payload.variables.firstName,flowInvocationId\nstranger,A,ign-once\n"
    first = await run(client, flow, text, test=True)
    assert first["ignored"] == [{"row": 2, "userIds": ["stranger"], "count": 1}]
    again = await run(client, flow, text, test=True)
    assert (again["started"], again["ignored"], again["skipped"][0]["code"]) == (0, [], "already_started")


async def test_live_tasks_have_no_ignored_list(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    response = await upload(client, flow, "target.attributes.team,payload.variables.firstName\nign,A\n")
    task = await finished(client, response.json()["id"])
    assert task["started"] == 1 and "ignored" not in task
