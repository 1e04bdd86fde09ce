"""Checking a flow or card template before it is saved: every problem, each with its path.

The schema (`schemas/flow.schema.json`) checks the shape; the rest needs the
whole flow at once: step ids unique, a card wait naming a send-card step that
runs before it, durations a timer can use, conditions that compile,
defaults of the declared type.
"""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from flows.durations import DurationError, parse_duration
from flows.placeholders import placeholder_problems
from flows.problems import Problem, problem, schema_problems
from mapper import MappingSpecError
from mapper.jmes import call_problems
from mapper.variables import FlowVariables

Path = list[str | int]


def flow_problems(draft: Any) -> list[Problem]:
    """[] when `draft` is a flow that can be saved (and run)."""
    problems = schema_problems("flow", draft)
    if isinstance(draft, dict):
        more = _variable_problems(draft.get("variables"))
        steps = draft.get("steps")
        if isinstance(steps, list):
            more += _StepChecker().check(steps, ["steps"], set())
        problems += _not_at(more, {item["path"] for item in problems})
    return problems


def template_problems(draft: Any) -> list[Problem]:
    """[] when `draft` is a card template that can be saved."""
    problems = schema_problems("card-template", draft)
    if isinstance(draft, dict):
        problems += placeholder_problems(draft.get("definition"), ["definition"])
    return problems


def _not_at(problems: list[Problem], paths: set[str]) -> list[Problem]:
    """Drop problems where the schema already reported one (a bad duration is said once)."""
    return [item for item in problems if item["path"] not in paths]


def _variable_problems(declarations: Any) -> list[Problem]:
    if not isinstance(declarations, list):
        return []
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, declaration in enumerate(declarations):
        if not isinstance(declaration, dict) or not isinstance(declaration.get("name"), str) or not declaration["name"]:
            continue  # the schema said what is wrong
        name = declaration["name"]
        if name in seen:
            problems.append(problem(["variables", index, "name"], f"variable {name!r} is declared twice"))
        seen.add(name)
        if declaration.get("type", "string") in ("string", "number", "boolean", "object"):
            try:
                FlowVariables([declaration])
            except MappingSpecError as error:
                problems.append(problem(["variables", index, "default"], error.message))
    return problems


class _StepChecker:
    """Walks the step tree once; `visible` holds the send-card steps that surely ran before."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def check(self, steps: list[Any], path: Path, visible: set[str]) -> list[Problem]:
        problems: list[Problem] = []
        for index, step in enumerate(steps):
            where = [*path, index]
            if not isinstance(step, dict):
                continue
            problems += self._check_id(step, where)
            kind = step.get("type")
            if kind == "send-card":
                options = step.get("cardOptions")  # not an object: the schema has said so already
                expires = options.get("expiresAfter") if isinstance(options, dict) else None
                at = [*where, "cardOptions", "expiresAfter"]
                if isinstance(expires, str) and "{{" in expires:  # the duration is checked when the step runs
                    problems += placeholder_problems(expires, at)
                else:
                    problems += duration_problems(expires, at)
            elif kind == "wait":
                problems += self._check_wait(step, where, visible)
            elif kind == "branch":
                problems += self._check_branch(step, where, visible)
            visible |= _send_card_ids([step])
        return problems

    def _check_id(self, step: dict[str, Any], where: Path) -> list[Problem]:
        step_id = step.get("id")
        if not isinstance(step_id, str):
            return []
        if step_id in self.ids:
            return [problem([*where, "id"], f"step id {step_id!r} is used twice")]
        self.ids.add(step_id)
        return []

    def _check_wait(self, step: dict[str, Any], where: Path, visible: set[str]) -> list[Problem]:
        problems = duration_problems(step.get("duration"), [*where, "duration"])
        problems += duration_problems(step.get("timeout"), [*where, "timeout"])
        awaited = step.get("for")
        if isinstance(awaited, dict) and isinstance(awaited.get("stepId"), str) and awaited["stepId"] not in visible:
            message = f"step {awaited['stepId']!r} is not a send-card step that runs before this wait"
            problems.append(problem([*where, "for", "stepId"], message))
        return problems

    def _check_branch(self, step: dict[str, Any], where: Path, visible: set[str]) -> list[Problem]:
        problems: list[Problem] = []
        condition = step.get("condition")
        if isinstance(condition, str):
            try:
                parsed = jmespath.compile(condition).parsed
            except JMESPathError as error:
                problems.append(problem([*where, "condition"], f"not a JMESPath expression: {error}"))
            else:
                problems += [problem([*where, "condition"], message) for message in call_problems(parsed)]
        for arm in ("then", "else"):
            if isinstance(step.get(arm), list):
                problems += self.check(step[arm], [*where, arm], set(visible))
        return problems


def duration_problems(value: Any, where: Path) -> list[Problem]:
    """A duration a timer cannot use, at `where` (a value that is not a string is the schema's to report)."""
    if not isinstance(value, str):
        return []
    try:
        parse_duration(value)
    except DurationError as error:
        return [problem(where, str(error))]
    return []


def _send_card_ids(steps: list[Any]) -> set[str]:
    """Send-card steps in `steps`, nested ones included (a later card wait may name them)."""
    found: set[str] = set()
    for step in steps:
        if not isinstance(step, dict):
            continue
        if step.get("type") == "send-card" and isinstance(step.get("id"), str):
            found.add(step["id"])
        for arm in ("then", "else"):
            if isinstance(step.get(arm), list):
                found |= _send_card_ids(step[arm])
    return found


def template_ids(steps: list[dict[str, Any]]) -> dict[str, Path]:
    """Every card template a valid flow's steps use, with the path of its first use."""
    found: dict[str, Path] = {}

    def walk(items: list[dict[str, Any]], path: Path) -> None:
        for index, step in enumerate(items):
            if step["type"] == "send-card":
                found.setdefault(step["cardTemplateId"], [*path, index, "cardTemplateId"])
            for arm in ("then", "else"):
                walk(step.get(arm, []), [*path, index, arm])

    walk(steps, ["steps"])
    return found
