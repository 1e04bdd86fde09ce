"""Migrations, SQLite durability settings, the default environment, the inbox's unique key."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from store import Store, database_url
from store.clock import utcnow
from store.environments import get_environment
from store.flows import insert_flow, publish
from store.invocations import AcceptRequest, accept_batch, payload_hash
from store.migrations import MIGRATIONS
from store.request_log import LogEntry, LogFilter, StatusFilter, list_entries, prune, store_entries
from store.tables import invocations

pytestmark = pytest.mark.anyio


async def test_a_fresh_database_is_stamped_and_reopening_migrates_nothing(tmp_path: Path) -> None:
    for _ in range(2):
        store = await Store.open(database_url(None, tmp_path))
        await store.close()
    with sqlite3.connect(tmp_path / "flowhook.db") as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [migration.version for migration in MIGRATIONS]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_database_from_before_the_flow_tables_gets_them(tmp_path: Path) -> None:
    store = await Store.open(database_url(None, tmp_path))
    await store.close()
    with sqlite3.connect(tmp_path / "flowhook.db") as db:  # as a version-1 database left it
        db.execute("DROP TABLE cards")
        db.execute("DELETE FROM schema_migrations WHERE version > 1")
    store = await Store.open(database_url(None, tmp_path))
    await store.close()
    with sqlite3.connect(tmp_path / "flowhook.db") as db:
        assert db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'cards'").fetchone()[0] == 1
        versions = [row[0] for row in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [migration.version for migration in MIGRATIONS]


@pytest.mark.parametrize(
    ("version", "table", "dropped", "kept"),
    [
        (
            3,
            "flow_instances",
            "ix_flow_instances_waiting_card ON flow_instances (waiting_card_id)",
            "ix_flow_instances_due_at",
        ),
        (12, "flows", "ix_flows_environment_id ON flows (environment_id)", "ix_flows_environment_created"),
    ],
)
async def test_an_older_database_loses_its_unused_indexes(
    tmp_path: Path, version: int, table: str, dropped: str, kept: str
) -> None:
    store = await Store.open(database_url(None, tmp_path))
    await store.close()
    with sqlite3.connect(tmp_path / "flowhook.db") as db:  # as that version left it
        db.execute(f"CREATE INDEX {dropped}")
        db.execute("DELETE FROM schema_migrations WHERE version > ?", (version,))
    store = await Store.open(database_url(None, tmp_path))
    await store.close()
    with sqlite3.connect(tmp_path / "flowhook.db") as db:
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE tbl_name = ?", (table,))}
        assert dropped.split()[0] not in indexes and kept in indexes


async def test_a_version_4_database_gets_the_tables_and_indexes_of_5_to_7_and_keeps_its_rows(tmp_path: Path) -> None:
    store = await Store.open(database_url(None, tmp_path))
    flow = await store.write(lambda conn: insert_flow(conn, "default", {"name": "f"}))
    accepted = await store.submit(accept_batch, accept(flow.id, "evt_1", {"targetUserIds": ["u1"]}))
    await store.close()
    with sqlite3.connect(tmp_path / "flowhook.db") as db:  # as version 4 left it
        db.executescript(
            "DROP TABLE event_deliveries; DROP INDEX ix_triggers_environment_event;"
            " DROP INDEX ix_analytics_events_environment_user_event;"
            " DROP TABLE customers; DROP TABLE segments; DROP TABLE segment_members; DROP TABLE bulk_tasks;"
            " ALTER TABLE triggers DROP COLUMN event_name; ALTER TABLE triggers DROP COLUMN segment_id;"
            " ALTER TABLE invocations DROP COLUMN hop; DELETE FROM schema_migrations WHERE version > 4;"
        )
    store = await Store.open(database_url(None, tmp_path))
    try:
        repeat = await store.submit(accept_batch, accept(flow.id, "evt_1", {"targetUserIds": ["u1"]}))
    finally:
        await store.close()
    assert repeat.verdict == "duplicate" and repeat.invocation is not None and accepted.invocation is not None
    assert repeat.invocation.id == accepted.invocation.id
    with sqlite3.connect(tmp_path / "flowhook.db") as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [migration.version for migration in MIGRATIONS]
        assert "hop" in {row[1] for row in db.execute("PRAGMA table_info(invocations)")}
        assert {"event_name", "segment_id"} <= {row[1] for row in db.execute("PRAGMA table_info(triggers)")}
        assert db.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 0
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"ix_analytics_events_environment_user_event", "ix_event_deliveries_event"} <= indexes
        assert db.execute("SELECT COUNT(*) FROM event_deliveries").fetchone()[0] == 0
        assert "skipped" not in {row[1] for row in db.execute("PRAGMA table_info(bulk_tasks)")}
        assert db.execute("SELECT COUNT(*) FROM bulk_task_skips").fetchone()[0] == 0


# The invocations table as migrations 1 and 2 left it: flowInvocationId unique per flow, whatever the mode.
DOWNGRADE_INVOCATIONS_TO_VERSION_2 = """
CREATE TABLE invocations_v2 (
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    environment_id TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    flow_version INTEGER,
    trigger_id TEXT,
    request_id TEXT,
    mode TEXT NOT NULL,
    flow_invocation_id TEXT NOT NULL,
    payload_hash TEXT NOT NULL,
    payload JSON NOT NULL,
    status TEXT NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (seq),
    CONSTRAINT uq_invocations_flow_key UNIQUE (flow_id, flow_invocation_id),
    UNIQUE (id)
);
INSERT INTO invocations_v2 SELECT seq, id, environment_id, flow_id, flow_version, trigger_id, request_id, mode,
    flow_invocation_id, payload_hash, payload, status, created_at FROM invocations;
DROP TABLE invocations;
ALTER TABLE invocations_v2 RENAME TO invocations;
CREATE INDEX ix_invocations_status_seq ON invocations (status, seq);
DELETE FROM schema_migrations WHERE version > 2;
"""


async def test_a_version_2_database_gets_keys_per_mode_and_keeps_its_invocations(tmp_path: Path) -> None:
    store = await Store.open(database_url(None, tmp_path))
    flow = await store.write(lambda conn: insert_flow(conn, "default", {"name": "f"}))
    await store.write(lambda conn: publish(conn, "default", flow.id))
    payload = {"targetUserIds": ["u1"]}
    tested = await store.submit(accept_batch, accept(flow.id, "evt_1", payload))
    await store.close()
    with sqlite3.connect(tmp_path / "flowhook.db") as db:
        db.executescript(DOWNGRADE_INVOCATIONS_TO_VERSION_2)
    store = await Store.open(database_url(None, tmp_path))
    try:
        repeat = await store.submit(accept_batch, accept(flow.id, "evt_1", payload))
        live = await store.submit(accept_batch, accept(flow.id, "evt_1", payload, mode="live"))
    finally:
        await store.close()
    assert repeat.verdict == "duplicate" and repeat.invocation is not None and tested.invocation is not None
    assert repeat.invocation.id == tested.invocation.id
    assert live.verdict == "accepted" and live.invocation is not None and live.invocation.mode == "live"
    with sqlite3.connect(tmp_path / "flowhook.db") as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
        indexes = {row[1]: row[2] for row in db.execute("PRAGMA index_list(invocations)")}  # name: unique
        rows = list(db.execute("SELECT flow_invocation_id, mode FROM invocations ORDER BY seq"))
    assert versions == [migration.version for migration in MIGRATIONS]
    assert indexes == {
        "uq_invocations_flow_mode_key": 1,
        "ix_invocations_status_seq": 0,
        "sqlite_autoindex_invocations_1": 1,  # UNIQUE (id); the per-flow key is gone
    }
    assert rows == [("evt_1", "test"), ("evt_1", "live")]


async def test_processes_starting_together_migrate_once(tmp_path: Path) -> None:
    stores = await asyncio.gather(*(Store.open(database_url(None, tmp_path)) for _ in range(4)))
    for store in stores:
        await store.close()
    with sqlite3.connect(tmp_path / "flowhook.db") as db:
        assert db.execute("SELECT COUNT(*) FROM environments").fetchone()[0] == 1


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_sqlite_commits_are_flushed_by_the_writer(store: Store) -> None:
    """synchronous=NORMAL: COMMIT does not fsync; the writer's WAL flush does (see store.engine)."""
    with store.engines.write.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 1  # NORMAL
    assert store.engines.flush is not None
    store.engines.flush()  # fsyncs the live WAL without error


async def test_the_default_environment_exists(store: Store) -> None:
    environment = await store.read(lambda conn: get_environment(conn, "default"))
    assert environment is not None and environment.name == "Default"


def accept(flow_id: str, key: str, payload: dict[str, object], mode: str = "test") -> AcceptRequest:
    return AcceptRequest("default", flow_id, None, f"req_{key}", mode, key, payload, log=None)


async def test_duplicates_in_one_batch_and_across_batches(store: Store) -> None:
    flow = await store.write(lambda conn: insert_flow(conn, "default", {"name": "f"}))
    same = {"targetUserIds": ["u1"], "variables": {"a": 1, "b": 2}}
    reordered = {"variables": {"b": 2, "a": 1}, "targetUserIds": ["u1"]}
    batch = [
        accept(flow.id, "k", same),
        accept(flow.id, "k", reordered),
        accept(flow.id, "k", {"targetUserIds": ["x"]}),
    ]
    verdicts = await store.write(lambda conn: accept_batch(conn, batch))
    assert [verdict.verdict for verdict in verdicts] == ["accepted", "duplicate", "conflict"]
    assert verdicts[1].invocation == verdicts[0].invocation
    later = await store.submit(accept_batch, accept(flow.id, "k", same))
    assert later.verdict == "duplicate"
    live = await store.submit(accept_batch, accept(flow.id, "other", same, mode="live"))
    assert (live.verdict, live.invocation) == ("flow_not_published", None)


async def test_invocations_stored_under_the_old_hash_are_compared_the_old_way(store: Store) -> None:
    """Before `v2:` hashes, the whole stored payload was hashed; a retry spanning the upgrade is still a repeat."""
    flow = await store.write(lambda conn: insert_flow(conn, "default", {"name": "f"}))
    payload = {"targetUserIds": ["u1"], "flowInvocationId": "k-old", "variables": {"plan": "basic"}}
    assert (await store.submit(accept_batch, accept(flow.id, "k-old", payload))).verdict == "accepted"
    stamp = sa.update(invocations).where(invocations.c.flow_invocation_id == "k-old")
    await store.write(lambda conn: conn.execute(stamp.values(payload_hash=payload_hash(payload))))
    again = await store.submit(accept_batch, accept(flow.id, "k-old", dict(payload)))
    other = await store.submit(accept_batch, accept(flow.id, "k-old", {**payload, "variables": {"plan": "gold"}}))
    assert (again.verdict, other.verdict) == ("duplicate", "conflict")


async def test_the_unique_index_refuses_a_second_row_whatever_the_code_does(store: Store) -> None:
    flow = await store.write(lambda conn: insert_flow(conn, "default", {"name": "f"}))
    verdict = await store.submit(accept_batch, accept(flow.id, "k", {"targetUserIds": ["u1"]}))
    row = {**verdict.invocation.__dict__, "id": "inv_copy"}
    del row["seq"]
    with pytest.raises(sa.exc.IntegrityError):
        await store.write(lambda conn: conn.execute(sa.insert(invocations).values(**row)))
    other_mode = {**row, "mode": "live"}  # keys are per mode
    await store.write(lambda conn: conn.execute(sa.insert(invocations).values(**other_mode)))


def entry(index: int, trigger_id: str | None, status: int) -> LogEntry:
    return LogEntry(
        id=f"req_{trigger_id}_{index}",
        environment_id="default" if trigger_id else None,
        trigger_id=trigger_id,
        hook_id="h",
        received_at=utcnow(),
        method="POST",
        path="/hooks/h",
        query="",
        client_ip=None,
        headers={},
        content_type=None,
        body="",
        body_bytes=0,
        body_truncated=False,
        status=status,
    )


async def test_request_log_pages_filters_and_pruning(store: Store) -> None:
    rows = [entry(i, trigger, 202 if i % 2 else 401) for trigger in ("t1", "t2", None) for i in range(6)]
    await store.write(lambda conn: store_entries(conn, rows))  # trigger ids made up: not re-homed
    page, cursor = await store.read(lambda conn: list_entries(conn, "default", LogFilter(trigger_id="t1"), limit=4))
    rest, end = await store.read(
        lambda conn: list_entries(conn, "default", LogFilter(trigger_id="t1"), limit=4, before=cursor)
    )
    failed, _ = await store.read(
        lambda conn: list_entries(conn, "default", LogFilter(trigger_id="t1", status=StatusFilter.parse("4xx")))
    )
    assert [e.id for e in page + rest] == [f"req_t1_{i}" for i in reversed(range(6))] and end is None
    assert {e.status for e in failed} == {401}
    deleted = await store.write(lambda conn: prune(conn, ["t1", None], 2))
    assert deleted == 8
    everything, _ = await store.read(lambda conn: list_entries(conn, "default", LogFilter(), limit=100))
    assert [e.id for e in everything if e.trigger_id == "t1"] == ["req_t1_5", "req_t1_4"]
    assert len([e for e in everything if e.trigger_id == "t2"]) == 6
    assert [e.id for e in everything if e.trigger_id is None] == ["req_None_5", "req_None_4"]


async def test_pruning_with_a_limit_deletes_the_oldest_first_and_no_more(store: Store) -> None:
    rows = [entry(i, trigger, 202) for trigger in ("t1", "t2") for i in range(6)]
    await store.write(lambda conn: store_entries(conn, rows))  # trigger ids made up: not re-homed

    async def left(trigger: str) -> list[str]:
        everything, _ = await store.read(lambda conn: list_entries(conn, "default", LogFilter(), limit=100))
        return [e.id for e in reversed(everything) if e.trigger_id == trigger]

    assert await store.write(lambda conn: prune(conn, ["t1", "t2"], 2, limit=3)) == 3
    assert await left("t1") == ["req_t1_3", "req_t1_4", "req_t1_5"] and len(await left("t2")) == 6
    assert await store.write(lambda conn: prune(conn, ["t1", "t2"], 2, limit=3)) == 3  # 1 of t1, then 2 of t2
    assert await left("t1") == ["req_t1_4", "req_t1_5"] and await left("t2") == [f"req_t2_{i}" for i in range(2, 6)]
    assert await store.write(lambda conn: prune(conn, ["t1", "t2"], 2, limit=3)) == 2  # fewer: nothing left over
    assert await store.write(lambda conn: prune(conn, ["t1", "t2"], 2, limit=3)) == 0
    assert await left("t2") == ["req_t2_4", "req_t2_5"]


PRUNE_KEEP = 100
PRUNE_CHUNK = 50


async def chunk_steps(tmp_path: Path, backlog: int, vm_steps: Callable[..., tuple[Any, int]]) -> int:
    store = await Store.open(database_url(None, tmp_path))
    try:
        rows = [entry(index, "t1", 202) for index in range(backlog)]
        await store.write(lambda conn: store_entries(conn, rows))
        one_chunk = functools.partial(prune, trigger_ids=["t1"], keep=PRUNE_KEEP, limit=PRUNE_CHUNK)
        deleted, steps = await store.write(lambda conn: vm_steps(conn, one_chunk))
        assert deleted == PRUNE_CHUNK
        return steps
    finally:
        await store.close()


async def test_a_chunk_walks_only_the_rows_it_deletes(tmp_path: Path, vm_steps: Callable[..., tuple[Any, int]]) -> None:
    """A busy minute leaves a backlog of ~200,000 entries; a chunk that walked all of it held the
    store's writer, and every webhook waiting for a commit, for as long as the walk took."""
    small = await chunk_steps(tmp_path / "small", PRUNE_KEEP + 4 * PRUNE_CHUNK, vm_steps)
    large = await chunk_steps(tmp_path / "large", PRUNE_KEEP + 40 * PRUNE_CHUNK, vm_steps)
    assert large < small * 1.5
