"""A segment trigger's existing members (store.bulk_tasks): who they are, their selection into rows of their own
however many (migration 14), and the runner starting each once, on both databases."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from flows.bulk_runner import BulkRunner, BulkRunnerConfig
from store import Store, database_url
from store.bulk_tasks import (
    create_existing_members_task,
    existing_members,
    get_task,
    membership_key,
    selected_users,
)
from store.flows import Flow, insert_flow, publish
from store.migrations import MIGRATIONS
from store.segments import ENTERED
from store.tables import bulk_task_users, customers, invocations, segment_members
from store.triggers import Trigger, insert_trigger

pytestmark = pytest.mark.anyio

SEGMENT = "seg_everyone"
MEMBERS = 10_050  # more than an ordinary manual start's limit of 10,000


async def published_flow(store: Store) -> Flow:
    def make(conn: sa.Connection) -> Flow:
        flow = publish(conn, "default", insert_flow(conn, "default", {"name": "Welcome"}).id)
        assert flow is not None
        return flow

    return await store.write(make)


async def segment_trigger(store: Store, flow_id: str) -> Trigger:
    mapping = {"kind": "jmespath", "fields": {"targetUserIds": "body.endUserId"}}
    return await store.write(
        lambda conn: insert_trigger(
            conn,
            "default",
            flow_id,
            kind="segment",
            mode="live",
            mapping=mapping,
            event_name=ENTERED,
            segment_id=SEGMENT,
        )
    )


async def add_members(store: Store, entered: dict[str, timedelta], trigger: Trigger) -> None:
    """Customers in SEGMENT, each entered at the trigger's creation plus its offset."""
    profiles = [
        {"environment_id": "default", "user_id": user, "attributes": {}, "created_at": trigger.created_at}
        for user in entered
    ]
    members = [
        {"segment_id": SEGMENT, "user_id": user, "environment_id": "default", "entered_at": trigger.created_at + offset}
        for user, offset in entered.items()
    ]

    def insert(conn: sa.Connection) -> None:
        conn.execute(sa.insert(customers), [{**profile, "updated_at": trigger.created_at} for profile in profiles])
        conn.execute(sa.insert(segment_members), members)

    await store.write(insert)


async def test_existing_members_are_selected_at_once_however_many_and_each_started_once(store: Store) -> None:
    flow = await published_flow(store)  # then the trigger: it took effect when it was made
    trigger = await segment_trigger(store, flow.id)
    # Entered before the trigger, the latest first in user order; and two who entered after it (the trigger's).
    entered = {f"m{n:05}": -timedelta(seconds=n + 1) for n in range(MEMBERS)}
    await add_members(store, {**entered, "late-0": timedelta(0), "late-1": timedelta(seconds=1)}, trigger)
    existing = await store.read(lambda conn: existing_members(conn, trigger))
    assert existing is not None and (existing.segment_id, existing.entered_before) == (SEGMENT, trigger.created_at)
    task_input = {"selection": {"existingMembersOf": trigger.id}, "segmentId": SEGMENT, "payload": {}}
    task = await store.write(lambda conn: create_existing_members_task(conn, "default", flow.id, existing, task_input))
    assert (task.kind, task.status, task.total) == ("manual", "pending", MEMBERS)
    first = await store.read(lambda conn: selected_users(conn, task.id, 0, 2))
    assert [user for user, _ in first] == [f"m{MEMBERS - 1:05}", f"m{MEMBERS - 2:05}"]  # in the order they entered

    runner = BulkRunner(store, BulkRunnerConfig(chunk_size=4000))
    assert await runner.step() == 4000
    left = sa.select(sa.func.count(), sa.func.min(bulk_task_users.c.number)).where(bulk_task_users.c.task_id == task.id)
    assert tuple(await store.read(lambda conn: conn.execute(left).one())) == (MEMBERS - 4000, 4001)  # a chunk's go
    await runner.drain()
    done = await store.read(lambda conn: get_task(conn, "default", task.id))
    assert done is not None and (done.status, done.processed, done.started) == ("done", MEMBERS, MEMBERS)
    assert tuple(await store.read(lambda conn: conn.execute(left).one())) == (0, None)

    query = sa.select(invocations.c.flow_invocation_id, invocations.c.payload).where(
        invocations.c.request_id == task.id
    )
    started = {payload["targetUserIds"][0]: key for key, payload in await store.read(lambda conn: conn.execute(query))}
    assert set(started) == set(entered)
    begun = trigger.created_at - timedelta(seconds=1)  # m00000's membership
    assert started["m00000"] == membership_key(SEGMENT, "m00000", begun)


async def test_a_flow_never_published_has_no_existing_members_yet(store: Store) -> None:
    draft = await store.write(lambda conn: insert_flow(conn, "default", {"name": "Draft"}))
    trigger = await segment_trigger(store, draft.id)
    assert await store.read(lambda conn: existing_members(conn, trigger)) is None
    published = await store.write(lambda conn: publish(conn, "default", draft.id))
    existing = await store.read(lambda conn: existing_members(conn, trigger))
    assert published is not None and existing is not None
    assert existing.entered_before == published.updated_at  # its first publication, after the trigger was made


def test_a_membership_key_is_one_per_membership() -> None:
    """A flowInvocationId (at most 128 characters) whatever the user id (up to 256); another membership's
    differs, even one a microsecond later."""
    begun, user = datetime(2026, 1, 1, tzinfo=UTC), "u" * 256
    key = membership_key(SEGMENT, user, begun)
    assert len(key) <= 128 and key == membership_key(SEGMENT, user, begun)
    assert key != membership_key(SEGMENT, user, begun + timedelta(microseconds=1))
    assert key != membership_key("seg_other", user, begun)


async def test_a_version_13_database_gets_the_selection_table(tmp_path: Path) -> None:
    store = await Store.open(database_url(None, tmp_path))
    await store.close()
    with sqlite3.connect(tmp_path / "flowhook.db") as db:  # as version 13 left it
        db.execute("DROP TABLE bulk_task_users")
        db.execute("DELETE FROM schema_migrations WHERE version > 13")
    store = await Store.open(database_url(None, tmp_path))
    await store.close()
    with sqlite3.connect(tmp_path / "flowhook.db") as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(bulk_task_users)")]
        assert columns == ["task_id", "number", "user_id", "entered_at"]
        versions = [row[0] for row in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [migration.version for migration in MIGRATIONS]
