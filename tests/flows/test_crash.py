"""kill -9 of `flowhook serve` while flows run: after restarts every card exists exactly once, every wait resumes.

`serve` runs in a subprocess on a temp data directory. Many invocations of a
live flow `send-card → wait PT1S → send-card` arrive as webhooks; the server
is SIGKILLed twice: first while webhooks arrive and are expanded (first cards
going out, waits starting), then as soon as the first waits resume. After the
last restart (and the senders' retries) every flow instance completes, with
exactly one card per (instance, step) and one analytics event per effect.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from ingress.settings import Settings

pytestmark = pytest.mark.anyio

TOKEN = "fh_admin_flow-crash-token"
INVOCATIONS = 300
USERS_PER_INVOCATION = 3
CONCURRENCY = 32


def server_settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        admin_token=TOKEN,
        sandbox_workers=1,
        executor_poll_seconds=0.02,
        executor_batch=10,  # many small transactions: more moments to die in
    )


def query(data_dir: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(data_dir / "flowhook.db") as db:
        return db.execute(sql).fetchall()


def count(data_dir: Path, sql: str) -> int:
    return int(query(data_dir, sql)[0][0])


def kill_when(process: subprocess.Popen[bytes], data_dir: Path, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "the kill condition never came"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


async def fire(hook_url: str) -> int:
    """Deliver the webhooks until done or the server dies; how many were acknowledged."""
    acknowledged = 0
    queue = list(range(INVOCATIONS))
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=CONCURRENCY), timeout=10) as client:

        async def worker() -> None:
            nonlocal acknowledged
            while queue:
                index = queue.pop()
                users = [f"u{index}-{n}" for n in range(USERS_PER_INVOCATION)]
                body = orjson.dumps({"targetUserIds": users, "flowInvocationId": f"crash-{index}"})
                try:
                    response = await client.post(hook_url, content=body, headers={"content-type": "application/json"})
                except httpx.TransportError:
                    return  # the server is gone
                assert response.status_code == 202, response.text
                acknowledged += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return acknowledged


def set_up(url: str) -> str:
    """A published flow with a live webhook trigger; returns the hook URL."""
    api = httpx.Client(base_url=url, headers={"authorization": f"Bearer {TOKEN}"})
    template = api.post("/v1/default/card-templates", json={"name": "c", "definition": {"title": "hi"}}).json()
    api.post(f"/v1/default/card-templates/{template['id']}/publish").raise_for_status()
    send = {"type": "send-card", "cardTemplateId": template["id"]}
    steps = [{**send, "id": "first"}, {"type": "wait", "id": "pause", "duration": "PT1S"}, {**send, "id": "second"}]
    flow = api.post("/v1/default/action-flows", json={"name": "Crash", "steps": steps}).json()
    api.post(f"/v1/default/action-flows/{flow['id']}/publish").raise_for_status()
    trigger = api.post(f"/v1/default/action-flows/{flow['id']}/triggers", json={"mode": "live"}).json()
    return f"{url}/hooks/{trigger['hookId']}"


async def test_sigkill_while_flows_run_loses_and_doubles_nothing(tmp_path: Path, running_server) -> None:
    total_users = INVOCATIONS * USERS_PER_INVOCATION
    settings = server_settings(tmp_path)
    with running_server(settings) as (process, url):
        hook = set_up(url)
        firing = asyncio.ensure_future(fire(hook))
        await asyncio.to_thread(
            kill_when, process, tmp_path, lambda: count(tmp_path, "SELECT COUNT(*) FROM cards") >= total_users // 4
        )
        acknowledged = await firing
    assert acknowledged <= count(tmp_path, "SELECT COUNT(*) FROM invocations")
    assert count(tmp_path, "SELECT COUNT(*) FROM flow_instances WHERE status = 'waiting'") > 0  # waits in flight

    with running_server(settings) as (process, _):
        resumed = "SELECT COUNT(*) FROM cards WHERE step_id = 'second'"
        await asyncio.to_thread(kill_when, process, tmp_path, lambda: count(tmp_path, resumed) > 0)

    with running_server(settings) as (_, url):
        # Senders retry what was not acknowledged (and some of what was: recognised, not stored again).
        assert await fire(hook.replace(hook.split("/hooks/")[0], url)) == INVOCATIONS
        done = "SELECT COUNT(*) FROM flow_instances WHERE status = 'completed'"
        deadline = time.monotonic() + 60
        while count(tmp_path, done) < total_users:
            assert time.monotonic() < deadline, "not every flow instance completed"
            await asyncio.sleep(0.05)

    assert count(tmp_path, "SELECT COUNT(*) FROM invocations") == INVOCATIONS
    assert count(tmp_path, "SELECT COUNT(*) FROM flow_instances") == total_users
    per_step = query(tmp_path, "SELECT step_id, COUNT(*), COUNT(DISTINCT flow_instance_id) FROM cards GROUP BY step_id")
    assert sorted(per_step) == [("first", total_users, total_users), ("second", total_users, total_users)]
    per_event = dict(query(tmp_path, "SELECT event_name, COUNT(*) FROM analytics_events GROUP BY event_name"))
    assert per_event == {
        "action-flow-started": total_users,
        "card-published": 2 * total_users,
        "action-flow-completed": total_users,
    }
