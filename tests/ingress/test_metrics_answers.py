"""`GET /metrics` in the OpenAPI document lists exactly the answers the route gives: 200, 401, 500.

A client generated from the document (a monitoring integration) must know
a scrape does not answer 503 while the store is away: it answers 200, with
`flowhook_store_up 0` and no backlog. It answers 401 without the admin token
or with another, and 500 when the backlog read fails for a bug of flowhook's
rather than the store's. Each answer is provoked here, then compared with
the document's list.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.anyio


REFUSED = sa.exc.OperationalError("SELECT …", {}, ConnectionRefusedError("connection refused"))  # the store away
UNIQUE_VIOLATION = sa.exc.IntegrityError("INSERT …", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))  # a bug


def store_up(scrape: httpx.Response) -> float:
    [family] = [found for found in text_string_to_metric_families(scrape.text) if found.name == "flowhook_store_up"]
    return float(family.samples[0].value)


async def scrape_failing_with(flowhook, error: Exception) -> httpx.Response:
    """A scrape whose backlog read raises `error`."""

    async def failing(*args: Any) -> None:
        raise error

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(flowhook.services.store, "read", failing)
        return await flowhook.api.get("/metrics")


async def test_the_document_lists_every_answer_of_metrics_and_no_other(flowhook) -> None:
    given: set[int] = set()
    for headers in ({}, {"authorization": "Bearer fh_admin_not-this-one"}):
        refused = await flowhook.sender().get("/metrics", headers=headers)
        assert refused.json()["error"]["code"] == "unauthorized"
        given.add(refused.status_code)
    scraped = await flowhook.api.get("/metrics")
    assert store_up(scraped) == 1
    given.add(scraped.status_code)
    outage = await scrape_failing_with(flowhook, REFUSED)
    assert (outage.status_code, store_up(outage)) == (200, 0)
    bug = await scrape_failing_with(flowhook, UNIQUE_VIOLATION)
    assert bug.json()["error"]["code"] == "internal_error"
    given |= {outage.status_code, bug.status_code}

    document = (await flowhook.sender().get("/openapi.json")).json()
    metrics = document["paths"]["/metrics"]["get"]
    assert {int(status) for status in metrics["responses"]} == given == {200, 401, 500}
    assert set(metrics["responses"]["200"]["content"]) == {"text/plain"}
    assert "security" not in metrics  # the document's: the admin token
