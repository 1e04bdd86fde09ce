"""The mapping editor in a real browser (Debian's Chromium through Playwright) against `flowhook serve`.

Each test gets a fresh browser context (so an empty sessionStorage), signs in
through the page's form and drives it as a user would; what it saved is
checked through the API.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Request, Route, expect
from tests.support.editor import TOKEN, Flowhook, sign_in


def typed_sample(page: Page) -> Any:
    """The sample of a trigger without a hook, as the page shows it."""
    return json.loads(page.get_by_label("Sample", exact=True).input_value())


def set_source(page: Page, source: str) -> None:
    page.locator("#source").fill(source)


def test_a_wrong_token_shows_the_api_error_and_the_right_one_lists_webhook_triggers(
    page: Page, flowhook: Flowhook
) -> None:
    flow = flowhook.flow("Listed flow")
    trigger = flowhook.trigger(flow)
    listed = flowhook.ok(flowhook.api.get(f"/action-flows/{flow['id']}/triggers"))["data"]
    page.goto(f"{flowhook.url}/editor")
    page.get_by_label("Admin token").fill("fh_admin_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("the admin token is not valid")
    expect(page.locator("#workspace")).to_be_hidden()

    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    entry = page.locator("#flows > li", has_text="Listed flow")
    expect(entry).to_contain_text("not published")
    buttons = entry.locator("button.trigger")
    expect(buttons).to_have_count(1)
    assert buttons.get_attribute("data-trigger-id") == trigger["id"]
    others = [entry["id"] for entry in listed if entry["type"] != "webhook"]  # the flow's API trigger
    assert all(page.locator(f'[data-trigger-id="{other}"]').count() == 0 for other in others)
    storage = page.evaluate("() => [JSON.stringify(localStorage), sessionStorage.getItem('flowhook.editor')]")
    assert storage[0] == "{}" and json.loads(storage[1]) == {"token": TOKEN, "env": "default"}
    assert TOKEN not in page.url

    buttons.click()  # a click opens the trigger and puts it in the fragment, as a deep link would
    expect(page.locator("#hook-url")).to_have_value(trigger["url"])
    assert page.url.endswith(f"/editor#trigger={trigger['id']}")


def test_the_list_loads_with_as_many_api_requests_however_many_flows_there_are(page: Page, flowhook: Flowhook) -> None:
    """The flows, and one paged walk of the environment's triggers: not a request per flow."""

    def api_calls_loading(flow_name: str) -> list[str]:
        """The API paths the page calls as a reload lists the flows, until `flow_name` is listed."""
        paths: list[str] = []

        def called(request: Request) -> None:
            if "/v1/" in request.url:
                paths.append(urlsplit(request.url).path)

        page.on("request", called)
        page.reload()
        expect(page.locator("#flows > li", has_text=flow_name).locator("button.trigger")).to_have_count(1)
        page.remove_listener("request", called)
        return sorted(paths)

    flowhook.trigger(flowhook.flow("Counted flow 0"))
    sign_in(page, flowhook)
    before = api_calls_loading("Counted flow 0")
    assert before == ["/v1/default/action-flows", "/v1/default/triggers"]
    for number in range(1, 4):
        flowhook.trigger(flowhook.flow(f"Counted flow {number}"), type="event", eventName=f"counted-{number}")
    assert api_calls_loading("Counted flow 3") == before


def test_a_deep_link_opens_its_trigger_and_a_reload_keeps_the_session(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger(source="function map(request) {\n  return null;\n}\n")
    flowhook.sample(trigger, body={"user": "u1"})
    sign_in(page, flowhook, trigger)
    expect(page.locator("#mode")).to_have_value("test")
    expect(page.locator("#kind")).to_have_value("javascript")
    expect(page.locator("#preview-status")).to_contain_text("Skipped")
    page.reload()
    expect(page.locator("#hook-url")).to_have_value(trigger["url"])


def test_capture_waits_for_a_real_webhook_and_previews_it(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger(source="function map(r) {\n  return {targetUserIds: [r.body.customer]};\n}\n")
    sign_in(page, flowhook, trigger)
    expect(page.locator("#samples")).to_contain_text("No samples yet")
    page.get_by_role("button", name="Capture next request").click()
    expect(page.locator("#capture-status")).to_have_text(f"Waiting for a request to {trigger['url']}…")
    assert flowhook.read(trigger)["captureArmed"] is True

    sent = httpx.post(trigger["url"], json={"customer": "cus_captured"})
    assert (sent.status_code, sent.json()["captured"]) == (202, True)
    expect(page.locator("#capture-status")).to_contain_text("Captured a POST request")
    captured = page.locator("#samples li", has_text="captured")
    expect(captured.locator("input")).to_be_checked()
    expect(page.locator("#output")).to_contain_text('"cus_captured"')

    page.get_by_role("button", name="Capture next request").click()
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#capture-status")).to_have_text("Capture cancelled.")
    assert flowhook.read(trigger)["captureArmed"] is False


def test_the_preview_follows_the_source(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger(source="function map(r) {\n  return {targetUserIds: [r.body.id]};\n}\n")
    flowhook.sample(trigger, body={"id": "u-7", "n": 3})
    sign_in(page, flowhook, trigger)
    expect(page.locator("#output")).to_contain_text('"u-7"')
    expect(page.locator("#preview-status")).to_contain_text("Valid trigger request")
    expect(page.locator("#preview-status")).to_contain_text(" ms")

    set_source(page, "function map(r) {\n  console.warn('seen', r.body.n);\n  return {targetUserIds: ['edited']};\n}\n")
    expect(page.locator("#output")).to_contain_text('"edited"')
    expect(page.locator("#console li")).to_have_text(["warn seen 3"])
    expect(page.locator("#save-status")).to_have_text("Unsaved changes")

    set_source(page, "function map(r) {\n  return {targetUserIds: [r.body.n]};\n}\n")
    expect(page.locator("#validation-errors li")).to_have_text(["$.targetUserIds[0] must be a string, not a number"])
    expect(page.locator("#preview-status")).to_contain_text("not a valid trigger request")

    set_source(page, "function map(r) {\n  const x = 1;\n  return r.body.missing.id;\n}\n")
    expect(page.locator("#preview-error")).to_contain_text("TypeError")
    expect(page.locator("#preview-error")).to_contain_text("line 3")
    expect(page.locator("#gutter .error-line")).to_have_text("3\n")

    set_source(page, "function map(r) {\n  return {targetUserIds: [\n}\n")
    expect(page.locator("#preview-status")).to_have_text("The mapping does not compile")
    expect(page.locator("#preview-error")).to_contain_text("invalid_mapping")

    source = page.locator("#source")
    source.fill("")
    source.press("Tab")
    assert source.input_value() == "  "
    source.press("Escape")
    source.press("Tab")  # Escape, then Tab: the focus moves on rather than being trapped in the editor
    assert source.input_value() == "  "
    assert page.evaluate("() => document.activeElement.id") != "source"


def test_only_the_answer_to_the_latest_edit_is_shown(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger(source="function map(r) {\n  return {targetUserIds: ['saved']};\n}\n")
    flowhook.sample(trigger, body={})
    sign_in(page, flowhook, trigger)
    expect(page.locator("#output")).to_contain_text('"saved"')
    held: list[Route] = []
    page.route("**/mappings/preview", lambda route: held.append(route) if not held else route.continue_())
    set_source(page, "function map(r) {\n  return {targetUserIds: ['stale']};\n}\n")
    while not held:  # the stale edit's preview is on its way, and held there
        page.wait_for_timeout(20)
    set_source(page, "function map(r) {\n  return {targetUserIds: ['fresh']};\n}\n")
    expect(page.locator("#output")).to_contain_text('"fresh"')

    with page.expect_response("**/mappings/preview") as stale:
        held[0].continue_()
    stale.value.finished()
    page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 100))")  # let the page handle it
    expect(page.locator("#output")).to_contain_text('"fresh"')


def test_leaving_with_unsaved_changes_asks_first(page: Page, flowhook: Flowhook, dialogs: list[str]) -> None:
    trigger = flowhook.trigger(source="function map(r) {\n  return null;\n}\n")
    sign_in(page, flowhook, trigger)
    page.locator("#source").press("End")
    page.locator("#source").press_sequentially("// edited")
    expect(page.locator("#save-status")).to_have_text("Unsaved changes")
    with page.expect_event("dialog"):
        page.close(run_before_unload=True)
    assert dialogs == ["beforeunload"]
    page.close()  # for good: a context closed over a page that refused to unload once crashed Chromium


def test_a_jmespath_fields_mapping_previews(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger()
    flowhook.sample(trigger, body={"customer": {"id": "c-1", "first_name": "Ada"}})
    sign_in(page, flowhook, trigger)
    page.get_by_label("Kind").select_option("jmespath")
    page.get_by_label("Expression 1").fill("body.customer.id")
    page.get_by_role("button", name="Add field").click()
    page.get_by_label("Output key 2").fill("variables.firstName")
    page.get_by_label("Expression 2").fill("body.customer.first_name")
    expect(page.locator("#output")).to_contain_text('"firstName": "Ada"')
    expect(page.locator("#output")).to_contain_text('"c-1"')

    page.get_by_role("button", name="Save mapping").click()
    expect(page.locator("#save-status")).to_contain_text("Saved")
    expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved at "))
    fields = {"targetUserIds": "body.customer.id", "variables.firstName": "body.customer.first_name"}
    assert flowhook.read(trigger)["mapping"] == {"kind": "jmespath", "fields": fields}


def test_save_persists_and_shows_the_refusal_of_an_invalid_mapping(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger()
    sign_in(page, flowhook, trigger)
    page.get_by_label("Kind").select_option("javascript")
    source = "function map(r) {\n  return {targetUserIds: ['saved']};\n}\n"
    set_source(page, source)
    page.get_by_role("button", name="Save mapping").click()
    expect(page.locator("#save-status")).to_contain_text("Saved")
    assert flowhook.read(trigger)["mapping"] == {"kind": "javascript", "source": source}

    set_source(page, "function map(r) {\n  return {;\n}\n")
    page.get_by_role("button", name="Save mapping").click()
    expect(page.locator("#save-status")).to_contain_text("Not saved")
    expect(page.locator("#save-status")).to_contain_text("422 invalid_mapping")
    expect(page.locator("#save-status")).to_contain_text("line 2")
    assert flowhook.read(trigger)["mapping"]["source"] == source


def test_the_mode_switch_persists_and_warns_about_an_unpublished_flow(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger(flowhook.flow("Draft only"))
    sign_in(page, flowhook, trigger)
    page.get_by_label("Mode").select_option("disabled")
    expect(page.locator("#mode-status")).to_contain_text("Mode saved: disabled")
    assert flowhook.read(trigger)["mode"] == "disabled"
    page.get_by_role("button", name="Capture next request").click()
    expect(page.locator("#capture-status")).to_contain_text("The trigger is disabled")
    page.get_by_role("button", name="Cancel").click()

    page.get_by_label("Mode").select_option("live")
    expect(page.locator("#mode-warning")).to_contain_text("is not published")
    assert flowhook.read(trigger)["mode"] == "live"

    published = flowhook.trigger(flowhook.flow("Published", publish=True))
    page.goto(f"{flowhook.url}/editor#trigger={published['id']}")
    expect(page.locator("#hook-url")).to_have_value(published["url"])
    page.get_by_label("Mode").select_option("live")
    expect(page.locator("#mode-warning")).to_contain_text("Switch it to test mode before editing")


def test_a_pasted_sample_is_refused_with_the_api_error_and_accepted_when_valid(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger()
    sign_in(page, flowhook, trigger)
    page.get_by_text("Paste a sample").click()
    page.get_by_label("Body", exact=True).fill('{"targetUserIds": ["p-1"]}')
    page.get_by_label("Headers (optional JSON object)").fill('{"bad name": "x"}')
    page.get_by_role("button", name="Add sample").click()
    expect(page.locator("#paste-error")).to_contain_text('at $.headers["bad name"]')

    page.get_by_label("Headers (optional JSON object)").fill('{"X-Request-Id": "r-1"}')
    page.get_by_role("button", name="Add sample").click()
    expect(page.locator("#paste-error")).to_be_hidden()
    expect(page.locator("#samples li input")).to_be_checked()
    expect(page.locator("#output")).to_contain_text('"p-1"')


def test_hostile_values_are_shown_as_text(page: Page, flowhook: Flowhook, dialogs: list[str]) -> None:
    source = (
        "function map(r) {\n  console.log('<script>alert(1)</script>');\n  return {targetUserIds: [r.rawBody]};\n}\n"
    )
    trigger = flowhook.trigger(source=source)
    markup = "<img src=x onerror=alert(1)>"
    flowhook.sample(trigger, body=markup, contentType="text/plain")
    sign_in(page, flowhook, trigger)
    expect(page.locator("#console li")).to_have_text(["log <script>alert(1)</script>"])
    expect(page.locator("#output")).to_contain_text(markup)
    expect(page.locator("#samples")).to_contain_text(markup)
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 1  # the editor's own module
    assert dialogs == []


def test_the_page_is_served_with_its_security_headers(page: Page, flowhook: Flowhook) -> None:
    response = page.goto(f"{flowhook.url}/editor")
    assert response is not None
    headers = response.headers
    assert headers["content-security-policy"].startswith("default-src 'none'; script-src 'self';")
    assert (headers["x-content-type-options"], headers["referrer-policy"]) == ("nosniff", "no-referrer")
    assert headers["cache-control"] == "no-store"


def test_an_event_trigger_is_listed_and_edited_against_its_typed_sample(page: Page, flowhook: Flowhook) -> None:
    flow = flowhook.flow("Checkout flow")
    trigger = flowhook.trigger(flow, type="event", eventName="checkout-completed")
    api_trigger = next(
        t for t in flowhook.ok(flowhook.api.get(f"/action-flows/{flow['id']}/triggers"))["data"] if t["type"] == "api"
    )
    sign_in(page, flowhook, trigger)
    entry = page.locator("#flows > li", has_text="Checkout flow")
    expect(entry.locator("button.trigger")).to_have_count(1)
    expect(entry.locator(f'[data-trigger-id="{trigger["id"]}"]')).to_contain_text("event checkout-completed")
    assert page.locator(f'[data-trigger-id="{api_trigger["id"]}"]').count() == 0
    expect(page.locator("#trigger-identity")).to_have_text("event checkout-completed")
    expect(page.locator("#url-row")).to_be_hidden()
    expect(page.get_by_role("button", name="Capture next request")).to_be_hidden()

    sample = typed_sample(page)
    assert {key: sample[key] for key in ("eventName", "endUserId", "properties", "eventSource", "flowId")} == {
        "eventName": "checkout-completed",
        "endUserId": "user-1",
        "properties": {},
        "eventSource": "live",
        "flowId": None,
    }
    expect(page.locator("#output")).to_contain_text('"user-1"')  # the default mapping, on the typed sample

    page.get_by_label("Kind").select_option("javascript")
    source = "function map(r) {\n  return {targetUserIds: [r.body.properties.buyer]};\n}\n"
    set_source(page, source)
    page.get_by_label("Sample", exact=True).fill('{"properties": {"buyer": "u-42"}}')
    expect(page.locator("#output")).to_contain_text('"u-42"')
    expect(page.locator("#preview-status")).to_contain_text("Valid trigger request")

    page.get_by_label("Sample", exact=True).fill('{"properties": ')
    expect(page.locator("#sample-problem")).to_contain_text("The sample is not valid JSON")
    expect(page.locator("#preview-status")).to_have_text("Fix the sample's JSON to preview the mapping.")
    expect(page.locator("#output")).to_have_text("")

    page.get_by_role("button", name="Save mapping").click()
    expect(page.locator("#save-status")).to_contain_text("Saved")
    expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved at "))
    assert flowhook.read(trigger)["mapping"] == {"kind": "javascript", "source": source}
    page.get_by_label("Mode").select_option("live")
    expect(page.locator("#mode-warning")).to_contain_text("is not published")
    assert flowhook.read(trigger)["mode"] == "live"


def test_each_kind_is_listed_with_its_sample_kept_per_trigger_in_the_tab(page: Page, flowhook: Flowhook) -> None:
    flow = flowhook.flow("Every kind")
    rules = {"all": [{"attribute": "plan", "op": "eq", "value": "editor-test"}]}
    segment = flowhook.ok(flowhook.api.post("/segments", json={"name": "Editor test", "rules": rules}))
    left = flowhook.trigger(flow, type="segment", segmentId=segment["id"], on="exited")
    sfmc = flowhook.trigger(flow, type="sfmc", signingSecret="s" * 32)
    marketo = flowhook.trigger(flow, type="marketo")
    sign_in(page, flowhook, left)
    buttons = page.locator("#flows > li", has_text="Every kind").locator("button.trigger .identity")
    expect(buttons).to_have_text([f"segment {segment['id']} · on exited", "SFMC activity", "Marketo step"])
    sample = typed_sample(page)
    assert (sample["eventName"], sample["properties"]["segmentId"]) == ("segment-exited", segment["id"])
    page.get_by_label("Sample", exact=True).fill('{"endUserId": "typed"}')

    page.goto(f"{flowhook.url}/editor#trigger={sfmc['id']}")
    expect(page.locator("#trigger-identity")).to_have_text("SFMC activity")
    expect(page.locator("#output")).to_contain_text('"0031x00000AbCdE"')  # its default mapping reads body.arguments
    page.goto(f"{flowhook.url}/editor#trigger={marketo['id']}")
    expect(page.locator("#output")).to_contain_text('"11"')  # and the Marketo one body.userId
    page.goto(f"{flowhook.url}/editor#trigger={left['id']}")
    expect(page.locator("#trigger-identity")).to_contain_text("on exited")
    assert typed_sample(page) == {"endUserId": "typed"}
    expect(page.locator("#output")).to_contain_text('"typed"')


def test_a_save_after_the_mode_changed_elsewhere_shows_the_servers_mode_and_asks_first(
    page: Page, flowhook: Flowhook
) -> None:
    """The mode was switched to live elsewhere: the page showed test and no live warning even after its save
    went to the live trigger. The save is now made against the revision the page showed (If-Match)."""
    mapping = {"kind": "jmespath", "fields": {"targetUserIds": "body.u"}}
    trigger = flowhook.trigger(flowhook.flow("Switched elsewhere", publish=True), mapping=mapping)
    sign_in(page, flowhook, trigger)
    expect(page.locator("#mode-warning")).to_be_hidden()
    flowhook.ok(flowhook.api.patch(f"/triggers/{trigger['id']}", json={"mode": "live"}))

    page.get_by_label("Expression 1").fill("body.user")
    page.get_by_role("button", name="Save mapping").click()
    expect(page.locator("#conflict")).to_contain_text("its mode is now live")
    expect(page.locator("#conflict")).to_contain_text("Your mapping was not saved")
    expect(page.locator("#mode")).to_have_value("live")
    expect(page.locator("#mode-warning")).to_contain_text("This trigger is live")
    expect(page.locator(f'[data-trigger-id="{trigger["id"]}"]')).to_contain_text("live")
    expect(page.locator("#save-status")).to_contain_text("Not saved")
    assert flowhook.read(trigger)["mapping"] == mapping

    page.get_by_role("button", name="Overwrite with mine").click()
    expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved at "))
    expect(page.locator("#conflict")).to_be_hidden()
    expect(page.locator("#mode")).to_have_value("live")
    expect(page.locator("#mode-warning")).to_contain_text("This trigger is live")
    assert flowhook.read(trigger)["mapping"] == {"kind": "jmespath", "fields": {"targetUserIds": "body.user"}}


def test_a_mapping_saved_elsewhere_is_not_overwritten_and_reload_keeps_mine_to_copy(
    page: Page, flowhook: Flowhook
) -> None:
    trigger = flowhook.trigger(source="function map(r) {\n  return {targetUserIds: ['opened']};\n}\n")
    sign_in(page, flowhook, trigger)
    theirs = {"kind": "javascript", "source": "function map(r) {\n  return {targetUserIds: ['theirs']};\n}\n"}
    flowhook.ok(flowhook.api.patch(f"/triggers/{trigger['id']}", json={"mapping": theirs}))

    mine = "function map(r) {\n  return {targetUserIds: ['mine']};\n}\n"
    set_source(page, mine)
    page.keyboard.press("Control+s")
    expect(page.locator("#conflict")).to_contain_text("its mapping was changed")
    expect(page.locator("#conflict-mine")).to_have_value(mine)
    assert flowhook.read(trigger)["mapping"] == theirs

    page.get_by_role("button", name="Reload the saved version").click()
    expect(page.locator("#source")).to_have_value(theirs["source"])
    expect(page.locator("#conflict")).to_contain_text("Your mapping is below, to copy")
    expect(page.locator("#conflict-mine")).to_have_value(mine)
    expect(page.get_by_role("button", name="Overwrite with mine")).to_be_hidden()
    expect(page.locator("#save-status")).to_have_text("")
    page.get_by_role("button", name="Dismiss").click()
    expect(page.locator("#conflict")).to_be_hidden()

    set_source(page, mine)  # a save from the reloaded version goes through
    page.get_by_role("button", name="Save mapping").click()
    expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved at "))
    assert flowhook.read(trigger)["mapping"]["source"] == mine


def test_a_mode_change_after_the_mapping_changed_elsewhere_asks_first(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger(flowhook.flow("Mode conflict", publish=True))
    sign_in(page, flowhook, trigger)
    theirs = {"kind": "jmespath", "fields": {"targetUserIds": "body.theirs"}}
    flowhook.ok(flowhook.api.patch(f"/triggers/{trigger['id']}", json={"mapping": theirs}))
    page.get_by_label("Mode").select_option("live")
    expect(page.locator("#conflict")).to_contain_text("The mode was not changed to live")
    expect(page.locator("#mode")).to_have_value("test")
    assert flowhook.read(trigger)["mode"] == "test"
    page.get_by_role("button", name="Overwrite with mine").click()
    expect(page.locator("#mode-status")).to_contain_text("Mode saved: live")
    assert flowhook.read(trigger) | {"mapping": theirs} == flowhook.read(trigger)
    assert flowhook.read(trigger)["mode"] == "live"


def test_changes_elsewhere_to_what_the_page_does_not_show_are_no_conflict(page: Page, flowhook: Flowhook) -> None:
    """Capture (armed here or elsewhere) and the allowlist change the revision, not the mode or the mapping."""
    trigger = flowhook.trigger(source="function map(r) {\n  return null;\n}\n")
    sign_in(page, flowhook, trigger)
    page.get_by_role("button", name="Capture next request").click()
    expect(page.locator("#capture-status")).to_contain_text("Waiting for a request")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#capture-status")).to_have_text("Capture cancelled.")
    flowhook.ok(flowhook.api.patch(f"/triggers/{trigger['id']}", json={"allowedIps": ["10.0.0.0/8"]}))

    source = "function map(r) {\n  return {targetUserIds: ['saved']};\n}\n"
    set_source(page, source)
    page.get_by_role("button", name="Save mapping").click()
    expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved at "))
    expect(page.locator("#conflict")).to_be_hidden()
    saved = flowhook.read(trigger)
    assert (saved["mapping"]["source"], saved["allowedIps"]) == (source, ["10.0.0.0/8"])


def test_one_status_line_tells_saved_from_unsaved(page: Page, flowhook: Flowhook) -> None:
    """ "Unsaved changes" and "Saved at …" were shown side by side after an edit that followed a save."""
    trigger = flowhook.trigger(source="function map(r) {\n  return null;\n}\n")
    sign_in(page, flowhook, trigger)
    expect(page.locator("#save-status")).to_be_hidden()
    set_source(page, "function map(r) {\n  return {targetUserIds: ['a']};\n}\n")
    expect(page.locator("#save-status")).to_have_text("Unsaved changes")
    page.get_by_role("button", name="Save mapping").click()
    expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved at "))
    set_source(page, "function map(r) {\n  return {targetUserIds: ['b']};\n}\n")
    expect(page.locator("#save-status")).to_have_text("Unsaved changes")
    set_source(page, "function map(r) {\n  return {;\n}\n")
    page.get_by_role("button", name="Save mapping").click()
    expect(page.locator("#save-status")).to_contain_text("Not saved")
    page.locator("#source").press("End")
    page.locator("#source").press_sequentially(" ")
    expect(page.locator("#save-status")).to_have_text("Unsaved changes")
    expect(page.get_by_text("Unsaved changes")).to_have_count(1)


@pytest.mark.parametrize("unknown", ["trg_nope", "api"])
def test_a_link_to_a_trigger_without_a_mapping_closes_the_open_one(
    page: Page, flowhook: Flowhook, unknown: str
) -> None:
    """The error was shown above the previous trigger, which stayed open, and saved, under the new URL."""
    flow = flowhook.flow("Left behind")
    trigger = flowhook.trigger(flow, source="function map(r) {\n  return null;\n}\n")
    sign_in(page, flowhook, trigger)
    page.get_by_role("button", name="Capture next request").click()
    expect(page.locator("#capture-status")).to_contain_text("Waiting for a request")
    target = f"api_{flow['id']}" if unknown == "api" else unknown
    page.evaluate("(id) => { location.hash = `trigger=${id}`; }", target)
    expect(page.locator("#trigger-error")).to_contain_text(target)
    expect(page.locator("#trigger")).to_be_hidden()
    expect(page.locator("#samples-pane")).to_be_hidden()
    expect(page.locator("#save")).to_be_disabled()
    expect(page.locator(f'[data-trigger-id="{trigger["id"]}"]')).not_to_have_attribute("aria-current", "true")
    page.keyboard.press("Control+s")
    page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 100))")  # let a save, if any, go out
    read = flowhook.api.get(f"/triggers/{trigger['id']}")
    assert (read.headers["etag"], read.json()["captureArmed"]) == ('"3"', False)  # armed, disarmed; no save

    page.locator(f'[data-trigger-id="{trigger["id"]}"]').click()
    expect(page.locator("#trigger")).to_be_visible()
    expect(page.locator("#trigger-error")).to_be_hidden()
    expect(page.get_by_role("button", name="Save mapping")).to_be_enabled()


def test_the_preview_of_a_live_trigger_applies_the_published_variables(page: Page, flowhook: Flowhook) -> None:
    """The editor previewed with the draft's variables, which live requests do not apply."""
    flow = flowhook.ok(flowhook.api.post("/action-flows", json={"name": "Edited since published"}))
    flowhook.ok(flowhook.api.post(f"/action-flows/{flow['id']}/publish"))
    required = [{"name": "plan", "type": "string", "required": True}]
    flowhook.ok(flowhook.api.put(f"/action-flows/{flow['id']}", json={"name": flow["name"], "variables": required}))
    trigger = flowhook.trigger(flow, mode="live", mapping={"kind": "jmespath", "fields": {"targetUserIds": "body.u"}})
    flowhook.sample(trigger, body={"u": "u-1"})
    sign_in(page, flowhook, trigger)
    expect(page.locator("#preview-status")).to_have_text(
        re.compile(r"^Valid trigger request · [\d.]+ ms · the published version's variables$")
    )
    page.get_by_label("Mode").select_option("test")
    expect(page.locator("#preview-status")).to_contain_text("not a valid trigger request")
    expect(page.locator("#preview-status")).to_contain_text("the draft's variables")
    expect(page.locator("#validation-errors li")).to_have_text(["$.variables.plan required variable 'plan' is missing"])


RETURN_EVENTS = {
    "focus": "() => window.dispatchEvent(new Event('focus'))",
    "visibilitychange": "() => document.dispatchEvent(new Event('visibilitychange'))",
}


@pytest.mark.parametrize("event", sorted(RETURN_EVENTS))
def test_a_trigger_changed_elsewhere_is_shown_when_the_tab_comes_back(
    page: Page, flowhook: Flowhook, event: str
) -> None:
    """The page kept showing the trigger as it was opened until a reload; a save then met a 412."""
    trigger = flowhook.trigger(flowhook.flow("Changed meanwhile", publish=True), source="function map(r) {\n}\n")
    sign_in(page, flowhook, trigger)
    theirs = {"kind": "javascript", "source": "function map(r) {\n  return {targetUserIds: ['theirs']};\n}\n"}
    flowhook.ok(flowhook.api.patch(f"/triggers/{trigger['id']}", json={"mapping": theirs, "mode": "live"}))

    page.evaluate(RETURN_EVENTS[event])
    expect(page.locator("#source")).to_have_value(theirs["source"])
    expect(page.locator("#mode")).to_have_value("live")
    expect(page.locator("#mode-warning")).to_contain_text("This trigger is live")
    expect(page.locator("#conflict")).to_be_hidden()
    expect(page.locator("#save-status")).to_be_hidden()

    mine = "function map(r) {\n  return {targetUserIds: ['mine']};\n}\n"
    set_source(page, mine)  # made on the version shown: saved without a conflict
    page.get_by_role("button", name="Save mapping").click()
    expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved at "))
    assert flowhook.read(trigger)["mapping"]["source"] == mine


def opened_with_unsaved_edits(page: Page, flowhook: Flowhook) -> tuple[dict[str, Any], str]:
    """A new trigger open in the editor, its mapping edited and not saved: the trigger, and the edited source."""
    trigger = flowhook.trigger(source="function map(r) {\n}\n")
    sign_in(page, flowhook, trigger)
    mine = "function map(r) {\n  return {targetUserIds: ['mine']};\n}\n"
    set_source(page, mine)
    return trigger, mine


def test_unsaved_edits_meet_a_change_made_elsewhere_as_a_conflict_when_the_tab_comes_back(
    page: Page, flowhook: Flowhook
) -> None:
    trigger, mine = opened_with_unsaved_edits(page, flowhook)
    expect(page.locator("#save-status")).to_have_text("Unsaved changes")
    theirs = {"kind": "javascript", "source": "function map(r) {\n  return {targetUserIds: ['theirs']};\n}\n"}
    flowhook.ok(flowhook.api.patch(f"/triggers/{trigger['id']}", json={"mapping": theirs}))

    page.evaluate(RETURN_EVENTS["focus"])
    expect(page.locator("#conflict")).to_contain_text("its mapping was changed")
    expect(page.locator("#conflict")).to_contain_text("Your changes are not saved yet")
    expect(page.locator("#source")).to_have_value(mine)
    expect(page.locator("#conflict-mine")).to_have_value(mine)
    assert flowhook.read(trigger)["mapping"] == theirs

    page.get_by_role("button", name="Overwrite with mine").click()
    expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved at "))
    expect(page.locator("#conflict")).to_be_hidden()
    assert flowhook.read(trigger)["mapping"]["source"] == mine


def test_a_change_elsewhere_to_what_the_page_does_not_show_keeps_the_edits_when_the_tab_comes_back(
    page: Page, flowhook: Flowhook
) -> None:
    trigger, mine = opened_with_unsaved_edits(page, flowhook)
    flowhook.ok(flowhook.api.patch(f"/triggers/{trigger['id']}", json={"allowedIps": ["10.0.0.0/8"]}))
    with page.expect_response(re.compile(rf"/triggers/{trigger['id']}$")):
        page.evaluate(RETURN_EVENTS["visibilitychange"])
    expect(page.locator("#source")).to_have_value(mine)
    expect(page.locator("#save-status")).to_have_text("Unsaved changes")
    page.get_by_role("button", name="Save mapping").click()
    expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved at "))
    expect(page.locator("#conflict")).to_be_hidden()
    saved = flowhook.read(trigger)
    assert (saved["mapping"]["source"], saved["allowedIps"]) == (mine, ["10.0.0.0/8"])
