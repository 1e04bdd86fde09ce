"""A card action and the timer that settles a wait on that card (its timeout, the card's expiry): one wins.

On PostgreSQL a card action and an executor batch run in transactions of
their own, in several processes. Each race here opens one side's
transaction, runs the other on a second connection until it is done or
waits for a lock, then commits the first and lets the second finish. On
SQLite the second waits for the single writer, so the same tests check the
serial orders. The action is stamped a millisecond from the timer's moment,
as a request that queued behind the executor's batch, or a process whose
clock lags, would stamp it.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from flows.batch import Batch, Caches
from flows.executor import Executor
from flows.interpreter import RetryPolicy
from store import Store, card_templates, flows
from store.cards import ActionResult, Card, act_on_card
from store.clock import utcnow
from store.engine import create_engines
from store.invocations import AcceptRequest, accept_batch
from store.tables import analytics_events, cards, flow_instances
from store.test_users import add_test_user

pytestmark = pytest.mark.anyio

T = TypeVar("T")
U = TypeVar("U")
MILLISECOND = timedelta(milliseconds=1)
KINDS = ["expiry", "timeout"]


@dataclass(frozen=True)
class Waiting:
    """A flow instance waiting on its card, the wait due at `moment` (by the card's expiry or the timeout)."""

    card_id: str
    moment: datetime


@dataclass(frozen=True)
class Settled:
    outcome: str
    card: Card
    card_events: list[tuple[str, datetime]]  # on the awaited card, in order
    next_step: str  # the card the branch after the wait sent


def race(url: URL, first: Callable[[Connection], T], second: Callable[[Connection], U]) -> tuple[T, U]:
    """`first` in an open transaction, `second` on another connection until done or blocked, then both commit."""
    one, other = create_engines(url), create_engines(url)
    pids: queue.SimpleQueue[int] = queue.SimpleQueue()
    try:
        with ThreadPoolExecutor(1) as pool:
            with one.write.begin() as conn:
                first_result = first(conn)
                later: Future[U] = pool.submit(_in_transaction, other.write, second, pids)
                _until_done_or_blocked(one.write, later, pids)
            return first_result, later.result()
    finally:
        one.dispose()
        other.dispose()


def _in_transaction(engine: Engine, work: Callable[[Connection], U], pids: queue.SimpleQueue[int]) -> U:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            pids.put(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
        return work(conn)


def _until_done_or_blocked(observer: Engine, work: Future[Any], pids: queue.SimpleQueue[int]) -> None:
    """On PostgreSQL, until `work` has finished or waits for a row lock; SQLite's writer lock holds it back anyway."""
    if observer.dialect.name != "postgresql":
        return
    pid = pids.get(timeout=30)
    deadline = time.monotonic() + 30  # a guard against a hang, not a timing assertion
    query = sa.text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid")
    with observer.connect() as conn:
        while not work.done() and conn.execute(query, {"pid": pid}).scalar() != "Lock":
            assert time.monotonic() < deadline, "the second transaction neither finished nor waited for a lock"
            conn.rollback()  # a fresh snapshot of pg_stat_activity
            time.sleep(0.002)


def due_after(kind: str, delay: str) -> dict[str, str]:
    """`card_wait_flow`'s arguments for a wait due after `delay`: by the card's expiry, or by the timeout."""
    return {"timeout": "PT2H", "expiresAfter": delay} if kind == "expiry" else {"timeout": delay}


async def waiting_on_a_card(store: Store, kind: str, card_wait_steps: Callable[..., Any]) -> Waiting:
    """Start a flow (card, wait for its completion, then `thanks` or `reminder`) and make its wait due now."""
    template = await store.write(
        lambda conn: card_templates.insert_template(conn, "default", {"name": "t", "definition": {"title": "t"}})
    )
    steps = card_wait_steps(template.id, **due_after(kind, "PT30M"))
    flow = await store.write(lambda conn: flows.insert_flow(conn, "default", {"name": "f", "steps": steps}))
    await store.write(lambda conn: add_test_user(conn, "default", "racer", "external", None))
    request = AcceptRequest("default", flow.id, None, "req-race", "test", "race", {"targetUserIds": ["racer"]}, None)
    assert (await store.submit(accept_batch, request)).verdict == "accepted"
    await Executor(store).drain()
    moment = utcnow()

    def due_now(conn: Connection) -> str:
        """As if the card was sent (and the wait began) long ago: the wait falls due at `moment`."""
        card_id: str = conn.execute(sa.select(cards.c.id)).scalar_one()
        if kind == "expiry":
            conn.execute(sa.update(cards).values(expires_at=moment))
        earlier = moment - timedelta(minutes=30)
        conn.execute(sa.update(flow_instances).values(due_at=moment, updated_at=earlier))
        return card_id

    return Waiting(await store.write(due_now), moment)


def complete(waiting: Waiting, stamp: datetime) -> Callable[[Connection], ActionResult]:
    return lambda conn: act_on_card(conn, "default", waiting.card_id, "complete", stamp)


def timer(conn: Connection) -> None:
    Batch(conn, Caches(), RetryPolicy(), 100).run()


async def settled(store: Store, waiting: Waiting) -> Settled:
    """Once the executor has run whatever is left: the wait's outcome, the card and what was recorded about it."""
    await Executor(store).drain()

    def read(conn: Connection) -> Settled:
        outcomes = conn.execute(sa.select(flow_instances.c.outcomes)).scalar_one()
        card = Card(**conn.execute(sa.select(cards).where(cards.c.id == waiting.card_id)).one()._mapping)
        events = analytics_events
        query = sa.select(events.c.event_name, events.c.timestamp).where(events.c.card_instance_id == card.id)
        later = conn.execute(sa.select(cards.c.step_id).where(cards.c.id != card.id)).scalar_one()
        return Settled(outcomes["answer"]["outcome"], card, [tuple(row) for row in conn.execute(query)], later)

    return await store.read(read)


def assert_the_action_won(result: ActionResult, found: Settled) -> None:
    assert result.verdict == "done"
    assert (found.outcome, found.card.status, found.next_step) == ("card-completed", "completed", "thanks")
    assert [name for name, _ in found.card_events] == ["card-published", "card-completed"]


def assert_the_timer_won(kind: str, result: ActionResult, found: Settled, moment: datetime) -> None:
    """Expiry: the action is refused and leaves no trace. Timeout: the card is still there to act on, after the wait."""
    if kind == "expiry":
        assert (result.verdict, result.status) == ("not_active", "expired")
        assert (found.outcome, found.next_step) == ("card-expired", "reminder")
        assert found.card.status_at(utcnow()) == "expired"
        assert [name for name, _ in found.card_events] == ["card-published"]
        return
    assert result.verdict == "done"
    assert (found.outcome, found.card.status, found.next_step) == ("timeout", "completed", "reminder")
    [(_, _), (completed, at)] = found.card_events
    assert completed == "card-completed" and at >= moment  # recorded after the timeout, never before it


@pytest.mark.parametrize("kind", KINDS)
async def test_an_action_that_commits_first_wins(
    store: Store, database: URL, kind: str, card_wait_steps: Callable[..., Any]
) -> None:
    """The batch skips the instance the action holds (PostgreSQL) or runs after it (SQLite), and sees it released."""
    waiting = await waiting_on_a_card(store, kind, card_wait_steps)
    result, _ = race(database, complete(waiting, waiting.moment - MILLISECOND), timer)
    assert_the_action_won(result, await settled(store, waiting))


@pytest.mark.parametrize("kind", KINDS)
async def test_a_timer_that_commits_first_wins(
    store: Store, database: URL, kind: str, card_wait_steps: Callable[..., Any]
) -> None:
    """The action, stamped before the timer's moment, waits for the batch and then sees what it decided."""
    waiting = await waiting_on_a_card(store, kind, card_wait_steps)
    _, result = race(database, timer, complete(waiting, waiting.moment - MILLISECOND))
    assert_the_timer_won(kind, result, await settled(store, waiting), waiting.moment)


@pytest.mark.parametrize("kind", KINDS)
async def test_an_action_after_the_timers_moment_loses_even_when_it_commits_first(
    store: Store, database: URL, kind: str, card_wait_steps: Callable[..., Any]
) -> None:
    """A late executor changes nothing: the wait was due before the action, so the action cannot release it."""
    waiting = await waiting_on_a_card(store, kind, card_wait_steps)
    result, _ = race(database, complete(waiting, waiting.moment + MILLISECOND), timer)
    assert_the_timer_won(kind, result, await settled(store, waiting), waiting.moment)


@pytest.mark.parametrize("kind", KINDS)
async def test_the_api_answers_for_the_winner(flowhook, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """The timer fired first; then a request stamped just before its moment arrives (it queued, or its clock lags).

    After an expiry the card is gone for the flow and for the app alike: 409 `card_not_active`, nothing
    recorded. After a timeout the card can still be completed, as any time after a wait: the action is
    recorded after the timeout, and the flow, which went on without it, stays on its path.
    """
    template = await flowhook.template({"title": "t"})
    flow = await flowhook.flow(flowhook.card_wait_steps(template["id"], **due_after(kind, "PT0.2S")))
    trigger = await flowhook.trigger(flow)
    user = f"api-{kind}"
    await flowhook.test_user(user)
    key = await flowhook.start(trigger, [user])
    await flowhook.settle()
    [offer] = await flowhook.cards(user)

    async def settled() -> dict[str, Any] | None:
        [instance] = (await flowhook.invocation(flow, key))["instances"]
        return instance if instance["status"] == "completed" else None

    instance = await flowhook.eventually(settled)
    assert instance["outcomes"] == {"answer": {"outcome": "card-expired" if kind == "expiry" else "timeout"}}
    stamp = datetime.fromisoformat(offer["created"]) + timedelta(milliseconds=195)  # the timer's moment is at 200
    monkeypatch.setattr("ingress.api.cards.utcnow", lambda: stamp)
    if kind == "expiry":
        refused = await flowhook.act(offer, "complete", 409)
        assert refused["error"]["code"] == "card_not_active" and "expired" in refused["error"]["message"]
    else:
        assert (await flowhook.act(offer, "complete"))["status"] == "completed"
    monkeypatch.undo()
    card = await flowhook.ok("GET", f"/v1/default/cards/{offer['cardInstanceId']}")
    assert card["status"] == ("expired" if kind == "expiry" else "completed")
    assert [card["stepId"] for card in await flowhook.cards(user)] == ["reminder", "offer"]
    events = [(event["eventName"], event["timestamp"]) for event in await flowhook.events(flowId=flow["id"])]
    names = [name for name, _ in events]
    if kind == "expiry":
        assert "card-completed" not in names
        return
    [_, reminded] = [at for name, at in events if name == "card-published"]
    [completed] = [at for name, at in events if name == "card-completed"]
    assert completed >= reminded  # after the timer's batch (ISO timestamps in UTC compare as text)
