"""Clients that do not take their response, under real uvicorn: FLOWHOOK_WRITE_TIMEOUT_SECONDS.

The clients are raw sockets with a small receive window and Ethernet-sized
segments (on loopback the kernel would otherwise queue megabytes for them, so
a response would have to be huge to wait in flowhook's buffer at all). A
client that reads nothing polls its socket for the server's reset; the
`wait_for` caps only turn a missing deadline into a failure instead of a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ingress.serve import uvicorn_options
from ingress.settings import Settings
from ingress.slow_clients import SlowClientProtocol

pytestmark = pytest.mark.anyio

WRITE_TIMEOUT = 0.3
GIVE_UP = 10.0  # far beyond every deadline here: a test that reaches it found no deadline
MiB = 1024 * 1024
LARGE = 8 * MiB  # more than the kernel queues for a client (and far more than the transport buffers before pausing)
SMALL = 48 * 1024  # see SmallSendBuffer
CHUNK = 64 * 1024
TOKEN = "fh_admin_slow-readers-test-token"


class LargeResponse:
    """An ASGI endpoint answering `size` bytes of `x` in `chunk`-sized sends, then reporting in `finished` what
    `receive` says (uvicorn's `send` to a client gone returns as if sent: `receive` is how an app learns it)."""

    def __init__(self) -> None:
        self.finished: asyncio.Queue[str] = asyncio.Queue()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = QueryParams(scope["query_string"].decode())
        size, chunk = int(query["size"]), int(query.get("chunk", CHUNK))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % size)]})
        for start in range(0, size, chunk):
            body = b"x" * min(chunk, size - start)
            await send({"type": "http.response.body", "body": body, "more_body": start + chunk < size})
        self.finished.put_nowait((await receive())["type"])


@pytest.fixture(scope="module")
def large() -> LargeResponse:
    return LargeResponse()


@asynccontextmanager
async def serving(
    uvicorn_on_loopback: Any, large: LargeResponse, http: Callable[..., SlowClientProtocol] | None = None
) -> AsyncIterator[int]:
    """`large` at /large under uvicorn with `serve`'s options and the write deadline (`http`: another protocol)."""
    options = uvicorn_options(Settings(write_timeout_seconds=WRITE_TIMEOUT))
    app = Starlette(routes=[Route("/large", large)])
    async with uvicorn_on_loopback(app, options | ({} if http is None else {"http": http})) as port:
        yield port


@pytest.fixture(scope="module")
async def port(uvicorn_on_loopback: Any, large: LargeResponse) -> AsyncIterator[int]:
    async with serving(uvicorn_on_loopback, large) as port:
        yield port


def slow_client(port: int, request: bytes) -> socket.socket:
    """A connection with a small receive window that has sent `request` (and then reads only when told to)."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1460)
    client.connect(("127.0.0.1", port))
    client.sendall(request)
    client.setblocking(False)
    return client


def local_address(client: socket.socket) -> str:
    """The client's address and port, as the server logs them."""
    host, port = client.getsockname()
    return f"{host}:{port}"


def get(path: str, token: str | None = None) -> bytes:
    authorization = b"" if token is None else b"Authorization: Bearer %s\r\n" % token.encode()
    return b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path.encode(), authorization)


async def reset_by_server(client: socket.socket) -> None:
    """Wait until the server resets the connection, reading nothing."""

    async def error() -> int:
        while not (found := client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)):
            await asyncio.sleep(0.02)
        return found

    assert await asyncio.wait_for(error(), GIVE_UP) == errno.ECONNRESET


async def test_a_client_that_takes_none_of_a_streamed_response_is_reset_and_the_app_task_ends(
    port: int, large: LargeResponse, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the deadline, the app's `send` waited for the socket for ever, holding its task and the bytes."""
    client = slow_client(port, get(f"/large?size={LARGE}"))
    address = local_address(client)
    try:
        await reset_by_server(client)
        assert await asyncio.wait_for(large.finished.get(), GIVE_UP) == "http.disconnect"
    finally:
        client.close()
    logged = [(record.levelname, record.getMessage()) for record in caplog.records if record.name == "flowhook.ingress"]
    assert logged == [("WARNING", f"{address} took none of its response for {WRITE_TIMEOUT} s: connection reset")]


async def test_a_complete_response_left_unread_is_reset(port: int, large: LargeResponse) -> None:
    """The app sent it all at once and went on; uvicorn kept the connection and the bytes for ever (its
    keep-alive timeout closes a connection only once what it buffered is sent)."""
    client = slow_client(port, get(f"/large?size={LARGE}&chunk={LARGE}"))
    try:
        assert await asyncio.wait_for(large.finished.get(), GIVE_UP) == "http.disconnect"
        await reset_by_server(client)
    finally:
        client.close()


async def read_slowly(client: socket.socket, seconds: float) -> bytes:
    """What a client taking 1 KiB every 50 ms (20 KiB/s) reads in `seconds`."""
    received = b""
    loop = asyncio.get_running_loop()
    ends = loop.time() + seconds
    while loop.time() < ends:
        await asyncio.sleep(0.05)
        with contextlib.suppress(BlockingIOError):
            received += client.recv(1024)
    return received


async def read_response(client: socket.socket, received: bytes, size: int) -> tuple[bytes, bytes]:
    """The head and body of a response of `size` bytes that began with `received`, read at full speed."""
    loop = asyncio.get_running_loop()
    while True:
        head, _, body = received.partition(b"\r\n\r\n")
        if len(body) >= size or not (chunk := await asyncio.wait_for(loop.sock_recv(client, 65536), GIVE_UP)):
            return head, body
        received += chunk


async def test_a_client_taking_its_response_slowly_is_not_cut_off(port: int, large: LargeResponse) -> None:
    """It reads for five deadlines, too slowly for flowhook's buffer to move in each (the kernel takes more of
    it only when a third of its own queue is free), but it takes bytes all the time: the deadline is for a client
    that takes nothing, not for a slow download."""
    client = slow_client(port, get(f"/large?size={MiB}"))
    try:
        head, body = await read_response(client, await read_slowly(client, 5 * WRITE_TIMEOUT), MiB)
    finally:
        client.close()
    assert head.startswith(b"HTTP/1.1 200 OK") and body == b"x" * MiB
    await asyncio.wait_for(large.finished.get(), GIVE_UP)  # the app is done with it too


class SmallSendBuffer(SlowClientProtocol):
    """The protocol on sockets with a small, fixed send buffer (a slow link's): a response of `SMALL` bytes fills
    the kernel's queue and leaves the rest in the transport's buffer, below its high-water mark (64 KiB)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        super().connection_made(transport)


async def test_a_response_left_unread_is_reset_even_if_writing_never_paused(
    uvicorn_on_loopback: Any, large: LargeResponse
) -> None:
    """uvicorn would not pause writing for it (the app's one `send` just buffers it), and kept the connection."""
    async with serving(uvicorn_on_loopback, large, SmallSendBuffer.factory(10.0, WRITE_TIMEOUT)) as port:
        client = slow_client(port, get(f"/large?size={SMALL}&chunk={SMALL}"))
        try:
            await reset_by_server(client)
        finally:
            client.close()
        assert await asyncio.wait_for(large.finished.get(), GIVE_UP) == "http.disconnect"


async def test_serve_holds_clients_to_the_configured_write_deadline(
    tmp_path: Path, running_server: Callable[[Settings], AbstractContextManager[tuple[object, str]]]
) -> None:
    """`flowhook serve` runs the protocol with FLOWHOOK_WRITE_TIMEOUT_SECONDS from its environment, and logs the reset.
    The requests are pipelined: uvicorn told only the last one that the client was gone, so the one being answered
    wrote on to the closed connection, and uvloop's error was logged with a traceback for each."""
    settings = Settings(data_dir=tmp_path, admin_token=TOKEN, sandbox_workers=1, write_timeout_seconds=WRITE_TIMEOUT)
    with running_server(settings) as (_, url):
        client = slow_client(int(url.rpartition(":")[2]), get("/openapi.json", TOKEN) * 8)  # ~150 KiB each
        address = local_address(client)
        try:
            await reset_by_server(client)
        finally:
            client.close()
    log = (tmp_path / "serve.log").read_text()
    assert f"{address} took none of its response for {WRITE_TIMEOUT} s: connection reset" in log
    assert "Traceback" not in log


def test_the_write_timeout_setting() -> None:
    assert Settings.from_env({"FLOWHOOK_WRITE_TIMEOUT_SECONDS": "2.5"}).write_timeout_seconds == 2.5
    assert Settings().write_timeout_seconds == 30.0
