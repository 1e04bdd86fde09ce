"""No-code mappings: JMESPath expressions over the request."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import jmespath
from jmespath import visitor
from jmespath.exceptions import IncompleteExpressionError, JMESPathError, LexerError, ParseError
from jmespath.functions import Functions

from mapper.errors import MappingSpecError
from mapper.result import Produced, error_info

_FUNCTIONS = Functions().FUNCTION_TABLE
# What evaluating an expression over untrusted data may raise: jmespath's own errors, and TypeError from its
# functions on mixed types (sort_by, max_by, min_by).
EVALUATION_ERRORS = (JMESPathError, TypeError)


class SpecInterpreter(visitor.TreeInterpreter):  # type: ignore[misc]  # jmespath has no type hints
    """JMESPath as its spec says: ordering a string against a number is null (jmespath 1.1 raises TypeError)."""

    def visit_comparator(self, node: dict[str, Any], value: Any) -> Any:
        try:
            return super().visit_comparator(node, value)
        except TypeError:
            return None


INTERPRETER = SpecInterpreter()


def call_problems(node: dict[str, Any]) -> list[str]:
    """Calls of unknown functions, or with the wrong number of arguments, anywhere in a parsed expression.

    JMESPath only finds these when the expression runs, so a mapping or a
    branch condition holding one would fail on every request or instance.
    """
    problems: list[str] = []
    if node.get("type") == "function_expression":
        name, given = node["value"], len(node["children"])
        known = _FUNCTIONS.get(name)
        if known is None:
            problems.append(f"unknown JMESPath function {name}()")
        else:
            wanted = len(known["signature"])
            variadic = wanted > 0 and known["signature"][-1].get("variadic", False)
            if given < wanted or (given > wanted and not variadic):
                count = f"{'at least ' if variadic else ''}{wanted} argument{'' if wanted == 1 else 's'}"
                problems.append(f"{name}() takes {count}, not {given}")
    for child in node.get("children", []):
        if isinstance(child, dict):  # a slice's children are numbers
            problems += call_problems(child)
    return problems


#: The brackets an expression opens, by token type, and what closes each.
_CLOSERS = {"lbrace": "}", "lbracket": "]", "filter": "]", "lparen": ")"}
#: The tokens an operand can end with: an expression ending on one lacks only its closing brackets.
_OPERAND_ENDS = frozenset(
    {"unquoted_identifier", "quoted_identifier", "literal", "number", "star", "current", "flatten"}
    | {"rbrace", "rbracket", "rparen"}
)


def _incomplete(expression: str) -> str:
    """Why an expression ends too soon, which jmespath does not say ("Invalid jmespath expression"): the
    bracket it leaves open, or the operator nothing follows (the lexer took the whole expression)."""
    unclosed: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None
    for token in jmespath.lexer.Lexer().tokenize(expression):  # jmespath imports its lexer
        if token["type"] in _CLOSERS:
            unclosed.append(token)
        elif token["type"] in ("rbrace", "rbracket", "rparen") and unclosed:
            unclosed.pop()
        if token["type"] != "eof":
            last = token
    if last is None:
        return "empty expression"
    nothing = f"incomplete expression: nothing follows the {last['value']!r} at column {last['start'] + 1}"
    if not unclosed:
        return nothing
    opened = unclosed[-1]
    at = f"the {opened['value']!r} at column {opened['start'] + 1}"
    if last["type"] in _OPERAND_ENDS:
        return f"incomplete expression: missing {_CLOSERS[opened['type']]!r} to close {at}"
    return nothing if opened is last else f"{nothing}, and {at} is not closed"


def _compile(expression: str, where: str) -> Any:
    try:
        parsed = jmespath.compile(expression).parsed
    except ParseError as error:
        if isinstance(error, IncompleteExpressionError):
            reason = _incomplete(expression)
        else:  # a LexerError's `msg` is as generic; its `message` says what
            reason = error.message if isinstance(error, LexerError) else error.msg
        raise MappingSpecError(
            f"invalid JMESPath expression: {reason}", path=where, column=error.lex_position + 1
        ) from None
    except JMESPathError as error:
        raise MappingSpecError(f"invalid JMESPath expression: {error}", path=where) from None
    problems = call_problems(parsed)
    if problems:
        raise MappingSpecError(f"invalid JMESPath expression: {problems[0]}", path=where)
    return parsed


def _is_finite_number(value: Any) -> bool:
    """JSON numbers only: `True` is an int to Python, and NaN/Infinity (from `to_number`) have no JSON text."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


def _as_user_id(item: Any) -> Any:
    """A number becomes the text JavaScript's `String(n)` gives it, as a JavaScript mapping would write it
    (`42` -> "42", `1.0` -> "1", `2.5` -> "2.5"); anything else is left for validation."""
    if isinstance(item, float) and math.isfinite(item):
        return js_number_text(item)
    return str(item) if _is_finite_number(item) else item


def js_number_text(number: float) -> str:
    """`String(number)` in JavaScript (ECMA-262 Number::toString): the shortest digits that read back as
    `number`, as Python's `repr` finds them, written out in full from 1e-7 up to 1e21, in exponent form
    beyond (`1e+21`, `1e-7`, `1.5e-10`), never with a `.0`."""
    if number == 0:
        return "0"  # -0 too
    sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    assert isinstance(exponent, int)  # finite
    text = "".join(map(str, digits))
    point = exponent + len(text)  # the value is 0.<text> x 10^point
    if len(text) <= point <= 21:
        written = text + "0" * (point - len(text))
    elif 0 < point <= 21:
        written = f"{text[:point]}.{text[point:]}"
    elif -6 < point <= 0:
        written = f"0.{'0' * -point}{text}"
    else:
        mantissa = text if len(text) == 1 else f"{text[0]}.{text[1:]}"
        written = f"{mantissa}e{'+' if point > 0 else '-'}{abs(point - 1)}"
    return f"-{written}" if sign else written


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
            return Produced(value=INTERPRETER.visit(self._parsed, request))
        except EVALUATION_ERRORS as error:
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
                value = INTERPRETER.visit(parsed, request)
            except EVALUATION_ERRORS as error:
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
