"""Render a location inside a JSON document as a JSONPath string."""

from __future__ import annotations

import re
from collections.abc import Iterable

import orjson

_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def format_path(segments: Iterable[str | int]) -> str:
    """`["variables", "first name", 0]` -> `$.variables["first name"][0]`."""
    parts = ["$"]
    for segment in segments:
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        elif _IDENTIFIER.match(segment):
            parts.append(f".{segment}")
        else:
            parts.append(f"[{orjson.dumps(segment).decode()}]")
    return "".join(parts)
