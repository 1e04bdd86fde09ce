"""`flowhook worker` dispatches events too: a delivery left pending by another process becomes a card.

The worker runs as a real process with a sandbox pool of its own, so the
trigger's mapping is JavaScript.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store import Store, card_templates, database_url, flows
from store.clock import utcnow
from store.event_deliveries import enqueue
from store.tables import analytics_events
from store.triggers import insert_trigger

pytestmark = pytest.mark.anyio

MAPPING = {
    "kind": "javascript",
    "source": "function map({ body }) { return { targetUserIds: [body.endUserId], variables: body.properties }; }",
}


def prepare(conn: Connection) -> None:
    """A live flow sending a card, a live event trigger on `signed-up`, and one such event with its delivery."""
    template = card_templates.insert_template(conn, "default", {"name": "t", "definition": {"title": "Hi {{name}}"}})
    card_templates.publish(conn, "default", template.id)
    steps = [{"type": "send-card", "id": "s", "cardTemplateId": template.id}]
    flow = flows.insert_flow(conn, "default", {"name": "f", "variables": [], "steps": steps})
    flows.publish(conn, "default", flow.id)
    insert_trigger(conn, "default", flow.id, kind="event", mode="live", mapping=MAPPING, event_name="signed-up")
    now = utcnow()
    row = {"id": "evt_worker", "environment_id": "default", "event_name": "signed-up", "timestamp": now}
    row |= {
        "end_user_id": "ann",
        "flow_id": None,
        "event_source": "live",
        "properties": {"name": "Ann"},
        "metadata": {},
    }
    conn.execute(sa.insert(analytics_events).values(**row))
    enqueue(conn, [row], 1, now=now)


def cards(data_dir: Path) -> list[tuple[str, Any]]:
    with sqlite3.connect(data_dir / "flowhook.db") as db:
        return [
            (user, json.loads(definition)) for user, definition in db.execute("SELECT user_id, definition FROM cards")
        ]


async def test_a_worker_turns_a_pending_delivery_into_a_card(tmp_path: Path) -> None:
    store = await Store.open(database_url(None, tmp_path))
    await store.write(prepare)
    await store.close()  # the process that stored the event is gone
    env = {**os.environ, "FLOWHOOK_EXECUTOR_POLL_SECONDS": "0.02", "FLOWHOOK_SANDBOX_WORKERS": "1"}
    command = [sys.executable, "-m", "flowhook", "worker", "--data-dir", str(tmp_path)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not cards(tmp_path):
            assert process.poll() is None, process.communicate()[0].decode(errors="replace")
            assert time.monotonic() < deadline, "no card came"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode(errors="replace")
    assert cards(tmp_path) == [("ann", {"title": "Hi Ann"})]
    assert process.returncode == 0, output
