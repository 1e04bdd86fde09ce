"""`GET /readyz`: 200 while the store, its writer and the sandbox work; a 503 naming what fails."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def test_ready_then_not_once_the_writer_stops(flowhook) -> None:
    """The module's own app: stopping its writer is what a store failure does to every 202 it would give."""
    ready = await flowhook.sender().get("/readyz")
    assert (ready.status_code, ready.json()) == (
        200,
        {"ready": True, "checks": {"store": "ok", "writer": "ok", "sandbox": "ok"}},
    )
    await flowhook.services.store.writer.close()
    refused = await flowhook.sender().get("/readyz")
    assert (refused.status_code, refused.json()) == (
        503,
        {"ready": False, "checks": {"store": "ok", "writer": "failing", "sandbox": "ok"}},
    )


async def test_no_sandbox_worker_is_not_ready(flowhook) -> None:
    await flowhook.services.pool.close()
    refused = await flowhook.sender().get("/readyz")
    assert refused.status_code == 503 and refused.json()["checks"]["sandbox"] == "failing"
