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
