"""A deadline for request heads, which uvicorn does not have.

uvicorn closes a connection that stays silent `timeout_keep_alive` seconds
after a response, but any byte cancels that, and a connection just accepted
has no deadline at all. So a client that sends nothing, or a header byte every
few seconds, or the rest of a body the app answered without reading, kept its
connection (a descriptor, buffers, a slot) for as long as it liked: a few
thousand such clients (slowloris) starve the server.

`HeadDeadlineProtocol` gives each request head `header_timeout` seconds to
arrive whole, counted from the connection's accept or from the end of the
previous response (nginx's `client_header_timeout`). The body has its own
deadline, in the app (`ingress.body.read_body`), where the request can be
answered and logged. When the deadline passes in the middle of a head, the
client is answered 408 and the connection closed (as Node and Apache do); a
connection with no request begun is closed silently, as uvicorn closes idle
keep-alive connections (a 408 there could be read as the answer to a request
the client sends just then).

It extends uvicorn's httptools protocol (the one `serve` runs) through its
`connection_made`, `connection_lost`, `on_message_begin`,
`on_headers_complete` and `on_response_complete`: uvicorn internals, pinned
by tests/ingress/test_slow_clients.py.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from ingress.errors import error_body


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline for each request head."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        header_timeout: float,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = header_timeout
        self._head_awaited_since: float | None = None  # loop time the awaited head's deadline counts from
        self._head_begun = False  # bytes of a request head have arrived, not all of it
        self._head_timer: asyncio.TimerHandle | None = None

    @classmethod
    def factory(cls, header_timeout: float) -> Callable[..., HeadDeadlineProtocol]:
        """What uvicorn's `http` option takes to build the protocol (a partial: it pickles, for `--workers`)."""
        return functools.partial(cls, header_timeout=header_timeout)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True

    def on_headers_complete(self) -> None:
        self._head_awaited_since = None
        self._head_begun = False
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        waiting = not self.pipeline  # a pipelined request, whose head is complete, starts instead
        super().on_response_complete()
        if waiting and not self.transport.is_closing():
            self._await_head()

    def _await_head(self) -> None:
        """Start the deadline. A connection has one timer at a time, not one per request (a timer costs
        ~2 us): `_check_head` moves it on to the head awaited when it fires."""
        self._head_awaited_since = self.loop.time()
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._check_head)

    def _check_head(self) -> None:
        self._head_timer = None
        if self._head_awaited_since is None or self.transport.is_closing():
            return
        left = self._head_awaited_since + self.header_timeout - self.loop.time()
        if left > 0:
            self._head_timer = self.loop.call_later(left, self._check_head)
            return
        if self._head_begun:
            self.transport.write(self._timeout_answer())
        self.transport.close()

    def _timeout_answer(self) -> bytes:
        message = f"the request's headers did not arrive within {self.header_timeout:g} s"
        body = orjson.dumps(error_body("header_timeout", message))
        head = [b"HTTP/1.1 408 Request Timeout"]
        head += [name + b": " + value for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json", b"content-length: %d" % len(body), b"connection: close"]
        return b"\r\n".join(head) + b"\r\n\r\n" + body
