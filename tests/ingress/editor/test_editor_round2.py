"""The mapping editor in a real browser, on what a second review found: a token refused while typing takes
no keystroke, Escape then Shift+Tab leaves the source, a variable left out for its default says so, a capture
armed again elsewhere lapses as such, the focus stays put after Send test and Delete, and Send test is judged
with the draft's variables it applies.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect
from tests.ingress.editor.conftest import Rotating
from tests.support.editor import TOKEN, Flowhook, sign_in

MAP = "function map(r) {\n  return {targetUserIds: [r.body.user]};\n}\n"


def focused_id(page: Page) -> str:
    return str(page.evaluate("() => document.activeElement.id || document.activeElement.tagName"))


def test_a_token_refused_while_typing_shows_a_banner_and_takes_no_keystroke(page: Page, rotating: Rotating) -> None:
    with rotating.api(TOKEN) as api:
        flowhook = Flowhook(rotating.url, api)
        trigger = flowhook.trigger(source=MAP)  # a webhook trigger: its request log is polled too
        flowhook.sample(trigger, body={"user": "u-1"})
    sign_in(page, flowhook, trigger)
    expect(page.locator("#output")).to_contain_text('"u-1"')
    source = page.locator("#source")
    source.click()
    page.keyboard.press("Control+End")

    rotating.restart("fh_admin_round2")
    page.keyboard.type("// a")  # its preview, run 300 ms later, is refused: 401
    banner = page.locator("#token-refused")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("The admin token was refused: sign in again.")
    page.keyboard.type(" and more")
    page.keyboard.press("Enter")  # no prompt to submit code to as a token
    page.keyboard.type("// b")
    expect(source).to_have_value(f"{MAP}// a and more\n// b")
    prompt = page.get_by_role("dialog", name="Sign in again")
    expect(prompt).to_be_hidden()
    assert focused_id(page) == "source"
    assert page.locator("#reauth-token").input_value() == ""
    expect(page.locator("#preview-status")).to_have_text(
        "The admin token was refused: sign in again to preview the mapping."
    )

    # The window's focus re-reads the trigger, but not with a token refused: nothing reopens the prompt.
    page.evaluate("() => window.dispatchEvent(new FocusEvent('focus'))")
    page.keyboard.type("!")
    expect(source).to_have_value(f"{MAP}// a and more\n// b!")
    expect(prompt).to_be_hidden()

    banner.get_by_role("button", name="Sign in again").click()  # a click: the prompt asks
    expect(prompt).to_be_visible()
    expect(prompt.get_by_label("Token")).to_be_focused()
    page.keyboard.type("fh_admin_round2")
    page.keyboard.press("Enter")
    expect(prompt).to_be_hidden()
    expect(banner).to_be_hidden()
    expect(page.locator("#preview-status")).to_contain_text("Valid trigger request")  # previewed again
    assert focused_id(page) == "save"


def test_escape_then_shift_tab_leaves_the_source_backwards(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger(source=MAP)
    sign_in(page, flowhook, trigger)
    source = page.locator("#source")
    source.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+Tab")  # a Shift keydown, then Tab's: the Shift alone must not undo the Escape
    expect(page.locator("#kind")).to_be_focused()
    expect(source).to_have_value(MAP)


def test_a_variable_left_out_for_its_default_says_it_evaluated_to_null(page: Page, flowhook: Flowhook) -> None:
    variables = [{"name": "firstName", "type": "string", "default": "there"}]
    flow = flowhook.ok(flowhook.api.post("/action-flows", json={"name": "Defaults", "variables": variables}))
    fields = {"targetUserIds": "[body.user]", "variables.firstName": "body.nme"}  # a typo: null
    trigger = flowhook.trigger(flow, mapping={"kind": "jmespath", "fields": fields})
    sample = flowhook.sample(trigger, body={"user": "u-1", "name": "Ann"})
    body = {"mapping": trigger["mapping"], "sampleId": sample["id"], "triggerId": trigger["id"]}
    answer = flowhook.ok(flowhook.api.post("/mappings/preview", json=body))  # what the page goes by
    assert (answer["output"]["variables"], answer["mapped"]) == ({"firstName": "there"}, {"targetUserIds": ["u-1"]})
    sign_in(page, flowhook, trigger)
    expect(page.locator("#output")).to_contain_text('"firstName": "there"')  # the default filled in
    note = page.locator("#fields tr").nth(1).locator(".field-note")
    expect(note).to_have_text("evaluated to null — left out")

    page.get_by_label("Expression 2").fill("body.name")
    expect(page.locator("#output")).to_contain_text('"firstName": "Ann"')
    expect(note).to_be_hidden()


def test_a_capture_armed_again_elsewhere_says_it_lapsed(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger(source=MAP)
    sign_in(page, flowhook, trigger)
    page.get_by_role("button", name="Capture next request").click()  # armed for 600 s
    status = page.locator("#capture-status")
    expect(status).to_contain_text("Waiting for a request")
    path = f"/triggers/{trigger['id']}"

    def polled(expires_at: str) -> Any:
        return lambda response: response.url.endswith(path) and response.json()["captureExpiresAt"] == expires_at

    armed = flowhook.ok(flowhook.api.post(f"{path}/capture", json={"expiresInSeconds": 4}))  # by a script
    with page.expect_response(polled(armed["expiresAt"])):
        pass  # the page's poll saw the new arming: it lapses in 4 s
    expect(status).to_contain_text("Capture is no longer armed: it lapsed at", timeout=15_000)


def test_the_focus_stays_on_send_test_once_sent(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger(source=MAP)
    flowhook.sample(trigger, body={"user": "u-1"})
    sign_in(page, flowhook, trigger)
    button = page.get_by_role("button", name="Send test")
    expect(button).to_be_enabled()
    button.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#send-test-status")).to_contain_text("Sent to nobody")
    expect(button).to_be_focused()


def test_the_focus_moves_to_the_next_sample_after_delete(page: Page, flowhook: Flowhook) -> None:
    trigger = flowhook.trigger(source=MAP)
    for user in ("u-1", "u-2", "u-3"):
        flowhook.sample(trigger, body={"user": user})
    sign_in(page, flowhook, trigger)
    rows = page.locator("#samples li")
    expect(rows).to_have_count(3)
    rows.nth(1).get_by_role("button", name="Delete").click()  # the middle one: u-2
    expect(rows).to_have_count(2)
    expect(rows.nth(1).get_by_role("button", name="Delete")).to_be_focused()  # u-1's, next in the list
    page.keyboard.press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.nth(0).get_by_role("button", name="Delete")).to_be_focused()  # the last one left
    page.keyboard.press("Enter")
    expect(page.locator("#samples")).to_contain_text("No samples yet")
    expect(page.get_by_role("button", name="Capture next request")).to_be_focused()


def test_send_test_on_a_live_trigger_is_judged_with_the_draft_variables(page: Page, flowhook: Flowhook) -> None:
    flow = flowhook.flow("Drafted", publish=True)  # published without variables
    draft = {"name": "Drafted", "variables": [{"name": "plan", "type": "string", "required": True}]}
    flowhook.ok(flowhook.api.put(f"/action-flows/{flow['id']}", json=draft))  # the draft requires one
    trigger = flowhook.trigger(flow, source=MAP, mode="live")
    flowhook.sample(trigger, body={"user": "u-1"})
    sign_in(page, flowhook, trigger)
    # Valid as a live request is mapped: with the published version's variables.
    expect(page.locator("#preview-status")).to_contain_text("Valid trigger request")
    expect(page.locator("#preview-status")).to_contain_text("the published version's variables")
    note = page.locator("#send-test-draft")
    expect(note).to_have_text(
        "Send test applies the draft's variables, which refuse this output: "
        "$.variables.plan required variable 'plan' is missing"
    )
    expect(page.get_by_role("button", name="Send test")).to_be_disabled()

    planned = "function map(r) {\n  return {targetUserIds: [r.body.user], variables: {plan: 'x'}};\n}"
    page.locator("#source").fill(planned)
    expect(page.get_by_role("button", name="Send test")).to_be_enabled()
    expect(note).to_be_hidden()
