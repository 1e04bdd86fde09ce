"""An armed capture lapses: left armed (a closed editor tab), it would take the next production request of a
live trigger as a sample instead of starting the flow. Time is moved by replacing the store's clock, on
SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from store.clock import utcnow
from store.triggers import Revisions, hook_revisions, load_hook_target

pytestmark = pytest.mark.anyio

EVENT = orjson.dumps({"targetUserIds": ["u1"]})


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return {**either_database, "executor": False}  # the flows started need not run


def later(monkeypatch: pytest.MonkeyPatch, by: timedelta, *modules: str) -> None:
    """The clock of `modules` (where the store reads the time) moved on by `by`."""
    moment = utcnow() + by
    for module in modules:
        monkeypatch.setattr(f"{module}.utcnow", lambda: moment)


def parsed(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def live_trigger(flowhook: Any) -> dict[str, Any]:
    return await flowhook.trigger(await flowhook.flow(publish=True), mode="live")


async def test_a_capture_armed_on_a_live_trigger_lapses_and_its_requests_start_the_flow_again(
    flowhook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    trigger = await live_trigger(flowhook)
    url = f"/v1/default/triggers/{trigger['id']}"
    before = utcnow().replace(microsecond=0)  # the answer's times have milliseconds only
    armed = (await flowhook.api.post(f"{url}/capture")).json()
    assert (armed["armed"], armed["mode"]) == (True, "live")  # the editor warns of a live one
    expires_at = parsed(armed["expiresAt"])
    assert before + timedelta(minutes=10) <= expires_at <= utcnow() + timedelta(minutes=10)
    shown = (await flowhook.api.get(url)).json()
    assert (shown["captureArmed"], shown["captureExpiresAt"]) == (True, armed["expiresAt"])

    later(monkeypatch, timedelta(minutes=10, seconds=1), "store.triggers", "store.samples")
    shown = (await flowhook.api.get(url)).json()
    assert (shown["captureArmed"], shown["captureExpiresAt"]) == (False, None)
    answer = await flowhook.post(trigger, EVENT)
    assert answer.status_code == 202 and "flowInvocationId" in answer.json(), answer.text
    assert (await flowhook.api.get(f"{url}/samples")).json()["data"] == []


async def test_a_request_read_while_armed_that_arrives_after_the_lapse_runs_and_disarms(
    flowhook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its trigger's configuration says armed (read, or cached, before the lapse); taking the capture finds
    it lapsed, runs the request as usual, and disarms the trigger, so that cached configurations reload."""
    trigger = await live_trigger(flowhook)
    url = f"/v1/default/triggers/{trigger['id']}"
    await flowhook.api.post(f"{url}/capture", json={"expiresInSeconds": 60})
    revision = (await flowhook.api.get(url)).headers["etag"]
    later(monkeypatch, timedelta(seconds=61), "store.samples")  # the configuration is read as armed
    answer = await flowhook.post(trigger, EVENT)
    assert answer.status_code == 202 and "flowInvocationId" in answer.json(), answer.text
    monkeypatch.undo()
    shown = await flowhook.api.get(url)
    assert (shown.json()["captureArmed"], shown.json()["captureExpiresAt"]) == (False, None)
    assert shown.headers["etag"] != revision
    assert (await flowhook.api.get(f"{url}/samples")).json()["data"] == []


async def test_a_lapse_is_a_new_revision_whether_or_not_a_request_stores_it(
    flowhook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`captureArmed` is part of the trigger: its lapse moves the revision (the ETag) as a disarming does,
    updated when it lapsed, so that one ETag names one representation, read before the next request or after
    it; and a hook configuration cached while armed is read again (its revisions moved)."""
    trigger = await live_trigger(flowhook)
    url = f"/v1/default/triggers/{trigger['id']}"
    armed = (await flowhook.api.post(f"{url}/capture", json={"expiresInSeconds": 60})).json()
    revision = int((await flowhook.api.get(url)).headers["etag"].strip('"'))
    later(monkeypatch, timedelta(seconds=61), "store.triggers", "store.samples")
    lapsed = await flowhook.api.get(url)
    assert lapsed.headers["etag"] == f'"{revision + 1}"'
    shown = lapsed.json()
    assert (shown["captureArmed"], shown["captureExpiresAt"], shown["updatedAt"]) == (False, None, armed["expiresAt"])

    def revisions(conn: Any) -> tuple[Revisions | None, Revisions]:
        target = load_hook_target(conn, trigger["hookId"])
        assert target is not None
        return hook_revisions(conn, trigger["hookId"]), target.revisions

    checked, loaded = await flowhook.services.store.read(revisions)
    assert checked == loaded and loaded.trigger == revision + 1
    answer = await flowhook.post(trigger, EVENT)
    assert answer.status_code == 202 and "flowInvocationId" in answer.json(), answer.text
    after = await flowhook.api.get(url)
    assert (after.headers["etag"], after.json()) == (lapsed.headers["etag"], shown)


async def test_a_lapse_stored_by_a_request_read_while_armed_is_the_revision_a_read_shows(
    flowhook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    trigger = await live_trigger(flowhook)
    url = f"/v1/default/triggers/{trigger['id']}"
    armed = (await flowhook.api.post(f"{url}/capture", json={"expiresInSeconds": 60})).json()
    revision = int((await flowhook.api.get(url)).headers["etag"].strip('"'))
    later(monkeypatch, timedelta(seconds=61), "store.samples")  # the configuration is read as armed
    assert (await flowhook.post(trigger, EVENT)).status_code == 202
    later(monkeypatch, timedelta(seconds=61), "store.triggers")
    stored = await flowhook.api.get(url)
    assert stored.headers["etag"] == f'"{revision + 1}"'
    assert (stored.json()["captureArmed"], stored.json()["updatedAt"]) == (False, armed["expiresAt"])


async def test_a_change_made_after_the_lapse_is_made_against_the_lapsed_revision(
    flowhook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ETag read while armed names a representation that no longer holds: a 412, as for any change
    (the editor tells it from a conflict); the lapsed one's is the one to send."""
    trigger = await flowhook.trigger()
    url = f"/v1/default/triggers/{trigger['id']}"
    await flowhook.api.post(f"{url}/capture", json={"expiresInSeconds": 60})
    armed_tag = (await flowhook.api.get(url)).headers["etag"]
    later(monkeypatch, timedelta(seconds=61), "store.triggers", "store.samples")
    lapsed_tag = (await flowhook.api.get(url)).headers["etag"]
    stale = await flowhook.api.patch(url, json={"mode": "live"}, headers={"If-Match": armed_tag})
    assert (stale.status_code, stale.headers["etag"]) == (412, lapsed_tag), stale.text
    changed = await flowhook.api.patch(url, json={"mode": "live"}, headers={"If-Match": lapsed_tag})
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == f'"{int(lapsed_tag.strip(chr(34))) + 1}"'
    shown = await flowhook.api.get(url)
    assert (shown.headers["etag"], shown.json()) == (changed.headers["etag"], changed.json())
    assert (shown.json()["captureArmed"], shown.json()["mode"]) == (False, "live")


async def test_a_capture_within_its_time_is_taken_once(flowhook: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    trigger = await live_trigger(flowhook)
    url = f"/v1/default/triggers/{trigger['id']}"
    await flowhook.api.post(f"{url}/capture", json={"expiresInSeconds": 60})
    later(monkeypatch, timedelta(seconds=59), "store.triggers", "store.samples")
    assert (await flowhook.post(trigger, EVENT)).json()["captured"] is True
    assert "flowInvocationId" in (await flowhook.post(trigger, EVENT)).json()


async def test_arming_again_restarts_the_wait_and_disarming_clears_it(flowhook: Any) -> None:
    trigger = await flowhook.trigger()
    url = f"/v1/default/triggers/{trigger['id']}/capture"
    first = (await flowhook.api.post(url, json={"expiresInSeconds": 30})).json()
    assert parsed(first["expiresAt"]) <= utcnow() + timedelta(seconds=30)
    second = (await flowhook.api.post(url, json={"expiresInSeconds": 3600})).json()
    assert parsed(second["expiresAt"]) > utcnow() + timedelta(minutes=59)
    disarmed = (await flowhook.api.delete(url)).json()
    assert disarmed == {"triggerId": trigger["id"], "armed": False, "expiresAt": None, "mode": "test"}


@pytest.mark.parametrize("seconds", [2.0, 3600.0])
async def test_a_lifetime_written_as_an_integral_float_is_an_integer(flowhook: Any, seconds: float) -> None:
    """As JSON Schema's `type: integer`, which the document gives: `2.0` is 2 (a client may write any number
    so), and the expiry is that many seconds away."""
    trigger = await flowhook.trigger()
    before = utcnow().replace(microsecond=0)  # the answer's times have milliseconds only
    armed = await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/capture", json={"expiresInSeconds": seconds})
    assert armed.status_code == 200, armed.text
    expires_at = parsed(armed.json()["expiresAt"])
    assert before + timedelta(seconds=seconds) <= expires_at <= utcnow() + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("body", "code", "path"),
    [
        ({"expiresInSeconds": 0}, "invalid_field", "$.expiresInSeconds"),
        ({"expiresInSeconds": 3601}, "invalid_field", "$.expiresInSeconds"),
        ({"expiresInSeconds": "60"}, "invalid_field", "$.expiresInSeconds"),
        ({"expiresInSeconds": True}, "invalid_field", "$.expiresInSeconds"),
        ({"expiresInSeconds": 1.5}, "invalid_field", "$.expiresInSeconds"),
        ({"expiresInSeconds": 2.5}, "invalid_field", "$.expiresInSeconds"),
        ({"expiresInSeconds": 3601.0}, "invalid_field", "$.expiresInSeconds"),
        ({"expires": 60}, "unknown_field", "$.expires"),
    ],
)
async def test_a_lifetime_out_of_bounds_is_refused_and_arms_nothing(
    flowhook: Any, body: dict[str, Any], code: str, path: str
) -> None:
    trigger = await flowhook.trigger()
    refused = await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/capture", json=body)
    assert (refused.status_code, refused.json()["error"]["code"], refused.json()["error"]["path"]) == (422, code, path)
    assert (await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}")).json()["captureArmed"] is False
