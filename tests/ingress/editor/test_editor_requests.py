"""The mapping editor's request log panel in a real browser: why a webhook was refused, replaying it once the
mapping is fixed, and replaying every refused one at once.

The page here accepts a `confirm()`: the bulk replay asks first.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Request, expect
from tests.support.editor import Flowhook, sign_in

BY_N = "function map(r) {\n  return {targetUserIds: [r.body.n]};\n}\n"  # a number: refused, 422
FIXED = {"kind": "javascript", "source": "function map(r) {\n  return {targetUserIds: [String(r.body.n)]};\n}\n"}
NOT_A_STRING = "$.targetUserIds[0] must be a string, not a number"


@pytest.fixture
def accept_confirm() -> bool:
    return True  # the bulk replay asks first


def send(trigger: dict[str, Any], status: int, **request: Any) -> str:
    """A webhook to `trigger`, answered `status`: the id of its log entry."""
    sent = httpx.post(trigger["url"], **request)
    assert sent.status_code == status, sent.text
    answer = sent.json()
    return str(answer["requestId"] if "requestId" in answer else answer["error"]["requestId"])


def fix(flowhook: Flowhook, trigger: dict[str, Any]) -> None:
    flowhook.ok(flowhook.api.patch(f"/triggers/{trigger['id']}", json={"mapping": FIXED}))


def entries(page: Page) -> Any:
    return page.locator("#request-list button.request")


def test_the_log_shows_why_a_request_was_refused_and_a_replay_after_the_fix_accepts_it(
    page: Page,
    flowhook: Flowhook,
) -> None:
    trigger = flowhook.trigger(source=BY_N)
    refused = send(trigger, 422, json={"n": 7})
    accepted = send(trigger, 202, json={"n": "u-1"})
    sign_in(page, flowhook, trigger)
    expect(entries(page)).to_have_count(2)
    assert entries(page).evaluate_all("(buttons) => buttons.map((b) => b.dataset.requestId)") == [accepted, refused]
    expect(entries(page).nth(0)).to_contain_text("202 accepted · test")
    expect(entries(page).nth(1)).to_contain_text("422 validation_error · test")

    entries(page).nth(1).click()
    detail = page.locator("#request-detail")
    expect(detail.locator("h3")).to_have_text(f"Request {refused}")
    expect(detail.locator(".facts")).to_contain_text("422 validation_error")
    expect(detail.get_by_role("list", name="Validation errors")).to_have_text(NOT_A_STRING)
    expect(detail.locator("pre.body")).to_have_text('{"n":7}')
    expect(entries(page).nth(1)).to_have_attribute("aria-current", "true")

    fix(flowhook, trigger)
    detail.get_by_role("button", name="Replay", exact=True).click()
    expect(detail.locator(".replay-outcome")).to_contain_text("202 accepted")
    expect(entries(page)).to_have_count(3)
    expect(entries(page).nth(0)).to_contain_text("202 accepted · test · replay")
    replay = entries(page).nth(0).get_attribute("data-request-id")
    assert flowhook.ok(flowhook.api.get(f"/requests/{replay}"))["replayOf"] == refused

    page.get_by_label("Status", exact=True).select_option(label="refused (4xx)")
    expect(entries(page)).to_have_count(1)
    expect(entries(page)).to_contain_text("422 validation_error")

    # The refused request stays refused in the log, but a replay recovered it: recovering every refused one
    # passes it over.
    page.get_by_role("button", name="Replay refused requests").click()
    expect(page.locator("#requests-status")).to_have_text("No refused requests to replay.")


def test_replay_refused_requests_recovers_each_one_once(
    page: Page,
    flowhook: Flowhook,
    dialogs: list[str],
) -> None:
    trigger = flowhook.trigger(source=BY_N)
    send(trigger, 422, json={"n": 1})
    send(trigger, 422, json={"n": 2})
    send(trigger, 202, json={"n": "u-3"})
    sign_in(page, flowhook, trigger)
    expect(entries(page)).to_have_count(3)
    fix(flowhook, trigger)
    keys: list[str | None] = []

    def replaying(request: Request) -> None:
        if request.method == "POST" and request.url.split("?")[0].endswith("/requests/replay"):
            keys.append(request.headers.get("idempotency-key"))

    page.on("request", replaying)
    page.get_by_role("button", name="Replay refused requests").click()
    expect(page.locator("#requests-status")).to_have_text("Replayed 2: 2 accepted, 0 refused, 0 skipped.")
    assert dialogs == ["confirm"]
    expect(entries(page)).to_have_count(5)
    expect(entries(page).filter(has_text="202 accepted · test · replay")).to_have_count(2)

    page.get_by_role("button", name="Replay refused requests").click()  # a second click, or another tab's
    expect(page.locator("#requests-status")).to_have_text("No refused requests to replay.")
    assert dialogs == ["confirm", "confirm"]
    assert keys == [f"editor-recovery-{trigger['id']}"] * 2
    started = flowhook.ok(flowhook.api.get(f"/triggers/{trigger['id']}/requests", params={"cause": "accepted"}))
    assert len(started["data"]) == 3  # the request accepted at once, and each refused one recovered once


def test_load_more_follows_the_cursor(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger(source=FIXED["source"])
    for n in range(21):
        send(trigger, 202, json={"n": n})
    sign_in(page, flowhook, trigger)
    expect(entries(page)).to_have_count(20)
    page.get_by_role("button", name="Load more").click()
    expect(entries(page)).to_have_count(21)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    page.get_by_role("button", name="Refresh").click()
    expect(entries(page)).to_have_count(20)


def test_a_hostile_request_is_shown_as_text(page: Page, flowhook: Flowhook, dialogs: list[str]) -> None:
    trigger = flowhook.trigger(source=BY_N)
    markup = "<img src=x onerror=alert(1)>"
    headers = {"content-type": "text/plain", "x-note": "<script>alert(2)</script>"}
    send(trigger, 422, content=markup, headers=headers)
    sign_in(page, flowhook, trigger)
    entries(page).first.click()
    expect(page.locator("#request-detail pre.body")).to_have_text(markup)
    expect(page.locator("#request-detail pre.headers")).to_contain_text("<script>alert(2)</script>")
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 1  # the editor's own module
    assert dialogs == []


def test_a_logged_request_becomes_a_sample_to_preview_the_fix_on(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger(source=BY_N)
    send(trigger, 422, json={"n": 7}, headers={"x-request-id": "r-7"})
    sign_in(page, flowhook, trigger)
    expect(page.locator("#samples")).to_contain_text("No samples yet")
    entries(page).first.click()
    page.get_by_role("button", name="Use as sample").click()
    expect(page.locator("#request-detail .replay-outcome")).to_have_text("Added to the samples.")
    expect(page.locator("#samples li input:checked")).to_have_count(1)
    expect(page.locator("#samples")).to_contain_text('{"n":7}')
    expect(page.locator("#validation-errors li")).to_have_text([NOT_A_STRING])
    [sample] = flowhook.ok(flowhook.api.get(f"/triggers/{trigger['id']}/samples"))["data"]
    assert (sample["source"], sample["headers"]["x-request-id"]) == ("pasted", "r-7")


def test_a_trigger_without_a_hook_has_no_request_panel(page: Page, flowhook: Flowhook) -> None:
    hooked = flowhook.trigger(source=BY_N)
    event = flowhook.trigger(flowhook.flow("Events"), type="event", eventName="signed-up")
    sign_in(page, flowhook, hooked)
    expect(page.locator("#requests")).to_be_visible()
    page.locator(f'[data-trigger-id="{event["id"]}"]').click()
    expect(page.locator("#trigger-identity")).to_have_text("event signed-up")
    expect(page.locator("#requests")).to_be_hidden()


def test_a_request_that_failed_its_signature_check_is_not_replayed(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger(source=FIXED["source"], verification={"preset": "github", "secret": "editor-secret"})
    send(trigger, 401, json={"n": 1})  # unsigned
    sign_in(page, flowhook, trigger)
    entries(page).first.click()
    detail = page.locator("#request-detail")
    expect(detail.locator(".facts")).to_contain_text("401 signature_invalid")
    detail.get_by_role("button", name="Replay", exact=True).click()
    expect(detail.locator(".replay-outcome")).to_contain_text("[409 replay_not_allowed]")
    page.get_by_role("button", name="Replay refused requests").click()
    expect(page.locator("#requests-status")).to_have_text("Replayed 0: 0 accepted, 0 refused, 1 skipped.")
    expect(entries(page)).to_have_count(1)
