"""An answer given before the request's body arrived (413 body_too_large) reaches a client still sending that body,
under real uvicorn: the lingering close (ingress.lingering_close), and its bounds.

The clients are blocking sockets in a thread, as a plain HTTP client is: it
sends its whole request, and only then reads. To make the reset certain
without the lingering close, a client sends the bulk of its body only once
the answer has come (the server then has answered and closed): its bytes meet
a closed socket, the server's kernel resets the connection, and the client's
sending fails before it reads a byte. The `GIVE_UP` caps only turn a missing
close into a failure instead of a hang.
"""

from __future__ import annotations

import asyncio
import select
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ingress.app import create_app
from ingress.serve import uvicorn_options
from ingress.settings import Settings
from ingress.slow_clients import SlowClientProtocol

pytestmark = pytest.mark.anyio

TOKEN = "fh_admin_lingering-close-test-token"
MAX_BODY = 64 * 1024
LARGE = 8 * 1024 * 1024  # sent after the answer: more than the kernels' buffers hold on the way
PIECE = b"x" * (64 * 1024)
FOREVER = 3600.0  # a linger bound no test waits for
GIVE_UP = 10.0


@pytest.fixture(scope="module")
async def hook_port(tmp_path_factory: pytest.TempPathFactory, uvicorn_on_loopback: Any) -> AsyncIterator[int]:
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("lingering-close")),
        admin_token=TOKEN,
        sandbox_workers=1,
        max_body_bytes=MAX_BODY,
    )
    async with uvicorn_on_loopback(create_app(settings), uvicorn_options(settings)) as port:
        yield port


async def hook_path(url: str) -> str:
    """The path of a new webhook trigger's hook."""
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {TOKEN}"}) as api:
        flow = (await api.post("/v1/default/action-flows", json={"name": "Lingering"})).json()
        trigger = (await api.post(f"/v1/default/action-flows/{flow['id']}/triggers", json={})).json()
    return f"/hooks/{trigger['hookId']}"


def head(path: str, framing: str) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode()


def answered(client: socket.socket, wait: float = GIVE_UP) -> bool:
    return bool(select.select([client], [], [], wait)[0])


def read_to_end(client: socket.socket) -> bytes:
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return received


def declared_body_sent_whole(port: int, path: str) -> bytes:
    """What a client reads that announces LARGE bytes, sends them all once it is answered, then reads."""
    with socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP) as client:
        client.sendall(head(path, f"Content-Length: {LARGE}"))
        assert answered(client)
        client.sendall(b"x" * LARGE)
        return read_to_end(client)


def chunked_body_sent_whole(port: int, path: str) -> bytes:
    """What a client reads that sends chunks until it is answered (the server reads up to its limit), then LARGE
    bytes more and the last chunk, then reads."""
    chunk = b"%x\r\n%s\r\n" % (len(PIECE), PIECE)
    with socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP) as client:
        client.sendall(head(path, "Transfer-Encoding: chunked"))
        while not answered(client, 0):
            client.sendall(chunk)
        client.sendall(chunk * (LARGE // len(PIECE)) + b"0\r\n\r\n")
        return read_to_end(client)


def response(received: bytes) -> tuple[bytes, dict[bytes, bytes], Any]:
    """The status line, headers and JSON body of the one response in `received`."""
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in header_lines)
    assert int(headers[b"content-length"]) == len(body)
    return status_line, headers, orjson.loads(body)


def assert_refused_as_too_large(received: bytes) -> None:
    status_line, headers, body = response(received)
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    assert headers[b"connection"] == b"close"
    assert body["error"]["code"] == "body_too_large"
    assert body["error"]["message"] == f"the body exceeds the limit of {MAX_BODY} bytes"


@pytest.mark.parametrize("client", [declared_body_sent_whole, chunked_body_sent_whole])
async def test_a_client_still_sending_its_body_reads_the_413(
    hook_port: int, client: Callable[[int, str], bytes]
) -> None:
    path = await hook_path(f"http://127.0.0.1:{hook_port}")
    assert_refused_as_too_large(await asyncio.to_thread(client, hook_port, path))


async def test_serve_closes_lingering(
    tmp_path: Path, running_server: Callable[[Settings], AbstractContextManager[tuple[object, str]]]
) -> None:
    """`flowhook serve` (uvloop's transports) lingers too."""
    settings = Settings(data_dir=tmp_path, admin_token=TOKEN, sandbox_workers=1, max_body_bytes=MAX_BODY)
    with running_server(settings) as (_, url):
        path = await hook_path(url)
        received = await asyncio.to_thread(declared_body_sent_whole, int(url.rpartition(":")[2]), path)
    assert_refused_as_too_large(received)


class Watched(SlowClientProtocol):
    """Puts None in `lost` when a connection ends."""

    lost: asyncio.Queue[None]

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.lost.put_nowait(None)


async def refuse(request: Request) -> JSONResponse:
    """Answers without reading the body, and closes the connection: what flowhook does to a body over its limit."""
    return JSONResponse({"refused": True}, 413, headers={"connection": "close"})


@asynccontextmanager
async def lingering(uvicorn_on_loopback: Any, seconds: float, idle: float) -> AsyncIterator[tuple[int, type[Watched]]]:
    """`refuse` served with lingering closes bounded by `seconds` and `idle`: its port, and the protocol class,
    whose `lost` tells of each connection's end."""
    fields = {"linger_seconds": seconds, "linger_idle_seconds": idle, "lost": asyncio.Queue()}
    protocol: type[Watched] = type("Quick", (Watched,), fields)
    options = uvicorn_options(Settings()) | {"http": protocol.factory(GIVE_UP, GIVE_UP)}
    async with uvicorn_on_loopback(Starlette(routes=[Route("/", refuse, methods=["POST"])]), options) as port:
        yield port, protocol


def refused(port: int, declared: int = 10**12) -> tuple[socket.socket, bytes]:
    """A connection answered with `refuse`'s 413 after its head, and that answer, read to its end (the FIN)."""
    client = socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP)
    client.sendall(head("/", f"Content-Length: {declared}"))
    return client, read_to_end(client)


async def test_a_client_sending_on_and_on_is_cut_off_after_the_bound(uvicorn_on_loopback: Any) -> None:
    def send_until_cut_off(port: int) -> bytes:
        client, answer = refused(port)
        with client:
            cap = time.monotonic() + GIVE_UP
            while time.monotonic() < cap:
                try:
                    client.sendall(PIECE)
                except (ConnectionResetError, BrokenPipeError):  # closed with bytes unread: a reset
                    return answer
            raise AssertionError("the connection was never closed")

    async with lingering(uvicorn_on_loopback, seconds=0.3, idle=FOREVER) as (port, protocol):
        answer = await asyncio.to_thread(send_until_cut_off, port)
        await asyncio.wait_for(protocol.lost.get(), GIVE_UP)
    assert response(answer)[0] == b"HTTP/1.1 413 Request Entity Too Large"


async def test_a_client_closing_releases_the_connection_at_once(uvicorn_on_loopback: Any) -> None:
    async with lingering(uvicorn_on_loopback, seconds=FOREVER, idle=FOREVER) as (port, protocol):
        client, answer = await asyncio.to_thread(refused, port)
        client.close()
        await asyncio.wait_for(protocol.lost.get(), GIVE_UP)
    assert response(answer)[2] == {"refused": True}


async def test_a_client_falling_silent_is_let_go(uvicorn_on_loopback: Any) -> None:
    async with lingering(uvicorn_on_loopback, seconds=FOREVER, idle=0.3) as (port, protocol):
        client, _ = await asyncio.to_thread(refused, port)
        with client:
            await asyncio.to_thread(client.sendall, PIECE)
            await asyncio.wait_for(protocol.lost.get(), GIVE_UP)


async def test_a_request_that_arrived_whole_is_closed_without_lingering(uvicorn_on_loopback: Any) -> None:
    """A connection closed after a request whose body was all there: nothing more can come, nothing to wait for."""
    async with lingering(uvicorn_on_loopback, seconds=FOREVER, idle=FOREVER) as (port, protocol):

        def whole_request() -> socket.socket:
            client = socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP)
            client.sendall(head("/", "Content-Length: 2") + b"{}")
            read_to_end(client)
            return client

        with await asyncio.to_thread(whole_request):  # the client keeps its side open
            await asyncio.wait_for(protocol.lost.get(), GIVE_UP)
