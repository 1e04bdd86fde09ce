"""kill -9 during a large segment evaluation: after a restart the background finishes it, each entry once.

`serve` runs in a subprocess on a temp data directory holding many
customers; a segment is created, and the server is SIGKILLed once some of
its evaluation's chunks have committed, with the answer still to come. After
a restart (and the dead evaluator's lease run out), the segment evaluator
finishes the evaluation by itself: every matching customer entered once, no
one else, and the segment reads as completely evaluated.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from ingress.settings import Settings
from store import Store, database_url
from store.clock import utcnow
from store.tables import customers

pytestmark = pytest.mark.anyio

TOKEN = "fh_admin_segment-crash-token"
CUSTOMERS = 20_000  # 40 chunks: the evaluation takes long enough to be caught half-way
RULES = {"all": [{"attribute": "plan", "op": "eq", "value": "pro"}]}


def plan(index: int) -> str:
    return "pro" if index % 2 else "free"


async def with_customers(data_dir: Path) -> None:
    store = await Store.open(database_url(None, data_dir), fsync=False)
    now = utcnow()
    rows = [
        {
            "environment_id": "default",
            "user_id": f"u{index}",
            "attributes": {"plan": plan(index)},
            "created_at": now,
            "updated_at": now,
        }
        for index in range(CUSTOMERS)
    ]
    try:
        await store.write(lambda conn: conn.execute(sa.insert(customers), rows))
    finally:
        await store.close()


def evaluation_state(data_dir: Path) -> tuple[int, int, int] | None:
    """The segment's (revision, evaluated revision, customers examined), once it exists."""
    with sqlite3.connect(data_dir / "flowhook.db") as db:
        row = db.execute("SELECT revision, evaluated_revision, evaluation_examined FROM segments").fetchone()
    return None if row is None else (row[0], row[1], row[2])


async def killed_half_way(url: str, process: Any, data_dir: Path) -> None:
    """Create the segment and SIGKILL the server once some chunks, not all, have committed."""
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=120) as api:
        creating = asyncio.create_task(api.post("/v1/default/segments", json={"name": "Pro", "rules": RULES}))
        while not creating.done():
            state = evaluation_state(data_dir)
            if state is not None and state[1] < state[0] and (state[2] or 0) > 0:
                process.send_signal(signal.SIGKILL)
                break
            await asyncio.sleep(0.005)
        with pytest.raises(httpx.TransportError):
            await creating  # a segment evaluated to the end before the kill fails here: raise CUSTOMERS


def entries(data_dir: Path) -> dict[str, int]:
    with sqlite3.connect(data_dir / "flowhook.db") as db:
        rows = db.execute(
            "SELECT end_user_id, COUNT(*) FROM analytics_events WHERE event_name = 'segment-entered'"
            " GROUP BY end_user_id"
        )
        return dict(rows)


async def test_a_killed_evaluation_is_finished_after_a_restart(tmp_path: Path, running_server) -> None:
    await with_customers(tmp_path)
    settings = Settings(data_dir=tmp_path, admin_token=TOKEN, sandbox_workers=1, durability="os")
    with running_server(settings) as (process, url):
        await killed_half_way(url, process, tmp_path)
        assert process.wait(timeout=30) == -signal.SIGKILL
    revision, evaluated, examined = evaluation_state(tmp_path) or (0, 0, 0)
    assert (revision, evaluated) == (1, 0) and 0 < examined < CUSTOMERS
    with sqlite3.connect(tmp_path / "flowhook.db") as db:  # as if the dead evaluator's lease had run out
        db.execute("UPDATE segments SET evaluation_lease = '2000-01-01 00:00:00.000000'")

    with running_server(settings) as (_, url):
        api = httpx.Client(base_url=url, headers={"authorization": f"Bearer {TOKEN}"})
        [segment] = api.get("/v1/default/segments").json()["data"]
        deadline = time.monotonic() + 120
        while not segment["evaluation"]["complete"] and time.monotonic() < deadline:
            time.sleep(0.1)
            segment = api.get(f"/v1/default/segments/{segment['id']}").json()
    assert segment["evaluation"] == {
        "revision": 1,
        "customersExamined": CUSTOMERS,
        "entered": CUSTOMERS // 2,
        "exited": 0,
        "complete": True,
    }
    assert segment["memberCount"] == CUSTOMERS // 2
    assert entries(tmp_path) == {f"u{index}": 1 for index in range(CUSTOMERS) if plan(index) == "pro"}
