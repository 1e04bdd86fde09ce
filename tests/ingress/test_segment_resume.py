"""A segment evaluation cut short is finished in the background: each entry and exit once, none skipped.

The request that creates or edits a segment evaluates it a chunk per
transaction; here it dies after some chunks (the process stopped), and the
segment evaluator (flows.segment_evaluation), driven directly, takes the
evaluation over once its lease has run out. Each test works in an
environment of its own, so that its counts are exact. Runs on SQLite, and on
PostgreSQL too when FLOWHOOK_TEST_POSTGRES names a server.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa

from flows.segment_evaluation import SegmentEvaluator, SegmentEvaluatorConfig
from store import Store, database_url, segments
from store.clock import utcnow
from store.tables import analytics_events, customers, segment_members
from store.tables import segments as segment_rows

pytestmark = pytest.mark.anyio
CHUNK = 2
_environments = itertools.count()


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return {**either_database, "executor": False}  # no evaluator in the app: the tests drive their own


@pytest.fixture
async def env(flowhook, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new environment, whose segments are evaluated CHUNK customers per transaction."""
    monkeypatch.setattr(segments, "CHUNK", CHUNK)
    created = await flowhook.api.post("/v1/environments", json={"id": f"resume-{next(_environments)}"})
    assert created.status_code == 201, created.text
    found: str = created.json()["id"]
    return found


def evaluator(store: Store) -> SegmentEvaluator:
    return SegmentEvaluator(store, SegmentEvaluatorConfig(chunk_size=CHUNK))


async def profiles(flowhook, env: str, plans: dict[str, str]) -> None:
    for user, plan in plans.items():
        response = await flowhook.api.put(f"/v1/{env}/customers/{user}", json={"attributes": {"plan": plan}})
        assert response.status_code == 201, response.text


def plan_in(*plans: str) -> dict[str, Any]:
    return {"name": "Paying", "rules": {"all": [{"attribute": "plan", "op": "in", "value": list(plans)}]}}


async def segment_events(flowhook, env: str) -> list[tuple[str, str]]:
    """(event name, user) of the environment's segment events, in order."""
    query = (
        sa.select(analytics_events.c.event_name, analytics_events.c.end_user_id)
        .where(analytics_events.c.environment_id == env)
        .order_by(analytics_events.c.seq)
    )
    return [tuple(row) for row in await flowhook.services.store.read(lambda conn: conn.execute(query).all())]


async def members(flowhook, segment_id: str) -> list[str]:
    query = sa.select(segment_members.c.user_id).where(segment_members.c.segment_id == segment_id)
    return sorted(await flowhook.services.store.read(lambda conn: conn.execute(query).scalars().all()))


async def evaluation(flowhook, env: str, segment_id: str) -> dict[str, Any]:
    response = await flowhook.api.get(f"/v1/{env}/segments/{segment_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["evaluation"]
    return found


async def leases_run_out(flowhook) -> None:
    """As if segments.LEASE had passed since every evaluation was last moved on."""
    statement = (
        sa.update(segment_rows)
        .where(segment_rows.c.evaluation_lease.is_not(None))
        .values(evaluation_lease=utcnow() - timedelta(seconds=1))
    )
    await flowhook.services.store.write(lambda conn: conn.execute(statement))


async def cut_short(monkeypatch: pytest.MonkeyPatch, chunks: int, request: Callable[[], Awaitable[Any]]) -> None:
    """Send `request`, whose evaluation stops after `chunks` chunks, as when its process dies."""
    evaluate_chunk, calls = segments.evaluate_chunk, itertools.count()

    def evaluate(conn: Any, **arguments: Any) -> segments.Chunk:
        if next(calls) >= chunks:
            raise RuntimeError("the process died")
        return evaluate_chunk(conn, **arguments)

    monkeypatch.setattr(segments, "evaluate_chunk", evaluate)
    with pytest.raises(RuntimeError, match="the process died"):
        await request()
    monkeypatch.setattr(segments, "evaluate_chunk", evaluate_chunk)


async def test_a_new_segment_cut_short_is_finished_by_the_background(flowhook, env, monkeypatch) -> None:
    users = {f"u{index}": "pro" if index % 2 else "free" for index in range(7)}
    await profiles(flowhook, env, users)
    await cut_short(monkeypatch, 2, lambda: flowhook.api.post(f"/v1/{env}/segments", json=plan_in("pro")))
    [segment] = (await flowhook.api.get(f"/v1/{env}/segments")).json()["data"]
    assert segment["evaluation"] == {
        "revision": 1,
        "customersExamined": 4,  # two chunks committed: u0 to u3
        "entered": 2,
        "exited": 0,
        "complete": False,
    }
    assert await evaluator(flowhook.services.store).drain() == 0  # its lease has not run out: it may be alive
    await leases_run_out(flowhook)
    assert await evaluator(flowhook.services.store).drain() == 2  # u4 and u5, then u6 and the end
    assert await evaluation(flowhook, env, segment["id"]) == {
        "revision": 1,
        "customersExamined": 7,
        "entered": 3,
        "exited": 0,
        "complete": True,
    }
    assert await members(flowhook, segment["id"]) == ["u1", "u3", "u5"]
    assert await segment_events(flowhook, env) == [(segments.ENTERED, user) for user in ("u1", "u3", "u5")]
    await leases_run_out(flowhook)
    assert await evaluator(flowhook.services.store).drain() == 0  # nothing left to finish


async def test_an_edit_cut_short_exits_and_enters_each_customer_once(flowhook, env, monkeypatch) -> None:
    users = {"a": "pro", "b": "team", "c": "free", "d": "pro", "e": "team", "f": "free"}
    await profiles(flowhook, env, users)
    created = await flowhook.api.post(f"/v1/{env}/segments", json=plan_in("pro"))
    url = f"/v1/{env}/segments/{created.json()['id']}"
    await cut_short(monkeypatch, 1, lambda: flowhook.api.put(url, json=plan_in("team")))
    await leases_run_out(flowhook)
    assert await evaluator(flowhook.services.store).drain() == 3  # c-d, e-f, and the end
    assert await members(flowhook, created.json()["id"]) == ["b", "e"]
    assert await segment_events(flowhook, env) == [
        (segments.ENTERED, "a"),
        (segments.ENTERED, "d"),
        (segments.EXITED, "a"),  # the request's chunk: a exits, b enters
        (segments.ENTERED, "b"),
        (segments.EXITED, "d"),  # the background's: d exits, e enters
        (segments.ENTERED, "e"),
    ]
    assert await evaluation(flowhook, env, created.json()["id"]) == {
        "revision": 2,
        "customersExamined": 6,
        "entered": 2,
        "exited": 2,
        "complete": True,
    }


async def test_a_chunk_whose_transaction_dies_keeps_neither_its_changes_nor_its_progress(
    flowhook, env, monkeypatch
) -> None:
    await profiles(flowhook, env, {"a": "pro", "b": "pro", "c": "pro"})
    reconcile = segments.reconcile

    def dies_after_its_changes(*arguments: Any) -> segments.Changes:
        reconcile(*arguments)  # members inserted and their events written, in the chunk's transaction
        raise RuntimeError("the process died")

    monkeypatch.setattr(segments, "reconcile", dies_after_its_changes)
    with pytest.raises(RuntimeError, match="the process died"):
        await flowhook.api.post(f"/v1/{env}/segments", json=plan_in("pro"))
    monkeypatch.setattr(segments, "reconcile", reconcile)
    [segment] = (await flowhook.api.get(f"/v1/{env}/segments")).json()["data"]
    assert (segment["memberCount"], segment["evaluation"]["customersExamined"]) == (0, 0)
    assert await segment_events(flowhook, env) == []
    await leases_run_out(flowhook)
    assert await evaluator(flowhook.services.store).drain() == 2
    assert await segment_events(flowhook, env) == [(segments.ENTERED, user) for user in ("a", "b", "c")]


async def test_a_newer_edit_supersedes_an_unfinished_evaluation(flowhook, env, monkeypatch) -> None:
    users = {"a": "pro", "b": "team", "c": "pro", "d": "team", "e": "pro", "f": "team"}
    await profiles(flowhook, env, users)
    await cut_short(monkeypatch, 1, lambda: flowhook.api.post(f"/v1/{env}/segments", json=plan_in("pro")))
    [segment] = (await flowhook.api.get(f"/v1/{env}/segments")).json()["data"]
    url = f"/v1/{env}/segments/{segment['id']}"
    await leases_run_out(flowhook)
    background = evaluator(flowhook.services.store)
    assert await background.step()  # takes revision 1 over: c-d
    edited = await flowhook.api.put(url, json=plan_in("team"))  # revision 2 is evaluated in the request
    assert edited.json()["evaluation"] == {
        "revision": 2,
        "customersExamined": 6,
        "entered": 3,
        "exited": 2,
        "complete": True,
    }
    assert not await background.step()  # revision 1's next chunk: superseded, so it lets go
    await leases_run_out(flowhook)
    assert await background.drain() == 0
    assert await members(flowhook, segment["id"]) == ["b", "d", "f"]
    assert await segment_events(flowhook, env) == [
        (segments.ENTERED, "a"),  # revision 1: the request's chunk
        (segments.ENTERED, "c"),  # revision 1: the background's chunk
        (segments.EXITED, "a"),  # revision 2, from the start
        (segments.ENTERED, "b"),
        (segments.EXITED, "c"),
        (segments.ENTERED, "d"),
        (segments.ENTERED, "f"),
    ]


async def test_an_answer_says_when_a_newer_edit_took_over(flowhook, env, monkeypatch) -> None:
    await profiles(flowhook, env, {"a": "pro", "b": "team", "c": "free"})
    created = await flowhook.api.post(f"/v1/{env}/segments", json=plan_in("pro"))
    segment_id = created.json()["id"]
    evaluate_chunk = segments.evaluate_chunk

    def edited_meanwhile(conn: Any, **arguments: Any) -> segments.Chunk:
        chunk = evaluate_chunk(conn, **arguments)
        if arguments["after"] is None:  # another edit (revision 3) after revision 2's first chunk; its request died
            segments.update_segment(conn, env, segment_id, "Free", plan_in("free")["rules"])
        return chunk

    monkeypatch.setattr(segments, "evaluate_chunk", edited_meanwhile)
    edited = await flowhook.api.put(f"/v1/{env}/segments/{segment_id}", json=plan_in("team"))
    monkeypatch.setattr(segments, "evaluate_chunk", evaluate_chunk)
    assert (edited.json()["revision"], edited.json()["name"]) == (2, "Paying")  # the edit it answers
    assert edited.json()["evaluation"] == {
        "revision": 2,
        "customersExamined": 2,
        "entered": 1,
        "exited": 1,
        "complete": False,
    }
    read = (await flowhook.api.get(f"/v1/{env}/segments/{segment_id}")).json()
    assert (read["revision"], read["evaluation"]["complete"]) == (3, False)
    await leases_run_out(flowhook)
    assert await evaluator(flowhook.services.store).drain() == 2
    assert await members(flowhook, segment_id) == ["c"]
    assert await segment_events(flowhook, env) == [
        (segments.ENTERED, "a"),  # revision 1
        (segments.EXITED, "a"),  # revision 2's chunk
        (segments.ENTERED, "b"),
        (segments.EXITED, "b"),  # revision 3, in the background
        (segments.ENTERED, "c"),
    ]


async def test_two_evaluators_take_each_chunk_once(flowhook, env, monkeypatch, settings) -> None:
    """Two processes (two stores: two writers, two connections) on one evaluation left over."""
    await profiles(flowhook, env, {f"u{index}": "pro" for index in range(9)})
    await cut_short(monkeypatch, 1, lambda: flowhook.api.post(f"/v1/{env}/segments", json=plan_in("pro")))
    [segment] = (await flowhook.api.get(f"/v1/{env}/segments")).json()["data"]
    await leases_run_out(flowhook)
    rival = await Store.open(database_url(settings.database, settings.data_dir), fsync=False)
    try:
        chunks = await asyncio.gather(evaluator(flowhook.services.store).drain(), evaluator(rival).drain())
    finally:
        await rival.close()
    assert sum(chunks) == 4  # u2 to u8 in pairs, then the end, whoever took them
    assert await segment_events(flowhook, env) == [(segments.ENTERED, f"u{index}") for index in range(9)]
    assert (await evaluation(flowhook, env, segment["id"]))["customersExamined"] == 9


async def test_an_evaluator_that_finds_the_evaluation_moved_on_does_nothing(flowhook, env, settings) -> None:
    """The same chunk asked of two stores at once: the segment row is the lock, so one does it."""
    await profiles(flowhook, env, {f"u{index}": "pro" for index in range(6)})
    store = flowhook.services.store
    segment = await store.write(lambda conn: segments.insert_segment(conn, env, "Paying", plan_in("pro")["rules"]))
    rival = await Store.open(database_url(settings.database, settings.data_dir), fsync=False)
    try:
        after = None
        while True:
            evaluate = partial(segments.evaluate_chunk, segment_id=segment.id, revision=1, after=after, limit=CHUNK)
            both = await asyncio.gather(store.write(evaluate), rival.write(evaluate))
            assert sorted(chunk.advanced for chunk in both) == [False, True]
            [done] = [chunk for chunk in both if chunk.advanced]
            assert done.evaluation is not None
            after = done.evaluation.after
            if done.evaluation.complete:
                break
    finally:
        await rival.close()
    assert await segment_events(flowhook, env) == [(segments.ENTERED, f"u{index}") for index in range(6)]
    assert (await evaluation(flowhook, env, segment.id))["customersExamined"] == 6


async def test_customers_written_meanwhile_are_evaluated_by_their_write_and_once(flowhook, env, monkeypatch) -> None:
    await profiles(flowhook, env, {"a": "pro", "b": "pro"})
    await cut_short(monkeypatch, 1, lambda: flowhook.api.post(f"/v1/{env}/segments", json=plan_in("pro")))
    await profiles(flowhook, env, {"c": "pro"})  # enters by its own write, during the evaluation
    await leases_run_out(flowhook)
    assert await evaluator(flowhook.services.store).drain() == 1
    assert await segment_events(flowhook, env) == [(segments.ENTERED, user) for user in ("a", "b", "c")]
    count = sa.select(sa.func.count()).select_from(customers).where(customers.c.environment_id == env)
    assert await flowhook.services.store.read(lambda conn: conn.execute(count).scalar_one()) == 3
