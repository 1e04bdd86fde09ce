"""Each step type, through HTTP: send-card, wait (duration and card action), branch."""

from __future__ import annotations

from datetime import datetime

import pytest

pytestmark = pytest.mark.anyio

CARD = {"title": "Hi {{firstName}}", "body": "Your {{plan.name}} plan costs {{plan.price}}.", "tags": ["{{missing}}"]}


async def test_send_card_renders_the_template_with_the_variables(flowhook) -> None:
    template = await flowhook.template(CARD)
    variables = [{"name": "firstName", "type": "string", "default": "there"}, {"name": "plan", "type": "object"}]
    flow = await flowhook.flow(
        [{"type": "send-card", "id": "hello", "cardTemplateId": template["id"], "cardOptions": {"priority": 5}}],
        variables=variables,
    )
    trigger = await flowhook.trigger(flow)
    await flowhook.test_user("step-u1")
    key = await flowhook.start(
        trigger, ["step-u1"], variables={"plan": {"name": "Gold", "price": 9.5}}, metadata={"campaign": "spring"}
    )
    await flowhook.settle()
    [card] = await flowhook.cards("step-u1")
    assert card["definition"] == {"title": "Hi there", "body": "Your Gold plan costs 9.5.", "tags": [""]}
    assert card["payload"]["cardOptions"] == {"priority": 5}
    assert card["payload"]["metadata"] == {"campaign": "spring"}
    assert (card["status"], card["eventSource"], card["flowInvocationId"]) == ("active", "test", key)
    assert (card["cardTemplateId"], card["templateVersion"], card["flowConfigId"]) == (template["id"], None, flow["id"])
    names = [event["eventName"] for event in await flowhook.events(flowId=flow["id"])]
    assert names == ["action-flow-started", "card-published", "action-flow-completed"]
    invocation = await flowhook.invocation(flow, key)
    assert invocation["status"] == "done" and invocation["instances"][0]["status"] == "completed"


async def test_a_timed_wait_resumes_the_flow(flowhook) -> None:
    first, second = await flowhook.template({"title": "one"}), await flowhook.template({"title": "two"})
    flow = await flowhook.flow(
        [
            {"type": "send-card", "id": "first", "cardTemplateId": first["id"]},
            {"type": "wait", "id": "pause", "duration": "PT0.3S"},
            {"type": "send-card", "id": "second", "cardTemplateId": second["id"]},
        ]
    )
    trigger = await flowhook.trigger(flow)
    await flowhook.test_user("wait-u1")
    key = await flowhook.start(trigger, ["wait-u1"])
    await flowhook.settle()
    assert [card["definition"]["title"] for card in await flowhook.cards("wait-u1")] == ["one"]
    [instance] = (await flowhook.invocation(flow, key))["instances"]
    assert instance["status"] == "waiting" and instance["dueAt"] is not None

    async def both_sent() -> list[str] | None:
        titles = [card["definition"]["title"] for card in await flowhook.cards("wait-u1")]
        return titles if len(titles) == 2 else None

    assert await flowhook.eventually(both_sent) == ["two", "one"]  # newest first
    await flowhook.eventually(lambda: _instance_status(flowhook, flow, key, "completed"))


async def _instance_status(flowhook, flow: dict, key: str, status: str) -> bool:
    instances = (await flowhook.invocation(flow, key))["instances"]
    return bool(instances) and all(instance["status"] == status for instance in instances)


async def test_a_card_action_releases_the_wait_on_it(flowhook) -> None:
    template = await flowhook.template({"title": "{{step}}"})
    flow = await flowhook.flow(flowhook.card_wait_steps(template["id"]))
    trigger = await flowhook.trigger(flow)
    for user in ("act-u1", "act-u2"):
        await flowhook.test_user(user)
    key = await flowhook.start(trigger, ["act-u1", "act-u2"])
    await flowhook.settle()
    [offer] = await flowhook.cards("act-u1")
    completed = await flowhook.act(offer, "complete")
    assert completed["status"] == "completed"
    await flowhook.settle()
    steps = [card["stepId"] for card in await flowhook.cards("act-u1")]
    assert steps == ["thanks", "offer"]
    [other] = await flowhook.cards("act-u2")  # still waiting: its card was not acted on
    dismissed = await flowhook.act(other, "dismiss")  # the awaited action can no longer happen
    assert dismissed["status"] == "dismissed"
    await flowhook.settle()
    assert [card["stepId"] for card in await flowhook.cards("act-u2")] == ["reminder", "offer"]
    instances = {i["userId"]: i for i in (await flowhook.invocation(flow, key))["instances"]}
    assert instances["act-u1"]["outcomes"] == {"answer": {"outcome": "card-completed"}}
    assert instances["act-u2"]["outcomes"] == {"answer": {"outcome": "card-dismissed"}}
    names = [event["eventName"] for event in await flowhook.events(flowId=flow["id"], userId="act-u1")]
    assert names == [
        "action-flow-started",
        "card-published",
        "card-completed",
        "card-published",
        "action-flow-completed",
    ]


@pytest.mark.parametrize("card_options", [{}, {"expiresAfter": "P1D"}], ids=["never-expires", "expires-later"])
async def test_a_card_wait_times_out(flowhook, card_options: dict) -> None:
    user = f"timeout-{len(card_options)}"
    flow, key = await flowhook.start_card_wait(user, timeout="PT0.3S", **card_options)
    await flowhook.eventually(lambda: _instance_status(flowhook, flow, key, "completed"))
    [instance] = (await flowhook.invocation(flow, key))["instances"]
    assert instance["outcomes"] == {"answer": {"outcome": "timeout"}}
    assert [card["stepId"] for card in await flowhook.cards(user)] == ["reminder", "offer"]


async def test_a_card_that_never_expires_is_awaited_until_the_timeout(flowhook) -> None:
    flow, key = await flowhook.start_card_wait("noexp-u1", timeout="PT1H")
    await flowhook.settle()
    [card] = await flowhook.cards("noexp-u1")
    [instance] = (await flowhook.invocation(flow, key))["instances"]
    assert card["expiresAt"] is None
    assert instance["status"] == "waiting" and _seconds(card["created"], instance["dueAt"]) == 3600


async def test_a_wait_settles_when_its_card_expires(flowhook) -> None:
    """The expired card can no longer be completed: the wait ends at the expiry, not the hour's timeout."""
    flow, key = await flowhook.start_card_wait("cexp-u1", timeout="PT1H", expiresAfter="PT1S")
    await flowhook.settle()
    [offer] = await flowhook.cards("cexp-u1")
    [instance] = (await flowhook.invocation(flow, key))["instances"]
    assert instance["status"] == "waiting" and instance["dueAt"] == offer["expiresAt"]
    await flowhook.eventually(lambda: _instance_status(flowhook, flow, key, "completed"))
    [instance] = (await flowhook.invocation(flow, key))["instances"]
    assert instance["outcomes"] == {"answer": {"outcome": "card-expired"}}
    assert [(card["stepId"], card["status"]) for card in await flowhook.cards("cexp-u1")] == [
        ("reminder", "active"),
        ("offer", "expired"),
    ]
    names = [event["eventName"] for event in await flowhook.events(flowId=flow["id"])]
    assert names == ["action-flow-started", "card-published", "card-published", "action-flow-completed"]


async def test_a_card_completed_before_its_expiry_takes_the_completed_branch(flowhook) -> None:
    flow, key = await flowhook.start_card_wait("cbefore-u1", timeout="PT1H", expiresAfter="PT30S")
    await flowhook.settle()
    [offer] = await flowhook.cards("cbefore-u1")
    assert (await flowhook.act(offer, "complete"))["status"] == "completed"
    await flowhook.settle()
    [instance] = (await flowhook.invocation(flow, key))["instances"]
    assert instance["status"] == "completed" and instance["outcomes"] == {"answer": {"outcome": "card-completed"}}
    assert [card["stepId"] for card in await flowhook.cards("cbefore-u1")] == ["thanks", "offer"]


async def test_a_wait_on_an_already_expired_card_settles_at_once(flowhook) -> None:
    template = await flowhook.template({"title": "t"})
    [send, wait, branch] = flowhook.card_wait_steps(template["id"], timeout="PT1H", expiresAfter="PT0.2S")
    flow = await flowhook.flow([send, {"type": "wait", "id": "pause", "duration": "PT0.5S"}, wait, branch])
    trigger = await flowhook.trigger(flow)
    await flowhook.test_user("cgone-u1")
    key = await flowhook.start(trigger, ["cgone-u1"])
    await flowhook.eventually(lambda: _instance_status(flowhook, flow, key, "completed"))
    [instance] = (await flowhook.invocation(flow, key))["instances"]
    assert instance["outcomes"] == {"answer": {"outcome": "card-expired"}}
    assert [card["stepId"] for card in await flowhook.cards("cgone-u1")] == ["reminder", "offer"]


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


async def test_branch_chooses_by_the_variables(flowhook) -> None:
    template = await flowhook.template({"title": "{{tier}}"})
    send = {"type": "send-card", "cardTemplateId": template["id"]}
    flow = await flowhook.flow(
        [
            {
                "type": "branch",
                "id": "rich",
                "condition": "variables.amount > `100`",
                "then": [{**send, "id": "vip"}],
                "else": [
                    {
                        "type": "branch",
                        "id": "any",
                        "condition": "variables.amount",
                        "then": [{**send, "id": "small"}],
                    }
                ],
            },
            {**send, "id": "always"},
        ],
        variables=[{"name": "amount", "type": "number"}],
    )
    trigger = await flowhook.trigger(flow)
    for user, amount in (("br-rich", 500), ("br-small", 0), ("br-none", None)):
        await flowhook.test_user(user)
        await flowhook.start(trigger, [user], variables={} if amount is None else {"amount": amount})
    await flowhook.settle()
    chosen = {
        user: [card["stepId"] for card in await flowhook.cards(user)] for user in ("br-rich", "br-small", "br-none")
    }
    # JMESPath truthiness: 0 is true, a missing value is not
    assert chosen == {"br-rich": ["always", "vip"], "br-small": ["always", "small"], "br-none": ["always"]}


async def test_a_failing_step_is_retried_then_the_flow_fails(flowhook) -> None:
    flow = await flowhook.flow([{"type": "send-card", "id": "ghost", "cardTemplateId": "ctp_does_not_exist"}])
    trigger = await flowhook.trigger(flow)
    await flowhook.test_user("fail-u1")
    key = await flowhook.start(trigger, ["fail-u1"])
    await flowhook.eventually(lambda: _instance_status(flowhook, flow, key, "failed"))
    [instance] = (await flowhook.invocation(flow, key))["instances"]
    assert instance["attempts"] == 3 and "does not exist" in instance["lastError"]
    [failed] = await flowhook.events(flowId=flow["id"], eventName="action-flow-failed")
    assert failed["properties"] == {"stepId": "ghost", "error": instance["lastError"], "attempts": 3}
    assert await flowhook.cards("fail-u1") == []


async def test_a_card_expiry_may_come_from_a_variable(flowhook) -> None:
    """`cardOptions` take placeholders, `expiresAfter` too: checked when the step runs, not when saved."""
    template = await flowhook.template({"title": "t"})
    step = {"type": "send-card", "id": "c", "cardTemplateId": template["id"], "cardOptions": {"expiresAfter": "{{d}}"}}
    broken = {**step, "cardOptions": {"expiresAfter": "{{d"}}
    refused = await flowhook.api.post("/v1/default/action-flows", json={"name": "f", "steps": [broken]})
    assert refused.status_code == 422  # a malformed placeholder is refused when saved, as in templates
    flow = await flowhook.flow([step], variables=[{"name": "d", "type": "string", "default": "PT1H"}])
    trigger = await flowhook.trigger(flow)
    await flowhook.test_user("cvar-u1")
    await flowhook.start(trigger, ["cvar-u1"])
    bad = await flowhook.start(trigger, ["cvar-u1"], variables={"d": "soon"})
    await flowhook.settle()
    [card] = await flowhook.cards("cvar-u1")
    assert (card["payload"]["cardOptions"], card["expiresAt"] is not None) == ({"expiresAfter": "PT1H"}, True)
    [instance] = (await flowhook.invocation(flow, bad))["instances"]  # a step failure, permanent: failed at once
    assert instance["attempts"] >= 1 and instance["lastError"].startswith("cardOptions.expiresAfter: 'soon'")
