"""The bulk runner driven directly: a task resumes where the last committed chunk left it, and no row starts twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from flows.bulk_runner import BulkRunner, BulkRunnerConfig, plan_chunk
from store import bulk_tasks
from store.clock import utcnow
from store.tables import customers, invocations

pytestmark = pytest.mark.anyio

ROWS = 10


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return {**either_database, "executor": False}  # no runner in the app: the tests drive their own


@pytest.fixture(scope="module")
async def client(flowhook):
    return await flowhook.api_client()


async def new_task(flowhook, client) -> tuple[dict[str, Any], str]:
    """A published flow and a pending CSV task of ROWS rows, one customer each."""
    flow = await flowhook.flow(variables=[{"name": "n", "type": "number"}], publish=True)
    now = utcnow()
    profiles = [
        {"environment_id": "default", "user_id": f"{flow['id']}-{n}", "attributes": {"code": f"{flow['id']}-{n}"}}
        for n in range(ROWS)
    ]
    await flowhook.services.store.write(
        lambda conn: conn.execute(sa.insert(customers), [{**p, "created_at": now, "updated_at": now} for p in profiles])
    )
    text = "target.attributes.code,payload.variables.n\n" + "".join(f"{flow['id']}-{n},{n}\n" for n in range(ROWS))
    response = await client.post(
        f"/v1/default/action-flow/{flow['id']}/csv-task", content=text, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 202, response.text
    return flow, response.json()["id"]


async def keys(flowhook, flow_id: str) -> list[str]:
    query = sa.select(invocations.c.flow_invocation_id).where(invocations.c.flow_id == flow_id)
    return sorted(await flowhook.services.store.read(lambda conn: list(conn.execute(query).scalars())))


async def progress(client, task_id: str) -> tuple[str, int, int]:
    task = (await client.get(f"/v1/default/bulk-tasks/{task_id}")).json()
    return task["status"], task["processed"], task["started"]


def runner(flowhook) -> BulkRunner:
    return BulkRunner(flowhook.services.store, BulkRunnerConfig(chunk_size=3))


def every_row(task_id: str) -> list[str]:
    return sorted(f"{task_id}:{row}" for row in range(2, ROWS + 2))


async def test_a_running_task_is_resumed_by_a_new_runner(flowhook, client) -> None:
    flow, task_id = await new_task(flowhook, client)
    assert await runner(flowhook).step() == 3
    assert await progress(client, task_id) == ("running", 3, 3)
    assert await keys(flowhook, flow["id"]) == sorted(f"{task_id}:{row}" for row in (2, 3, 4))
    # the first runner's process dies here; a new one finishes the task from row 5 on
    assert await runner(flowhook).drain() == ROWS - 3
    assert await progress(client, task_id) == ("done", ROWS, ROWS)
    assert await keys(flowhook, flow["id"]) == every_row(task_id)


async def test_a_chunk_whose_transaction_dies_is_started_again_once(flowhook, client, monkeypatch) -> None:
    flow, task_id = await new_task(flowhook, client)

    def dies() -> Any:
        raise sa.exc.OperationalError("UPDATE bulk_tasks", {}, Exception("the connection was lost"))

    monkeypatch.setattr(bulk_tasks, "utcnow", dies)  # after the chunk's invocations, before its progress
    with pytest.raises(sa.exc.OperationalError):
        await runner(flowhook).step()
    assert await keys(flowhook, flow["id"]) == []  # rolled back with the progress
    assert await progress(client, task_id) == ("pending", 0, 0)
    monkeypatch.undo()
    assert await runner(flowhook).drain() == ROWS
    assert await keys(flowhook, flow["id"]) == every_row(task_id)


async def test_two_runners_on_one_task_start_each_row_once(flowhook, client) -> None:
    flow, task_id = await new_task(flowhook, client)
    first, second = runner(flowhook), runner(flowhook)
    moved = await asyncio.gather(first.drain(), second.drain(), first.drain())
    assert sum(moved) == ROWS
    assert await progress(client, task_id) == ("done", ROWS, ROWS)
    assert await keys(flowhook, flow["id"]) == every_row(task_id)


async def test_a_chunk_planned_before_another_runner_committed_it_changes_nothing(flowhook, client) -> None:
    flow, task_id = await new_task(flowhook, client)
    store = flowhook.services.store
    task = await store.read(lambda conn: bulk_tasks.get_task(conn, "default", task_id))
    rows = await store.read(lambda conn: bulk_tasks.task_input(conn, task_id))
    stale = await store.read(lambda conn: plan_chunk(conn, task, rows, 3))
    assert await runner(flowhook).step() == 3  # another runner commits rows 2-4 meanwhile
    assert await store.submit(bulk_tasks.advance_batches, stale) == bulk_tasks.Advanced(0, 0)
    assert await progress(client, task_id) == ("running", 3, 3)
    assert await keys(flowhook, flow["id"]) == sorted(f"{task_id}:{row}" for row in (2, 3, 4))
    assert await runner(flowhook).drain() == ROWS - 3  # no task is left open for the next test


async def test_a_chunk_that_fails_whenever_it_is_stored_fails_its_task(flowhook, client, monkeypatch) -> None:
    flow, task_id = await new_task(flowhook, client)

    def broken(conn: Any, requests: Any) -> Any:
        raise ValueError("a row the store refuses")

    monkeypatch.setattr(bulk_tasks, "accept_batch", broken)  # not the store failing: trying again cannot help
    assert await runner(flowhook).drain() == 1  # the task is set aside, and the runner goes on to others
    assert await progress(client, task_id) == ("failed", 0, 0)
    assert await keys(flowhook, flow["id"]) == []
