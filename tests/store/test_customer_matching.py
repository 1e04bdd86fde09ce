"""Matching customer profiles: a CSV row's cells (text, read as each attribute's kind) and a manual start's
filter (JSON values, compared as segment rules compare them), on both databases."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from store import Store
from store.bulk_tasks import customers_with, matching_customers
from store.clock import utcnow
from store.tables import customers

pytestmark = pytest.mark.anyio

PROFILES: dict[str, Any] = {
    "int": 1,
    "float": 1.0,
    "text": "1",
    "text-float": "1.0",
    "true": True,
    "big": 9007199254740993,  # 2**53 + 1: a float would round it to its neighbour
    "list": [1.0, "a"],
    "empty": "",
    "null": None,
    "object": {"n": 1},
}


@pytest.fixture
async def profiles(store: Store) -> Store:
    now = utcnow()
    rows = [
        {"environment_id": "default", "user_id": user, "attributes": {"n": value, "team": "a"}}
        for user, value in PROFILES.items()
    ]
    rows.append({"environment_id": "default", "user_id": "missing", "attributes": {"team": "a"}})
    rows.append({"environment_id": "other", "user_id": "elsewhere", "attributes": {"n": 1, "team": "a"}})
    stamped = [{**row, "created_at": now, "updated_at": now} for row in rows]
    await store.write(lambda conn: conn.execute(sa.insert(customers), stamped))
    return store


@pytest.mark.parametrize(
    ("cell", "users"),
    [
        ("1", ["int", "float", "text"]),
        ("1.0", ["int", "float", "text-float"]),
        ("1e0", ["int", "float"]),
        ("true", ["true"]),
        ("1|a", ["list"]),
        ("", ["empty"]),
        ("9007199254740993", ["big"]),
        ("9007199254740992", []),
        ("1" * 400, []),  # beyond a float's range: no number, no OverflowError
        ("null", []),
    ],
)
async def test_a_cell_equals_an_attribute_read_as_its_kind(profiles: Store, cell: str, users: list[str]) -> None:
    found = await profiles.read(lambda conn: matching_customers(conn, "default", ["n", "team"], [(cell, "a")]))
    assert found == {(cell, "a"): users}


async def test_rows_that_read_alike_each_get_the_customer(profiles: Store) -> None:
    """`1` and `1.0` are two rows but one number; both reach the customers whose attribute is 1, once each."""
    wanted = [("1", "a"), ("1.0", "a"), ("1", "a"), ("1", "b")]
    found = await profiles.read(lambda conn: matching_customers(conn, "default", ["n", "team"], wanted, limit=2))
    assert found == {("1", "a"): ["int", "float"], ("1.0", "a"): ["int", "float"], ("1", "b"): []}


@pytest.mark.parametrize(
    ("value", "users"),
    [
        (1, ["int", "float"]),
        (1.0, ["int", "float"]),
        ("1", ["text"]),
        (True, ["true"]),
        ("", ["empty"]),
        (9007199254740993, ["big"]),
        ("a", []),
    ],
)
async def test_a_filter_value_equals_an_attribute_as_segment_rules_say(
    profiles: Store, value: Any, users: list[str]
) -> None:
    conditions = [{"attribute": "n", "op": "eq", "value": value}, {"attribute": "team", "op": "eq", "value": "a"}]
    found = await profiles.read(lambda conn: customers_with(conn, "default", conditions))
    assert found == users
