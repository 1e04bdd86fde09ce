"""Translate engine stack traces into positions in the user's source.

User source is compiled so that its first line is engine line
`LINE_OFFSET + 1`; frames below that line belong to the sandbox prelude and
are dropped from what the user sees.
"""

from __future__ import annotations

import re

LINE_OFFSET = 10000
_FRAME = re.compile(r"^\s*at (?:(?P<name>.+?) \()?<input>:(?P<line>\d+):(?P<column>\d+)\)?\s*$")


def _user_frames(stack: str) -> list[tuple[str | None, int, int]]:
    frames = []
    for raw in stack.splitlines():
        match = _FRAME.match(raw)
        if match and int(match["line"]) > LINE_OFFSET:
            frames.append((match["name"], int(match["line"]) - LINE_OFFSET, int(match["column"])))
    return frames


def locate(stack: str) -> tuple[int | None, int | None, str]:
    """(line, column, rewritten stack) of the innermost user frame."""
    frames = _user_frames(stack)
    if not frames:
        return None, None, ""
    line, column = frames[0][1], frames[0][2]
    rewritten = "\n".join(
        f"    at {name} (mapping.js:{frame_line}:{frame_column})"
        if name
        else f"    at mapping.js:{frame_line}:{frame_column}"
        for name, frame_line, frame_column in frames
    )
    return line, column, rewritten
