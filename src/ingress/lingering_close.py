"""Closing a connection whose client may still be sending, without losing the last response (a lingering close).

A response that refuses a request before reading its body (413
`body_too_large`) ends the connection. Closed at once, the socket still holds
body bytes, or more arrive after it is closed, and the kernel answers them
with a reset (RST), not a FIN: the client's writes fail (ECONNRESET, EPIPE)
before it gets to read the answer, and a reset drops what the server's kernel
had not yet sent, and on some systems what the client's had received but not
handed over. HTTP/1.1 asks a server to half-close and read on instead (RFC
9112 §9.6), as nginx (`lingering_close`) and Apache do.

So instead of closing, `linger` shuts the socket for writing once the
response is sent (a FIN after it) and hands the connection to `Lingering`,
which reads and drops what the client still sends, and closes it when the
client closes its side, after `LINGER_IDLE_SECONDS` without a byte from it
(it has sent what it meant to), or `LINGER_SECONDS` after `linger` (nginx's
`lingering_timeout` and `lingering_time`, there 5 and 30 s; a body over the
limit is a few MB, a few seconds over a slow uplink).

The bound is time, not bytes, as nginx's and Apache's are. What arrives is
read into one buffer all lingering connections share, and dropped (no
allocation, no parsing): a client sending flat out for the 5 s costs the
server the receiving, no more than sending bodies up to the limit costs it.
A byte bound low enough to matter would be a second way for the sender of a
large body to lose its answer.
"""

from __future__ import annotations

import asyncio

LINGER_SECONDS = 5.0
LINGER_IDLE_SECONDS = 1.0
_DROPPED = bytearray(64 * 1024)  # what every lingering connection reads into; nobody looks at it


def linger(transport: asyncio.Transport, protocol: asyncio.BaseProtocol, seconds: float, idle: float) -> None:
    """Close `transport` once what was written to it is sent, reading on as above; `protocol`, its protocol
    until now, is told when the connection is lost (and of pauses in writing meanwhile)."""
    if not transport.can_write_eof():  # TLS has no half-close
        transport.close()
        return
    transport.set_protocol(Lingering(transport, protocol, seconds, idle))
    transport.write_eof()


class Lingering(asyncio.BufferedProtocol):
    """The protocol of a connection after its last response: drops what arrives until the client closes its side,
    falls silent for `idle` seconds, or `seconds` have passed."""

    def __init__(
        self, transport: asyncio.Transport, protocol: asyncio.BaseProtocol, seconds: float, idle: float
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self._idle = idle
        self._loop = asyncio.get_running_loop()
        self._heard = self._loop.time()  # when the client last sent bytes
        self._until = self._heard + seconds
        # One timer at a time, moved on when it fires (as ingress.slow_clients' head deadline): bytes cost none.
        self._timer = self._loop.call_at(min(self._until, self._heard + idle), self._check)

    def get_buffer(self, sizehint: int) -> bytearray:
        return _DROPPED

    def buffer_updated(self, nbytes: int) -> None:
        self._heard = self._loop.time()

    # eof_received: BufferedProtocol's returns None, so the transport closes when the client closes its side.

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()
        self._protocol.connection_lost(exc)

    def pause_writing(self) -> None:  # the response may still be on its way: its protocol watches the writes
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._protocol.resume_writing()

    def _check(self) -> None:
        deadline = min(self._until, self._heard + self._idle)
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._check)
        else:
            self._transport.close()
