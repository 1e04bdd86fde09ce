"""Deadlines for clients too slow to send a request head or to take a response, which uvicorn does not have.

uvicorn closes a connection that stays silent `timeout_keep_alive` seconds
after a response, but any byte cancels that, and a connection just accepted
has no deadline at all. So a client that sends nothing, or a header byte every
few seconds, or the rest of a body the app answered without reading, kept its
connection (a descriptor, buffers, a slot) for as long as it liked: a few
thousand such clients (slowloris) starve the server.

`SlowClientProtocol` gives each request head `header_timeout` seconds to
arrive whole, counted from the connection's accept or from the end of the
previous response (nginx's `client_header_timeout`). The body has its own
deadline, in the app (`ingress.body.read_body`), where the request can be
answered and logged. When the deadline passes in the middle of a head, the
client is answered 408 and the connection closed (as Node and Apache do); a
connection with no request begun is closed silently, as uvicorn closes idle
keep-alive connections (a 408 there could be read as the answer to a request
the client sends just then).

The other way round, a client that asks for a large response and never reads
it kept the connection, the unsent bytes and, while `send` waited for the
socket, the app's task, for ever: uvicorn waits for a paused transport without
end, and closes one with bytes unsent only once they are sent. So while a
response's bytes wait in the transport's buffer (writing is paused, or the
response is complete but not all sent), the client must take some of them
within every `write_timeout` seconds (nginx's `send_timeout`), or the
connection is reset: the app's pending `send` returns, its `receive` says
`http.disconnect`, and its task ends. Progress is looked at once per
`write_timeout` from the pause on, so a stalled client is cut off one to two
`write_timeout`s after the last byte it took; a connection whose writes never
wait (nearly all) starts no timer. A connection lost tells the request whose
response is being sent, not only the newest one (uvicorn's way): with
pipelined requests, the one running wrote on to the closed transport, which
uvloop refuses with an error the app logs.

And a response that ends the connection before the request's body has all
arrived (413 `body_too_large`, or any answer given without reading the body,
with `Connection: close`) closes it lingering (ingress.lingering_close): the
client may be sending still, and a plain close would reset the connection
under it, the answer unread. uvicorn's request cycle closes the connection
itself, so each cycle is given the transport with another `close`; a
connection kept alive, or whose request arrived whole, closes as before. A
head deadline passing is not lingered over: a client that slow is given no
more time.

It extends uvicorn's httptools protocol (the one `serve` runs) through its
`connection_made`, `connection_lost`, `on_message_begin`,
`on_headers_complete`, `on_response_complete`, `pause_writing` and
`resume_writing`, and the transport its `RequestResponseCycle` uses: uvicorn
internals, pinned by tests/ingress/test_slow_clients.py, test_slow_readers.py
and test_lingering_close.py (and pyproject's bound on uvicorn's version).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import socket
import struct
import sys
import termios
from collections.abc import Callable
from typing import Any, cast

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from ingress.errors import error_body
from ingress.lingering_close import LINGER_IDLE_SECONDS, LINGER_SECONDS, linger

log = logging.getLogger("flowhook.ingress")
LINGER_NOT = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets the connection and drops what is queued


class SlowClientProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline for each request head and for taking response bytes, and a
    lingering close after a response given before its request's body arrived."""

    linger_seconds = LINGER_SECONDS  # the lingering close's bounds (a subclass may set others)
    linger_idle_seconds = LINGER_IDLE_SECONDS

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        header_timeout: float,
        write_timeout: float,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = header_timeout
        self.write_timeout = write_timeout
        self._head_awaited_since: float | None = None  # loop time the awaited head's deadline counts from
        self._head_begun = False  # bytes of a request head have arrived, not all of it
        self._head_timer: asyncio.TimerHandle | None = None
        self._unsent = 0  # `_unsent_bytes()` when the write deadline last started
        self._writes_resumed = False  # the buffer fell below its low-water mark since then
        self._write_timer: asyncio.TimerHandle | None = None
        self._pipelined: RequestResponseCycle | None = None  # the pipelined request started last
        self._for_cycles: asyncio.Transport  # the transport as the requests' cycles see it (`connection_made`)
        self._lingering = False  # the connection is closing, lingering: no more requests

    @classmethod
    def factory(cls, header_timeout: float, write_timeout: float) -> Callable[..., SlowClientProtocol]:
        """What uvicorn's `http` option takes to build the protocol (a partial: it pickles, for `--workers`)."""
        return functools.partial(cls, header_timeout=header_timeout, write_timeout=write_timeout)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._for_cycles = cast(asyncio.Transport, CycleTransport(transport, self._close_after_response))
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        if self._pipelined is not None and not self._pipelined.response_complete:  # uvicorn tells only `self.cycle`
            self._pipelined.disconnected = True
            self._pipelined.message_event.set()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True

    def on_headers_complete(self) -> None:
        self._head_awaited_since = None
        self._head_begun = False
        super().on_headers_complete()
        if self.cycle is not None:  # None: a WebSocket upgrade, which starts no cycle
            self.cycle.transport = self._for_cycles

    def on_response_complete(self) -> None:
        # A pipelined request, whose head is complete, starts instead of the wait for a head.
        self._pipelined = self.pipeline[-1][0] if self.pipeline else None
        if self._lingering:  # uvicorn's would see a transport not closing, and go on: only count the response
            self.server_state.total_requests += 1
        else:
            super().on_response_complete()
        if self.transport.get_write_buffer_size():  # the client has yet to take the end of the response
            self._watch_writes()
        if self._pipelined is None and not (self._lingering or self.transport.is_closing()):
            self._await_head()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch_writes()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._writes_resumed = True

    def _close_after_response(self) -> None:
        """A request cycle's `transport.close()`: lingering if the newest request's body has not all arrived."""
        if self._lingering or self.transport.is_closing():
            return
        if not self.cycle.more_body:
            self.transport.close()
            return
        self._lingering = True
        self.flow.resume_reading()  # reading may be paused for a body or a pipelined request: read on, and drop
        linger(self.transport, self, self.linger_seconds, self.linger_idle_seconds)

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

    def _watch_writes(self) -> None:
        """Start the write deadline, unless it runs: the client must take some of the unsent bytes by then."""
        if self._write_timer is None:
            self._unsent = self._unsent_bytes()
            self._writes_resumed = False
            self._write_timer = self.loop.call_later(self.write_timeout, self._check_writes)

    def _check_writes(self) -> None:
        self._write_timer = None
        if not self.transport.get_write_buffer_size():  # the socket took the rest: it is the kernel's now
            return
        if self._unsent_bytes() < self._unsent or self._writes_resumed:  # the client took bytes: a new deadline
            self._watch_writes()
            return
        peer = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.warning("%s took none of its response for %g s: connection reset", peer, self.write_timeout)
        # A reset, not a close: the kernel would otherwise keep what is queued for the client, unsendable, for minutes.
        self.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_NOT)
        self.transport.abort()

    def _unsent_bytes(self) -> int:
        """The response's bytes the client has not taken: in the transport's buffer, and in the socket's send queue
        (Linux's SIOCOUTQ, which falls as the client acknowledges bytes, where the buffer moves only when the kernel
        has room for a third of its queue again: a slow reader would look stalled)."""
        unsent: int = self.transport.get_write_buffer_size()
        with contextlib.suppress(OSError):  # not Linux
            queued = fcntl.ioctl(self.transport.get_extra_info("socket").fileno(), termios.TIOCOUTQ, bytes(4))
            unsent += int.from_bytes(queued, sys.byteorder, signed=True)
        return unsent


class CycleTransport:
    """The transport as uvicorn's `RequestResponseCycle` uses it (`write`, `is_closing`, `close`): the transport's
    own methods, so writing costs what it did, but for `close`."""

    __slots__ = ("close", "is_closing", "write")

    def __init__(self, transport: asyncio.Transport, close: Callable[[], None]) -> None:
        self.write = transport.write
        self.is_closing = transport.is_closing
        self.close = close
