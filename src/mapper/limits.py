"""Resource limits for one mapping invocation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

MiB = 1024 * 1024
# A result is stored as JSON, whose writer (orjson) takes 255 levels at most, within a record of a few
# levels; and an answer nested past what its decoders take is taken for too deep (mapper.answer).
MAX_DEPTH_CEILING = 200


@dataclass(frozen=True)
class Limits:
    """What one invocation may spend; exceeding any of them is a named error.

    The defaults are the contract of SPEC §2. `stack_bytes` bounds the engine's
    own stack check, well inside the thread stack it runs on. `max_depth` is
    at most `MAX_DEPTH_CEILING`.
    """

    time_ms: int = 1000
    memory_bytes: int = 32 * MiB
    stack_bytes: int = 1 * MiB
    max_output_bytes: int = 1 * MiB
    max_depth: int = 64
    max_log_lines: int = 100

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"limit {field.name} must be a positive integer, got {value!r}")
        if self.max_depth > MAX_DEPTH_CEILING:
            raise ValueError(f"limit max_depth must be at most {MAX_DEPTH_CEILING}, got {self.max_depth}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limits:
        known = {field.name for field in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown limits: {', '.join(sorted(unknown))}")
        return replace(cls(), **data)
