"""Which Marketo callback is due (store.bulk_tasks.due_callback), on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from store import Store
from store.bulk_tasks import DONE, MARKETO, create_task, due_callback
from store.clock import iso, utcnow
from store.tables import bulk_tasks

pytestmark = pytest.mark.anyio


async def finished_task(store: Store, callback: dict) -> str:
    def make(conn: sa.Connection) -> str:
        task = create_task(conn, "default", None, MARKETO, {}, 1, callback=callback)
        conn.execute(sa.update(bulk_tasks).where(bulk_tasks.c.id == task.id).values(status=DONE, processed=1))
        return task.id

    return await store.write(make)


async def test_a_due_callback_is_found_behind_any_number_backing_off(store: Store) -> None:
    """Reading the oldest twenty and filtering after missed a due one behind twenty that were backing off."""
    now = utcnow()
    for _ in range(25):
        await finished_task(store, {"status": "pending", "attempts": 2, "nextAttemptAt": iso(now + timedelta(hours=1))})
    due = await finished_task(store, {"status": "pending", "attempts": 1, "nextAttemptAt": iso(now)})
    first_try = await finished_task(store, {"status": "pending", "attempts": 0})
    await finished_task(store, {"status": "sent", "attempts": 1, "nextAttemptAt": None})
    found = await store.read(lambda conn: due_callback(conn, now))
    assert found is not None and found.id == due
    later = await store.read(lambda conn: due_callback(conn, now - timedelta(seconds=1)))
    assert later is not None and later.id == first_try  # no attempt yet: due at once
