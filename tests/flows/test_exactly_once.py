"""Store-level guarantees of the executor: claims, crashes before COMMIT, repeats, chunks, rivals, poison work.

Each test drives real stores on a new database (SQLite, and PostgreSQL when
FLOWHOOK_TEST_POSTGRES is set); a "crash" is a batch
whose transaction dies after all its work was done but before COMMIT.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from flows.batch import Batch, Caches
from flows.executor import Executor, ExecutorConfig
from flows.interpreter import RetryPolicy
from store import Store, card_templates, flows
from store.invocations import AcceptRequest, accept_batch
from store.tables import analytics_events, cards, flow_instances, invocation_progress, invocations
from store.test_users import add_test_user

pytestmark = pytest.mark.anyio


class SimulatedCrash(Exception):
    pass


async def card_flow(store: Store) -> str:
    """A test-mode flow that sends one card; returns its id."""
    template = await store.write(
        lambda conn: card_templates.insert_template(conn, "default", {"name": "t", "definition": {"title": "hi"}})
    )
    steps = [{"type": "send-card", "id": "s", "cardTemplateId": template.id}]
    flow = await store.write(
        lambda conn: flows.insert_flow(conn, "default", {"name": "f", "variables": [], "steps": steps})
    )
    return flow.id


async def enqueue(store: Store, flow_id: str, users: list[str], key: str) -> None:
    def add_users(conn: Connection) -> None:
        for user in users:
            add_test_user(conn, "default", user, "external", None)

    await store.write(add_users)
    request = AcceptRequest("default", flow_id, None, f"req-{key}", "test", key, {"targetUserIds": users}, None)
    acceptance = await store.submit(accept_batch, request)
    assert acceptance.verdict == "accepted"


async def counts(store: Store) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Cards per user, and events per (name, user)."""

    def read(conn: Connection) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        per_user = conn.execute(sa.select(cards.c.user_id, sa.func.count()).group_by(cards.c.user_id))
        table = analytics_events
        per_event = conn.execute(
            sa.select(table.c.event_name, table.c.end_user_id, sa.func.count()).group_by(
                table.c.event_name, table.c.end_user_id
            )
        )
        return {user: n for user, n in per_user}, {(name, user): n for name, user, n in per_event}

    return await store.read(read)


def exactly_once(users: list[str], found: tuple[dict[str, int], dict[tuple[str, str], int]]) -> None:
    per_user, per_event = found
    assert per_user == {user: 1 for user in users}
    expected = {
        (name, user): 1 for user in users for name in ("action-flow-started", "card-published", "action-flow-completed")
    }
    assert per_event == expected


async def test_a_crash_before_commit_leaves_nothing_and_the_work_is_claimed_again(store: Store) -> None:
    flow_id = await card_flow(store)
    users = [f"u{i}" for i in range(50)]
    await enqueue(store, flow_id, users, "k1")

    def crash_after_the_work(conn: Connection, items: list[None]) -> list[None]:
        Batch(conn, Caches(), RetryPolicy(), 1000).run()
        raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        await store.submit(crash_after_the_work, None)
    assert await counts(store) == ({}, {})
    status = await store.read(lambda conn: conn.execute(sa.select(invocations.c.status)).scalar_one())
    assert status == "pending"
    progress = await Executor(store).drain()
    assert (progress.invocations, progress.cards) == (1, 50)
    exactly_once(users, await counts(store))


async def test_running_the_same_work_twice_adds_nothing(store: Store) -> None:
    """If two workers ever ran the same invocation, derived ids make the second run a no-op."""
    flow_id = await card_flow(store)
    users = ["a", "b", "c"]
    await enqueue(store, flow_id, users, "k2")
    executor = Executor(store)
    await executor.drain()
    await store.write(lambda conn: conn.execute(sa.update(invocations).values(status="pending")))
    again = await executor.drain()
    assert again.cards == 3  # the steps ran again …
    exactly_once(users, await counts(store))  # … and stored nothing new


async def test_a_large_invocation_is_expanded_over_several_transactions(store: Store) -> None:
    flow_id = await card_flow(store)
    users = [f"user-{i}" for i in range(2500)]
    await enqueue(store, flow_id, users, "big")
    executor = Executor(store, ExecutorConfig(batch_size=1000))
    first = await executor.step()
    assert (first.invocations, first.cards) == (0, 1000)
    left = await store.read(lambda conn: conn.execute(sa.select(invocation_progress.c.next_index)).scalar_one())
    assert left == 1000
    rest = await executor.drain()
    assert (rest.invocations, rest.cards) == (1, 1500)
    assert (
        await store.read(
            lambda conn: conn.execute(sa.select(sa.func.count()).select_from(invocation_progress)).scalar_one()
        )
        == 0
    )
    exactly_once(users, await counts(store))


async def test_rival_executors_share_the_work_exactly_once(store: Store, database: URL) -> None:
    """Two executors in this process and one in another store on the same database (as a second process would).

    On PostgreSQL the rivals claim with FOR UPDATE SKIP LOCKED; on SQLite the single writer takes turns.
    """
    flow_id = await card_flow(store)
    users = [f"r{i}" for i in range(300)]
    for index in range(0, 300, 10):
        await enqueue(store, flow_id, users[index : index + 10], f"rival-{index}")
    other = await Store.open(database, fsync=False)
    try:
        config = ExecutorConfig(batch_size=25)
        rivals = [Executor(store, config), Executor(store, config), Executor(other, config)]
        done = await asyncio.gather(*(rival.drain() for rival in rivals))
    finally:
        await other.close()
    assert sum(progress.invocations for progress in done) == 30
    exactly_once(users, await counts(store))


async def statuses(store: Store) -> dict[str, str]:
    def read(conn: Connection) -> dict[str, str]:
        rows = conn.execute(sa.select(invocations.c.flow_invocation_id, invocations.c.status))
        return {key: status for key, status in rows}

    return await store.read(read)


# Work that fails whenever it runs: the executor claims the oldest first, so it was claimed first again after
# every retry and no flow of any tenant ran again. The bad rows go straight into the store, past the checks
# that keep such data out of the inbox today.


async def test_an_invocation_that_always_fails_is_set_aside_and_the_rest_run(store: Store) -> None:
    flow_id = await card_flow(store)
    await enqueue(store, flow_id, ["u1"], "before")
    broken = {"targetUserIds": 5}  # not a list: expanding it raises, in every batch that claims it
    await store.submit(accept_batch, AcceptRequest("default", flow_id, None, "req-bad", "test", "bad", broken, None))
    await enqueue(store, flow_id, ["u2"], "after")
    progress = await Executor(store).drain()
    assert await statuses(store) == {"before": "done", "bad": "failed", "after": "done"}
    assert progress.cards == 2


async def test_an_instance_that_always_fails_is_marked_failed_with_its_error(store: Store) -> None:
    flow_id = await card_flow(store)
    await enqueue(store, flow_id, ["u1"], "first")
    executor = Executor(store)
    await executor.drain()
    lost = sa.update(flow_instances).values(status="active", due_at=sa.func.now(), snapshot_id="no-such-snapshot")
    await store.write(lambda conn: conn.execute(lost))  # resuming it now raises, in every batch that claims it
    await enqueue(store, flow_id, ["u2"], "second")
    await executor.drain()

    def read(conn: Connection) -> dict[str, tuple[str, str | None]]:
        rows = conn.execute(sa.select(flow_instances.c.user_id, flow_instances.c.status, flow_instances.c.last_error))
        return {user: (status, error) for user, status, error in rows}

    found = await store.read(read)
    assert found["u1"][0] == "failed" and "KeyError" in (found["u1"][1] or "")
    assert found["u2"] == ("completed", None)
    assert await statuses(store) == {"first": "done", "second": "done"}
