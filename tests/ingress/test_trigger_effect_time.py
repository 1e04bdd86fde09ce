"""A trigger starts live runs only from events recorded once it took effect (store.event_dispatch).

A segment trigger took effect when its flow was first published (or when it
was made, if later): whoever entered the segment before then is an existing
member, started by the publish answer's `startExisting`, and not by the
trigger, even when their entry's delivery was still pending at the
publication. The app runs without its executor, so nothing moves until a
test says so: each test holds the dispatcher back across the publication,
then runs the dispatcher, the bulk runner and the executor in the order it
chooses. On SQLite, and on PostgreSQL too when FLOWHOOK_TEST_POSTGRES names
a server.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
import sqlalchemy as sa

from flows.bulk_runner import BulkRunner
from flows.dispatcher import EventDispatcher
from flows.executor import Executor
from store import database_url
from store.flows import publish
from store.tables import analytics_events, event_deliveries, flow_instances, segment_members

pytestmark = pytest.mark.anyio
_cohorts = itertools.count()


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return {**either_database, "executor": False}  # no background loops: the tests drive their own


@pytest.fixture
def cohort() -> str:
    return f"effect-{next(_cohorts)}"


async def ok(flowhook, method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
    response = await flowhook.api.request(method, f"/v1/default{url}", **kwargs)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def dispatch(flowhook) -> None:
    """Settle every pending delivery, then run the invocations it made."""
    await EventDispatcher(flowhook.services.store, flowhook.services.runner).drain()
    await Executor(flowhook.services.store).drain()


async def follow(flowhook, offer: dict[str, Any]) -> dict[str, Any]:
    """Send a publish answer's `startExisting`, finish its task and run the invocations it made."""
    response = await flowhook.api.request(offer["method"], offer["path"], json=offer["body"])
    assert response.status_code == 202, response.text
    await BulkRunner(flowhook.services.store).drain()
    await Executor(flowhook.services.store).drain()
    return await ok(flowhook, "GET", f"/bulk-tasks/{response.json()['id']}")  # type: ignore[no-any-return]


async def enter(flowhook, user: str, cohort: str) -> None:
    response = await flowhook.api.put(f"/v1/default/customers/{user}", json={"attributes": {"cohort": cohort}})
    assert response.status_code in (200, 201), response.text


async def runs(flowhook, flow: dict[str, Any]) -> dict[str, int]:
    """How many flow instances each user has of the flow."""
    query = (
        sa.select(flow_instances.c.user_id, sa.func.count())
        .where(flow_instances.c.flow_id == flow["id"])
        .group_by(flow_instances.c.user_id)
    )
    rows = await flowhook.services.store.read(lambda conn: conn.execute(query).all())
    return dict(sorted((user, count) for user, count in rows))


async def outcomes(flowhook, trigger: dict[str, Any]) -> list[tuple[str, str | None]]:
    """What became of the trigger's deliveries, oldest first, from its delivery log."""
    page = await ok(flowhook, "GET", f"/triggers/{trigger['id']}/deliveries")
    return [(delivery["status"], delivery["cause"]) for delivery in reversed(page["data"])]


@pytest.mark.parametrize("first", ["offer", "trigger"])
async def test_an_entry_pending_at_the_first_publication_starts_the_flow_once(flowhook, cohort, first) -> None:
    """The customer who entered just before the publication, their entry not dispatched yet, is an existing
    member: the offer starts them and the trigger does not, whichever comes first. One who enters after the
    publication is the trigger's alone."""
    rules = {"all": [{"attribute": "cohort", "op": "eq", "value": cohort}]}
    segment = await ok(flowhook, "POST", "/segments", 201, json={"name": cohort, "rules": rules})
    flow = await flowhook.card_flow("Welcome", publish=False)
    trigger = await ok(
        flowhook,
        "POST",
        f"/action-flows/{flow['id']}/triggers",
        201,
        json={"type": "segment", "segmentId": segment["id"], "mode": "live"},
    )
    early, late = f"{cohort}-early", f"{cohort}-late"
    await enter(flowhook, early, cohort)
    assert await outcomes(flowhook, trigger) == [("pending", None)]
    [report] = (await ok(flowhook, "POST", f"/action-flows/{flow['id']}/publish"))["segmentTriggers"]
    assert report["startExisting"]["members"] == 1
    await enter(flowhook, late, cohort)
    if first == "offer":
        task = await follow(flowhook, report["startExisting"])
        await dispatch(flowhook)
    else:
        await dispatch(flowhook)
        task = await follow(flowhook, report["startExisting"])
    assert (task["status"], task["total"], task["started"], task["skipped"]) == ("done", 1, 1, [])
    assert await runs(flowhook, flow) == {early: 1, late: 1}
    assert await outcomes(flowhook, trigger) == [("skipped", "predates_trigger"), ("accepted", None)]
    for user in (early, late):
        assert len((await ok(flowhook, "GET", f"/users/{user}/cards"))["data"]) == 1


async def test_an_event_recorded_before_the_first_publication_starts_no_live_run(flowhook, cohort) -> None:
    """An event trigger keeps the same cutoff: an event sent while its flow was unpublished never starts it
    live, whether or not the dispatcher got to it before the publication."""
    client = await flowhook.api_client()
    flow = await flowhook.card_flow("Thanks", publish=False)
    trigger = await flowhook.trigger(flow, type="event", eventName=cohort, mode="live")
    before, after = f"{cohort}-before", f"{cohort}-after"
    for user in (before, after):
        if user == after:
            await ok(flowhook, "POST", f"/action-flows/{flow['id']}/publish")
        response = await client.post("/v1/default/events", json={"events": [{"eventName": cohort, "endUserId": user}]})
        assert response.status_code == 202, response.text
    await dispatch(flowhook)
    assert await runs(flowhook, flow) == {after: 1}
    assert await outcomes(flowhook, trigger) == [("skipped", "predates_trigger"), ("accepted", None)]


class PublishingRunner:
    """The app's mapping runner, which publishes a flow while the mapping runs: after the dispatcher read the
    delivery (unpublished), before it settles it (published)."""

    def __init__(self, flowhook: Any, flow: dict[str, Any]) -> None:
        self._flowhook, self._flow = flowhook, flow

    async def run_stored(self, target: Any, live: bool, request: dict[str, Any]) -> Any:
        await ok(self._flowhook, "POST", f"/action-flows/{self._flow['id']}/publish")
        return await self._flowhook.services.runner.run_stored(target, live, request)


async def test_a_publication_while_the_mapping_runs_lets_no_earlier_event_through(flowhook, cohort) -> None:
    """The settling transaction reads the publication and the cutoff itself: what the dispatcher read before
    the mapping ran (no publication yet) decides nothing."""
    client = await flowhook.api_client()
    flow = await flowhook.card_flow("Thanks", publish=False)
    trigger = await flowhook.trigger(flow, type="event", eventName=cohort, mode="live")
    user = f"{cohort}-early"
    response = await client.post("/v1/default/events", json={"events": [{"eventName": cohort, "endUserId": user}]})
    assert response.status_code == 202, response.text
    await EventDispatcher(flowhook.services.store, PublishingRunner(flowhook, flow)).drain()  # type: ignore[arg-type]
    await Executor(flowhook.services.store).drain()
    assert (await ok(flowhook, "GET", f"/action-flows/{flow['id']}"))["publishedVersion"] == 1
    assert await runs(flowhook, flow) == {}
    assert await outcomes(flowhook, trigger) == [("skipped", "predates_trigger")]


def locks_awaited(engine: sa.Engine) -> int:
    """How many of the database's backends wait for a lock now."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


async def test_an_event_recorded_while_the_flow_is_being_published_is_the_triggers(flowhook, settings, cohort) -> None:
    """PostgreSQL: a publication takes its time before it commits. An event recorded in between is the
    trigger's (not an existing member), so settling it must not find the flow unpublished: the dispatcher
    waits for the publication to commit, and starts the run."""
    if settings.database is None:
        pytest.skip("SQLite has one writer: no publication is ever in progress while a delivery is settled")
    client = await flowhook.api_client()
    flow = await flowhook.card_flow("Thanks", publish=False)
    trigger = await flowhook.trigger(flow, type="event", eventName=cohort, mode="live")
    user = f"{cohort}-meanwhile"
    engine = sa.create_engine(database_url(settings.database, settings.data_dir))
    try:
        with engine.connect() as publishing:
            transaction = publishing.begin()
            assert publish(publishing, "default", flow["id"]) is not None  # its time is taken; not committed
            events = {"events": [{"eventName": cohort, "endUserId": user}]}
            assert (await client.post("/v1/default/events", json=events)).status_code == 202
            dispatching = asyncio.create_task(dispatch(flowhook))
            for _ in range(500):  # until the settling transaction waits for the publication
                if locks_awaited(engine) or dispatching.done():
                    break
                await asyncio.sleep(0.01)
            assert not dispatching.done()
            transaction.commit()
        await dispatching
    finally:
        engine.dispose()
    assert await runs(flowhook, flow) == {user: 1}
    assert await outcomes(flowhook, trigger) == [("accepted", None)]


async def test_a_test_run_needs_no_publication_and_has_no_cutoff(flowhook, cohort) -> None:
    """A test trigger's runs use the drafts: an event from before the publication still starts one."""
    client = await flowhook.api_client()
    user = f"{cohort}-tester"
    await ok(flowhook, "POST", "/test-users", 201, json={"userId": user})
    flow = await flowhook.card_flow("Try", publish=False)
    trigger = await flowhook.trigger(flow, type="event", eventName=cohort, mode="test")
    response = await client.post("/v1/default/events", json={"events": [{"eventName": cohort, "endUserId": user}]})
    assert response.status_code == 202, response.text
    await ok(flowhook, "POST", f"/action-flows/{flow['id']}/publish")
    await dispatch(flowhook)
    assert await runs(flowhook, flow) == {user: 1}
    assert await outcomes(flowhook, trigger) == [("accepted", None)]


async def test_an_entry_and_its_event_are_recorded_at_the_same_instant(flowhook, cohort) -> None:
    """The membership's `entered_at` (the existing members' cutoff) is its event's time and its delivery's (the
    trigger's), to the microsecond: no entry falls between the two."""
    rules = {"all": [{"attribute": "cohort", "op": "eq", "value": cohort}]}
    segment = await ok(flowhook, "POST", "/segments", 201, json={"name": cohort, "rules": rules})
    flow = await flowhook.card_flow("Welcome", publish=False)
    url = f"/action-flows/{flow['id']}/triggers"
    await ok(flowhook, "POST", url, 201, json={"type": "segment", "segmentId": segment["id"], "mode": "live"})
    user = f"{cohort}-member"
    await enter(flowhook, user, cohort)
    query = (
        sa.select(segment_members.c.entered_at, analytics_events.c.timestamp, event_deliveries.c.created_at)
        .join(analytics_events, analytics_events.c.end_user_id == segment_members.c.user_id)
        .join(event_deliveries, event_deliveries.c.event_id == analytics_events.c.id)
        .where(segment_members.c.segment_id == segment["id"], analytics_events.c.event_name == "segment-entered")
    )
    [(entered_at, timestamp, recorded_at)] = await flowhook.services.store.read(lambda conn: conn.execute(query).all())
    assert entered_at == timestamp == recorded_at
