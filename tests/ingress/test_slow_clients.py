"""Slow clients (slowloris) under real uvicorn: a request head must arrive within FLOWHOOK_HEADER_TIMEOUT_SECONDS.

Each test drips bytes until the server closes the connection, then looks at
what it answered; the `wait_for` caps only turn a missing deadline into a
failure instead of a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingress.app import create_app
from ingress.serve import uvicorn_options
from ingress.settings import Settings
from ingress.slow_clients import SlowClientProtocol

pytestmark = pytest.mark.anyio

TOKEN = "fh_admin_slow-clients-test-token"
HEADER_TIMEOUT = 0.3
BODY_TIMEOUT = 5.0
DRIP_INTERVAL = 0.04
GIVE_UP = 10.0  # far beyond every deadline here: a test that reaches it found no deadline
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(scope="module")
async def port(tmp_path_factory: pytest.TempPathFactory, uvicorn_on_loopback: Any) -> AsyncIterator[int]:
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("slow-clients")),
        admin_token=TOKEN,
        sandbox_workers=1,
        header_timeout_seconds=HEADER_TIMEOUT,
        body_timeout_seconds=BODY_TIMEOUT,
    )
    async with uvicorn_on_loopback(create_app(settings), uvicorn_options(settings)) as port:
        yield port


async def drip_until_closed(port: int, start: bytes, drip: bytes) -> bytes:
    """Send `start`, then `drip` one byte at a time until the server closes the connection; what it sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(start)

    async def dripping() -> None:
        with contextlib.suppress(ConnectionError):  # the server closed the connection: done
            for byte in drip:
                await asyncio.sleep(DRIP_INTERVAL)
                writer.write(bytes([byte]))
                await writer.drain()

    dripper = asyncio.create_task(dripping())
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), GIVE_UP):
            received += chunk
    except ConnectionResetError:  # closed with a dripped byte unread: a reset, after what was sent
        pass
    finally:
        dripper.cancel()
        writer.close()
    return received


def answers(received: bytes) -> list[tuple[bytes, dict[str, Any]]]:
    """The status lines and JSON bodies of the responses in `received`, in order."""
    found = []
    while received:
        head, _, rest = received.partition(b"\r\n\r\n")
        status_line, *header_lines = head.split(b"\r\n")
        headers = dict(line.lower().split(b": ", 1) for line in header_lines)
        length = int(headers[b"content-length"])
        found.append((status_line, orjson.loads(rest[:length])))
        received = rest[length:]
    return found


def request(path: str, body: bytes = b"{}", *, declared: int | None = None, token: str | None = None) -> bytes:
    """A JSON POST of `body`, announced as `declared` bytes (default: its length)."""
    length = len(body) if declared is None else declared
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: application/json", f"Content-Length: {length}"]
    lines += [] if token is None else [f"Authorization: Bearer {token}"]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert await asyncio.wait_for(reader.read(), GIVE_UP) == b""
    finally:
        writer.close()


async def test_a_head_that_trickles_in_is_answered_408_and_closed(port: int) -> None:
    received = await drip_until_closed(port, b"POST /hooks/h", b"x" * 10_000)
    assert answers(received) == [
        (
            b"HTTP/1.1 408 Request Timeout",
            {
                "error": {
                    "code": "header_timeout",
                    "message": f"the request's headers did not arrive within {HEADER_TIMEOUT} s",
                }
            },
        )
    ]
    assert b"\r\nconnection: close\r\n" in received


async def test_the_deadline_starts_again_after_each_response(port: int) -> None:
    """A keep-alive connection: the first request is answered, the next head trickles (keeping uvicorn's
    keep-alive timer from ever firing) and is answered 408."""
    received = await drip_until_closed(port, HEALTH + b"GET /healthz HTTP/1.1\r\nX-Slow: ", b"a" * 10_000)
    assert [status for status, _ in answers(received)] == [b"HTTP/1.1 200 OK", b"HTTP/1.1 408 Request Timeout"]


async def test_the_rest_of_an_unread_body_cannot_hold_the_connection(port: int) -> None:
    """A request answered without its body being read (404 unknown hook): the body dripping in afterwards
    is no request, so the connection is closed with no answer beyond the 404."""
    received = await drip_until_closed(port, request("/hooks/no-such-hook", declared=100_000), b"x" * 10_000)
    assert [(status, body["error"]["code"]) for status, body in answers(received)] == [
        (b"HTTP/1.1 404 Not Found", "hook_not_found")
    ]


async def read_answer(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, Any]]:
    """One response on a connection that stays open."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP)
    length = int(head.lower().partition(b"content-length: ")[2].partition(b"\r\n")[0])
    [answer] = answers(head + await reader.readexactly(length))
    return answer


async def test_the_deadline_does_not_cover_the_body_or_later_requests(port: int) -> None:
    """Bodies slower than the head deadline (within their own), on a fresh connection and after a response, are
    read, and the connection then serves pipelined requests."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for name in ("Slow", "Slower"):
            head, _, body = request(
                "/v1/default/action-flows", b'{"name": "%s"}' % name.encode(), token=TOKEN
            ).partition(b"\r\n\r\n")
            writer.write(head + b"\r\n\r\n")
            await asyncio.sleep(HEADER_TIMEOUT * 2)
            writer.write(body)
            status, answer = await read_answer(reader)
            assert (status, answer["name"]) == (b"HTTP/1.1 201 Created", name)
        writer.write(HEALTH + HEALTH)
        assert [(await read_answer(reader))[0] for _ in range(2)] == [b"HTTP/1.1 200 OK"] * 2
    finally:
        writer.close()


async def test_a_slow_client_does_not_hold_up_others(port: int) -> None:
    slow = asyncio.create_task(drip_until_closed(port, b"POST /hooks/h", b"x" * 10_000))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(HEALTH)
        received = await asyncio.wait_for(reader.readuntil(b"}"), GIVE_UP)
    finally:
        writer.close()
    assert received.startswith(b"HTTP/1.1 200 OK")
    assert answers(await slow)[0][0] == b"HTTP/1.1 408 Request Timeout"


async def test_serve_holds_clients_to_the_configured_deadline(
    tmp_path: Path, running_server: Callable[[Settings], AbstractContextManager[tuple[object, str]]]
) -> None:
    """`flowhook serve` runs the protocol with FLOWHOOK_HEADER_TIMEOUT_SECONDS from its environment."""
    settings = Settings(data_dir=tmp_path, admin_token=TOKEN, sandbox_workers=1, header_timeout_seconds=HEADER_TIMEOUT)
    with running_server(settings) as (_, url):
        received = await drip_until_closed(int(url.rpartition(":")[2]), b"GET /healthz HTTP/1.1\r\n", b"x" * 10_000)
    assert answers(received)[0][0] == b"HTTP/1.1 408 Request Timeout"


def test_the_protocol_factory_survives_pickling_for_worker_processes() -> None:
    """`serve --workers N` hands uvicorn's config, and so the factory, to spawned processes by pickle."""
    settings = Settings(header_timeout_seconds=7.5, write_timeout_seconds=12.5)
    factory = pickle.loads(pickle.dumps(uvicorn_options(settings)["http"]))
    assert (factory.func, factory.keywords) == (SlowClientProtocol, {"header_timeout": 7.5, "write_timeout": 12.5})


def test_the_header_timeout_setting() -> None:
    assert Settings.from_env({"FLOWHOOK_HEADER_TIMEOUT_SECONDS": "2.5"}).header_timeout_seconds == 2.5
    assert Settings().header_timeout_seconds == 10.0


@pytest.mark.parametrize(
    "variable",
    [
        "FLOWHOOK_HEADER_TIMEOUT_SECONDS",
        "FLOWHOOK_BODY_TIMEOUT_SECONDS",
        "FLOWHOOK_WRITE_TIMEOUT_SECONDS",
        "FLOWHOOK_PRUNE_INTERVAL_SECONDS",
        "FLOWHOOK_EXECUTOR_POLL_SECONDS",
    ],
)
def test_durations_must_be_more_than_zero(variable: str) -> None:
    """0 timed every body (or head, or response) out at once, or spun a background loop without a pause."""
    for refused in ("0", "-1", "nan"):
        with pytest.raises(ValueError, match=rf"\({variable}\) must be more than 0"):
            Settings.from_env({variable: refused})
