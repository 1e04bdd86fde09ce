"""`DELETE /v1/{env}/test-data`: remove what test runs and test events left, not only hide it (`testAnalytics`).

The removal is many short transactions (store.test_data), not one: the
store's writer is shared with webhook ingestion and the executor, which go
on between chunks. A call cut short has removed part of the data; calling
again removes the rest, and counts only what it removed itself.
"""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import environment, services
from ingress.auth import admin_only
from ingress.jsonio import json_response
from store import Store
from store.tables import analytics_events, cards, invocations
from store.test_data import CHUNK, last_seq, remove_test_cards, remove_test_events, remove_test_runs

#: What a removal deletes, as its answer counts them.
KINDS = ("invocations", "flowInstances", "cards", "analyticsEvents", "eventDeliveries")


@admin_only
async def remove_test_data(request: Request) -> Response:
    env = await environment(request)
    return json_response({"deleted": await remove(services(request).store, env)})


async def remove(store: Store, environment_id: str, chunk: int = CHUNK) -> dict[str, int]:
    """Remove the environment's test runs accepted so far, then its test cards and events recorded by then; what
    was deleted, by kind. The bounds of cards and events are read once the runs are gone, so what those runs
    recorded while being removed goes too."""
    through = await store.read(partial(last_seq, table=invocations))
    deleted = dict.fromkeys(KINDS, 0)
    flow: str | None = ""
    while flow is not None:
        runs = await store.write(
            partial(remove_test_runs, environment_id=environment_id, from_flow=flow, through=through, limit=chunk)
        )
        deleted["invocations"] += runs.invocations
        deleted["flowInstances"] += runs.instances
        flow = runs.next_flow
    for table, remove_rows, name in (
        (cards, remove_test_cards, "cards"),
        (analytics_events, remove_test_events, "analyticsEvents"),
    ):
        bound = await store.read(partial(last_seq, table=table))
        after: int | None = 0
        while after is not None:
            rows = await store.write(
                partial(remove_rows, environment_id=environment_id, after=after, through=bound, limit=chunk)
            )
            deleted[name] += rows.deleted
            deleted["eventDeliveries"] += rows.deliveries
            after = rows.next_after
    return deleted


routes = [Route("/test-data", remove_test_data, methods=["DELETE"])]
