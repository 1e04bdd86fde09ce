"""The editor's Send test in a real browser: the mapping shown, on the sample picked, sent as a test run."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Page, expect
from tests.support.editor import Flowhook, sign_in

SOURCE = "function map(request) {\n  return {targetUserIds: request.body.users};\n}"


def card_flow(flowhook: Flowhook) -> dict[str, Any]:
    """A flow never published whose draft sends a draft card: what a test run sends."""
    template = flowhook.ok(flowhook.api.post("/card-templates", json={"name": "t", "definition": {"title": "Hi"}}))
    steps = [{"type": "send-card", "id": "hi", "cardTemplateId": template["id"]}]
    flow: dict[str, Any] = flowhook.ok(flowhook.api.post("/action-flows", json={"name": "Send test", "steps": steps}))
    return flow


def test_cards(flowhook: Flowhook, user: str, flow: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """`user`'s test cards of `flow`, once there are `count` (the server's executor sends them)."""
    deadline = time.monotonic() + 10
    while True:
        listed = flowhook.ok(flowhook.api.get(f"/users/{user}/cards", params={"eventSource": "test"}))["data"]
        cards = [card for card in listed if card["flowConfigId"] == flow["id"]]
        if len(cards) >= count or time.monotonic() > deadline:
            return cards
        time.sleep(0.05)


test_cards.__test__ = False  # type: ignore[attr-defined]


def test_send_test_sends_the_previewed_mapping_and_says_who_got_it(page: Page, flowhook: Flowhook) -> None:
    flowhook.ok(flowhook.api.post("/test-users", json={"userId": "user-42"}))
    flow = card_flow(flowhook)
    trigger = flowhook.trigger(flow, source=SOURCE, mode="live")
    flowhook.sample(trigger, body={"users": ["user-42", "stranger"]})
    sign_in(page, flowhook, trigger)
    button = page.get_by_role("button", name="Send test")
    expect(page.locator("#preview-status")).to_contain_text("Valid trigger request")
    expect(button).to_be_enabled()
    button.click()

    status = page.locator("#send-test-status")
    expect(status).to_contain_text("Sent to user-42; ignored (not test users): stranger.")
    [card] = test_cards(flowhook, "user-42", flow, 1)
    assert card["eventSource"] == "test" and card["definition"]["title"] == "Hi"
    assert test_cards(flowhook, "stranger", flow, 0) == []
    assert flowhook.read(trigger)["mode"] == "live"  # a test send leaves the trigger as it is

    # An unsaved edit is what is sent; one that reaches no test user says how to add one.
    page.locator("#source").fill("function map(request) {\n  return {targetUserIds: ['stranger']};\n}")
    expect(page.locator("#output")).to_contain_text('"stranger"')  # the edit's preview, which enables the button
    expect(button).to_be_enabled()
    button.click()
    expect(status).to_contain_text("Sent to nobody: ignored (not test users): stranger.")
    expect(status).to_contain_text("POST /v1/{env}/test-users")
    assert flowhook.read(trigger)["mapping"]["source"] == SOURCE  # not saved

    # A mapping that does not give a valid trigger request cannot be sent.
    page.locator("#source").fill("function map(request) {\n  return {};\n}")
    expect(page.locator("#preview-status")).to_contain_text("not a valid trigger request")
    expect(button).to_be_disabled()
