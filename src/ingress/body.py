"""Reading a request body under a size limit: webhooks, the OAuth token form and the management API's JSON."""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.types import Receive


class BodyTooLarge(Exception):
    """The body passed the limit; `head` is what had arrived by then (the request log keeps it)."""

    def __init__(self, head: bytes) -> None:
        super().__init__("body too large")
        self.head = head


async def read_body(receive: Receive, limit: int, declared: str | None) -> bytes:
    """The body, refused as soon as it passes `limit` bytes (`declared` in Content-Length, or streamed).

    Straight from ASGI `receive` (what Starlette's `Request.stream` does, without the objects).
    """
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(b"")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(b"".join(chunks) + chunk)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
