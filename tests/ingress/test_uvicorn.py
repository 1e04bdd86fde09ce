"""The same app under real uvicorn (httptools) on a loopback port: real sockets, real chunking."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import stripe

from ingress.app import create_app
from ingress.serve import UVICORN_OPTIONS
from ingress.settings import Settings

pytestmark = pytest.mark.anyio

TOKEN = "fh_admin_uvicorn-test-token"
SECRET = "whsec_uvicorn_0123456789abcdef"
MAX_BODY = 8192
BODY_TIMEOUT = 0.5


@dataclass
class Server:
    url: str
    port: int
    api: httpx.AsyncClient


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory, uvicorn_on_loopback: Any) -> AsyncIterator[Server]:
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("uvicorn")),
        admin_token=TOKEN,
        sandbox_workers=1,
        max_body_bytes=MAX_BODY,
        body_timeout_seconds=BODY_TIMEOUT,
    )
    async with uvicorn_on_loopback(create_app(settings), UVICORN_OPTIONS) as port:
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {TOKEN}"}) as api:
            yield Server(url, port, api)


async def webhook_trigger(server: Server, **fields: object) -> dict[str, str]:
    flow = (await server.api.post("/v1/default/action-flows", json={"name": "Over TCP"})).json()
    response = await server.api.post(f"/v1/default/action-flows/{flow['id']}/triggers", json=fields)
    assert response.status_code == 201, response.text
    trigger: dict[str, str] = response.json()
    return trigger


async def raw_exchange(port: int, request: bytes, *, chunks: list[bytes] = ()) -> bytes:
    """Send bytes on a fresh connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    for chunk in chunks:
        writer.write(chunk)
        await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


async def test_a_stripe_signed_webhook_over_tcp(server: Server) -> None:
    trigger = await webhook_trigger(
        server,
        verification={"preset": "stripe", "secret": SECRET},
        allowedIps=["127.0.0.1", "::1"],
        mapping={"kind": "javascript", "source": "function map(r) { return {targetUserIds: [r.body.user]}; }"},
    )
    assert trigger["url"] == f"{server.url}/hooks/{trigger['hookId']}"
    body = orjson.dumps({"user": "u-tcp"})
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, int(time.time()))
    async with httpx.AsyncClient() as sender:
        response = await sender.post(
            trigger["url"], content=body, headers={"content-type": "application/json", "stripe-signature": header}
        )
    assert response.status_code == 202, response.text
    entry = (await server.api.get(f"/v1/default/requests/{response.json()['requestId']}")).json()
    assert (entry["clientIp"], entry["output"]) == ("127.0.0.1", {"targetUserIds": ["u-tcp"]})


async def test_an_oversized_chunked_body_is_cut_off_with_413(server: Server) -> None:
    trigger = await webhook_trigger(server)
    head = (
        f"POST /hooks/{trigger['hookId']} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"x" * 4096
    chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 3 + [b"0\r\n\r\n"]
    answer = await raw_exchange(server.port, head, chunks=chunks)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"connection: close" in rest.lower()
    assert b'"code":"body_too_large"' in rest
    log = (await server.api.get(f"/v1/default/triggers/{trigger['id']}/requests")).json()["data"]
    assert [entry["cause"] for entry in log] == ["body_too_large"]


async def test_a_declared_oversized_body_is_refused_before_it_is_read(server: Server) -> None:
    trigger = await webhook_trigger(server)
    head = (
        f"POST /hooks/{trigger['hookId']} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {MAX_BODY * 100}\r\n\r\n"
    ).encode()
    answer = await raw_exchange(server.port, head)  # no body sent at all: the answer must not wait for it
    assert answer.startswith(b"HTTP/1.1 413 ")


async def test_chunked_bodies_within_the_limit_are_accepted(server: Server) -> None:
    trigger = await webhook_trigger(server)

    async def parts() -> AsyncIterator[bytes]:
        yield b'{"targetUserIds": '
        yield b'["u-chunked"]}'

    async with httpx.AsyncClient() as sender:
        response = await sender.post(trigger["url"], content=parts(), headers={"content-type": "application/json"})
    assert response.status_code == 202, response.text


async def test_forwarded_for_from_localhost_is_not_believed_without_a_trusted_proxy(server: Server) -> None:
    trigger = await webhook_trigger(server, allowedIps=["192.0.2.1"])
    async with httpx.AsyncClient() as sender:
        response = await sender.post(
            trigger["url"],
            content=b'{"targetUserIds": ["u1"]}',
            headers={"content-type": "application/json", "x-forwarded-for": "192.0.2.1"},
        )
    assert response.status_code == 403
    entry = (await server.api.get(f"/v1/default/requests/{response.json()['error']['requestId']}")).json()
    assert entry["clientIp"] == "127.0.0.1"


def partial_request(path: str, *, declared: int, sent: bytes, headers: str = "") -> bytes:
    """A request whose body stops short of its Content-Length."""
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}"
    return f"{head}Content-Length: {declared}\r\n\r\n".encode() + sent


async def test_a_body_that_does_not_arrive_in_time_is_answered_408_and_logged(server: Server) -> None:
    trigger = await webhook_trigger(server)
    answer = await raw_exchange(
        server.port, partial_request(f"/hooks/{trigger['hookId']}", declared=100, sent=b'{"tar')
    )
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout"
    assert b"connection: close" in rest.lower()
    request_id = orjson.loads(rest.partition(b"\r\n\r\n")[2])["error"]["requestId"]
    entry = (await server.api.get(f"/v1/default/requests/{request_id}")).json()
    assert (entry["status"], entry["cause"], entry["body"], entry["bodyTruncated"]) == (
        408,
        "body_timeout",
        '{"tar',
        True,
    )


async def test_a_sender_that_hangs_up_mid_body_is_logged_without_an_error(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    trigger = await webhook_trigger(server)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(partial_request(f"/hooks/{trigger['hookId']}", declared=100, sent=b'{"targetUserIds"'))
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    log: list[dict[str, object]] = []
    for _ in range(100):
        log = (await server.api.get(f"/v1/default/triggers/{trigger['id']}/requests")).json()["data"]
        if log:
            break
        await asyncio.sleep(0.05)
    assert [(entry["status"], entry["cause"]) for entry in log] == [(499, "client_disconnected")]
    entry = (await server.api.get(f"/v1/default/requests/{log[0]['id']}")).json()
    # uvicorn hands over what it buffered only if the hang-up has not been seen yet: all of it or none.
    assert entry["body"] in ("", '{"targetUserIds"')
    assert (entry["bodyBytes"], entry["bodyTruncated"]) == (len(entry["body"]), True)
    assert f"{len(entry['body'])} bytes of it were read" in entry["message"]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_the_management_api_times_out_slow_bodies_and_shrugs_off_hang_ups(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    auth = f"Authorization: Bearer {TOKEN}\r\n"
    slow = partial_request("/v1/default/action-flows", declared=50, sent=b'{"name"', headers=auth)
    answer = await raw_exchange(server.port, slow)  # reads until the server closes the connection
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"code":"body_timeout"' in answer and b"connection: close" in answer.lower()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(partial_request("/v1/default/action-flows", declared=50, sent=b'{"name"', headers=auth))
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.2)
    assert (await server.api.get("/healthz")).status_code == 200
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
