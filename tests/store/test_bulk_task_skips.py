"""A bulk task's skipped rows: a row each with a stable code (store.bulk_tasks), and migration 9 that moves
version 8's JSON lists there, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from flows.marketo_callbacks import callback_body
from store import Store
from store.bulk_tasks import (
    MARKETO,
    BulkTask,
    Chunk,
    Outcome,
    Skip,
    advance_batches,
    create_task,
    get_task,
    skipped_rows,
)
from store.clock import utcnow
from store.tables import Json

pytestmark = pytest.mark.anyio

# Version 8's skipped lists, in the texts it wrote them with, and the codes migration 9 gives them.
CSV_SKIPPED = [
    (
        {"row": 2, "reason": "flowInvocationId 'k-1' started this flow before; nothing new was started"},
        "already_started",
    ),
    ({"row": 3, "reason": "flowInvocationId 'k-2' was already used with another payload"}, "idempotency_conflict"),
    ({"row": 4, "reason": "the row has 1 cells; the header has 3"}, "wrong_cell_count"),
    ({"row": 5, "reason": "the row names no user in payload.target.usersById"}, "no_users"),
    ({"row": 6, "reason": "flowInvocationId is longer than 128 characters"}, "key_too_long"),
    ({"row": 7, "reason": "payload.variables.amount: 'ten' is not a number"}, "invalid_variable"),
    ({"row": 8, "reason": "flowConfigId 'flw_x': no such flow in this environment"}, "flow_not_found"),
    ({"row": 9, "reason": "no customer matches target.attributes.email = 'a@b'"}, "no_match"),
    ({"row": 10, "reason": "more than 10 customers match target.attributes.plan = 'x'"}, "too_many_matches"),
    ({"row": 11, "reason": "required variable 'firstName' is missing"}, "validation_error"),
]
MANUAL_SKIPPED = [
    (
        {"userId": "ghost", "reason": "no customer profile: manual starts reach existing customers only"},
        "no_customer_profile",
    )
]
MARKETO_SKIPPED = [
    (
        {"lead": 1, "leadId": 11, "errorCode": "VALIDATION_ERROR", "reason": "$.targetUserIds: empty"},
        "validation_error",
    ),
    ({"lead": 2, "leadId": 12, "errorCode": "SKIPPED", "reason": "the mapping skipped this lead"}, "mapping_skipped"),
    (
        {
            "lead": 3,
            "leadId": 13,
            "flowInvocationId": "k",
            "reason": "flowInvocationId 'k' started this flow before; nothing new was started",
        },
        "already_started",
    ),
    (
        {
            "lead": 4,
            "leadId": 14,
            "flowInvocationId": "c",
            "reason": "flowInvocationId 'c' was already used with another payload",
        },
        "idempotency_conflict",
    ),
    ({"lead": 5, "leadId": 15, "flowInvocationId": "t", "reason": "the trigger was deleted"}, "trigger_deleted"),
]
VERSION_8 = sa.table(
    "bulk_tasks", *(sa.column(name) for name in ("id", "processed", "status")), sa.column("skipped", Json)
)


async def version_8_task(store: Store, kind: str, skipped: list[tuple[dict[str, Any], str]]) -> str:
    """A finished task as version 8 stored it: its skipped rows a JSON list in the task's `skipped` column."""

    def make(conn: sa.Connection) -> str:
        task = create_task(conn, "default", None, kind, {}, len(skipped) + 1)
        values = {"skipped": [entry for entry, _ in skipped], "processed": len(skipped) + 1, "status": "done"}
        conn.execute(sa.update(VERSION_8).where(VERSION_8.c.id == task.id).values(**values))
        return task.id

    return await store.write(make)


def to_version_8(conn: sa.Connection) -> None:
    conn.execute(sa.text("DROP TABLE bulk_task_skips"))
    kind = Json.compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE bulk_tasks ADD COLUMN skipped {kind} NOT NULL DEFAULT '[]'"))
    conn.execute(sa.text("DELETE FROM schema_migrations WHERE version = 9"))


async def test_migration_9_moves_every_skipped_list_into_rows_with_codes(database: URL) -> None:
    store = await Store.open(database)
    try:
        await store.write(to_version_8)
        csv = await version_8_task(store, "csv", CSV_SKIPPED)
        manual = await version_8_task(store, "manual", MANUAL_SKIPPED)
        marketo = await version_8_task(store, MARKETO, MARKETO_SKIPPED)
        nothing = await version_8_task(store, "csv", [])
    finally:
        await store.close()
    store = await Store.open(database)
    try:
        for task_id, listed in ((csv, CSV_SKIPPED), (manual, MANUAL_SKIPPED), (marketo, MARKETO_SKIPPED)):
            rows, _ = await store.read(lambda conn, task_id=task_id: skipped_rows(conn, task_id))
            expected = [
                Skip(
                    number, {k: v for k, v in entry.items() if k not in ("reason", "errorCode")}, code, entry["reason"]
                )
                for number, (entry, code) in enumerate(listed, 1)
            ]
            assert rows == expected
        assert await store.read(lambda conn: skipped_rows(conn, nothing)) == ([], None)
        columns = await store.read(lambda conn: {c["name"] for c in sa.inspect(conn).get_columns("bulk_tasks")})
        assert "skipped" not in columns
        task = await store.read(lambda conn: get_task(conn, "default", marketo))
        leads, _ = await store.read(lambda conn: skipped_rows(conn, marketo))
    finally:
        await store.close()
    assert task is not None
    submission = {"objectData": [{"objectContext": {"id": 11 + n}} for n in range(6)]}
    activities = [item["activityData"] for item in callback_body(submission, task, leads, utcnow())["objectData"]]
    assert [activity.get("errorCode") for activity in activities] == [
        "VALIDATION_ERROR",
        "SKIPPED",
        None,  # started by an earlier submission of the batch: a success
        "FLOW_INVOCATION_CONFLICT",
        "TRIGGER_DELETED",
        None,
    ]


def test_a_skipped_leads_error_code_comes_from_its_code_whatever_its_reason_says() -> None:
    """The errorCode was worked out by re-formatting the reason texts: rewording one changed it silently."""
    now = utcnow()
    task = BulkTask("bulk_x", "default", None, MARKETO, "done", 3, 3, 0, now, now)
    skipped = [
        Skip(1, {"lead": 1}, "idempotency_conflict", "reworded: that key went with another payload"),
        Skip(2, {"lead": 2}, "already_started", "reworded: started before"),
        Skip(3, {"lead": 3}, "a_code_of_a_later_version", "something new"),
    ]
    submission = {"objectData": [{"objectContext": {"id": n}} for n in (1, 2, 3)]}
    activities = [item["activityData"] for item in callback_body(submission, task, skipped, now)["objectData"]]
    assert activities == [
        {"success": False, "errorCode": "FLOW_INVOCATION_CONFLICT", "reason": skipped[0].reason},
        {"success": True},
        {"success": False, "errorCode": "NOT_STARTED", "reason": "something new"},
    ]


async def test_a_chunk_writes_its_own_skipped_rows_not_the_tasks_whole_list(store: Store) -> None:
    """The task's skipped list was one JSON column rewritten with every chunk: 50,000 skipped rows cost
    quadratic writes. A chunk's statements now carry the same bytes however many rows were skipped before."""
    size, chunks = 50, 12
    task = await store.write(lambda conn: create_task(conn, "default", None, "csv", {}, size * chunks))
    written: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        written.append(len(statement) + len(repr(parameters)))

    for index in range(chunks):
        outcomes = [
            Outcome({"row": 1000 + n}, code="no_match", reason="no customer matches target.attributes.email = 'x'")
            for n in range(index * size, (index + 1) * size)
        ]
        written.clear()
        sa.event.listen(store.engines.write, "before_cursor_execute", count)
        try:
            advanced = await store.submit(advance_batches, Chunk(task.id, index * size, outcomes))
        finally:
            sa.event.remove(store.engines.write, "before_cursor_execute", count)
        assert advanced.processed == size
        if index == 0:
            first = sum(written)
    assert sum(written) < first * 1.2
    rows, _ = await store.read(lambda conn: skipped_rows(conn, task.id))
    assert [skip.number for skip in rows] == list(range(1, size * chunks + 1))
    assert [skip.ref["row"] for skip in rows] == list(range(1000, 1000 + size * chunks))
    done = await store.read(lambda conn: get_task(conn, "default", task.id))
    assert done is not None and (done.status, done.processed, done.started) == ("done", size * chunks, 0)


async def test_skipped_rows_come_in_pages(store: Store) -> None:
    task = await store.write(lambda conn: create_task(conn, "default", None, "csv", {}, 5))
    outcomes = [Outcome({"row": n}, code="no_match", reason=f"r{n}") for n in range(2, 7)]
    await store.submit(advance_batches, Chunk(task.id, 0, outcomes))
    first, after = await store.read(lambda conn: skipped_rows(conn, task.id, limit=2))
    second, then = await store.read(lambda conn: skipped_rows(conn, task.id, after=after, limit=2))
    last, end = await store.read(lambda conn: skipped_rows(conn, task.id, after=then, limit=2))
    assert [[skip.ref["row"] for skip in page] for page in (first, second, last)] == [[2, 3], [4, 5], [6]]
    assert end is None


async def test_a_reason_quoting_a_nul_is_kept_with_a_replacement_character(store: Store) -> None:
    """A Marketo lead's reason quotes its mapping's error, which may hold NUL: PostgreSQL's text refused it,
    and the failed write failed the whole task."""
    task = await store.write(lambda conn: create_task(conn, "default", None, MARKETO, {}, 1))
    outcome = Outcome({"lead": 1}, code="mapping_error", reason="Error: a\x00b at line 2")
    advanced = await store.submit(advance_batches, Chunk(task.id, 0, [outcome]))
    assert advanced.processed == 1
    [skip], _ = await store.read(lambda conn: skipped_rows(conn, task.id))
    assert (skip.code, skip.reason) == ("mapping_error", "Error: a\ufffdb at line 2")


async def test_migration_9_moves_a_reason_holding_nul_or_none(database: URL) -> None:
    """Version 8 kept reasons inside JSON, which holds NUL; migration 9 stopped the service from starting on
    PostgreSQL over one. An entry without a reason gets an empty one, not the text 'None'."""
    store = await Store.open(database)
    try:
        await store.write(to_version_8)
        listed = [
            ({"row": 2, "reason": "flowConfigId 'a\x00b': no such flow in this environment"}, "flow_not_found"),
            ({"row": 3}, "validation_error"),
        ]
        task_id = await version_8_task(store, "csv", listed)
    finally:
        await store.close()
    store = await Store.open(database)
    try:
        rows, _ = await store.read(lambda conn: skipped_rows(conn, task_id))
    finally:
        await store.close()
    assert [(skip.code, skip.reason) for skip in rows] == [
        ("flow_not_found", "flowConfigId 'a\ufffdb': no such flow in this environment"),
        ("validation_error", ""),
    ]
