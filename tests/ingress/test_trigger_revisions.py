"""Optimistic concurrency on triggers: every answer showing one trigger carries its revision as `ETag`, and a
PATCH with `If-Match` applies only to that revision (412 `precondition_failed` otherwise); without the header a
PATCH applies as it always did."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.anyio

MAPPING = {"kind": "jmespath", "fields": {"targetUserIds": "body.user"}}
OTHER = {"kind": "jmespath", "fields": {"targetUserIds": "body.other"}}


def url(trigger: dict[str, Any]) -> str:
    return f"/v1/default/triggers/{trigger['id']}"


async def created(flowhook: Any) -> dict[str, Any]:
    """A new webhook trigger at revision 1."""
    flow = await flowhook.flow()
    answer = await flowhook.api.post(f"/v1/default/action-flows/{flow['id']}/triggers", json={"mapping": MAPPING})
    assert (answer.status_code, answer.headers["etag"]) == (201, '"1"')
    trigger: dict[str, Any] = answer.json()
    return trigger


async def test_every_answer_showing_a_trigger_carries_its_revision_as_etag(flowhook) -> None:
    trigger = await created(flowhook)
    assert (await flowhook.api.get(url(trigger))).headers["etag"] == '"1"'
    patched = await flowhook.api.patch(url(trigger), json={"mode": "live"})
    assert (patched.status_code, patched.headers["etag"]) == (200, '"2"')
    assert (await flowhook.api.get(url(trigger))).headers["etag"] == '"2"'


async def test_if_match_with_the_current_revision_applies_the_change(flowhook) -> None:
    trigger = await created(flowhook)
    patched = await flowhook.api.patch(url(trigger), json={"mapping": OTHER}, headers={"If-Match": '"1"'})
    assert (patched.status_code, patched.headers["etag"], patched.json()["mapping"]) == (200, '"2"', OTHER)


async def test_a_stale_if_match_is_412_with_the_current_revision_and_changes_nothing(flowhook) -> None:
    """Two admins read revision 1; the second save no longer overwrites the first one's silently."""
    trigger = await created(flowhook)
    first = await flowhook.api.patch(url(trigger), json={"mode": "live"}, headers={"If-Match": '"1"'})
    assert first.status_code == 200
    second = await flowhook.api.patch(url(trigger), json={"mapping": OTHER}, headers={"If-Match": '"1"'})
    assert (second.status_code, second.headers["etag"]) == (412, '"2"')
    error = second.json()["error"]
    assert (error["code"], error["revision"]) == ("precondition_failed", 2)
    assert "revision 2" in error["message"]
    now = await flowhook.api.get(url(trigger))
    assert (now.headers["etag"], now.json()["mode"], now.json()["mapping"]) == ('"2"', "live", MAPPING)


async def test_without_if_match_a_change_applies_whatever_the_revision(flowhook) -> None:
    trigger = await created(flowhook)
    await flowhook.api.patch(url(trigger), json={"mode": "live"})
    patched = await flowhook.api.patch(url(trigger), json={"mapping": OTHER})
    assert (patched.status_code, patched.json()["mapping"], patched.headers["etag"]) == (200, OTHER, '"3"')


async def test_the_precondition_is_checked_before_the_body(flowhook) -> None:
    """RFC 9110 §13.2.2: a stale If-Match is a 412 even when the change itself would be refused."""
    trigger = await created(flowhook)
    await flowhook.api.patch(url(trigger), json={"mode": "live"})
    invalid = {"kind": "javascript", "source": "function map(r) { return {; }"}
    answer = await flowhook.api.patch(url(trigger), json={"mapping": invalid}, headers={"If-Match": '"1"'})
    assert (answer.status_code, answer.json()["error"]["code"]) == (412, "precondition_failed")


@pytest.mark.parametrize("if_match", ["*", '"2"', '"7", "2"', 'W/"1", "2"', '"7",  "2"  '])
async def test_any_strong_tag_of_a_list_or_a_star_matches(flowhook, if_match: str) -> None:
    trigger = await created(flowhook)
    await flowhook.api.patch(url(trigger), json={"mode": "live"})
    answer = await flowhook.api.patch(url(trigger), json={"mode": "test"}, headers={"If-Match": if_match})
    assert (answer.status_code, answer.headers["etag"]) == (200, '"3"')


async def test_a_weak_tag_never_matches_and_the_412_says_why(flowhook) -> None:
    """If-Match compares strongly (RFC 9110 §13.1.1); a compressing proxy may have weakened the ETag it passed on."""
    trigger = await created(flowhook)
    answer = await flowhook.api.patch(url(trigger), json={"mode": "live"}, headers={"If-Match": 'W/"1"'})
    assert answer.status_code == 412
    assert 'weak tag (W/"…") never matches' in answer.json()["error"]["message"]
    assert (await flowhook.api.get(url(trigger))).json()["mode"] == "test"


@pytest.mark.parametrize("if_match", ["1", "'1'", '"1', '"1" "2"', "", '"1",,'])
async def test_an_if_match_that_is_not_entity_tags_is_400(flowhook, if_match: str) -> None:
    trigger = await created(flowhook)
    answer = await flowhook.api.patch(url(trigger), json={"mode": "live"}, headers={"If-Match": if_match})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_if_match")
    assert (await flowhook.api.get(url(trigger))).json()["mode"] == "test"


async def test_arming_capture_is_a_new_revision(flowhook) -> None:
    """Capture state is part of the trigger (`captureArmed`): a client holding the old ETag is told it changed."""
    trigger = await created(flowhook)
    await flowhook.api.post(f"{url(trigger)}/capture")
    read = await flowhook.api.get(url(trigger))
    assert (read.headers["etag"], read.json()["captureArmed"]) == ('"2"', True)
    stale = await flowhook.api.patch(url(trigger), json={"mode": "live"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412


async def test_an_api_trigger_has_no_etag_and_stays_not_editable(flowhook) -> None:
    flow = await flowhook.flow()
    api_url = f"/v1/default/triggers/api_{flow['id']}"
    read = await flowhook.api.get(api_url)
    assert read.status_code == 200 and "etag" not in read.headers
    patched = await flowhook.api.patch(api_url, json={"mode": "live"}, headers={"If-Match": '"1"'})
    assert (patched.status_code, patched.json()["error"]["code"]) == (409, "api_trigger_not_editable")


async def test_an_unknown_trigger_is_404_whatever_if_match_says(flowhook) -> None:
    answer = await flowhook.api.patch("/v1/default/triggers/trg_nope", json={"mode": "live"}, headers={"If-Match": "*"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "trigger_not_found")


async def test_openapi_describes_the_etag_and_if_match(flowhook) -> None:
    document = (await flowhook.sender().get("/openapi.json")).json()
    one = document["paths"]["/v1/{env}/triggers/{triggerId}"]
    assert "ETag" in one["get"]["responses"]["200"]["headers"]
    patch = one["patch"]
    assert [parameter["name"] for parameter in patch["parameters"]] == ["If-Match"]
    assert {"200", "400", "412"} <= set(patch["responses"]) and "ETag" in patch["responses"]["200"]["headers"]
    assert "revision" in document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
