"""kill -9 under load loses no acknowledged webhook and stores none twice.

`serve` runs in a subprocess on a temp data directory; a load of
Stripe-signed requests is fired at it concurrently and the server is
SIGKILLed while requests are in flight. After a restart on the same
directory, every request that was answered 202 is in the inbox exactly once,
and repeating it is recognised as a duplicate.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest
import stripe

from ingress.settings import Settings

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
async def test_sigkill_under_load_loses_no_acknowledged_request(
    tmp_path: Path, durability: str, running_server
) -> None:
    """Both durability settings survive the death of the process (only `fsync` survives the machine's)."""
    settings = Settings(data_dir=tmp_path, admin_token=TOKEN, sandbox_workers=1, durability=durability)
    with running_server(settings) as (process, url):
        api = httpx.Client(base_url=url, headers={"authorization": f"Bearer {TOKEN}"})
        flow = api.post("/v1/default/action-flows", json={"name": "Crash"}).json()
        trigger = api.post(
            f"/v1/default/action-flows/{flow['id']}/triggers",
            json={"mapping": MAPPING, "verification": {"preset": "stripe", "secret": SECRET}},
        ).json()
        acknowledged = await fire(f"{url}/hooks/{trigger['hookId']}", process)
        assert process.wait(timeout=30) == -signal.SIGKILL
    assert KILL_AFTER <= len(acknowledged) < REQUESTS  # killed mid-way, with requests in flight

    with running_server(settings) as (_, url):
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
