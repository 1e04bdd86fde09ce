"""A database file replaced under the running service (its write-ahead log left in place): writes answer 503.

SQLite's connections keep the file they opened, so once `flowhook.db` is
deleted or another file is put at its path (a backup restored over it,
say), every write is committed into a file that is no longer the
database's, as when the log is deleted (tests/ingress/test_unflushed_writes.py).
Each write transaction is checked before it begins (store.engine.WalFlush.verify):
no write is acknowledged, and none is made either. Committed, it would go into
the log still at the path, which connections opened since read over the other
file: a write answered 503 would have been kept, and run by the executor. And
`/readyz` takes the process out of rotation, for good, until a restart opens
the file now at the path.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

pytestmark = pytest.mark.anyio

UNAVAILABLE = {"code": "store_unavailable", "message": "the store is unavailable; retry later"}
HOOK_BODY = b'{"targetUserIds": ["u1"]}'


async def test_writes_are_refused_with_a_503_once_the_database_file_is_replaced(flowhook) -> None:
    flow = await flowhook.flow(publish=True)
    trigger = await flowhook.trigger(flow, mode="live")
    assert (await flowhook.post(trigger, HOOK_BODY)).status_code == 202
    assert (await flowhook.sender().get("/readyz")).status_code == 200
    database = flowhook.data_dir / "flowhook.db"
    flows = stored(database, "SELECT count(*) FROM flows")
    shutil.copyfile(database, database.with_name("restored.db"))
    os.replace(database.with_name("restored.db"), database)
    assert (flowhook.data_dir / "flowhook.db-wal").exists()  # the log is the one the write connection opened

    created = await flowhook.api.post("/v1/default/action-flows", json={"name": "Into the old file"})
    assert (created.status_code, created.headers["retry-after"]) == (503, "5")
    assert created.json() == {"error": UNAVAILABLE}

    webhook = await flowhook.post(trigger, HOOK_BODY)
    assert (webhook.status_code, webhook.headers["retry-after"]) == (503, "5")
    assert webhook.json()["error"]["code"] == "store_unavailable"

    ready = await flowhook.sender().get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"store": "ok", "writer": "failing", "sandbox": "ok"}

    # Refused, and not made: the database at the path (with the log still beside it) has neither.
    assert stored(database, "SELECT count(*) FROM flows") == flows
    assert stored(database, "SELECT count(*) FROM invocations") == 1  # the first webhook's


def stored(database: Path, query: str) -> int:
    """What a connection opened now reads at the path (the database there, and the log beside it)."""
    connection = sqlite3.connect(database)
    try:
        count: int = connection.execute(query).fetchone()[0]
        return count
    finally:
        connection.close()
