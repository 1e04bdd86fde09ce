"""Executor throughput: cards delivered per second on SQLite, one process.

Each round fills the inbox of a fresh store (not timed) with 5,000 target
users of a published one-card flow, either as 5,000 invocations of one user
or 5 invocations of 1,000 users, then times `Executor.drain()`: claiming,
expanding, rendering and committing every card with its flow instance and
three analytics events (durability `fsync`, as `serve` runs by default).
Cards per second = CARDS / mean.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.executor import Executor
from store import Store, card_templates, database_url, flows
from store.invocations import AcceptRequest, accept_batch

CARDS = 5000
TEMPLATE = {"title": "Hi {{firstName}}", "body": "Your order {{order}} has shipped.", "actions": [{"label": "Track"}]}


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


async def filled_store(users_per_invocation: int) -> tuple[Store, Executor]:
    store = await Store.open(database_url(None, Path(tempfile.mkdtemp(prefix="flowhook-bench-"))))
    template = await store.write(
        lambda c: card_templates.insert_template(c, "default", {"name": "t", "definition": TEMPLATE})
    )
    await store.write(lambda c: card_templates.publish(c, "default", template.id))
    steps = [{"type": "send-card", "id": "card", "cardTemplateId": template.id}]
    flow = await store.write(lambda c: flows.insert_flow(c, "default", {"name": "f", "variables": [], "steps": steps}))
    await store.write(lambda c: flows.publish(c, "default", flow.id))
    requests = [
        AcceptRequest(
            "default",
            flow.id,
            None,
            f"req-{index}",
            "live",
            f"bench-{index}",
            {
                "targetUserIds": [f"user-{index}-{n}" for n in range(users_per_invocation)],
                "variables": {"firstName": "Ann", "order": index},
            },
            None,
        )
        for index in range(CARDS // users_per_invocation)
    ]
    await asyncio.gather(*(store.submit(accept_batch, request) for request in requests))
    return store, Executor(store)


@pytest.mark.parametrize("users_per_invocation", [1, 1000])
def test_cards_per_second(benchmark: Any, loop: asyncio.AbstractEventLoop, users_per_invocation: int) -> None:
    benchmark.group = "executor 5k cards"
    stores: list[Store] = []

    def setup() -> tuple[tuple[Executor], dict[str, Any]]:
        store, executor = loop.run_until_complete(filled_store(users_per_invocation))
        stores.append(store)
        return (executor,), {}

    def drain(executor: Executor) -> int:
        return loop.run_until_complete(executor.drain()).cards

    try:
        delivered = benchmark.pedantic(drain, setup=setup, rounds=3)
    finally:
        for store in stores:
            loop.run_until_complete(store.close())
    assert delivered == CARDS
    benchmark.extra_info["cards_per_round"] = CARDS
    benchmark.extra_info["cards_per_second"] = round(CARDS / benchmark.stats.stats.mean)
