"""Reading a request body under a size limit and a deadline: webhooks, the OAuth token form and the management
API's JSON.

uvicorn bounds the wait between requests on a connection, not the wait for a
body: a client that sends its headers and then trickles (or withholds) the
body would hold its connection and a task for as long as it likes. So the
whole body must arrive within `timeout` seconds.
"""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect
from starlette.types import Receive


class BodyNotReceived(Exception):
    """The body did not arrive whole; `head` is what had arrived by then (the request log keeps it)."""

    def __init__(self, head: bytes) -> None:
        super().__init__(type(self).__doc__)
        self.head = head


class BodyTooLarge(BodyNotReceived):
    """The body passed the size limit."""


class BodyTimedOut(BodyNotReceived):
    """The body was not complete within the time allowed."""


class ClientGone(BodyNotReceived, ClientDisconnect):
    """The client closed the connection before its body was complete."""


async def read_body(receive: Receive, limit: int, declared: str | None, timeout: float | None = None) -> bytes:
    """The body, refused as soon as it passes `limit` bytes (`declared` in Content-Length, or streamed)
    or once `timeout` seconds have passed without it being complete.

    Straight from ASGI `receive` (what Starlette's `Request.stream` does, without the objects).
    """
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(b"")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone(b"".join(chunks))
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(b"".join(chunks) + chunk)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise BodyTimedOut(b"".join(chunks)) from None
