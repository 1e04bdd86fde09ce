"""Requests whose URL and headers are too large (431): measured, and kept in the log shortened.

httptools, under uvicorn, sets no limit on the size of a request's headers.
Without one, anyone who can reach the server could write megabytes into the
request log with each request (to an unknown hook, even: those are logged
too), so the pipeline refuses an oversized request head before anything
else and logs only the beginning of each part of it.
"""

from __future__ import annotations

from starlette.types import Scope

LOGGED_CHARACTERS = 256  # of the path, the query, each header name and value
LOGGED_HEADERS = 50


def head_bytes(scope: Scope) -> int:
    """The size of the request's path, query string and headers, as they came over the wire."""
    size = len(scope["raw_path"] if scope.get("raw_path") else scope["path"]) + len(scope["query_string"])
    return size + sum(len(name) + len(value) for name, value in scope["headers"])


def shortened(text: str) -> str:
    """`text`, or its beginning and how much was left out."""
    if len(text) <= LOGGED_CHARACTERS:
        return text
    return f"{text[:LOGGED_CHARACTERS]}…[{len(text) - LOGGED_CHARACTERS} more characters]"


def shortened_headers(headers: dict[str, str]) -> dict[str, str]:
    """The first `LOGGED_HEADERS` headers, names and values shortened, and how many more there were."""
    kept = {shortened(name): shortened(value) for name, value in list(headers.items())[:LOGGED_HEADERS]}
    if len(headers) > LOGGED_HEADERS:
        kept["…"] = f"[{len(headers) - LOGGED_HEADERS} more headers]"
    return kept
