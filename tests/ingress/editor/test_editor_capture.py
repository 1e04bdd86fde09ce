"""Capture and samples in the editor, in a real browser: a page left while it waits disarms the capture (a
production request of a live trigger would otherwise be taken as a sample), a live trigger is warned about,
a capture cancelled elsewhere ends the wait, and a sample can be deleted."""

from __future__ import annotations

import time
from typing import Any

import httpx
from playwright.sync_api import Page, expect
from tests.support.editor import Flowhook, sign_in

MAP = "function map(r) {\n  return {targetUserIds: [r.body.user]};\n}\n"
LIVE_WARNING = "The trigger is live: the next production request will be captured instead of starting the flow."


def live_trigger(flowhook: Flowhook) -> dict[str, Any]:
    return flowhook.trigger(flowhook.flow(publish=True), source=MAP, mode="live")


def wait_armed(page: Page, flowhook: Flowhook, trigger: dict[str, Any]) -> None:
    page.get_by_role("button", name="Capture next request").click()
    expect(page.locator("#capture-status")).to_contain_text(f"Waiting for a request to {trigger['url']}…")
    assert flowhook.read(trigger)["captureArmed"] is True


def disarmed(flowhook: Flowhook, trigger: dict[str, Any], within_s: float = 10.0) -> bool:
    """Whether the trigger is disarmed within `within_s`: the page's last call is not awaited by anyone."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if not flowhook.read(trigger)["captureArmed"]:
            return True
        time.sleep(0.05)
    return False


def runs(trigger: dict[str, Any]) -> None:
    """A request to the hook starts the flow: it is not taken as a sample."""
    sent = httpx.post(trigger["url"], json={"user": "u-1"})
    assert sent.status_code == 202 and "flowInvocationId" in sent.json(), sent.text


def test_leaving_the_page_while_waiting_disarms_a_live_capture(page: Page, flowhook: Flowhook) -> None:
    trigger = live_trigger(flowhook)
    sign_in(page, flowhook, trigger)
    wait_armed(page, flowhook, trigger)
    expect(page.locator("#capture-status")).to_contain_text(LIVE_WARNING)
    page.goto("about:blank")
    assert disarmed(flowhook, trigger)
    runs(trigger)


def test_closing_the_tab_while_waiting_disarms_the_capture(page: Page, flowhook: Flowhook) -> None:
    trigger = live_trigger(flowhook)
    sign_in(page, flowhook, trigger)
    wait_armed(page, flowhook, trigger)
    page.close(run_before_unload=True)  # as a user closes it: the page's unload events run
    assert disarmed(flowhook, trigger)
    runs(trigger)


def test_a_capture_cancelled_elsewhere_ends_the_wait(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger(source=MAP)
    sign_in(page, flowhook, trigger)
    wait_armed(page, flowhook, trigger)
    expect(page.locator("#capture-status")).not_to_contain_text(LIVE_WARNING)  # a test trigger
    flowhook.ok(flowhook.api.delete(f"/triggers/{trigger['id']}/capture"))
    expect(page.locator("#capture-status")).to_have_text(
        "Capture is no longer armed: it was cancelled elsewhere. Capture again to wait for a request."
    )
    expect(page.get_by_role("button", name="Capture next request")).to_be_visible()


def test_a_sample_is_deleted_from_the_list_and_the_preview_moves_on(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger(source=MAP)
    older = flowhook.sample(trigger, body={"user": "u-older"})
    newer = flowhook.sample(trigger, body={"user": "u-newer"})
    sign_in(page, flowhook, trigger)
    expect(page.locator("#output")).to_contain_text('"u-newer"')
    page.locator(f'#samples li[data-sample-id="{newer["id"]}"]').get_by_role("button", name="Delete").click()
    expect(page.locator("#samples li")).to_have_count(1)
    expect(page.locator("#capture-status")).to_contain_text("Deleted the pasted sample of ")
    expect(page.locator(f'#samples li[data-sample-id="{older["id"]}"] input')).to_be_checked()
    expect(page.locator("#output")).to_contain_text('"u-older"')
    listed = flowhook.ok(flowhook.api.get(f"/triggers/{trigger['id']}/samples"))["data"]
    assert [sample["id"] for sample in listed] == [older["id"]]
