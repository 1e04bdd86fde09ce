"""Segment rules: whether a customer belongs in a segment, from its profile attributes and event counts.

Pure (no database, no I/O), so that the store decides membership in the
transaction that changes a profile or stores an event, and the rules are
testable alone. A segment's rules are a group, `{"all": [...]}` or
`{"any": [...]}`, of attribute conditions, event conditions and nested
groups (`schemas/segment.schema.json`, with the bounds below).

Comparisons are by JSON type: `1` equals `1.0` but not `"1"` or `true`;
ordering (`gt`, `gte`, `lt`, `lte`) compares two numbers or two strings
(ISO-8601 dates written alike order as text) and is false for anything else.
A missing attribute (or a null one) matches only `ne` and `exists: false`;
`in` takes a scalar attribute, `contains` an array's item or a substring.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from mapper.validation import schema_errors

SCHEMA = "segment"
MAX_DEPTH = 4  # a group within a group within …: the top-level group is depth 1
MAX_CONDITIONS = 50  # conditions in all, at every depth
Problem = dict[str, str]
Rule = dict[str, Any]


def segment_problems(body: Any) -> list[Problem]:
    """Every problem of a segment body (`{name, rules}`), each with its path; [] when it can be saved."""
    problems = schema_errors(SCHEMA, body)
    if problems or not isinstance(body, dict):
        return problems
    conditions = list(_walk(body["rules"], "$.rules", 1, problems))
    if len(conditions) > MAX_CONDITIONS:
        problems.append({"path": "$.rules", "message": f"has {len(conditions)} conditions, more than {MAX_CONDITIONS}"})
    return problems


def conditions(rules: Rule) -> Iterator[tuple[str, Rule]]:
    """Every condition of saved `rules` (not the groups), with its path."""
    return _walk(rules, "$.rules", 1, [])


def _walk(group: Rule, path: str, depth: int, problems: list[Problem]) -> Iterator[tuple[str, Rule]]:
    if depth > MAX_DEPTH:
        problems.append({"path": path, "message": f"groups nest deeper than {MAX_DEPTH} levels"})
        return
    ((combinator, rules),) = group.items()
    for index, rule in enumerate(rules):
        where = f"{path}.{combinator}[{index}]"
        if "all" in rule or "any" in rule:
            yield from _walk(rule, where, depth + 1, problems)
        else:
            yield where, rule


def event_names(rules: Rule) -> frozenset[str]:
    """The events whose counts `rules` need."""
    return frozenset(rule["event"] for _, rule in conditions(rules) if "event" in rule)


def matches(rules: Rule, attributes: Mapping[str, Any], counts: Mapping[str, int]) -> bool:
    """Whether a customer with `attributes`, having sent each event `counts[name]` times, is in the segment."""
    ((combinator, items),) = rules.items()
    found = (_rule_matches(rule, attributes, counts) for rule in items)
    return all(found) if combinator == "all" else any(found)


def _rule_matches(rule: Rule, attributes: Mapping[str, Any], counts: Mapping[str, int]) -> bool:
    if "all" in rule or "any" in rule:
        return matches(rule, attributes, counts)
    if "event" in rule:
        return bool(counts.get(rule["event"], 0) >= rule["value"])
    return _attribute_matches(rule["op"], attributes.get(rule["attribute"]), rule.get("value"))


def _attribute_matches(op: str, actual: Any, expected: Any) -> bool:
    if op == "exists":
        return (actual is not None) == (expected is not False)
    if op == "eq":
        return same_value(actual, expected)
    if op == "ne":
        return not same_value(actual, expected)
    if op == "in":
        return any(same_value(actual, option) for option in expected)
    if op == "contains":
        if isinstance(actual, list):
            return any(same_value(item, expected) for item in actual)
        return isinstance(actual, str) and isinstance(expected, str) and expected in actual
    return _ordered(op, actual, expected)


def _ordered(op: str, actual: Any, expected: Any) -> bool:
    kind = _kind(actual)
    if kind not in ("number", "string") or kind != _kind(expected):
        return False
    if op == "gt":
        return bool(actual > expected)
    if op == "gte":
        return bool(actual >= expected)
    if op == "lt":
        return bool(actual < expected)
    return bool(actual <= expected)


def same_value(actual: Any, expected: Any) -> bool:
    """Equality by JSON type, for `eq`, `ne`, `in` and a list's `contains` (manual-start filters are decided by
    `matches` too: store.bulk_tasks.customers_with)."""
    return _kind(actual) == _kind(expected) and bool(actual == expected)


def _kind(value: Any) -> str:
    """The JSON type: `True == 1` in Python, not in a segment."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "null" if value is None else "other"
