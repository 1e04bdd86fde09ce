"""The editor's browser tests: a client of the server they drive, and signing in through the page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from playwright.sync_api import Page, expect

CHROMIUM = "/usr/bin/chromium"
TOKEN = "fh_admin_editor-test-token"


@dataclass
class Flowhook:
    url: str
    api: httpx.Client

    def flow(self, name: str = "Welcome", *, publish: bool = False) -> dict[str, Any]:
        flow: dict[str, Any] = self.ok(self.api.post("/action-flows", json={"name": name}))
        if publish:
            flow = self.ok(self.api.post(f"/action-flows/{flow['id']}/publish"))
        return flow

    def trigger(self, flow: dict[str, Any] | None = None, source: str | None = None, **body: Any) -> dict[str, Any]:
        """A trigger of `flow` (a new one by default): a webhook trigger unless `body` names another `type`."""
        flow = flow or self.flow()
        if source is not None:
            body["mapping"] = {"kind": "javascript", "source": source}
        trigger: dict[str, Any] = self.ok(self.api.post(f"/action-flows/{flow['id']}/triggers", json=body))
        return trigger

    def sample(self, trigger: dict[str, Any], **sample: Any) -> dict[str, Any]:
        pasted: dict[str, Any] = self.ok(self.api.post(f"/triggers/{trigger['id']}/samples", json=sample))
        return pasted

    def read(self, trigger: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = self.ok(self.api.get(f"/triggers/{trigger['id']}"))
        return found

    @staticmethod
    def ok(response: httpx.Response) -> Any:
        assert response.is_success, response.text
        return response.json()


def sign_in(page: Page, flowhook: Flowhook, trigger: dict[str, Any] | None = None) -> None:
    """Open the editor (on `trigger` by deep link) and sign in with the admin token."""
    page.goto(f"{flowhook.url}/editor" + (f"#trigger={trigger['id']}" if trigger else ""))
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#workspace")).to_be_visible()
    if trigger:
        expect(page.locator("#trigger-title")).to_have_text(f"Trigger {trigger['id']}")
        if trigger["type"] == "webhook":
            expect(page.locator("#hook-url")).to_have_value(trigger["url"])
