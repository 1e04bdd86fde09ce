"""After PostgreSQL ends every session (a restart, a failover, an administrator), no request gets a 503.

Each pooled connection is dead then, and is found so only when used. The
sessions of the app's database are terminated under it, as a restart does
(the shared test server itself stays up), and each kind of request goes
first to a pool of dead connections: a webhook (its configuration cached,
so the writer's transaction), a read, an API write, then a burst of reads
and webhooks together. Every one must be answered as if nothing happened: the
pool tests a connection before handing it out (store.engine), rather than
failing the request that meets it. The app runs no executor (as `serve`
beside a `flowhook worker`): a background loop meeting a dead connection
first would renew the pool before the request under test.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

pytestmark = pytest.mark.anyio

HOOK_BODY = b'{"targetUserIds": ["u1"]}'


@pytest.fixture(scope="module")
def settings_overrides(postgres_database: URL) -> dict[str, Any]:
    return {"database": postgres_database.render_as_string(hide_password=False), "durability": "os", "executor": False}


def terminate_sessions(database: URL) -> int:
    """End every other session of `database` (pg_terminate_backend); how many there were."""
    admin = sa.create_engine(database, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            ended = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            return len(ended.all())
    finally:
        admin.dispose()


async def sessions_ended(flowhook, database: URL, trigger: dict[str, Any]) -> None:
    """Fill the pool (reads and writes at once), then end every session it holds."""
    api, hook = flowhook.api, f"/v1/default/triggers/{trigger['id']}"
    await asyncio.gather(*[api.get(hook) for _ in range(8)], *[flowhook.post(trigger, HOOK_BODY) for _ in range(8)])
    assert await asyncio.to_thread(terminate_sessions, database) >= 2


def answered(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, (response.request.method, response.request.url.path, response.text)


async def test_requests_after_the_sessions_end_are_answered(flowhook, postgres_database: URL) -> None:
    flow = await flowhook.flow(publish=True)
    trigger = await flowhook.trigger(flow, mode="live")

    await sessions_ended(flowhook, postgres_database, trigger)
    answered(await flowhook.post(trigger, HOOK_BODY), 202)

    await sessions_ended(flowhook, postgres_database, trigger)
    answered(await flowhook.api.get(f"/v1/default/action-flows/{flow['id']}"), 200)

    await sessions_ended(flowhook, postgres_database, trigger)
    answered(await flowhook.api.post("/v1/default/action-flows", json={"name": "After"}), 201)

    await sessions_ended(flowhook, postgres_database, trigger)
    burst = await asyncio.gather(
        *[flowhook.api.get(f"/v1/default/triggers/{trigger['id']}/requests") for _ in range(6)],
        *[flowhook.post(trigger, HOOK_BODY) for _ in range(6)],
    )
    assert [response.status_code for response in burst] == [200] * 6 + [202] * 6
    assert (await flowhook.sender().get("/readyz")).json()["ready"] is True
