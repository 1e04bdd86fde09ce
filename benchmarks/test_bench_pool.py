"""The sandbox worker pool against one in-process `Mapping.run` loop.

Each round maps the same ~1 KB Stripe-like delivery `REQUESTS` times: in
process, one call after another (the reference), or from asyncio with a thread
hop each; through a two-worker pool, all at once from asyncio (batched over
the pipes), either in bulk (`run_many`) or as one task per request, as the
service's handlers do. Compare the rows of the group "pool 1k"; requests per
second = REQUESTS / mean. The pool's parent and its two workers share this
machine's two cores, which bounds what it can gain over one process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from flowhook.bench import MAPPINGS, mapping_function, sample_request
from mapper.pool import SandboxPool

REQUESTS = 2000
SPEC = MAPPINGS["javascript"]
EXPECTED_USER = ["user-12345"]


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def loop(request: pytest.FixtureRequest) -> Iterator[asyncio.AbstractEventLoop]:
    """The plain loop, and uvloop as the service runs under uvicorn[standard]."""
    loop = asyncio.new_event_loop() if request.param == "asyncio" else pytest.importorskip("uvloop").new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def pool(loop: asyncio.AbstractEventLoop) -> Iterator[SandboxPool]:
    pool = SandboxPool(2, batch_max=64)
    loop.run_until_complete(pool.start())
    yield pool
    loop.run_until_complete(pool.close())


def record(benchmark: Any, results: list[Any]) -> None:
    assert len(results) == REQUESTS and results[-1].ok
    assert results[-1].output["targetUserIds"] == EXPECTED_USER
    benchmark.extra_info["requests_per_round"] = REQUESTS


def test_in_process_loop(benchmark: Any) -> None:
    benchmark.group = "pool 1k"
    run, request = mapping_function("javascript"), sample_request()
    record(benchmark, benchmark(lambda: [run(request) for _ in range(REQUESTS)]))


def test_in_process_thread_per_request(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    """What the service would pay without the pool: mappings must run off the
    event loop, so each takes a hop to a thread (`asyncio.to_thread`)."""
    benchmark.group = "pool 1k"
    run, request = mapping_function("javascript"), sample_request()

    async def one_thread_hop_each() -> list[Any]:
        return list(await asyncio.gather(*(asyncio.to_thread(run, request) for _ in range(REQUESTS))))

    record(benchmark, benchmark(lambda: loop.run_until_complete(one_thread_hop_each())))


def test_pool_run_many(benchmark: Any, loop: asyncio.AbstractEventLoop, pool: SandboxPool) -> None:
    benchmark.group = "pool 1k"
    requests = [sample_request()] * REQUESTS
    results = benchmark(lambda: loop.run_until_complete(pool.run_many("bench:1", SPEC, None, requests)))
    record(benchmark, results)


def test_pool_task_per_request(benchmark: Any, loop: asyncio.AbstractEventLoop, pool: SandboxPool) -> None:
    benchmark.group = "pool 1k"
    request = sample_request()

    async def one_task_each() -> list[Any]:
        return list(await asyncio.gather(*(pool.run("bench:1", SPEC, None, request) for _ in range(REQUESTS))))

    record(benchmark, benchmark(lambda: loop.run_until_complete(one_task_each())))
