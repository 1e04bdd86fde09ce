"""Retention of finished invocations and their flow instances, on both databases (store.invocation_retention).

Rows are made as the executor leaves them (accepted, marked done or failed,
instances in a given state); "old" is a cutoff taken after they were made,
so no test waits for time to pass.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from flows.retention import InvocationRetention
from store import Store, database_url
from store.clock import utcnow
from store.expansions import finish
from store.flows import insert_flow
from store.invocation_retention import Chunk, prune_finished
from store.invocations import AcceptRequest, accept_batch
from store.tables import flow_instances, invocations

pytestmark = pytest.mark.anyio


async def new_flow(store: Store) -> str:
    return (await store.write(lambda conn: insert_flow(conn, "default", {"name": "f", "steps": []}))).id


async def invocation(
    store: Store, flow_id: str, key: str, users: int = 1, *, status: str = "done", instances: str = "completed"
) -> str:
    """An accepted invocation left by the executor as `status`, with `users` instances in state `instances`."""
    request = AcceptRequest("default", flow_id, None, f"req_{key}", "test", key, {"targetUserIds": ["u"]}, log=None)

    def make(conn: Connection) -> str:
        [accepted] = accept_batch(conn, [request])
        assert accepted.invocation is not None
        made = accepted.invocation
        if status != "pending":
            finish(conn, [made.id], status)
        now = utcnow()
        rows = [
            {
                "id": f"fli_{made.id}_{index:05d}",
                "environment_id": "default",
                "flow_id": flow_id,
                "flow_version": None,
                "snapshot_id": "s",
                "invocation_id": made.id,
                "flow_invocation_id": key,
                "user_id": f"user-{index:05d}",
                "event_source": "test",
                "status": instances,
                "pc": 0,
                "outcomes": {},
                "due_at": now + timedelta(days=1) if instances in ("active", "waiting") else None,
                "waiting_card_id": None,
                "released_by": None,
                "attempts": 0,
                "last_error": None,
                "created_at": now,
                "updated_at": now,
            }
            for index in range(users)
        ]
        if rows:
            conn.execute(sa.insert(flow_instances), rows)
        return made.id

    return await store.write(make)


async def left(store: Store) -> tuple[list[str], dict[str, int]]:
    """Keys of the invocations left (sorted), and instances left per key."""

    def read(conn: Connection) -> tuple[list[str], dict[str, int]]:
        keys = conn.execute(sa.select(invocations.c.flow_invocation_id).order_by(invocations.c.flow_invocation_id))
        per_key = sa.select(flow_instances.c.flow_invocation_id, sa.func.count()).group_by(
            flow_instances.c.flow_invocation_id
        )
        return list(keys.scalars()), {key: count for key, count in conn.execute(per_key)}

    return await store.read(read)


async def prune_all(store: Store, cutoff: datetime, limit: int) -> tuple[int, int]:
    """Chunks until the walk ends, as the background task runs them: (rows deleted, chunks)."""
    after: str | None = ""
    deleted = chunks = 0
    while after is not None:
        chunk = await store.write(functools.partial(prune_finished, cutoff=cutoff, after=after, limit=limit))
        deleted, chunks, after = deleted + chunk.deleted, chunks + 1, chunk.next_after
    return deleted, chunks


async def test_finished_work_before_the_cutoff_goes_whole_and_the_rest_stays(store: Store) -> None:
    flow = await new_flow(store)
    await invocation(store, flow, "done")
    await invocation(store, flow, "large", users=7)  # more instances than a chunk: deleted a slice at a time
    await invocation(store, flow, "failed-run", instances="failed")
    await invocation(store, flow, "ignored", instances="ignored")  # a test run's non-test users
    await invocation(store, flow, "set-aside", users=0, status="failed")  # never expanded
    await invocation(store, flow, "pending", users=0, status="pending")
    await invocation(store, flow, "expanding", users=2, status="pending")  # expanded in part so far
    await invocation(store, flow, "on-a-timer", instances="waiting")
    await invocation(store, flow, "retrying", instances="active")
    await invocation(store, flow, "one-of-two-waits", users=2)
    waiting_one = sa.update(flow_instances).where(
        flow_instances.c.flow_invocation_id == "one-of-two-waits", flow_instances.c.user_id == "user-00001"
    )
    await store.write(lambda conn: conn.execute(waiting_one.values(status="waiting")))
    cutoff = utcnow()
    await invocation(store, flow, "after-the-cutoff")

    deleted, chunks = await prune_all(store, cutoff, limit=3)

    keys, instances = await left(store)
    kept = ["pending", "expanding", "on-a-timer", "retrying", "one-of-two-waits", "after-the-cutoff"]
    assert keys == sorted(kept)
    assert instances == {"expanding": 2, "on-a-timer": 1, "retrying": 1, "one-of-two-waits": 2, "after-the-cutoff": 1}
    assert deleted == 5 + 1 + 7 + 1 + 1 and chunks > 3
    assert (await prune_all(store, cutoff, limit=3))[0] == 0  # the kept ones are walked past


async def test_an_instance_that_finished_after_the_cutoff_keeps_its_invocation(store: Store) -> None:
    """A long flow (a wait of weeks) is kept for the whole period after it finished, not after it started."""
    flow = await new_flow(store)
    await invocation(store, flow, "long-wait")
    await invocation(store, flow, "short")
    cutoff = utcnow()
    finished_later = sa.update(flow_instances).where(flow_instances.c.flow_invocation_id == "long-wait")
    await store.write(lambda conn: conn.execute(finished_later.values(updated_at=cutoff + timedelta(seconds=1))))
    await prune_all(store, cutoff, limit=10)
    assert await left(store) == (["long-wait"], {"long-wait": 1})


async def test_a_key_used_again_after_its_invocation_was_pruned_starts_a_new_run(store: Store) -> None:
    flow = await new_flow(store)
    first = await invocation(store, flow, "evt_1")
    await prune_all(store, utcnow(), limit=10)
    again = AcceptRequest("default", flow, None, "req_again", "test", "evt_1", {"targetUserIds": ["u"]}, log=None)
    verdict = await store.submit(accept_batch, again)
    assert verdict.verdict == "accepted" and verdict.invocation is not None and verdict.invocation.id != first


async def test_nothing_after_the_cutoff_is_read(store: Store) -> None:
    flow = await new_flow(store)
    cutoff = utcnow() - timedelta(days=30)
    await invocation(store, flow, "recent")
    chunk = await store.write(lambda conn: prune_finished(conn, cutoff, "", 10))
    assert chunk == Chunk(0, None)


async def test_processes_pruning_at_once_delete_everything_once(store: Store, database: URL) -> None:
    """Every process that runs the executor prunes; on PostgreSQL they take turns through an advisory lock,
    on SQLite through its one writer."""
    flow = await new_flow(store)
    for index in range(20):
        await invocation(store, flow, f"k{index}", users=2)
    cutoff = utcnow()
    other = await Store.open(database)
    try:
        results = await asyncio.gather(*(prune_all(each, cutoff, limit=4) for each in (store, other, store, other)))
    finally:
        await other.close()
    assert sum(deleted for deleted, _ in results) == 20 * 3
    assert await left(store) == ([], {})


PRUNE_CHUNK = 50


async def chunk_steps(tmp_path: Path, backlog: int, vm_steps: Callable[..., tuple[Any, int]]) -> int:
    """Steps of the second chunk of a walk over `backlog` finished invocations, as many recent ones, and as many
    kept old ones ahead of them."""
    store = await Store.open(database_url(None, tmp_path), fsync=False)
    try:
        flow = await new_flow(store)
        for index in range(backlog):
            await invocation(store, flow, f"old-{index}", instances="waiting" if index % 2 else "completed")
        cutoff = utcnow()
        for index in range(backlog):
            await invocation(store, flow, f"recent-{index}")
        first = await store.write(lambda conn: prune_finished(conn, cutoff, "", PRUNE_CHUNK))
        assert first.next_after is not None
        one_chunk = functools.partial(prune_finished, cutoff=cutoff, after=first.next_after, limit=PRUNE_CHUNK)
        chunk, steps = await store.write(lambda conn: vm_steps(conn, one_chunk))
        assert chunk.deleted > 0  # of the 50 invocations read, those finished (about half), with their instances
        return steps
    finally:
        await store.close()


async def test_a_chunk_walks_only_its_own_rows(tmp_path: Path, vm_steps: Callable[..., tuple[Any, int]]) -> None:
    """Neither the backlog behind a chunk, nor the kept or recent rows beyond it, are walked by it."""
    small = await chunk_steps(tmp_path / "small", 4 * PRUNE_CHUNK, vm_steps)
    large = await chunk_steps(tmp_path / "large", 40 * PRUNE_CHUNK, vm_steps)
    assert large < small * 1.5


async def test_a_resumed_pass_walks_only_what_aged_since_and_a_full_one_finds_what_finished_meanwhile(
    store: Store,
) -> None:
    """Flows whose waits outlast the period are walked past by every full pass; the passes between go on
    from where the last one reached (flows.retention)."""
    flow = await new_flow(store)
    for index in range(6):
        await invocation(store, flow, f"waiting-{index}", instances="waiting")
    await invocation(store, flow, "done-early")
    retention = InvocationRetention(store, days=30, interval_seconds=60, chunk=2)
    month = timedelta(days=30)
    assert await retention.prune(now=utcnow() + month) == 2  # done-early and its instance

    await invocation(store, flow, "done-later")
    before = retention.chunks
    assert await retention.prune(now=utcnow() + month, resume=True) == 2
    assert retention.chunks - before == 2  # done-later's chunk and the empty one that ends the walk, no more

    finished = sa.update(flow_instances).where(flow_instances.c.flow_invocation_id == "waiting-0")
    await store.write(lambda conn: conn.execute(finished.values(status="completed")))  # finished long ago
    assert await retention.prune(now=utcnow() + month, resume=True) == 0  # behind where the passes reached
    assert await retention.prune(now=utcnow() + month) == 2  # a full pass finds it
    assert (await left(store))[0] == [f"waiting-{index}" for index in range(1, 6)]
