"""Check a document against a schema from `schemas/`: every violation, with its path and reason.

The schema file is the contract; `jsonschema` checks that the file itself is
a valid 2020-12 schema once, and the compiled `jsonschema-rs` validator runs
on the hot path (about 0.2 µs for a valid output) while still reporting every
violation with its path.

Messages are written here from each error's kind (`has 10001 items, more
than the 10000 allowed`) rather than taken from jsonschema-rs, whose messages
start with the offending value's JSON: a list of 10,001 ids made a message of
ids, and cutting it to size cut off the reason. A message names limits,
types, the schema's own words and property names (cut short), never the
value, so the webhook's 422 can carry it (an output holds what the request
and the mapping's source held), and none is longer than MAX_MESSAGE_CHARS.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jsonschema
import jsonschema_rs
import orjson

from mapper.jsonpath import format_path
from mapper.resources import load_schema

MAX_MESSAGE_CHARS = 300
MAX_NAME_CHARS = 40  # a property name quoted in a message
MAX_NAMES = 5  # unknown properties named in one message

_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),  # before int: True is an int to Python
    (int, "number"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)
_KIND = jsonschema_rs.ValidationErrorKind


@functools.cache
def compiled_schema(name: str) -> jsonschema_rs.Draft202012Validator:
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema_rs.Draft202012Validator(schema)


def schema_errors(name: str, instance: Any) -> list[dict[str, str]]:
    """Every violation of schema `name` as `{path, message}`; [] when valid."""
    validator = compiled_schema(name)
    if validator.is_valid(instance):
        return []
    schema = load_schema(name)
    return [
        {"path": format_path(error.instance_path), "message": bounded_message(_reason(error, schema))}
        for error in validator.iter_errors(instance)
    ]


def _reason(error: jsonschema_rs.ValidationError, schema: dict[str, Any]) -> str:
    """Why `error`'s value is refused, from its kind; `schema` is the whole schema the error's path is in."""
    value = error.instance
    match error.kind:
        case _KIND.Type(types):
            return f"must be {' or '.join(_a(name) for name in types)}, not {_a(_json_type(value))}"
        case _KIND.MaxItems(limit) | _KIND.MaxLength(limit) | _KIND.MaxProperties(limit):
            return f"has {_count(value)}, more than the {limit} allowed"
        case _KIND.MinItems(limit) | _KIND.MinLength(limit) | _KIND.MinProperties(limit):
            return f"has {_count(value)}, fewer than the {limit} required"
        case _KIND.Pattern(pattern):
            return f"does not match the pattern {pattern}"
        case _KIND.Required(name):
            return f"required property {_name(str(name))} is missing"
        case _KIND.AdditionalProperties(unexpected):
            return _unknown_properties(unexpected, _node(schema, error.schema_path[:-1]))
        case _KIND.Constant(expected):
            return f"must be {_json(expected)}"
        case _KIND.Enum(options):
            return f"must be one of {', '.join(_json(option) for option in options)}"
        case _KIND.PropertyNames(name_error):
            return f"property name {_name(str(name_error.instance))} {_reason(name_error, schema)}"
        case _KIND.OneOfNotValid(context):
            nearest = min(context, key=len)  # the shape it misses by the fewest problems
            why = "; ".join(f"{format_path(sub.instance_path)}: {_reason(sub, schema)}" for sub in nearest)
            return f"matches none of the {len(context)} allowed shapes; nearest: {why}"
    return error.message  # a kind these schemas do not use: jsonschema-rs's words, cut in the middle


def _unknown_properties(names: Sequence[str], node: dict[str, Any]) -> str:
    listed = ", ".join(_name(name) for name in names[:MAX_NAMES])
    more = f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else ""
    allowed = sorted(node.get("properties", {}))
    return (
        f"unknown propert{'y' if len(names) == 1 else 'ies'} {listed}{more}"
        f"; allowed: {', '.join(allowed) if allowed else 'none'}"
    )


def _node(schema: dict[str, Any], location: Sequence[str | int]) -> dict[str, Any]:
    """The subschema at `location` (an error's schema path, $defs already resolved by jsonschema-rs)."""
    node: Any = schema
    for step in location:
        node = node[step]
    return node if isinstance(node, dict) else {}


def _json_type(value: Any) -> str:
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), "null")


def _a(type_name: str) -> str:
    """`a string`, `an object`, `null`: messages read as English."""
    if type_name == "null":
        return type_name
    return f"{'an' if type_name[0] in 'aeiou' else 'a'} {type_name}"


def _count(value: Any) -> str:
    """`1 item`, `10001 items`, `0 characters`, `2 properties`: the size a length keyword counted."""
    if isinstance(value, str):
        one, many = "character", "characters"
    elif isinstance(value, dict):
        one, many = "property", "properties"
    else:
        one, many = "item", "items"
    return f"{len(value)} {one if len(value) == 1 else many}"


def _name(name: str) -> str:
    return repr(name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 1] + "…")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def bounded_message(message: str) -> str:
    """Cut from the middle: validators' messages quote the value first and give the reason last."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    head = MAX_MESSAGE_CHARS // 3
    return message[:head] + "…" + message[-(MAX_MESSAGE_CHARS - head - 1) :]
