"""Exceptions the mapper raises to its caller (never for what a mapping does)."""

from __future__ import annotations


class MappingSpecError(ValueError):
    """A mapping spec that cannot be compiled, with where the problem is.

    `path` locates the problem in the spec (e.g. ``$.fields["variables.x"]``);
    `line`/`column` locate it in JavaScript source (1-based).
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.column = column

    def to_dict(self) -> dict[str, object]:
        return {"message": self.message, "path": self.path, "line": self.line, "column": self.column}


class RequestBodyError(ValueError):
    """The request body does not parse as its content type says (HTTP 400)."""


class UnsupportedContentType(ValueError):
    """A content type the mapper does not read (HTTP 415)."""
