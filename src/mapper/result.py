"""The outcome of running a mapping on one request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ErrorInfo = dict[str, Any]


@dataclass(slots=True)
class MappingResult:
    """Everything the editor preview, the CLI and the pipeline need to know.

    `ok` means a valid trigger request was produced; `skipped` means the
    mapping returned null/undefined on purpose (no flow, 200 to the sender).
    """

    ok: bool
    output: dict[str, Any] | None = None
    skipped: bool = False
    error: ErrorInfo | None = None
    validation_errors: list[dict[str, str]] = field(default_factory=list)
    logs: list[dict[str, str]] = field(default_factory=list)
    duration_ms: float = 0.0
    # The output as the mapping produced it, before flow-variable defaults: what a repeat is compared by.
    mapped: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "skipped": self.skipped,
            "output": self.output,
            "error": self.error,
            "validationErrors": self.validation_errors,
            "logs": self.logs,
            "durationMs": round(self.duration_ms, 3),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MappingResult:
        return cls(
            ok=data["ok"],
            output=data.get("output"),
            skipped=data.get("skipped", False),
            error=data.get("error"),
            validation_errors=data.get("validationErrors", []),
            logs=data.get("logs", []),
            duration_ms=data.get("durationMs", 0.0),
        )


def error_info(
    type_: str, message: str, *, line: int | None = None, column: int | None = None, stack: str = ""
) -> ErrorInfo:
    return {"type": type_, "message": message, "line": line, "column": column, "stack": stack}


@dataclass(slots=True)
class Produced:
    """What a mapping kind returned before validation.

    `error` set: the mapping failed; `value` None without error: skipped.
    """

    value: Any = None
    error: ErrorInfo | None = None
    logs: list[dict[str, str]] = field(default_factory=list)


def too_deep(max_depth: int) -> ErrorInfo:
    return error_info("InvalidOutput", f"the result is nested deeper than {max_depth} levels")


def nesting_exceeds(value: Any, max_depth: int) -> bool:
    """Whether JSON data has objects/arrays nested more than `max_depth` deep."""
    containers: list[Any] = [value] if isinstance(value, (dict, list)) else []
    for _ in range(max_depth):
        containers = [
            child
            for item in containers
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
        if not containers:
            return False
    return True


def within_depth(produced: Produced, max_depth: int) -> Produced:
    """`produced`, or the error of a JavaScript result nested deeper than `max_depth` (mapper.answer), for
    an output made in this process (JMESPath, passthrough): the sender's body, which the JSON parser takes
    up to 1,024 levels deep, would otherwise be refused nowhere before the store, whose JSON writer stops
    at 255 levels (a 500)."""
    if produced.value is not None and nesting_exceeds(produced.value, max_depth):
        return Produced(error=too_deep(max_depth), logs=produced.logs)
    return produced
