"""What a mapped trigger request is refused with, whichever door it came in by.

A webhook and a Journey Builder execute call both run a stored mapping and
hand its output to the inbox, so they refuse the same things with the same
status and code: a failed mapping (422, or 503 when the sandbox crashed, so
senders that retry on 5xx try again), an invalid output (422 with every
problem's path), a key reused with another payload, an archived flow or a
live trigger on an unpublished flow (409). Each door wraps the refusal in its own answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ingress.errors import listed_problems
from mapper import MappingResult
from store.invocations import Acceptance


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str  # what the sender is told: a mapping error's type and line, never its message or stack
    detail: str  # what the log keeps: everything
    extra: dict[str, Any] = field(default_factory=dict)  # fields of the error body beyond code and message


def mapping_refusal(result: MappingResult) -> Refusal | None:
    """None when the output is a valid trigger request, or a skip (which each door answers its own way).

    The sender learns a mapping error's type and line, never its message or
    stack (they may quote the request or the source). Validation problems are
    listed with their path and message (mapper.validation writes them without
    quoting the output's values).
    """
    if result.error is not None:
        error = result.error
        where = f" at line {error['line']}" if error.get("line") else ""
        detail = f"{error.get('type')}: {error.get('message')}{where}"
        if error.get("type") == "SandboxCrashed":
            return Refusal(503, "sandbox_crashed", "the mapping sandbox crashed; retry later", detail)
        return Refusal(422, "mapping_error", f"the mapping failed: {error.get('type')}{where}", detail)
    if result.validation_errors:
        count, listed = listed_problems(result.validation_errors)
        return Refusal(
            422,
            "validation_error",
            f"the mapped output is not a valid trigger request ({count})",
            f"{count}: " + "; ".join(f"{problem['path']}: {problem['message']}" for problem in listed),
            {"errors": listed},
        )
    return None


def acceptance_refusal(acceptance: Acceptance, flow_invocation_id: str) -> Refusal | None:
    """A 409 for a key already used with another payload, for an archived flow, or for a live trigger whose
    flow was never published; None for the other verdicts."""
    if acceptance.verdict == "conflict":
        message = f"flowInvocationId {flow_invocation_id!r} was already used with a different payload"
        return Refusal(409, "idempotency_conflict", message, message)
    if acceptance.verdict == "flow_archived":
        message = "the trigger's flow is archived: it starts nothing new until it is unarchived"
        return Refusal(409, "flow_archived", message, message)
    if acceptance.verdict == "flow_not_published":
        message = "the trigger is live but its flow has no published version"
        return Refusal(409, "flow_not_published", message, message)
    return None
