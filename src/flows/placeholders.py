"""`{{variable}}` placeholders in card templates, filled from an invocation's variables.

A placeholder is a variable name, or a dotted path into an object variable
(`{{customer.firstName}}`, `{{order.items.0.name}}`: a number picks a list
item), with optional spaces inside the braces. A missing value renders as
the empty string, a non-string one as JSON (`true`, `42`, `{"a":1}`), so
rendering never fails at send time; malformed placeholders are refused when
the template is saved. `\\{{` is a literal `{{` (as in Handlebars), so a card
can show braces.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from flows.problems import Problem, problem

_NAME = r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*"
_PLACEHOLDER = re.compile(r"\{\{\s*(" + _NAME + r")\s*\}\}")
_ESCAPED = r"\\\{\{"  # `\{{`: a literal `{{`
_TOKEN = re.compile(_ESCAPED + "|" + _PLACEHOLDER.pattern)
_ANY_OPENING = re.compile(_ESCAPED + r"|\{\{(.*?)(\}\}|$)", re.DOTALL)


def render(document: Any, variables: dict[str, Any]) -> Any:
    """A copy of `document` with every placeholder in every string filled."""
    if isinstance(document, str):
        if "{{" not in document:
            return document
        return _TOKEN.sub(lambda match: _fill(match, variables), document)
    if isinstance(document, dict):
        return {key: render(value, variables) for key, value in document.items()}
    if isinstance(document, list):
        return [render(value, variables) for value in document]
    return document


def placeholder_problems(document: Any, path: list[str | int]) -> list[Problem]:
    """Placeholders that are not a variable name or dotted path, or are never closed."""
    if isinstance(document, str):
        found = []
        for match in _ANY_OPENING.finditer(document):
            if match.group(2) is None:  # an escaped `\{{`
                continue
            if not match.group(2):
                found.append(problem(path, "a placeholder opened with {{ is never closed with }}"))
            elif not _PLACEHOLDER.fullmatch(match.group(0)):
                found.append(problem(path, f"{{{{{match.group(1)}}}}} is not a variable name or dotted path"))
        return found
    if isinstance(document, dict):
        return [item for key, value in document.items() for item in placeholder_problems(value, [*path, key])]
    if isinstance(document, list):
        return [item for index, value in enumerate(document) for item in placeholder_problems(value, [*path, index])]
    return []


def _fill(match: re.Match[str], variables: dict[str, Any]) -> str:
    name = match.group(1)
    return "{{" if name is None else _text(_lookup(variables, name))


def _lookup(variables: dict[str, Any], dotted: str) -> Any:
    value: Any = variables
    for part in dotted.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
