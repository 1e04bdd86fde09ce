"""A manual start's filter takes segment rules' attribute operators, and a dry run counts the selection against
the limit (the Workbench says whether you exceed it as you select) without starting anything."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from tests.ingress.test_manual_starts import add_customers, run, start, started
from tests.ingress.test_segment_triggers import cohort_segment, put, segment_trigger

from store.tables import bulk_tasks

pytestmark = pytest.mark.anyio

VARIABLES = [{"name": "firstName", "type": "string", "default": "there"}]
OPERATORS = '"eq", "ne", "in", "exists", "gt", "gte", "lt", "lte", "contains"'


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return either_database


@pytest.fixture(scope="module")
async def flow(flowhook) -> dict[str, Any]:
    await add_customers(
        flowhook,
        ("op-gold", {"op_tier": "gold", "op_age": 40, "op_tags": ["vip", "beta"], "op_email": "g@example.com"}),
        ("op-silver", {"op_tier": "silver", "op_age": 30, "op_tags": ["beta"], "op_email": "s@example.org"}),
        ("op-bronze", {"op_tier": "bronze", "op_age": "50", "op_email": "b@example.com"}),
        ("op-none", {"op_age": 20}),
    )
    return await flowhook.flow(variables=VARIABLES, publish=True)


async def selected(flowhook, flow: dict[str, Any], conditions: Any) -> list[str]:
    """Whom a start with this filter starts (among the module's customers)."""
    task = await run(flowhook, flow, {"filter": conditions})
    return sorted(user for users, _, _ in await started(flowhook, task["id"]) for user in users)


@pytest.mark.parametrize(
    ("conditions", "users"),
    [
        # ne: a customer without the attribute matches, as in a segment
        ({"attribute": "op_tier", "op": "ne", "value": "gold"}, ["op-bronze", "op-none", "op-silver"]),
        ({"attribute": "op_tier", "op": "in", "value": ["gold", "bronze", "lead"]}, ["op-bronze", "op-gold"]),
        ({"attribute": "op_age", "op": "gt", "value": 25}, ["op-gold", "op-silver"]),  # "50" is no number
        ({"attribute": "op_tags", "op": "contains", "value": "beta"}, ["op-gold", "op-silver"]),
        ({"attribute": "op_email", "op": "contains", "value": "@example.com"}, ["op-bronze", "op-gold"]),
        ({"attribute": "op_tier", "op": "exists", "value": False}, ["op-none"]),
        (
            [
                {"attribute": "op_tier", "op": "in", "value": ["gold", "silver"]},
                {"attribute": "op_age", "op": "lte", "value": 30},
            ],
            ["op-silver"],
        ),
    ],
)
async def test_a_filter_takes_the_operators_of_segment_rules(flowhook, flow, conditions: Any, users: list[str]) -> None:
    found = await selected(flowhook, flow, conditions)
    assert [user for user in found if user.startswith("op-")] == users


async def test_an_unknown_operator_is_a_422_listing_the_valid_ones(flowhook, flow) -> None:
    response = await start(flowhook, flow, {"filter": [{"attribute": "op_tier", "op": "between", "value": 1}]})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["path"]) == ("invalid_field", "$.filter[0].op")
    assert error["errors"] == [{"path": "$.filter[0].op", "message": f"must be one of {OPERATORS}"}]
    assert OPERATORS in error["message"]


@pytest.mark.parametrize(
    ("conditions", "path"),
    [
        ({"attribute": "op_tier", "op": "in", "value": "gold"}, "$.filter.value"),  # in takes a list
        ({"attribute": "op_age", "op": "gt", "value": True}, "$.filter.value"),
        (
            [{"attribute": "op_tier", "value": "gold"}, {"event": "bought", "op": "count_gte", "value": 1}],
            "$.filter[1]",
        ),
        ({"any": [{"attribute": "op_tier", "op": "eq", "value": "gold"}]}, "$.filter"),
    ],
)
async def test_a_condition_a_segment_would_refuse_or_no_attribute_condition_is_a_422(
    flowhook, flow, conditions: Any, path: str
) -> None:
    response = await start(flowhook, flow, {"filter": conditions})
    assert response.status_code == 422, response.text
    assert (response.json()["error"]["code"], response.json()["error"]["path"]) == ("invalid_field", path)


async def tasks(flowhook) -> int:
    count: int = await flowhook.services.store.read(
        lambda conn: conn.execute(sa.select(sa.func.count()).select_from(bulk_tasks)).scalar_one()
    )
    return count


async def test_a_dry_run_counts_the_selection_against_the_limit_and_starts_nothing(flowhook, flow) -> None:
    before = await tasks(flowhook)
    beta = {"attribute": "op_tags", "op": "contains", "value": "beta"}
    under = await start(flowhook, flow, {"filter": beta, "limit": 2, "dryRun": True})
    assert under.status_code == 200, under.text
    assert under.json() == {"selected": 2, "limit": 2, "exceedsLimit": False}
    over = await start(flowhook, flow, {"filter": beta, "limit": 1, "dryRun": True})
    assert over.status_code == 200, over.text
    assert over.json() == {"selected": 2, "limit": 1, "exceedsLimit": True}
    default = await start(flowhook, flow, {"userIds": ["a", "b", "a"], "dryRun": True})
    assert default.json() == {"selected": 2, "limit": 10_000, "exceedsLimit": False}
    assert await tasks(flowhook) == before
    refused = await start(flowhook, flow, {"filter": beta, "limit": 1})  # what the dry run foretold
    assert refused.status_code == 422 and refused.json()["error"]["selected"] == 2
    assert (await start(flowhook, flow, {"filter": beta, "limit": 2})).status_code == 202


async def test_a_dry_run_checks_the_body_as_a_start_does(flowhook, flow) -> None:
    not_boolean = await start(flowhook, flow, {"userIds": ["a"], "dryRun": "yes"})
    assert not_boolean.status_code == 422 and not_boolean.json()["error"]["path"] == "$.dryRun"
    draft = await flowhook.flow(variables=VARIABLES)
    unpublished = await start(flowhook, draft, {"userIds": ["a"], "dryRun": True})
    assert unpublished.status_code == 409 and unpublished.json()["error"]["code"] == "flow_not_published"
    bad_filter = await start(flowhook, flow, {"filter": {"attribute": "op_tier", "op": "like"}, "dryRun": True})
    assert bad_filter.status_code == 422
    missing = await start(flowhook, flow, {"segmentId": "seg_nope", "dryRun": True})
    assert missing.status_code == 404
    unknown = await start(flowhook, flow, {"existingMembersOf": "trg_nope", "dryRun": True})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "trigger_not_found"


async def test_a_dry_run_counts_a_segment_triggers_existing_members(flowhook) -> None:
    segment = await cohort_segment(flowhook, "dry-run")
    for index in range(3):
        await put(flowhook, f"dry-run-{index}", {"cohort": "dry-run"})
    flow = await flowhook.card_flow("x")
    trigger = await segment_trigger(flowhook, flow, segment, mode="live")  # after them: they are existing members
    before = await tasks(flowhook)
    unbounded = await start(flowhook, flow, {"existingMembersOf": trigger["id"], "dryRun": True})
    assert unbounded.status_code == 200, unbounded.text
    assert unbounded.json() == {"selected": 3, "limit": None, "exceedsLimit": False}
    bounded = await start(flowhook, flow, {"existingMembersOf": trigger["id"], "limit": 2, "dryRun": True})
    assert bounded.json() == {"selected": 3, "limit": 2, "exceedsLimit": True}
    assert await tasks(flowhook) == before
