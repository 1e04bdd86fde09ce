"""The trigger request's limits hold for every mapping kind, in the words every other way in uses.

A user id is a key of the store's indexes: the other ways in (the API start, events, customers, test
users) take 1 to 256 characters, and a mapping's output had no limit at all, so a 3,000-character id was
accepted and then refused by PostgreSQL's index, in the executor. And a JMESPath or passthrough output
had no depth limit, where a JavaScript result has `Limits.max_depth` (64): a body nested 254 to 1,024
levels deep got as far as the store's JSON writer (255 levels at most) and was a 500.
"""

from __future__ import annotations

from typing import Any

import pytest

from mapper import Limits
from mapper.mapping import compile_mapping
from mapper.validation import schema_errors

MAX_DEPTH = Limits().max_depth


def nested(levels: int) -> Any:
    """A list `levels` deep: `[[…]]`."""
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_a_user_id_has_at_most_256_characters_as_everywhere_else() -> None:
    output = {"targetUserIds": ["x" * 256, "y" * 257]}
    assert schema_errors("trigger-request", output) == [
        {"path": "$.targetUserIds[1]", "message": "has 257 characters, more than the 256 allowed"}
    ]
    start = {"flows": [{"target": {"usersById": ["y" * 257]}}]}
    event = {"events": [{"eventName": "e", "endUserId": "y" * 257}]}
    for name, document in (("action-flow-start", start), ("events", event)):
        assert [error["message"] for error in schema_errors(name, document)] == [
            "has 257 characters, more than the 256 allowed"
        ]


JAVASCRIPT = {"kind": "javascript", "source": "function map(r) { return r.body; }"}
SPECS = {
    "passthrough": {"kind": "passthrough"},
    "expression": {"kind": "jmespath", "expression": "{targetUserIds: ['u'], variables: body.variables}"},
    "fields": {"kind": "jmespath", "fields": {"targetUserIds": "'u'", "variables.deep": "body.variables.deep"}},
}


def deep_body(levels: int) -> dict[str, Any]:
    """A request body (and passthrough output) `levels` deep: its object, `variables`, then lists."""
    return {"targetUserIds": ["u"], "variables": {"deep": nested(levels - 2)}}


@pytest.mark.parametrize("kind", SPECS)
@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 254, 300, 1000])
def test_an_output_nested_deeper_than_the_limit_is_refused_as_a_javascript_result_is(kind: str, levels: int) -> None:
    result = compile_mapping(SPECS[kind]).run({"body": deep_body(levels)})
    assert not result.ok and result.output is None and result.error is not None
    assert (result.error["type"], result.error["message"]) == (
        "InvalidOutput",
        f"the result is nested deeper than {MAX_DEPTH} levels",
    )
    javascript = compile_mapping(JAVASCRIPT).run({"body": deep_body(MAX_DEPTH + 1)})
    assert javascript.error is not None
    assert (javascript.error["type"], javascript.error["message"]) == (result.error["type"], result.error["message"])


@pytest.mark.parametrize("kind", SPECS)
def test_an_output_nested_up_to_the_limit_is_accepted(kind: str) -> None:
    result = compile_mapping(SPECS[kind]).run({"body": deep_body(MAX_DEPTH)})
    assert result.ok, result.error
    assert result.output == deep_body(MAX_DEPTH)


def test_the_limit_is_the_mappings_own() -> None:
    body = deep_body(6)
    assert compile_mapping(SPECS["passthrough"], limits=Limits(max_depth=6)).run({"body": body}).ok
    refused = compile_mapping(SPECS["passthrough"], limits=Limits(max_depth=5)).run({"body": body})
    assert refused.error is not None and refused.error["message"] == "the result is nested deeper than 5 levels"
