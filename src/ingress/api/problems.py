"""Refusing a saved document with every problem found in it."""

from __future__ import annotations

from flows.problems import Problem
from ingress.errors import ApiError


def refuse_problems(code: str, what: str, problems: list[Problem]) -> None:
    """A 422 listing every problem (`errors`: [{path, message}]), the first one's path as `path`."""
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise ApiError(422, code, f"the {what} has {count}", path=problems[0]["path"], errors=problems)
