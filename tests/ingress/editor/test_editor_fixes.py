"""The mapping editor in a real browser, on what a review found: a token that stops working keeps the edits,
JMESPath errors point at their row and column, Tab indents a selection, the request log follows new requests,
a narrow window shows the preview under the mapping, and a field left out says so.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from tests.ingress.editor.conftest import Rotating
from tests.support.editor import TOKEN, Flowhook, sign_in

FIELDS_MAPPING = {"kind": "jmespath", "fields": {"targetUserIds": "body.userId"}}


def test_a_token_that_stops_working_asks_for_the_new_one_and_keeps_the_unsaved_mapping(
    page: Page, rotating: Rotating
) -> None:
    with rotating.api(TOKEN) as api:
        flowhook = Flowhook(rotating.url, api)
        # An event trigger: no request log polled, so the save below is what meets the 401 first.
        source = "function map(r) {\n  return {targetUserIds: [r.body.userId]};\n}\n"
        trigger = flowhook.trigger(source=source, type="event", eventName="rotation")
    sign_in(page, flowhook, trigger)
    page.get_by_label("Sample", exact=True).fill('{"userId": "u-1"}')
    expect(page.locator("#output")).to_contain_text('"u-1"')
    prompt = page.get_by_role("dialog", name="Sign in again")

    rotating.restart("fh_admin_rotated")  # the server now takes another token than the page's
    typed = "function map(r) {\n  return {targetUserIds: [r.body.userId + '-typed']};\n}\n"
    page.locator("#source").fill(typed)  # its preview is refused: 401, which a banner says, taking no focus
    banner = page.locator("#token-refused")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("The admin token was refused: sign in again.")
    expect(prompt).to_be_hidden()
    expect(page.locator("#workspace")).to_be_visible()  # not signed out
    page.get_by_role("button", name="Save mapping").click()  # a click: now the prompt asks
    expect(prompt).to_be_visible()
    expect(prompt).to_contain_text("the admin token is not valid [401 unauthorized]")
    expect(page.locator("#save-status")).to_contain_text("Not saved: the admin token is not valid")
    page.keyboard.press("Escape")  # put off: the page stays as it is, the banner too
    expect(prompt).to_be_hidden()
    expect(banner).to_be_visible()
    banner.get_by_role("button", name="Sign in again").click()
    expect(prompt).to_be_visible()

    prompt.get_by_label("Token").fill("fh_admin_not-this-one")
    prompt.get_by_role("button", name="Sign in").click()
    expect(prompt.get_by_role("alert")).to_contain_text("Sign-in failed: the admin token is not valid")
    prompt.get_by_label("Token").fill("fh_admin_rotated")
    prompt.get_by_role("button", name="Sign in").click()
    expect(prompt).to_be_hidden()
    expect(banner).to_be_hidden()
    expect(page.locator("#source")).to_have_value(typed)
    expect(page.locator("#output")).to_contain_text('"u-1-typed"')  # the preview ran again, with the new token
    expect(page.locator("#save-status")).to_contain_text("Not saved")  # the refused save is not retried by itself
    page.get_by_role("button", name="Save mapping").click()
    expect(page.locator("#save-status")).to_contain_text("Saved at")
    with rotating.api("fh_admin_rotated") as api:
        assert Flowhook(rotating.url, api).read(trigger)["mapping"]["source"] == typed
    assert page.evaluate("() => JSON.parse(sessionStorage.getItem('flowhook.editor')).token") == "fh_admin_rotated"


def fields_trigger(flowhook: Flowhook, **sample: Any) -> dict[str, Any]:
    trigger = flowhook.trigger(mapping=FIELDS_MAPPING)
    flowhook.sample(trigger, **sample)
    return trigger


def test_a_jmespath_expression_that_does_not_parse_shows_its_column_and_marks_its_row(
    page: Page, flowhook: Flowhook
) -> None:
    trigger = fields_trigger(flowhook, body={"userId": "u-1"})
    sign_in(page, flowhook, trigger)
    row = page.locator("#fields tr").first
    expect(page.locator("#preview-status")).to_contain_text("Valid trigger request")
    expect(row).not_to_have_class("error-row")

    page.get_by_label("Expression 1").fill("foo bar")
    expect(page.locator("#preview-error")).to_contain_text(
        "(at $.fields['targetUserIds'], column 5) [422 invalid_mapping]"
    )
    expect(row).to_have_class("error-row")
    expect(page.get_by_label("Expression 1")).to_have_attribute("aria-invalid", "true")
    expect(row.locator(".field-note")).to_have_text("Does not compile (column 5)")

    page.get_by_label("Expression 1").fill("body.userId")
    expect(page.locator("#preview-status")).to_contain_text("Valid trigger request")
    expect(row).not_to_have_class("error-row")
    expect(row.locator(".field-note")).to_be_hidden()


def test_a_field_that_evaluated_to_null_says_it_was_left_out(page: Page, flowhook: Flowhook) -> None:
    trigger = fields_trigger(flowhook, body={"id": "u-2"})  # no userId
    sign_in(page, flowhook, trigger)
    expect(page.locator("#validation-errors")).to_contain_text("required property 'targetUserIds' is missing")
    note = page.locator("#fields tr").first.locator(".field-note")
    expect(note).to_have_text("evaluated to null — left out")
    expect(page.get_by_label("Expression 1")).to_have_accessible_description("evaluated to null — left out")

    page.get_by_label("Expression 1").fill("body.id")
    expect(page.locator("#preview-status")).to_contain_text("Valid trigger request")
    expect(note).to_be_hidden()


def test_tab_indents_the_selected_lines_and_shift_tab_dedents_them(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger(source="function map(r) {\nreturn null;\n}\n")
    sign_in(page, flowhook, trigger)
    source = page.locator("#source")
    source.focus()
    source.evaluate("(area) => area.setSelectionRange(area.value.indexOf('ion'), area.value.indexOf('null'))")
    page.keyboard.press("Tab")
    expect(source).to_have_value("  function map(r) {\n  return null;\n}\n")
    assert source.evaluate("(area) => area.value.slice(area.selectionStart, area.selectionEnd)") == (
        "ion map(r) {\n  return "
    )
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")  # nothing left to dedent
    expect(source).to_have_value("function map(r) {\nreturn null;\n}\n")

    source.evaluate("(area) => area.setSelectionRange(0, area.value.length)")
    page.keyboard.press("Tab")
    expect(source).to_have_value("  function map(r) {\n  return null;\n  }\n")
    page.keyboard.press("Control+z")
    expect(source).to_have_value("function map(r) {\nreturn null;\n}\n")

    page.keyboard.press("Escape")
    page.keyboard.press("Tab")  # leaves the editor
    expect(source).not_to_be_focused()
    expect(source).to_have_value("function map(r) {\nreturn null;\n}\n")


def test_the_request_log_shows_new_requests_without_a_refresh_and_keeps_the_one_picked(
    page: Page, flowhook: Flowhook
) -> None:
    trigger = flowhook.trigger(source="function map(r) {\n  return null;\n}\n")
    sign_in(page, flowhook, trigger)
    rows = page.locator("#request-list button.request")
    expect(page.locator("#request-list")).to_contain_text("No requests logged yet.")

    first = httpx.post(trigger["url"], json={"n": 1}).json()["requestId"]
    expect(rows).to_have_count(1)
    rows.first.click()
    expect(page.locator("#request-detail")).to_contain_text(f"Request {first}")

    second = httpx.post(trigger["url"], json={"n": 2}).json()["requestId"]
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-request-id", second)
    picked = page.locator(f'button.request[data-request-id="{first}"]')
    expect(picked).to_have_attribute("aria-current", "true")
    expect(picked).to_be_focused()  # the row was kept, not drawn again
    expect(page.locator("#request-detail")).to_contain_text(f"Request {first}")


@pytest.mark.parametrize("size", [(800, 600), (390, 844)])
def test_a_narrow_window_shows_the_preview_right_under_the_mapping(
    browser: Browser, flowhook: Flowhook, size: tuple[int, int]
) -> None:
    trigger = flowhook.trigger(source="function map(r) {\n  return {targetUserIds: [r.body.id]};\n}\n")
    flowhook.sample(trigger, body={"id": "u-3"})
    httpx.post(trigger["url"], json={"id": "u-3"})
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    try:
        page = context.new_page()
        sign_in(page, flowhook, trigger)
        expect(page.locator("#request-list button.request")).to_have_count(1)
        expect(page.locator("#preview-status")).to_contain_text("Valid trigger request")

        def top(selector: str) -> float:
            box = page.locator(selector).bounding_box()
            assert box is not None, selector
            return float(box["y"])

        assert top("#save") < top("#preview-title") < top("#samples-title") < top("#requests-title")
        assert top("#preview-title") - top("#save") < size[1]  # within a screen of the source's end
        assert page.evaluate("() => document.documentElement.scrollWidth") <= size[0]  # nothing wider
    finally:
        context.close()
