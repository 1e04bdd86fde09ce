"""Work whose data the store refuses fails alone, with `action-flow-failed`; the rest of the queue runs.

PostgreSQL cannot index a text of more than ~2,700 bytes: a 3,000-character user id made the executor's
INSERT INTO flow_instances fail with ProgramLimitExceeded, which psycopg raises as an OperationalError, the
type of a lost connection. Taken for a failure of the store, the batch was retried forever and no flow of
any environment ran again. The schema now refuses such ids (tests/mapper/test_trigger_request_limits.py);
here the invocation goes into the store directly, as data accepted before that check would be.
"""

from __future__ import annotations

import random
import sqlite3
import string
from typing import Any

import psycopg.errors
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flows.background import failure_reason, transient_failure
from flows.executor import Executor
from store import Store, card_templates, flows
from store.environments import create_environment
from store.invocations import AcceptRequest, accept_batch
from store.tables import analytics_events, flow_instances, invocations
from store.test_users import add_test_user
from store.writer import WriterClosed

pytestmark = pytest.mark.anyio

POSTGRESQL_ONLY = pytest.mark.parametrize("database", ["postgresql"], indirect=True)
# Fits in the invocation's JSON payload, not in the index on (invocation_id, user_id); random, as PostgreSQL
# compresses an index entry that repeats itself ("u" * 3000 fits).
TOO_LONG = "".join(random.Random(3000).choices(string.ascii_letters + string.digits, k=3000))


async def card_flow(store: Store, env: str) -> str:
    """A flow of environment `env` that sends one card, and its test user `ok` (the others are ignored, which
    stores an instance for them all the same)."""

    def create(conn: Connection) -> str:
        template = card_templates.insert_template(conn, env, {"name": "t", "definition": {"title": "hi"}})
        steps = [{"type": "send-card", "id": "s", "cardTemplateId": template.id}]
        add_test_user(conn, env, "ok", "external", None)
        return flows.insert_flow(conn, env, {"name": "f", "variables": [], "steps": steps}).id

    return await store.write(create)


async def enqueue(store: Store, env: str, flow_id: str, users: list[str], key: str) -> None:
    payload = {"targetUserIds": users, "metadata": {"campaign": key}}
    request = AcceptRequest(env, flow_id, None, f"req-{key}", "test", key, payload, None)
    assert (await store.submit(accept_batch, request)).verdict == "accepted"


async def failed_events(store: Store) -> list[dict[str, Any]]:
    def read(conn: Connection) -> list[dict[str, Any]]:
        query = sa.select(analytics_events).where(analytics_events.c.event_name == "action-flow-failed")
        return [dict(row._mapping) for row in conn.execute(query)]

    return await store.read(read)


@POSTGRESQL_ONLY
async def test_a_user_id_too_long_for_an_index_fails_its_invocation_and_the_rest_run(store: Store) -> None:
    await store.write(lambda conn: create_environment(conn, "other", "Other"))
    flow_id, other_flow_id = await card_flow(store, "default"), await card_flow(store, "other")
    await enqueue(store, "default", flow_id, ["ok", TOO_LONG, "never-started"], "long")
    await enqueue(store, "other", other_flow_id, ["ok"], "other-environment")
    await enqueue(store, "default", flow_id, ["ok"], "after")

    progress = await Executor(store).drain()

    def read(conn: Connection) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
        found = conn.execute(sa.select(invocations.c.flow_invocation_id, invocations.c.status))
        columns = flow_instances.c
        instances = conn.execute(sa.select(columns.flow_invocation_id, columns.user_id, columns.status))
        return {key: status for key, status in found}, {(key, user): status for key, user, status in instances}

    statuses, instances = await store.read(read)
    assert statuses == {"long": "failed", "other-environment": "done", "after": "done"}
    # The users before the long id had started; the one after it never is.
    assert instances == {
        ("long", "ok"): "completed",
        ("other-environment", "ok"): "completed",
        ("after", "ok"): "completed",
    }
    assert progress.cards == 3
    [event] = await failed_events(store)
    assert (event["flow_invocation_id"], event["end_user_id"], event["flow_instance_id"]) == ("long", None, None)
    assert (event["flow_id"], event["event_source"], event["metadata"]) == (flow_id, "test", {"campaign": "long"})
    error = event["properties"]["error"]
    assert error.startswith("ProgramLimitExceeded: index row") and "uq_flow_instances_invocation_user" in error
    assert TOO_LONG not in error and "INSERT" not in error  # the driver's message, not the statement
    assert event["properties"]["stepId"] is None


async def test_an_instance_set_aside_records_action_flow_failed_for_its_user(store: Store) -> None:
    flow_id = await card_flow(store, "default")
    await enqueue(store, "default", flow_id, ["ok"], "first")
    executor = Executor(store)
    await executor.drain()
    lost = sa.update(flow_instances).values(status="active", due_at=sa.func.now(), snapshot_id="no-such-snapshot")
    await store.write(lambda conn: conn.execute(lost))  # resuming it now raises, in every batch that claims it
    await executor.drain()
    [event] = await failed_events(store)
    assert (event["end_user_id"], event["flow_invocation_id"]) == ("ok", "first")
    assert event["flow_instance_id"] is not None and event["properties"]["error"].startswith("KeyError")


def _database_error(kind: type[sa.exc.DBAPIError], orig: Exception) -> sa.exc.DBAPIError:
    return kind("INSERT INTO flow_instances …", {"user_id": TOO_LONG}, orig)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        # PostgreSQL: the SQLSTATE class decides, whatever exception class psycopg picked.
        (_database_error(sa.exc.OperationalError, psycopg.errors.ProgramLimitExceeded("index row size")), False),
        (_database_error(sa.exc.DataError, psycopg.errors.StringDataRightTruncation("too long")), False),
        (_database_error(sa.exc.IntegrityError, psycopg.errors.UniqueViolation("duplicate key")), False),
        (_database_error(sa.exc.OperationalError, psycopg.errors.ConnectionFailure("gone")), True),
        (_database_error(sa.exc.OperationalError, psycopg.errors.DeadlockDetected("deadlock")), True),
        (_database_error(sa.exc.OperationalError, psycopg.errors.DiskFull("no space")), True),
        (_database_error(sa.exc.OperationalError, psycopg.errors.AdminShutdown("shutting down")), True),
        (_database_error(sa.exc.InternalError, psycopg.errors.ReadOnlySqlTransaction("standby")), True),
        (_database_error(sa.exc.OperationalError, psycopg.OperationalError("server closed the connection")), True),
        # SQLite has no SQLSTATE: the kind of error decides.
        (_database_error(sa.exc.OperationalError, sqlite3.OperationalError("database is locked")), True),
        (_database_error(sa.exc.IntegrityError, sqlite3.IntegrityError("UNIQUE constraint failed")), False),
        (WriterClosed("closed"), True),
        (OSError("disk"), True),
        (KeyError("snapshot"), False),
    ],
    ids=lambda value: type(getattr(value, "orig", value)).__name__ if isinstance(value, Exception) else None,
)
def test_what_counts_as_a_failure_of_the_store(error: Exception, transient: bool) -> None:
    assert transient_failure(error) is transient


def test_a_database_error_is_described_by_the_drivers_first_line() -> None:
    orig = psycopg.errors.ProgramLimitExceeded("index row size 3056 exceeds btree version 4 maximum 2704\nDETAIL: …")
    reason = failure_reason(_database_error(sa.exc.OperationalError, orig))
    assert reason == "ProgramLimitExceeded: index row size 3056 exceeds btree version 4 maximum 2704"
    assert failure_reason(KeyError("snapshot")) == "KeyError: 'snapshot'"
