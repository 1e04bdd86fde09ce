"""`GET /metrics`: Prometheus text with webhook answers, latencies and the store's backlog.

The counters are process-wide, so the in-process tests compare what a scrape
shows before and after their own requests. The last test runs a real
`flowhook serve --workers 2` and checks that every scrape, whichever process
answers it, counts the requests of both.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flowhook.ingest_bench import free_port

pytestmark = pytest.mark.anyio

OK = orjson.dumps({"targetUserIds": ["metrics-user"]})
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    return {"executor": False}  # what is accepted stays pending: the backlog is known


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def requests_total(scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], status: str, cause: str) -> float:
    return scraped.get(("flowhook_webhook_requests_total", (("cause", cause), ("status", status))), 0.0)


async def scrape(flowhook) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await flowhook.api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_webhook_answers_are_counted_by_status_and_cause(flowhook) -> None:
    trigger = await flowhook.trigger(mapping={"kind": "passthrough"})
    before = await scrape(flowhook)
    for _ in range(3):
        assert (await flowhook.post(trigger, OK)).status_code == 202
    assert (await flowhook.post(trigger, b'{"targetUserIds": []}')).status_code == 422
    assert (await flowhook.sender().post("/hooks/no-such-hook", content=OK)).status_code == 404
    after = await scrape(flowhook)
    for status, cause, added in [("202", "accepted", 3), ("422", "validation_error", 1), ("404", "hook_not_found", 1)]:
        assert requests_total(after, status, cause) - requests_total(before, status, cause) == added, cause
    count = ("flowhook_webhook_request_duration_seconds_count", ())
    assert after[count] - before.get(count, 0.0) == 5
    slowest = ("flowhook_webhook_request_duration_seconds_bucket", (("le", "+Inf"),))
    assert after[slowest] == after[count]


async def test_the_backlog_is_read_from_the_store(flowhook) -> None:
    """The app under test runs no executor, so what it accepts stays pending, and its lag grows."""
    before = await scrape(flowhook)
    trigger = await flowhook.trigger(mapping={"kind": "passthrough"})
    for _ in range(2):
        assert (await flowhook.post(trigger, OK)).status_code == 202
    after = await scrape(flowhook)
    pending = ("flowhook_invocations_pending", ())
    assert after[pending] - before[pending] == 2
    assert after[("flowhook_executor_lag_seconds", ())] > 0
    for name in ("flowhook_flow_instances_due", "flowhook_event_deliveries_due", "flowhook_bulk_tasks_open"):
        assert (name, ()) in after


async def test_metrics_need_the_admin_token(flowhook) -> None:
    answered = await flowhook.sender().get("/metrics")
    assert (answered.status_code, answered.json()["error"]["code"]) == (401, "unauthorized")
    wrong = await flowhook.sender().get("/metrics", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "FLOWHOOK_ADMIN_TOKEN": "metrics-admin", "FLOWHOOK_EXECUTOR": "false"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    stale = tmp_path / "metrics"
    stale.mkdir()
    (stale / "counter_1.db").write_bytes(b"counts of an earlier run")  # must not be read
    command = [sys.executable, "-m", "flowhook", "serve", "--port", str(port), "--data-dir", str(tmp_path)]
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen([*command, "--workers", "2"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_every_process_of_serve_workers_counts_into_one_scrape(two_workers: str) -> None:
    headers = {"authorization": "Bearer metrics-admin"}
    async with httpx.AsyncClient(base_url=two_workers, headers=headers, timeout=30) as api:
        flow = (await api.post("/v1/default/action-flows", json={"name": "metrics"})).json()
        trigger = (
            await api.post(
                f"/v1/default/action-flows/{flow['id']}/triggers",
                json={"type": "webhook", "mapping": {"kind": "passthrough"}},
            )
        ).json()

        async def deliver() -> int:
            async with httpx.AsyncClient(base_url=two_workers) as sender:  # a connection of its own
                response = await sender.post(f"/hooks/{trigger['hookId']}", content=OK, headers=JSON)
                return response.status_code

        assert await asyncio.gather(*(deliver() for _ in range(40))) == [202] * 40
        for _ in range(6):
            async with httpx.AsyncClient(base_url=two_workers, headers=headers) as scraper:
                response = await scraper.get("/metrics")
            assert response.status_code == 200, response.text
            scraped: dict[Any, float] = samples(response.text)
            assert requests_total(scraped, "202", "accepted") == 40
            assert scraped[("flowhook_invocations_pending", ())] == 40
