"""Save-time checks report every problem with its JSON path, not just the first.

`schema_problems` runs a schema from `schemas/` with `jsonschema` (save time
is not a hot path) and points each error at the field concerned: a missing
or unknown property is reported at that property's path, not at its parent.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import jsonschema

from mapper.jsonpath import format_path
from mapper.resources import load_schema
from mapper.validation import bounded_message

Problem = dict[str, str]  # {"path": "$.steps[0].id", "message": "…"}


def problem(path: Sequence[str | int], message: str) -> Problem:
    return {"path": format_path(path), "message": message}


@functools.cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_problems(name: str, instance: Any) -> list[Problem]:
    """Every violation of `schemas/<name>.schema.json`, in document order, without repeats."""
    found: dict[tuple[str, str], Problem] = {}
    errors = sorted(_validator(name).iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        for item in _explain(error):
            found.setdefault((item["path"], item["message"]), item)
    return list(found.values())


def _explain(error: jsonschema.ValidationError) -> Iterable[Problem]:
    path = list(error.absolute_path)
    if error.validator == "required":
        for name in error.validator_value:
            if name not in error.instance:
                yield problem([*path, name], f"{name} is required")
    elif error.validator == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        for name in error.instance:
            if name not in known:
                yield problem([*path, name], f"unknown field {name!r}; allowed: {', '.join(sorted(known))}")
    elif error.validator == "dependentRequired":
        for name, needs in error.validator_value.items():
            for needed in needs:
                if name in error.instance and needed not in error.instance:
                    yield problem([*path, needed], f"{needed} is required with {name}")
    elif error.validator == "oneOf" and isinstance(error.instance, dict):
        choices = [" + ".join(option.get("required", [])) for option in error.validator_value]
        yield problem(path, f"give exactly one of: {', '.join(choices)}")
    elif error.validator == "pattern":
        expected = error.schema.get("description", f"text matching {error.validator_value}")
        yield problem(path, bounded_message(f"{repr(error.instance)} is not valid: {expected}"))
    else:
        yield problem(path, bounded_message(error.message))
