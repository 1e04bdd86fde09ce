"""kill -9 under load loses no acknowledged webhook and stores none twice.

`serve` runs in a subprocess on a temp data directory; a load of
Stripe-signed requests is fired at it concurrently and the server is
SIGKILLed while requests are in flight. After a restart on the same
directory, every request that was answered 202 is in the inbox exactly once,
and repeating it is recognised as a duplicate.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pytest
import stripe

pytestmark = pytest.mark.anyio

TOKEN = "fh_admin_crash-test-token"
SECRET = "whsec_crash_0123456789abcdef"
REQUESTS = 1500
KILL_AFTER = 300  # acknowledged requests before the kill
CONCURRENCY = 48
MAPPING = {
    "kind": "javascript",
    "source": "function map(r) { return {targetUserIds: [r.body.data.user], flowInvocationId: r.body.id}; }",
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_server(data_dir: Path, durability: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`flowhook serve` as its own process (what the CLI runs), until killed or the block ends."""
    port = free_port()
    code = f"from ingress.serve import serve; serve(host='127.0.0.1', port={port}, data_dir={str(data_dir)!r})"
    env = {
        **os.environ,
        "FLOWHOOK_ADMIN_TOKEN": TOKEN,
        "FLOWHOOK_SANDBOX_WORKERS": "1",
        "FLOWHOOK_DURABILITY": durability,
    }
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(process, url)
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def wait_until_up(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stdout.read().decode() if process.stdout else ''}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("server did not start")


def signed_event(index: int) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(
        {"id": f"evt_{index:05d}", "type": "invoice.paid", "data": {"user": f"u{index}", "pad": "x" * 700}}
    )
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, int(time.time()))
    return body, {"content-type": "application/json", "stripe-signature": str(header)}


async def fire(url: str, process: subprocess.Popen[bytes]) -> dict[str, str]:
    """Send the load; SIGKILL the server once KILL_AFTER requests were acknowledged. Returns id -> requestId."""
    acknowledged: dict[str, str] = {}
    queue = list(range(REQUESTS))
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:

        async def worker() -> None:
            while queue:
                index = queue.pop()
                body, headers = signed_event(index)
                try:
                    response = await client.post(url, content=body, headers=headers)
                except httpx.TransportError:
                    continue  # the server died with this request in flight: not acknowledged
                if response.status_code == 202:
                    acknowledged[f"evt_{index:05d}"] = response.json()["requestId"]
                    if len(acknowledged) == KILL_AFTER:
                        process.send_signal(signal.SIGKILL)
                else:
                    assert response.status_code >= 500, response.text

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return acknowledged


def stored(data_dir: Path) -> dict[str, int]:
    with sqlite3.connect(data_dir / "flowhook.db") as db:
        rows = db.execute("SELECT flow_invocation_id, COUNT(*) FROM invocations GROUP BY flow_invocation_id")
        return dict(rows)


@pytest.mark.parametrize("durability", ["fsync", "os"])
async def test_sigkill_under_load_loses_no_acknowledged_request(tmp_path: Path, durability: str) -> None:
    """Both durability settings survive the death of the process (only `fsync` survives the machine's)."""
    with running_server(tmp_path, durability) as (process, url):
        api = httpx.Client(base_url=url, headers={"authorization": f"Bearer {TOKEN}"})
        flow = api.post("/v1/default/action-flows", json={"name": "Crash"}).json()
        trigger = api.post(
            f"/v1/default/action-flows/{flow['id']}/triggers",
            json={"mapping": MAPPING, "verification": {"preset": "stripe", "secret": SECRET}},
        ).json()
        acknowledged = await fire(f"{url}/hooks/{trigger['hookId']}", process)
        assert process.wait(timeout=30) == -signal.SIGKILL
    assert KILL_AFTER <= len(acknowledged) < REQUESTS  # killed mid-way, with requests in flight

    with running_server(tmp_path, durability) as (_, url):
        counts = stored(tmp_path)
        missing = [key for key in acknowledged if key not in counts]
        assert missing == []
        assert set(counts.values()) == {1}
        hook = f"{url}/hooks/{trigger['hookId']}"
        for key in list(acknowledged)[:5]:  # a sender's retry after the crash: recognised, not stored again
            body, headers = signed_event(int(key.removeprefix("evt_")))
            retry = httpx.post(hook, content=body, headers=headers)
            assert retry.status_code == 202
            assert retry.json()["requestId"] == acknowledged[key]
        assert stored(tmp_path) == counts
