"""The floor of SPEC's architecture, for scale beside the bare handler (`load.py --floor`).

A raw ASGI app that does the least any webhook service of SPEC's shape must
do per request, with none of flowhook's features around it: verify a Stripe
signature, parse the JSON body, run a JavaScript mapping in a QuickJS worker
*process* (one, requests pipelined over its pipes), validate the output
against the trigger-request schema with jsonschema-rs, and store a log row
and an invocation row in SQLite (WAL, `synchronous=FULL`) through a writer
thread that commits whatever queued while it was busy (group commit), then
answer 202. Left out: per-call sandbox isolation (one QuickJS context serves
every call), time and memory limits, redaction, idempotency look-ups, flow
variables, request-log cursors and pruning, Starlette. What flowhook spends
beyond this is the cost of its features and of its code, not of the design.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import os
import queue
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

SECRET = os.environ.get("FLOOR_SECRET", "").encode()
SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "trigger-request.schema.json"
FRAME = struct.Struct("<II")  # request id, length

#: The worker: one QuickJS context, the mapping defined once, JSON in and out.
WORKER = r"""
import struct, sys, quickjs
frame = struct.Struct("<II")
context = quickjs.Context()
context.eval("var run = (text) => JSON.stringify(map(JSON.parse(text)));\n" + sys.argv[1])
run = context.get("run")
reader, writer = sys.stdin.buffer, sys.stdout.buffer
while head := reader.read(frame.size):
    number, size = frame.unpack(head)
    answer = run(reader.read(size).decode()).encode()
    writer.write(frame.pack(number, len(answer)) + answer)
    writer.flush()
"""


class Sandbox:
    """One QuickJS worker process; each call a frame out and a frame back, matched by number."""

    def __init__(self) -> None:
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._numbers = itertools.count()

    async def start(self, source: str) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER, source, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self._reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._process.stdout is not None
        while True:
            number, size = FRAME.unpack(await self._process.stdout.readexactly(FRAME.size))
            self._waiting.pop(number).set_result(await self._process.stdout.readexactly(size))

    async def run(self, request: bytes) -> bytes:
        assert self._process.stdin is not None
        number = next(self._numbers) % 2**32
        self._waiting[number] = answer = asyncio.get_running_loop().create_future()
        self._process.stdin.write(FRAME.pack(number, len(request)) + request)
        return await answer


class Writer:
    """Group commit: whatever queued while the last transaction ran is the next one."""

    def __init__(self) -> None:
        path = Path(tempfile.mkdtemp(prefix="flowhook-floor-")) / "floor.db"
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        for statement in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",
            "CREATE TABLE log (seq INTEGER PRIMARY KEY, id TEXT UNIQUE, headers TEXT, body TEXT, output TEXT,"
            " response TEXT)",
            "CREATE TABLE invocations (seq INTEGER PRIMARY KEY, id TEXT UNIQUE, payload TEXT)",
        ):
            self._db.execute(statement)
        self._queue: queue.SimpleQueue[tuple[tuple[str, str, str, str, str], asyncio.Future[None]]] = (
            queue.SimpleQueue()
        )
        threading.Thread(target=self._write, daemon=True).start()

    async def store(self, row: tuple[str, str, str, str, str]) -> None:
        """Durably store (request id, headers, body, output, response): a log row and an invocation row."""
        done = asyncio.get_running_loop().create_future()
        self._queue.put((row, done))
        await done

    def _write(self) -> None:
        while True:
            batch = [self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO log VALUES (NULL, ?, ?, ?, ?, ?)", [row for row, _ in batch])
            invocations = [(f"inv_{request_id}", output) for (request_id, _, _, output, _), _ in batch]
            self._db.executemany("INSERT INTO invocations VALUES (NULL, ?, ?)", invocations)
            self._db.execute("COMMIT")
            loop = batch[0][1].get_loop()
            loop.call_soon_threadsafe(_settle, [done for _, done in batch])


def _settle(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        future.set_result(None)


def verified(header: bytes, body: bytes, tolerance: int = 300) -> bool:
    """Stripe's scheme: `t=<time>,v1=<hex HMAC-SHA256 of "<time>.<body>">`, within the tolerance."""
    fields = [part.partition(b"=") for part in header.split(b",")]
    timestamps = [value for key, _, value in fields if key == b"t"]
    if len(timestamps) != 1 or not timestamps[0].isdigit() or abs(time.time() - int(timestamps[0])) > tolerance:
        return False
    expected = hmac.new(SECRET, timestamps[0] + b"." + body, hashlib.sha256).hexdigest().encode()
    return any(hmac.compare_digest(expected, value) for key, _, value in fields if key == b"v1")


class FloorApp:
    def __init__(self) -> None:
        self._sandbox = Sandbox()
        self._writer = Writer()
        self._validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
        self._ids = itertools.count()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await self._sandbox.start(os.environ["FLOOR_SOURCE"])
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        if scope["method"] != "POST":  # the load script's health check
            await _answer(send, 200, b'{"ok":true}')
            return
        if not verified(headers.get(b"stripe-signature", b""), body):
            await _answer(send, 401, b'{"error":{"code":"signature_invalid"}}')
            return
        text = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers.items()}
        request = {"method": "POST", "path": scope["path"], "headers": text, "body": orjson.loads(body)}
        output = await self._sandbox.run(orjson.dumps({**request, "rawBody": body.decode()}))
        if not self._validator.is_valid(orjson.loads(output)):
            await _answer(send, 422, b'{"error":{"code":"validation_error"}}')
            return
        request_id = f"req_{next(self._ids)}"
        response = orjson.dumps({"requestId": request_id, "mode": "live"})
        log_headers = orjson.dumps({**text, "stripe-signature": "[redacted]"}).decode()
        await self._writer.store((request_id, log_headers, body.decode(), output.decode(), response.decode()))
        await _answer(send, 202, response)


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


app = FloorApp()
