"""A write whose flush failed is the store failing: 503 `store_unavailable` with `Retry-After`, never a 500.

The app runs with the default durability (the write-ahead log fsynced
before an answer), and its log is deleted under it, as a data directory
removed while serving does: SQLite goes on committing, into a file that is
no longer the database's, so no write may be acknowledged (store.engine.WalFlush).
Reads still answer. Other OSErrors stay what they were (the sandbox raises them too).
"""

from __future__ import annotations

import errno
import os

import pytest

from ingress.errors import store_unavailable
from store.writer import NotDurable

pytestmark = pytest.mark.anyio

UNAVAILABLE = {"code": "store_unavailable", "message": "the store is unavailable; retry later"}


def test_only_a_failed_flush_among_os_errors_is_the_store_failing() -> None:
    assert store_unavailable(NotDurable("the write-ahead log could not be flushed: [Errno 5] Input/output error"))
    assert not store_unavailable(OSError(errno.EIO, "Input/output error"))
    assert not store_unavailable(BrokenPipeError(errno.EPIPE, "Broken pipe"))  # a sandbox worker gone


async def test_writes_are_refused_with_a_503_once_the_log_is_gone(flowhook) -> None:
    flow = await flowhook.flow(publish=True)
    trigger = await flowhook.trigger(flow, mode="live")
    assert (await flowhook.sender().get("/readyz")).status_code == 200
    os.unlink(flowhook.data_dir / "flowhook.db-wal")

    created = await flowhook.api.post("/v1/default/action-flows", json={"name": "Unflushed"})
    assert created.status_code == 503
    assert created.headers["retry-after"] == "5"
    assert created.json() == {"error": UNAVAILABLE}

    webhook = await flowhook.post(trigger, b'{"targetUserIds": ["u1"]}')
    assert webhook.status_code == 503
    assert webhook.headers["retry-after"] == "5"
    assert webhook.json()["error"]["code"] == "store_unavailable"

    read = await flowhook.api.get(f"/v1/default/action-flows/{flow['id']}")
    assert read.status_code == 200

    # Reads work, so /readyz stayed 200 and a balancer kept sending writes that were all refused.
    ready = await flowhook.sender().get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"store": "ok", "writer": "failing", "sandbox": "ok"}
