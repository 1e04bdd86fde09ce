"""Steps that cannot work: refused when the flow is saved where possible, else failed at once.

A branch condition calling an unknown function, or a function with the wrong
number of arguments, is found when the flow is saved. What only the run can
tell (a function given a value of the wrong type, a card expiry rendered
from a variable that is not a duration) depends only on the instance's own
variables and outcomes, so retrying cannot help: the instance fails on the
first attempt, with `action-flow-failed`. Ordering a string against a number
is no error: it is null, as the JMESPath spec says.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("nosuch(variables.a)", "unknown JMESPath function nosuch()"),
        ("length(variables.a, variables.b)", "length() takes 1 argument, not 2"),
        ("variables.a && contains(variables.tags)", "contains() takes 2 arguments, not 1"),
        ("merge()", "merge() takes at least 1 argument, not 0"),
    ],
)
async def test_a_condition_calling_a_function_wrongly_is_refused_when_saved(flowhook, condition, message) -> None:
    inner = {"type": "branch", "id": "inner", "condition": condition, "then": []}
    steps = [{"type": "branch", "id": "outer", "condition": "variables.a", "then": [inner]}]
    response = await flowhook.api.post("/v1/default/action-flows", json={"name": "f", "steps": steps})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["errors"] == [{"path": "$.steps[0].then[0].condition", "message": message}]


async def test_functions_called_rightly_are_accepted(flowhook) -> None:
    condition = "length(variables.tags) > `1` && contains(variables.tags, 'vip') || not_null(variables.a, variables.b)"
    await flowhook.flow([{"type": "branch", "id": "b", "condition": condition, "then": []}])


async def test_a_condition_failing_at_run_time_fails_the_instance_at_once(flowhook) -> None:
    template = await flowhook.template({"title": "t"})
    send = {"type": "send-card", "cardTemplateId": template["id"]}
    flow = await flowhook.flow(
        [
            {**send, "id": "first"},
            {
                "type": "branch",
                "id": "big",
                "condition": "abs(variables.amount) > `100`",
                "then": [{**send, "id": "vip"}],
            },
        ],
        variables=[{"name": "amount", "type": "string", "default": "lots"}],
    )
    trigger = await flowhook.trigger(flow)
    await flowhook.test_user("rt-u1")
    key = await flowhook.start(trigger, ["rt-u1"])
    await flowhook.settle()  # no retry is waiting: the instance has failed by now
    [instance] = (await flowhook.invocation(flow, key))["instances"]
    assert (instance["status"], instance["attempts"], instance["dueAt"]) == ("failed", 1, None)
    assert instance["lastError"].startswith("condition: In function abs(), invalid type for value: lots")
    [failed] = await flowhook.events(flowId=flow["id"], eventName="action-flow-failed")
    assert failed["properties"] == {"stepId": "big", "error": instance["lastError"], "attempts": 1}
    assert [card["stepId"] for card in await flowhook.cards("rt-u1")] == ["first"]  # the step before keeps its card


async def test_a_rendered_expiry_that_is_not_a_duration_fails_the_instance_at_once(flowhook) -> None:
    template = await flowhook.template({"title": "t"})
    step = {"type": "send-card", "id": "c", "cardTemplateId": template["id"], "cardOptions": {"expiresAfter": "{{d}}"}}
    flow = await flowhook.flow([step], variables=[{"name": "d", "type": "string"}])
    trigger = await flowhook.trigger(flow)
    await flowhook.test_user("rt-u2")
    key = await flowhook.start(trigger, ["rt-u2"], variables={"d": "soon"})
    await flowhook.settle()
    [instance] = (await flowhook.invocation(flow, key))["instances"]
    assert (instance["status"], instance["attempts"]) == ("failed", 1)
    assert instance["lastError"].startswith("cardOptions.expiresAfter: 'soon'")
    assert await flowhook.cards("rt-u2") == []


async def test_ordering_a_string_against_a_number_is_null_as_the_jmespath_spec_says(flowhook) -> None:
    """jmespath 1.1 raises TypeError there (strings order against strings, numbers against numbers)."""
    template = await flowhook.template({"title": "t"})
    send = {"type": "send-card", "cardTemplateId": template["id"]}
    condition = "variables.amount > `100`"
    flow = await flowhook.flow(
        [
            {
                "type": "branch",
                "id": "big",
                "condition": condition,
                "then": [{**send, "id": "vip"}],
                "else": [{**send, "id": "std"}],
            }
        ]
    )
    trigger = await flowhook.trigger(flow)
    await flowhook.test_user("rt-u3")
    key = await flowhook.start(trigger, ["rt-u3"], variables={"amount": "150"})  # undeclared: not type-checked
    await flowhook.settle()
    [instance] = (await flowhook.invocation(flow, key))["instances"]
    assert (instance["status"], instance["attempts"]) == ("completed", 0)
    assert [card["stepId"] for card in await flowhook.cards("rt-u3")] == ["std"]


async def test_a_library_type_error_in_a_condition_fails_the_instance_at_once(flowhook) -> None:
    flow = await flowhook.flow([{"type": "branch", "id": "top", "condition": "max_by(variables.rows, &a)", "then": []}])
    trigger = await flowhook.trigger(flow)
    await flowhook.test_user("rt-u4")
    key = await flowhook.start(trigger, ["rt-u4"], variables={"rows": [{"a": "x"}, {"a": 1}]})
    await flowhook.settle()
    [instance] = (await flowhook.invocation(flow, key))["instances"]
    assert (instance["status"], instance["attempts"]) == ("failed", 1)
    assert instance["lastError"].startswith("condition: ")
