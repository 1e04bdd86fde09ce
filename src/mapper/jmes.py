"""No-code mappings: JMESPath expressions over the request."""

from __future__ import annotations

import math
from typing import Any

import jmespath
from jmespath import visitor
from jmespath.exceptions import JMESPathError, ParseError

from mapper.errors import MappingSpecError
from mapper.result import Produced, error_info

_INTERPRETER = visitor.TreeInterpreter()


def _compile(expression: str, where: str) -> Any:
    try:
        return jmespath.compile(expression).parsed
    except ParseError as error:
        column = getattr(error, "lex_position", None)
        raise MappingSpecError(
            f"invalid JMESPath expression: {error.msg}"
            if hasattr(error, "msg")
            else f"invalid JMESPath expression: {error}",
            path=where,
            column=column + 1 if isinstance(column, int) else None,
        ) from None
    except JMESPathError as error:
        raise MappingSpecError(f"invalid JMESPath expression: {error}", path=where) from None


def _is_finite_number(value: Any) -> bool:
    """JSON numbers only: `True` is an int to Python, and NaN/Infinity (from `to_number`) have no JSON text."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


def _as_user_id(item: Any) -> Any:
    """A number becomes its JSON text (`42` -> "42", `2.5` -> "2.5"); Python's `str`
    writes the same shortest round-trip form. Anything else is left for validation."""
    return str(item) if _is_finite_number(item) else item


def _as_user_ids(value: Any) -> Any:
    """A single ID becomes a list; numeric IDs become strings."""
    if isinstance(value, str) or _is_finite_number(value):
        value = [value]
    if isinstance(value, list):
        return [_as_user_id(item) for item in value]
    return value


class ExpressionProducer:
    """One expression whose value is the whole trigger request; null skips."""

    kind = "jmespath"

    def __init__(self, expression: str):
        self._parsed = _compile(expression, "$.expression")

    def produce(self, request: dict[str, Any]) -> Produced:
        try:
            return Produced(value=_INTERPRETER.visit(self._parsed, request))
        except JMESPathError as error:
            return Produced(error=error_info("JMESPathError", f"$.expression: {error}"))


class FieldsProducer:
    """A field map: dotted output path -> expression; null results are left out."""

    kind = "jmespath"

    def __init__(self, fields: dict[str, str]):
        self._fields = [
            (name, name.split("."), _compile(expression, f"$.fields[{name!r}]")) for name, expression in fields.items()
        ]
        prefixes = {".".join(parts[:i]) for _, parts, _ in self._fields for i in range(1, len(parts))}
        clashes = sorted(name for name, _, _ in self._fields if name in prefixes)
        if clashes:
            raise MappingSpecError(
                f"field {clashes[0]!r} is both a value and a parent of other fields", path="$.fields"
            )

    def produce(self, request: dict[str, Any]) -> Produced:
        output: dict[str, Any] = {}
        for name, parts, parsed in self._fields:
            try:
                value = _INTERPRETER.visit(parsed, request)
            except JMESPathError as error:
                return Produced(error=error_info("JMESPathError", f"field {name!r}: {error}"))
            if value is None:
                continue
            if name == "targetUserIds":
                value = _as_user_ids(value)
            target = output
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = value
        return Produced(value=output)


class PassthroughProducer:
    """The body already has the trigger-request shape."""

    kind = "passthrough"

    def produce(self, request: dict[str, Any]) -> Produced:
        body = request.get("body")
        return Produced(value=dict(body) if isinstance(body, dict) else body)
