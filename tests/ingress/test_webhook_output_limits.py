"""A webhook's output past the trigger request's limits is a 422 at the door, on SQLite and PostgreSQL.

A passthrough body nested 254 to 1,024 levels deep was a 500 (the store's JSON writer stops at 255
levels), and a 3,000-character user id was a 202 whose invocation PostgreSQL's index then refused, in
the executor, for good.
"""

from __future__ import annotations

import random
import string
from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.anyio

MAX_DEPTH = 64  # documented: docs/mapping.md


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return either_database


def random_id(length: int) -> str:
    """Random, as PostgreSQL compresses an index entry that repeats itself (a long run of one letter fits)."""
    return "".join(random.Random(length).choices(string.ascii_letters + string.digits, k=length))


def deep_body(levels: int) -> bytes:
    """A trigger request `levels` deep: its object, `variables`, then lists."""
    lists = "[" * (levels - 2) + "]" * (levels - 2)
    return b'{"targetUserIds": ["u"], "variables": {"deep": ' + lists.encode() + b"}}"


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 254, 300, 1000])
async def test_a_passthrough_body_nested_too_deep_is_a_mapping_error(flowhook, levels: int) -> None:
    trigger = await flowhook.trigger(mapping={"kind": "passthrough"})
    response = await flowhook.post(trigger, deep_body(levels))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("mapping_error", "the mapping failed: InvalidOutput")
    entry = await flowhook.entry(error["requestId"])
    assert (entry["status"], entry["cause"]) == (422, "mapping_error")
    assert entry["mapping"]["error"]["message"] == f"the result is nested deeper than {MAX_DEPTH} levels"


async def test_a_passthrough_body_nested_up_to_the_limit_is_accepted(flowhook) -> None:
    trigger = await flowhook.trigger(mapping={"kind": "passthrough"})
    response = await flowhook.post(trigger, deep_body(MAX_DEPTH))
    assert response.status_code == 202, response.text


async def test_a_user_id_over_256_characters_is_refused_and_one_of_256_runs(flowhook) -> None:
    flow = await flowhook.card_flow()
    trigger = await flowhook.trigger(flow, mapping={"kind": "passthrough"})
    refused = await flowhook.post(trigger, orjson.dumps({"targetUserIds": ["ok", random_id(3000)]}))
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["errors"] == [
        {"path": "$.targetUserIds[1]", "message": "has 3000 characters, more than the 256 allowed"}
    ]
    longest = random_id(256)
    accepted = await flowhook.post(trigger, orjson.dumps({"targetUserIds": [longest]}))
    assert accepted.status_code == 202, accepted.text
    key = accepted.json()["flowInvocationId"]
    await flowhook.expanded(flow, key)  # the store took it: on PostgreSQL, into every index it is a key of
    invocation = await flowhook.api.get(f"/v1/default/action-flows/{flow['id']}/invocations/{key}?mode=test")
    assert invocation.json()["ignoredUserIds"] == [longest]  # not a test user: recorded, sent nothing
