"""What a pruned invocation means to the rest of the service (flows.retention, docs/flows.md "Retention").

The retention runs as the app's background task does, with its clock moved
on: `prune(now=…)` a period and more after the work finished.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from flows.retention import InvocationRetention
from ingress.settings import Settings
from store.clock import utcnow

pytestmark = pytest.mark.anyio


async def prune_after(flowhook, days: float) -> int:
    """Prune as the app's task would `days` from now; rows deleted."""
    retention: InvocationRetention | None = flowhook.services.invocation_retention
    assert retention is not None  # the app runs the executor, so it prunes too
    return await retention.prune(now=utcnow() + timedelta(days=days))


async def card_flow(flowhook, *steps: dict) -> tuple[dict, dict]:
    template = await flowhook.template({"title": "Hi {{name}}"})
    send = {"type": "send-card", "id": "welcome", "cardTemplateId": template["id"]}
    flow = await flowhook.flow([send, *steps], variables=[{"name": "name", "type": "string", "default": "you"}])
    return flow, await flowhook.trigger(flow)


async def test_a_pruned_invocation_is_gone_and_what_named_it_still_works(flowhook) -> None:
    flow, trigger = await card_flow(flowhook)
    await flowhook.test_user("ret-u1")
    key = await flowhook.start(trigger, ["ret-u1"], variables={"name": "Ada"})
    await flowhook.settle()
    shown = await flowhook.invocation(flow, key)
    [card] = await flowhook.cards("ret-u1")
    events = await flowhook.events(flowId=flow["id"])
    [logged] = (await flowhook.ok("GET", f"/v1/default/triggers/{trigger['id']}/requests"))["data"]

    assert await prune_after(flowhook, 31) >= 2  # the invocation and its instance

    gone = await flowhook.api.get(f"/v1/default/action-flows/{flow['id']}/invocations/{key}")
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "invocation_not_found")
    assert await flowhook.cards("ret-u1") == [card]  # the user's cards are theirs, kept
    assert await flowhook.events(flowId=flow["id"]) == events  # analytics too, with the ids they name
    entry = await flowhook.ok("GET", f"/v1/default/requests/{logged['id']}")  # kept as a record, as logged
    assert shown["requestId"] == logged["id"] and entry["invocationId"] == logged["invocationId"] is not None
    # The card's flow finished long ago; acting on it still works (no wait to release).
    assert (await flowhook.act(card, "complete"))["status"] == "completed"
    [completed] = await flowhook.events(flowId=flow["id"], eventName="card-completed")
    assert completed["flowInstanceId"] == card["flowInstanceId"] and completed["flowInvocationId"] == key


async def test_a_key_repeated_after_the_window_starts_a_new_run(flowhook) -> None:
    """As with Stripe's idempotency keys: a key is remembered for the retention period, not for ever."""
    flow, trigger = await card_flow(flowhook)
    await flowhook.test_user("ret-u2")
    key = await flowhook.start(trigger, ["ret-u2"])
    await flowhook.settle()
    first = await flowhook.invocation(flow, key)
    await flowhook.start(trigger, ["ret-u2"], flowInvocationId=key)  # a repeat within the window: nothing new
    await flowhook.settle()
    assert len(await flowhook.cards("ret-u2")) == 1

    await prune_after(flowhook, 31)
    await flowhook.start(trigger, ["ret-u2"], flowInvocationId=key)
    await flowhook.settle()
    again = await flowhook.invocation(flow, key)
    assert again["status"] == "done" and again["createdAt"] > first["createdAt"]
    assert again["instances"][0]["flowInstanceId"] != first["instances"][0]["flowInstanceId"]
    assert len(await flowhook.cards("ret-u2")) == 2


async def test_a_flow_waiting_on_a_card_or_a_timer_is_kept_however_old(flowhook) -> None:
    await_card = {"type": "wait", "id": "answer", "for": {"action": "card-completed", "stepId": "welcome"}}
    card_wait, card_trigger = await card_flow(flowhook, {**await_card, "timeout": "P7D"})
    timer, timer_trigger = await card_flow(flowhook, {"type": "wait", "id": "later", "duration": "P1D"})
    await flowhook.test_user("ret-u3")
    card_key = await flowhook.start(card_trigger, ["ret-u3"])
    timer_key = await flowhook.start(timer_trigger, ["ret-u3"])
    await flowhook.settle()

    await prune_after(flowhook, 400)

    [instance] = (await flowhook.invocation(card_wait, card_key))["instances"]
    assert instance["status"] == "waiting"
    assert (await flowhook.invocation(timer, timer_key))["instances"][0]["status"] == "waiting"
    [card] = [c for c in await flowhook.cards("ret-u3") if c["flowConfigId"] == card_wait["id"]]
    await flowhook.act(card, "complete")  # releases the wait; the flow then ends
    await flowhook.settle()
    assert (await flowhook.invocation(card_wait, card_key))["instances"][0]["status"] == "completed"
    await prune_after(flowhook, 31)
    gone = await flowhook.api.get(f"/v1/default/action-flows/{card_wait['id']}/invocations/{card_key}")
    assert gone.status_code == 404
    assert (await flowhook.invocation(timer, timer_key))["instances"][0]["status"] == "waiting"


def test_the_retention_period_is_thirty_days_unless_set() -> None:
    assert Settings().invocation_retention_days == 30
    assert Settings.from_env({"FLOWHOOK_INVOCATION_RETENTION_DAYS": "7"}).invocation_retention_days == 7


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("0", "invocation_retention_days (FLOWHOOK_INVOCATION_RETENTION_DAYS) must be at least 1, not 0"),
        ("-30", "invocation_retention_days (FLOWHOOK_INVOCATION_RETENTION_DAYS) must be at least 1, not -30"),
        ("thirty", "FLOWHOOK_INVOCATION_RETENTION_DAYS must be an integer, not 'thirty'"),
        ("1.5", "FLOWHOOK_INVOCATION_RETENTION_DAYS must be an integer, not '1.5'"),
    ],
)
def test_a_retention_period_that_cannot_work_is_refused_in_one_line(raw: str, says: str) -> None:
    """0 days would delete each finished run at once: a retry of a webhook delivered a minute ago would run again."""
    with pytest.raises(ValueError) as refused:
        Settings.from_env({"FLOWHOOK_INVOCATION_RETENTION_DAYS": raw})
    assert str(refused.value) == says
