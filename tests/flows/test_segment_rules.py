"""flows.segment_rules alone: which bodies can be saved (every problem with its path) and what rules match."""

from __future__ import annotations

from typing import Any

import pytest

from flows.segment_rules import MAX_CONDITIONS, MAX_DEPTH, conditions, event_names, matches, segment_problems


def body(*rules: dict[str, Any], combinator: str = "all") -> dict[str, Any]:
    return {"name": "Pro users", "rules": {combinator: list(rules)}}


def attribute(name: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"attribute": name, "op": op} | ({} if value is None else {"value": value})


def paths(found: list[dict[str, str]]) -> list[str]:
    return [problem["path"] for problem in found]


def test_a_valid_body_has_no_problems() -> None:
    nested = {"any": [attribute("country", "in", ["NZ", "AU"]), {"event": "checkout", "op": "count_gte", "value": 2}]}
    assert segment_problems(body(attribute("plan", "eq", "pro"), attribute("email", "exists"), nested)) == []


@pytest.mark.parametrize(
    ("rules", "path"),
    [
        ({"all": []}, "$.rules.all"),  # an empty group
        ({"all": [attribute("plan", "eq", "pro")], "any": [attribute("plan", "eq", "pro")]}, "$.rules"),  # two at once
        ({"none": [attribute("plan", "eq", "pro")]}, "$.rules"),
        ({"all": [attribute("plan", "equals", "pro")]}, "$.rules.all[0].op"),
        ({"all": [attribute("plan", "eq")]}, "$.rules.all[0]"),  # eq needs a value
        ({"all": [attribute("plan", "eq", ["pro"])]}, "$.rules.all[0].value"),  # eq takes a scalar
        ({"all": [attribute("plan", "in", "pro")]}, "$.rules.all[0].value"),  # in takes an array
        ({"all": [attribute("age", "gt", True)]}, "$.rules.all[0].value"),  # ordering: a number or a string
        ({"all": [attribute("email", "exists", "yes")]}, "$.rules.all[0].value"),
        ({"all": [attribute("", "eq", "pro")]}, "$.rules.all[0].attribute"),
        ({"all": [{"event": "checkout", "op": "count_gte", "value": 0}]}, "$.rules.all[0].value"),
        ({"all": [{"event": "checkout", "op": "count_lt", "value": 1}]}, "$.rules.all[0].op"),
        ({"all": [{"any": [{"attribute": "plan", "op": "eq", "value": "pro", "extra": 1}]}]}, "$.rules.all[0].any[0]"),
    ],
)
def test_each_problem_is_reported_with_its_path(rules: dict[str, Any], path: str) -> None:
    assert path in paths(segment_problems({"name": "s", "rules": rules}))


def test_the_name_is_required_and_bounded() -> None:
    assert paths(segment_problems({"rules": {"all": [attribute("a", "exists")]}})) == ["$"]
    assert paths(segment_problems(body(attribute("a", "exists")) | {"name": "x" * 201})) == ["$.name"]


def test_groups_nest_at_most_max_depth_levels() -> None:
    rules: dict[str, Any] = {"all": [attribute("a", "exists")]}
    for _ in range(MAX_DEPTH - 1):
        rules = {"all": [rules]}
    assert segment_problems({"name": "deep", "rules": rules}) == []
    deeper = {"name": "deeper", "rules": {"any": [rules]}}
    assert paths(segment_problems(deeper)) == ["$.rules.any[0]" + ".all[0]" * (MAX_DEPTH - 1)]


def test_conditions_are_bounded_in_all() -> None:
    group = {"all": [attribute(f"a{index}", "exists") for index in range(MAX_CONDITIONS // 2 + 1)]}
    found = segment_problems({"name": "big", "rules": {"any": [group, group]}})
    assert [problem["path"] for problem in found] == ["$.rules"]
    assert f"more than {MAX_CONDITIONS}" in found[0]["message"]


def test_conditions_and_event_names_walk_every_group() -> None:
    rules = {"all": [attribute("a", "exists"), {"any": [{"event": "x", "op": "count_gte", "value": 1}]}]}
    assert [path for path, _ in conditions(rules)] == ["$.rules.all[0]", "$.rules.all[1].any[0]"]
    assert event_names(rules) == {"x"}


@pytest.mark.parametrize(
    ("condition", "attributes", "expected"),
    [
        (attribute("plan", "eq", "pro"), {"plan": "pro"}, True),
        (attribute("plan", "eq", "pro"), {"plan": "free"}, False),
        (attribute("plan", "eq", "pro"), {}, False),
        (attribute("seats", "eq", 1), {"seats": 1.0}, True),  # numbers are numbers
        (attribute("seats", "eq", 1), {"seats": "1"}, False),  # by JSON type
        (attribute("seats", "eq", 1), {"seats": True}, False),  # True == 1 in Python only
        (attribute("beta", "eq", True), {"beta": 1}, False),
        (attribute("plan", "ne", "pro"), {}, True),  # a missing attribute is not "pro"
        (attribute("plan", "ne", "pro"), {"plan": "pro"}, False),
        (attribute("country", "in", ["NZ", "AU"]), {"country": "AU"}, True),
        (attribute("country", "in", ["NZ", "AU"]), {"country": ["AU"]}, False),  # `in` takes a scalar
        (attribute("email", "exists"), {"email": "a@b.c"}, True),
        (attribute("email", "exists"), {"email": None}, False),
        (attribute("email", "exists", False), {}, True),
        (attribute("age", "gt", 17), {"age": 18}, True),
        (attribute("age", "gte", 18), {"age": 18}, True),
        (attribute("age", "lt", 18), {"age": 18}, False),
        (attribute("age", "lte", 18), {"age": 18}, True),
        (attribute("age", "gt", 17), {"age": "18"}, False),  # no ordering across types
        (attribute("signedUp", "gte", "2024-03-01"), {"signedUp": "2024-03-02T10:00:00Z"}, True),
        (attribute("tags", "contains", "vip"), {"tags": ["new", "vip"]}, True),
        (attribute("tags", "contains", "vip"), {"tags": ["new"]}, False),
        (attribute("email", "contains", "@example."), {"email": "jo@example.com"}, True),
        (attribute("email", "contains", 1), {"email": "1"}, False),
    ],
)
def test_attribute_conditions(condition: dict[str, Any], attributes: dict[str, Any], expected: bool) -> None:
    assert matches({"all": [condition]}, attributes, {}) is expected


def test_event_conditions_count_the_customers_events() -> None:
    rules = {"all": [{"event": "checkout", "op": "count_gte", "value": 2}]}
    assert not matches(rules, {}, {})
    assert not matches(rules, {}, {"checkout": 1})
    assert matches(rules, {}, {"checkout": 2})


def test_all_and_any_combine_nested_groups() -> None:
    pro = attribute("plan", "eq", "pro")
    nz = attribute("country", "eq", "NZ")
    rules = {"any": [{"all": [pro, nz]}, attribute("vip", "eq", True)]}
    assert matches(rules, {"plan": "pro", "country": "NZ"}, {})
    assert not matches(rules, {"plan": "pro", "country": "AU"}, {})
    assert matches(rules, {"vip": True}, {})
