"""A database file replaced under the running service (its write-ahead log left in place): writes answer 503.

SQLite's connections keep the file they opened, so once `flowhook.db` is
deleted or another file is put at its path (a backup restored over it,
say), every write is committed into a file that is no longer the
database's, as when the log is deleted (tests/ingress/test_unflushed_writes.py).
The flush checks the database file too (store.engine.WalFlush): no write is
acknowledged, and `/readyz` takes the process out of rotation until a
restart opens the file now at the path.
"""

from __future__ import annotations

import os
import shutil

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
