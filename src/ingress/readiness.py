"""`GET /readyz`: whether this process can accept webhooks now, for a load balancer or orchestrator.

`/healthz` says the process answers; this says its parts work: the store
answers a read in time, the writer that makes every 202 durable is running
(its last flushes of the write-ahead log worked, and the database's files
are still those it writes: once replaced, not until a restart),
and the sandbox pool has a worker to map JavaScript. A 503 names what is
not, so a balancer sends the traffic elsewhere while it recovers (a crashed
sandbox worker is replaced within moments; a store that stopped answering
is what an operator must look at). No token: it names no tenant or secret.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from ingress.jsonio import json_response
from ingress.services import Services

STORE_TIMEOUT_SECONDS = 2.0
#: A process whose write-ahead log failed to flush this recently refuses writes (503): not ready. After that
#: it is offered traffic again, and a write that fails again makes it not ready again.
FLUSH_FAILED_SECONDS = 10.0


async def _store_answers(services: Services) -> bool:
    try:
        await asyncio.wait_for(
            services.store.read(lambda conn: conn.execute(sa.text("SELECT 1")).scalar()), STORE_TIMEOUT_SECONDS
        )
    except Exception:  # noqa: BLE001 - any failure means not ready; the answer names the check
        return False
    return True


async def readiness(request: Request) -> Response:
    services: Services = request.app.state.services
    checks = {
        "store": await _store_answers(services),
        "writer": services.store.writer.running
        and not services.store.writer.flush_failed_within(FLUSH_FAILED_SECONDS)
        and services.store.files_in_place(),
        "sandbox": any(worker.pid is not None for worker in services.pool.workers),
    }
    ready = all(checks.values())
    view = {"ready": ready, "checks": {name: "ok" if passed else "failing" for name, passed in checks.items()}}
    return json_response(view, 200 if ready else 503)
