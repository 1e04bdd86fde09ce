"""/start and /test with `target.usersByAttribute`: customers matched as a CSV row's attributes are, on SQLite and
PostgreSQL; the 202 names whom each entry targeted, and a match of none or of too many is a 422 of the request."""

from __future__ import annotations

from typing import Any

import pytest

from store.expansions import get_invocation

pytestmark = pytest.mark.anyio

VARIABLES = [{"name": "firstName", "type": "string", "default": "there"}]


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return either_database


@pytest.fixture(scope="module")
async def client(flowhook):
    return await flowhook.api_client()


@pytest.fixture
async def flow(flowhook) -> dict[str, Any]:
    return await flowhook.flow(variables=VARIABLES, publish=True)


async def customer(flowhook, user_id: str, **attributes: Any) -> None:
    response = await flowhook.api.put(f"/v1/default/customers/{user_id}", json={"attributes": attributes})
    assert response.status_code in (200, 201), response.text


def by_attribute(key: str | None = None, **attributes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"target": {"usersByAttribute": attributes}}
    if key is not None:
        item["flowInvocationId"] = key
    return item


async def post(client, flow: dict[str, Any], *entries: dict[str, Any], path: str = "start") -> Any:
    return await client.post(f"/v1/default/action-flow/{flow['id']}/{path}", json={"flows": list(entries)})


async def stored_users(flowhook, flow: dict[str, Any], key: str, mode: str = "live") -> list[str] | None:
    found = await flowhook.services.store.read(lambda conn: get_invocation(conn, flow["id"], key, mode))
    return None if found is None else list(found.payload["targetUserIds"])


def problems(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 422, response.text
    body = response.json()["error"]
    assert body["code"] == "validation_error"
    listed: list[dict[str, str]] = body["errors"]
    return listed


async def test_one_match_and_several_matches_start_those_customers(flowhook, client, flow) -> None:
    await customer(flowhook, "one-a", email="ann@example.com", plan="gold")
    await customer(flowhook, "one-b", email="bo@example.com", plan="gold", tier=2)
    await customer(flowhook, "one-c", email="cy@example.com", plan="gold", tier=2.0)
    response = await post(
        client,
        flow,
        by_attribute("one-1", email="ann@example.com"),
        by_attribute("one-2", plan="gold", tier=2),  # every attribute must equal; 2 equals 2.0
    )
    assert response.status_code == 202, response.text
    assert response.json()["flows"] == [
        {"flowInvocationId": "one-1", "targetedUserIds": ["one-a"], "ignoredUserIds": []},
        {"flowInvocationId": "one-2", "targetedUserIds": ["one-b", "one-c"], "ignoredUserIds": []},
    ]
    assert await stored_users(flowhook, flow, "one-1") == ["one-a"]
    assert await stored_users(flowhook, flow, "one-2") == ["one-b", "one-c"]


async def test_values_are_matched_as_csv_cells_are(flowhook, client, flow) -> None:
    """The same matching as a CSV task's `target.attributes.*` cells: a value's text read as the attribute's kind."""
    await customer(flowhook, "cell-a", shoe=42, vip=True, city="Oslo")
    for target in ({"shoe": 42}, {"shoe": "42"}, {"shoe": 42.0, "vip": True}, {"vip": "true", "city": "Oslo"}):
        response = await post(client, flow, {"target": {"usersByAttribute": target}})
        assert response.status_code == 202, (target, response.text)
        assert response.json()["flows"][0]["targetedUserIds"] == ["cell-a"]
    assert [problem["code"] for problem in problems(await post(client, flow, by_attribute(city="oslo")))] == [
        "no_match"
    ]


async def test_no_match_is_a_422_and_nothing_is_started(flowhook, client, flow) -> None:
    response = await post(client, flow, by_attribute("none-1", email="nobody@example.com"))
    assert problems(response) == [
        {
            "path": "$.flows[0].target.usersByAttribute",
            "message": "no customer has every attribute value given",
            "code": "no_match",
        }
    ]
    assert await stored_users(flowhook, flow, "none-1") is None


async def test_more_than_ten_matches_is_a_422_ten_are_started(flowhook, client, flow) -> None:
    for n in range(11):
        await customer(flowhook, f"many-{n:02}", cohort="eleven", team="ten" if n < 10 else "other")
    response = await post(client, flow, by_attribute("many-1", cohort="eleven"))
    assert problems(response) == [
        {
            "path": "$.flows[0].target.usersByAttribute",
            "message": "more than 10 customers have every attribute value given",
            "code": "too_many_matches",
        }
    ]
    assert await stored_users(flowhook, flow, "many-1") is None
    ten = await post(client, flow, by_attribute("many-2", team="ten"))
    assert ten.status_code == 202, ten.text
    assert ten.json()["flows"][0]["targetedUserIds"] == [f"many-{n:02}" for n in range(10)]


async def test_entries_by_id_and_by_attribute_are_accepted_all_or_nothing(flowhook, client, flow) -> None:
    await customer(flowhook, "mix-a", region="north")
    by_id = {"target": {"usersById": ["mix-x"]}, "flowInvocationId": "mix-1"}
    refused = await post(
        client,
        flow,
        by_id,
        by_attribute("mix-2", region="north"),
        by_attribute("mix-3", region="south"),
        {"target": {"usersById": []}},
    )
    assert [(problem["path"], problem.get("code")) for problem in problems(refused)] == [
        ("$.flows[2].target.usersByAttribute", "no_match"),
        ("$.flows[3].target.usersById", None),
    ]
    assert [await stored_users(flowhook, flow, key) for key in ("mix-1", "mix-2", "mix-3")] == [None, None, None]
    accepted = await post(client, flow, by_id, by_attribute("mix-2", region="north"))
    assert accepted.status_code == 202, accepted.text
    assert [each["targetedUserIds"] for each in accepted.json()["flows"]] == [["mix-x"], ["mix-a"]]
    assert await stored_users(flowhook, flow, "mix-2") == ["mix-a"]


async def test_test_mode_ignores_matched_customers_who_are_not_test_users(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES)  # /test runs the draft
    await customer(flowhook, "tst-member", squad="qa")
    await customer(flowhook, "tst-customer", squad="qa")
    added = await flowhook.api.post("/v1/default/test-users", json={"userId": "tst-member", "kind": "external"})
    assert added.status_code == 201, added.text
    response = await post(client, flow, by_attribute("tst-1", squad="qa"), path="test")
    assert response.status_code == 202, response.text
    assert response.json() == {
        "mode": "test",
        "flows": [{"flowInvocationId": "tst-1", "targetedUserIds": ["tst-member"], "ignoredUserIds": ["tst-customer"]}],
    }
    assert await stored_users(flowhook, flow, "tst-1", "test") == ["tst-member", "tst-customer"]


async def test_a_repeat_is_a_replay_though_the_customers_changed(flowhook, client, flow) -> None:
    await customer(flowhook, "rep-a", account="acme", seats=3)
    first = await post(client, flow, by_attribute("rep-1", account="acme", seats=3))
    assert first.status_code == 202, first.text
    await customer(flowhook, "rep-b", account="acme", seats=3)  # would match now too
    again = await post(client, flow, by_attribute("rep-1", account="acme", seats=3.0))  # 3.0 is 3
    assert (again.status_code, again.headers.get("idempotent-replayed")) == (202, "true")
    assert again.json() == first.json()
    await customer(flowhook, "rep-a", account="gone")
    await customer(flowhook, "rep-b", account="gone")  # would match nobody now
    gone = await post(client, flow, by_attribute("rep-1", seats=3, account="acme"))  # attribute order is no matter
    assert (gone.status_code, gone.headers.get("idempotent-replayed")) == (202, "true")
    assert gone.json() == first.json()
    assert await stored_users(flowhook, flow, "rep-1") == ["rep-a"]


async def test_a_key_reused_with_another_target_is_a_conflict(flowhook, client, flow) -> None:
    await customer(flowhook, "cnf-a", org="one")
    first = await post(client, flow, by_attribute("cnf-1", org="one"))
    assert first.status_code == 202, first.text
    for other in (by_attribute("cnf-1", org="two"), {"target": {"usersById": ["cnf-a"]}, "flowInvocationId": "cnf-1"}):
        conflict = await post(client, flow, other)
        assert conflict.status_code == 409, conflict.text
        assert conflict.json()["error"]["errors"] == [
            {
                "path": "$.flows[0].flowInvocationId",
                "message": "flowInvocationId 'cnf-1' was already used with another payload",
            }
        ]


@pytest.mark.parametrize(
    ("target", "path", "message"),
    [
        ({"usersByEmail": ["a@example.com"]}, "$.flows[0].target", "unknown property 'usersByEmail'"),
        ({}, "$.flows[0].target", "has 0 properties, fewer than the 1 required"),
        (
            {"usersById": ["u1"], "usersByAttribute": {"plan": "gold"}},
            "$.flows[0].target",
            "has 2 properties, more than the 1 allowed",
        ),
        ({"usersByAttribute": {}}, "$.flows[0].target.usersByAttribute", "has 0 properties, fewer than the 1 required"),
        ({"usersByAttribute": {"plan": None}}, "$.flows[0].target.usersByAttribute.plan", "must be a boolean or a"),
        ({"usersByAttribute": {"tags": ["a"]}}, "$.flows[0].target.usersByAttribute.tags", "must be a boolean or a"),
        ({"usersByAttribute": {"": 1}}, "$.flows[0].target.usersByAttribute", "property name '' has 0 characters"),
    ],
)
async def test_a_bad_target_is_one_problem_at_its_path(client, flow, target: Any, path: str, message: str) -> None:
    (problem,) = problems(await post(client, flow, {"target": target}))
    assert problem["path"] == path
    assert problem["message"].startswith(message), problem["message"]
