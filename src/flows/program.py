"""A flow definition compiled to a flat list of instructions.

Branches become conditional jumps, so a flow instance's whole position is one
integer (`pc`) that the store can keep; compiled programs are cached by the
snapshot they come from, which never changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jmespath
from jmespath.parser import ParsedResult

from flows.durations import parse_duration


@dataclass(frozen=True)
class SendCard:
    step_id: str
    template_id: str
    card_options: dict[str, Any]


@dataclass(frozen=True)
class Delay:
    step_id: str
    duration: timedelta


@dataclass(frozen=True)
class AwaitCard:
    """Wait until the card sent by `card_step_id` is acted on (or can no longer be), at most `timeout`."""

    step_id: str
    card_step_id: str
    action: str
    timeout: timedelta


@dataclass(frozen=True)
class Branch:
    """Fall through into `then` when the condition is truthy; else jump to `else_pc`."""

    step_id: str
    condition: ParsedResult
    else_pc: int


@dataclass(frozen=True)
class Jump:
    target: int


Instruction = SendCard | Delay | AwaitCard | Branch | Jump


@dataclass(frozen=True)
class Program:
    instructions: tuple[Instruction, ...]
    defaults: dict[str, Any]  # declared variables' defaults

    def variables(self, given: dict[str, Any] | None) -> dict[str, Any]:
        """The invocation's variables over the declared defaults."""
        values = dict(self.defaults)
        values.update({name: value for name, value in (given or {}).items() if value is not None})
        return values


def compile_flow(definition: dict[str, Any]) -> Program:
    """Compile a definition that passed `flows.definition.flow_problems`."""
    instructions: list[Instruction] = []
    _emit(definition.get("steps", []), instructions)
    defaults = {
        declaration["name"]: declaration["default"]
        for declaration in definition.get("variables", [])
        if declaration.get("default") is not None
    }
    return Program(tuple(instructions), defaults)


def _emit(steps: list[dict[str, Any]], out: list[Instruction]) -> None:
    for step in steps:
        kind = step["type"]
        if kind == "send-card":
            out.append(SendCard(step["id"], step["cardTemplateId"], step.get("cardOptions", {})))
        elif kind == "wait" and "duration" in step:
            out.append(Delay(step["id"], parse_duration(step["duration"])))
        elif kind == "wait":
            awaited = step["for"]
            out.append(AwaitCard(step["id"], awaited["stepId"], awaited["action"], parse_duration(step["timeout"])))
        else:
            _emit_branch(step, out)


def _emit_branch(step: dict[str, Any], out: list[Instruction]) -> None:
    at = len(out)
    out.append(Jump(-1))  # placeholder, replaced once `then` is laid out
    _emit(step["then"], out)
    otherwise = step.get("else", [])
    if otherwise:
        skip_else = len(out)
        out.append(Jump(-1))
        out[at] = Branch(step["id"], jmespath.compile(step["condition"]), len(out))
        _emit(otherwise, out)
        out[skip_else] = Jump(len(out))
    else:
        out[at] = Branch(step["id"], jmespath.compile(step["condition"]), len(out))
