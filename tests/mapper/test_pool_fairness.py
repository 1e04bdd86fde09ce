"""Fairness between mapping keys in the sandbox pool: one key's slow or looping
requests must not hold up every other key's (the noisy neighbour)."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import orjson
import pytest
from tests.support.sandbox import FOREVER, SPIN, crash_all

from mapper import Limits, make_request
from mapper.javascript import request_payload
from mapper.mapping import Judge
from mapper.pool import SandboxPool, _FairQueue, _Job, _Key
from mapper.worker import HEADER, Worker, WorkerConfig, decode_frame, encode_frame, pack_requests

pytestmark = pytest.mark.anyio

FAST = {"kind": "javascript", "source": "function map(request) { return {targetUserIds: ['u1']}; }"}
SLOW_MS = 200  # far above what a trivial mapping takes, even on a loaded machine
SLOW = 250  # ms of spinning: slow


def request(ms: int = 0) -> dict[str, Any]:
    body = orjson.dumps({"ms": ms})
    return make_request("POST", "/hooks/h", {"Content-Type": "application/json"}, "", body, "application/json")


# ---- the queue's order ---------------------------------------------------


def jobs(key: str, count: int, mapping: _Key | None = None) -> list[_Job]:
    loop = asyncio.get_running_loop()
    mapping = mapping or _Key(Judge(None), slow=False)
    return [_Job(key, FAST, None, None, mapping, loop.create_future()) for _ in range(count)]


def never_capped(key: str) -> bool:
    return False


async def test_a_key_that_arrives_is_served_before_the_backlog_of_a_key_that_floods() -> None:
    """FIFO made a trivial request of tenant B wait behind all of tenant A's."""
    queue = _FairQueue()
    a = jobs("a", 4)
    queue.put(a)
    assert queue.take(1, never_capped) == a[:1]
    assert queue.take(1, never_capped) == a[1:2]  # both workers busy with A
    (b,) = jobs("b", 1)
    queue.put([b])
    assert queue.take(1, never_capped) == [b]
    assert queue.take(2, never_capped) == a[2:]


async def test_a_batch_takes_keys_in_turns() -> None:
    queue = _FairQueue()
    a, b = jobs("a", 3), jobs("b", 3)
    queue.put(a)
    queue.put(b)
    assert queue.take(4, never_capped) == [a[0], b[0], a[1], b[1]]
    assert queue.take(4, never_capped) == [a[2], b[2]]
    assert len(queue) == 0


async def test_requests_sent_back_go_first_and_cancelled_ones_are_dropped() -> None:
    queue = _FairQueue()
    waiting, retried = jobs("a", 2), jobs("b", 2)
    queue.put(waiting)
    waiting[0].future.cancel()
    queue.put(retried, first=True)
    assert queue.take(8, never_capped) == [*retried, waiting[1]]


async def test_requests_sent_back_go_ahead_of_their_own_keys_waiting_ones() -> None:
    queue = _FairQueue()
    a = jobs("a", 5)
    queue.put(a[3:])
    queue.put(a[1:3], first=True)
    queue.put(a[:1], first=True)  # sent back last, taken first
    assert queue.take(8, never_capped) == a
    assert len(queue) == 0


async def test_a_held_back_key_is_looked_at_once_however_many_requests_it_has_waiting() -> None:
    """Its requests were popped and pushed back one by one at every dispatch."""
    queue = _FairQueue()
    looked_at: list[str] = []

    def capped(key: str) -> bool:
        looked_at.append(key)
        return key == "a"

    (b,) = jobs("b", 1)
    queue.put(jobs("a", 1000, _Key(Judge(None), slow=True)))
    queue.put([b])
    assert queue.take(8, capped) == [b]
    assert looked_at == ["a"] and len(queue) == 1000


async def test_a_slow_key_travels_alone_and_waits_while_capped_without_holding_up_the_others() -> None:
    queue = _FairQueue()
    slow = _Key(Judge(None), slow=True)
    a, b = jobs("a", 2, slow), jobs("b", 3)
    queue.put(a)
    queue.put(b)
    assert queue.take(8, never_capped) == a[:1]
    assert queue.take(8, lambda key: key == "a") == b  # a's turn came first, but it holds its share
    assert queue.take(8, never_capped) == a[1:]


async def test_a_retried_request_travels_alone() -> None:
    queue = _FairQueue()
    retried, others = jobs("a", 2), jobs("b", 2)
    for job in retried:
        job.retried = True
    queue.put(others)
    queue.put(retried, first=True)
    assert [queue.take(8, never_capped) for _ in range(3)] == [retried[:1], retried[1:], others]


# ---- the worker tells which requests ran slow ------------------------------


def test_the_worker_reports_the_requests_that_ran_slow() -> None:
    entries, text = pack_requests([("spin:1", request_payload(request(ms))) for ms in (0, SLOW, 0)])
    frame = encode_frame(
        {"op": "map", "specs": {"spin:1": {"spec": SPIN, "variables": None}}, "requests": entries}, text
    )
    writer = io.BytesIO()
    Worker(WorkerConfig(slow_ms=SLOW_MS), io.BytesIO(frame), writer).serve()
    answer, _ = decode_frame(writer.getvalue()[HEADER.size :])
    assert answer["slow"] == [1] and len(answer["results"]) == 3


# ---- the pool ------------------------------------------------------------


async def in_flight(pool: SandboxPool) -> list[tuple[int, int]]:
    """(pid, requests in flight) of the busy workers, once one is busy."""
    while not (busy := [(worker.pid, worker.in_flight) for worker in pool.workers if worker.in_flight and worker.pid]):
        await asyncio.sleep(0.005)
    return busy


async def test_a_looping_key_leaves_a_worker_to_the_other_keys() -> None:
    """With two workers, four looping requests of one key held both and a trivial request of another key
    waited seconds behind them."""
    async with SandboxPool(2, limits=Limits(time_ms=30_000), slow_ms=SLOW_MS) as pool:
        assert (await pool.run("a:1", SPIN, None, request(SLOW))).ok  # key a is slow from now on
        looping = [asyncio.create_task(pool.run("a:1", SPIN, None, request(FOREVER))) for _ in range(3)]
        [(pid, count)] = await in_flight(pool)
        assert count == 1 and pool.queued == 2  # alone, and one worker is kept for the others
        fast = await pool.run("b:1", FAST, None, request())
        assert fast.ok
        assert not any(task.done() for task in looping) and pool.queued == 2
        results = await crash_all(pool, looping)
        assert [result.error and result.error["type"] for result in results] == ["SandboxCrashed"] * 3


async def test_a_new_key_holds_one_worker_until_its_first_answer() -> None:
    """Before its first answer the pool cannot know that a key's mapping loops: it batched such a key's
    first requests and spread them over every worker."""
    async with SandboxPool(2, limits=Limits(time_ms=30_000)) as pool:
        looping = [asyncio.create_task(pool.run("a:1", SPIN, None, request(FOREVER))) for _ in range(3)]
        [(_, count)] = await in_flight(pool)
        assert count == 1 and pool.queued == 2
        assert (await pool.run("b:1", FAST, None, request())).ok
        assert not any(task.done() for task in looping)
        await crash_all(pool, looping)


async def test_a_key_that_runs_fast_again_is_batched_again() -> None:
    async with SandboxPool(1, limits=Limits(time_ms=30_000), slow_ms=SLOW_MS) as pool:
        assert (await pool.run("a:1", SPIN, None, request(SLOW))).ok
        assert (await pool.run("a:1", SPIN, None, request(0))).ok
        looping = [asyncio.create_task(pool.run("a:1", SPIN, None, request(FOREVER))) for _ in range(2)]
        [(_, count)] = await in_flight(pool)
        assert count == 2  # one batch, as a slow key's would not be
        assert all(not result.ok for result in await crash_all(pool, looping))
