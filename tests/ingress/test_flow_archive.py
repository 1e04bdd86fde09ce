"""Archiving a flow over HTTP: every door refuses to start it, and it stops keeping its card templates and segments.

The app runs without its background loops: each test drives the executor,
the event dispatcher and the bulk runner itself, so what an archived flow
starts (nothing) and what it had accepted before (run as usual) are seen
without timing. A real HTTP server on 127.0.0.1 (a thread: the conftest's
`receiver`) receives Marketo's callback. Runs on SQLite, and on PostgreSQL too when
FLOWHOOK_TEST_POSTGRES names a server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from flows.bulk_runner import BulkRunner, BulkRunnerConfig
from flows.dispatcher import EventDispatcher
from flows.executor import Executor, ExecutorConfig
from flows.marketo_callbacks import CallbackConfig, MarketoCallbacks
from flows.marketo_leads import MarketoLeads
from store.tables import bulk_tasks, invocations

pytestmark = pytest.mark.anyio

SFMC_SECRET = "sfmc-signing-secret-0123456789abcdefXYZW"
BY_KEY = {"kind": "jmespath", "fields": {"targetUserIds": "body.user", "flowInvocationId": "body.key"}}
_names = itertools.count()


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return {**either_database, "executor": False, "marketo_allow_http_callbacks": True}


@pytest.fixture(scope="module")
async def client(flowhook):
    """An OAuth2 client with the `events` role: /start, /test, /events and CSV tasks."""
    return await flowhook.api_client()


@pytest.fixture
def name() -> str:
    """A name of the test's own (users, segment cohorts), so that tests do not see each other's."""
    return f"arch-{next(_names)}"


async def ok(flowhook, method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
    response = await flowhook.api.request(method, f"/v1/default{url}", **kwargs)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def refused(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def archive(flowhook, flow: dict[str, Any], *, archived: bool = True) -> dict[str, Any]:
    action = "archive" if archived else "unarchive"
    return await ok(flowhook, "POST", f"/action-flows/{flow['id']}/{action}")  # type: ignore[no-any-return]


async def keys(flowhook, flow: dict[str, Any]) -> list[str]:
    """The flow's invocations, oldest first: nothing an archived flow refused is among them."""
    query = (
        sa.select(invocations.c.flow_invocation_id)
        .where(invocations.c.flow_id == flow["id"])
        .order_by(invocations.c.seq)
    )
    return list(await flowhook.services.store.read(lambda conn: conn.execute(query).scalars().all()))


async def run_invocations(flowhook) -> None:
    await Executor(flowhook.services.store, ExecutorConfig()).drain()


async def cards(flowhook, user: str) -> list[dict[str, Any]]:
    return (await ok(flowhook, "GET", f"/users/{user}/cards"))["data"]  # type: ignore[no-any-return]


async def put_customer(flowhook, user: str, **attributes: Any) -> None:
    response = await flowhook.api.put(f"/v1/default/customers/{user}", json={"attributes": attributes})
    assert response.status_code in (200, 201), response.text


async def cohort_segment(flowhook, cohort: str) -> dict[str, Any]:
    rules = {"all": [{"attribute": "cohort", "op": "eq", "value": cohort}]}
    return await ok(flowhook, "POST", "/segments", 201, json={"name": cohort, "rules": rules})  # type: ignore[no-any-return]


# --- archiving, listing, editing ---


async def test_archiving_and_unarchiving_are_idempotent_and_show_in_the_flow(flowhook) -> None:
    flow = await flowhook.flow(publish=True)
    assert (flow["archived"], flow["archivedAt"]) == (False, None)
    archived = await archive(flowhook, flow)
    assert archived["archived"] is True and archived["archivedAt"].endswith("Z")
    assert (archived["id"], archived["publishedVersion"], archived["name"]) == (flow["id"], 1, "Welcome")
    assert await archive(flowhook, flow) == archived  # archived once: the time it was archived stays
    assert await ok(flowhook, "GET", f"/action-flows/{flow['id']}") == archived
    restored = await archive(flowhook, flow, archived=False)
    assert (restored["archived"], restored["archivedAt"], restored["publishedVersion"]) == (False, None, 1)
    assert await archive(flowhook, flow, archived=False) == restored


async def test_archiving_needs_the_admin_token_and_an_existing_flow(flowhook) -> None:
    flow = await flowhook.flow()
    assert refused(await flowhook.api.post("/v1/default/action-flows/flw_nope/archive")) == (404, "flow_not_found")
    assert refused(await flowhook.api.post("/v1/default/action-flows/flw_nope/unarchive")) == (404, "flow_not_found")
    anonymous = await flowhook.sender().post(f"/v1/default/action-flows/{flow['id']}/archive")
    assert anonymous.status_code == 401
    assert (await ok(flowhook, "GET", f"/action-flows/{flow['id']}"))["archived"] is False


async def test_the_listing_leaves_archived_flows_out_unless_asked_for_them(flowhook) -> None:
    kept, retired = await flowhook.flow(name="kept"), await flowhook.flow(name="retired")
    await archive(flowhook, retired)

    async def listed(**params: str) -> list[dict[str, Any]]:
        return (await ok(flowhook, "GET", "/action-flows", params=params))["data"]  # type: ignore[no-any-return]

    active = await listed()
    assert kept["id"] in [flow["id"] for flow in active] and retired["id"] not in [flow["id"] for flow in active]
    assert not any(flow["archived"] for flow in active)
    assert await listed(archived="false") == active
    archived = await listed(archived="true")
    assert retired["id"] in [flow["id"] for flow in archived] and kept["id"] not in [flow["id"] for flow in archived]
    assert all(flow["archived"] for flow in archived)
    wrong = await flowhook.api.get("/v1/default/action-flows", params={"archived": "yes"})
    assert refused(wrong) == (400, "invalid_parameter")


async def test_an_archived_flow_is_not_edited_published_or_given_triggers(flowhook) -> None:
    flow = await flowhook.flow(publish=True)
    url = f"/v1/default/action-flows/{flow['id']}"
    await archive(flowhook, flow)
    assert refused(await flowhook.api.put(url, json={"name": "Renamed"})) == (409, "flow_archived")
    assert refused(await flowhook.api.post(f"{url}/publish")) == (409, "flow_archived")
    assert refused(await flowhook.api.post(f"{url}/triggers", json={"mode": "live"})) == (409, "flow_archived")
    unchanged = await ok(flowhook, "GET", f"/action-flows/{flow['id']}")
    assert (unchanged["name"], unchanged["draftRevision"], unchanged["publishedVersion"]) == ("Welcome", 1, 1)
    assert [
        trigger["type"] for trigger in (await ok(flowhook, "GET", f"/action-flows/{flow['id']}/triggers"))["data"]
    ] == ["api"]
    await archive(flowhook, flow, archived=False)
    assert (await ok(flowhook, "PUT", f"/action-flows/{flow['id']}", json={"name": "Renamed"}))["name"] == "Renamed"
    assert (await ok(flowhook, "POST", f"/action-flows/{flow['id']}/publish"))["publishedVersion"] == 2


async def test_the_environments_trigger_listing_still_shows_an_archived_flows_triggers(flowhook) -> None:
    """Its URLs still answer (with a refusal); the editor lists the flows of `GET /action-flows`, so not them."""
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow)
    await archive(flowhook, flow)
    listed = await ok(flowhook, "GET", "/triggers", params={"flowId": flow["id"]})
    assert [found["id"] for found in listed["data"]] == [trigger["id"], f"api_{flow['id']}"]


# --- every door refuses ---


async def test_a_webhook_for_an_archived_flow_is_a_logged_409_and_a_repeat_gets_its_first_answer(
    flowhook, name: str
) -> None:
    flow = await flowhook.card_flow()
    live = await flowhook.trigger(flow, mode="live", mapping=BY_KEY)
    test = await flowhook.trigger(flow, mode="test", mapping=BY_KEY)
    first = json.dumps({"user": name, "key": "k1"})
    accepted = await flowhook.post(live, first)
    assert accepted.status_code == 202, accepted.text
    await archive(flowhook, flow)
    for trigger in (live, test):
        response = await flowhook.post(trigger, json.dumps({"user": name, "key": "k2"}))
        assert refused(response) == (409, "flow_archived")
        assert response.json()["error"]["requestId"].startswith("req_")
        newest = (await flowhook.log(trigger))[0]
        assert (newest["status"], newest["cause"], newest["invocationId"]) == (409, "flow_archived", None)
    repeat = await flowhook.post(live, first)  # the sender's retry of what was accepted before the archive
    assert (repeat.status_code, repeat.headers.get("idempotent-replayed")) == (202, "true")
    assert repeat.json() == accepted.json()
    assert await keys(flowhook, flow) == ["k1"]
    await run_invocations(flowhook)  # accepted before the archive: it runs as it would have
    assert [card["flowInvocationId"] for card in await cards(flowhook, name)] == ["k1"]
    await archive(flowhook, flow, archived=False)
    assert (await flowhook.post(live, json.dumps({"user": name, "key": "k2"}))).status_code == 202


async def test_a_replay_of_a_logged_request_is_refused_too(flowhook, name: str) -> None:
    flow = await flowhook.card_flow()
    trigger = await flowhook.trigger(flow, mode="live", mapping=BY_KEY)
    accepted = await flowhook.post(trigger, json.dumps({"user": name}))
    await archive(flowhook, flow)
    replay = await ok(flowhook, "POST", f"/requests/{accepted.json()['requestId']}/replay")
    assert (replay["status"], replay["cause"]) == (409, "flow_archived")


async def test_start_and_test_of_an_archived_flow_are_refused_and_store_nothing(flowhook, client, name: str) -> None:
    flow = await flowhook.card_flow()
    await ok(flowhook, "POST", "/test-users", 201, json={"userId": name})
    await archive(flowhook, flow)
    body = {"flows": [{"target": {"usersById": [name]}, "flowInvocationId": "api-1"}]}
    for route in ("start", "test"):
        response = await client.post(f"/v1/default/action-flow/{flow['id']}/{route}", json=body)
        assert refused(response) == (409, "flow_archived"), route
    assert await keys(flowhook, flow) == []


async def test_event_and_segment_deliveries_for_an_archived_flow_are_skipped(flowhook, client, name: str) -> None:
    flow = await flowhook.card_flow()
    segment = await cohort_segment(flowhook, name)
    by_event = await flowhook.trigger(flow, type="event", eventName=name, mode="live")
    by_segment = await flowhook.trigger(flow, type="segment", segmentId=segment["id"], mode="live")
    await archive(flowhook, flow)
    sent = await client.post("/v1/default/events", json={"eventName": name, "endUserId": f"{name}-a"})
    assert sent.status_code == 202, sent.text
    await put_customer(flowhook, f"{name}-b", cohort=name)  # enters the segment
    await EventDispatcher(flowhook.services.store, flowhook.services.runner).drain()
    for trigger in (by_event, by_segment):
        [delivery] = (await ok(flowhook, "GET", f"/triggers/{trigger['id']}/deliveries"))["data"]
        assert (delivery["status"], delivery["cause"], delivery["invocationId"]) == ("skipped", "flow_archived", None)
    assert await keys(flowhook, flow) == []


async def test_manual_starts_and_csv_tasks_for_an_archived_flow_are_refused(flowhook, client, name: str) -> None:
    flow = await flowhook.card_flow()
    await archive(flowhook, flow)
    manual = await flowhook.api.post(f"/v1/default/action-flows/{flow['id']}/manual-starts", json={"userIds": [name]})
    csv_url = f"/v1/default/action-flow/{flow['id']}/csv-task"
    csv_headers = {"content-type": "text/csv"}
    live = await client.post(csv_url, content=b"target.attributes.plan\npro\n", headers=csv_headers)
    sender_file = f"flowConfigId,payload.target.usersById\n,{name}\n".encode()
    test = await client.post(f"{csv_url}/test", content=sender_file, headers=csv_headers)
    for response in (manual, live, test):
        assert refused(response) == (409, "flow_archived")
    query = sa.select(sa.func.count()).select_from(bulk_tasks).where(bulk_tasks.c.flow_id == flow["id"])
    assert await flowhook.services.store.read(lambda conn: conn.execute(query).scalar_one()) == 0


async def test_a_task_under_way_when_its_flow_is_archived_starts_no_more_rows(flowhook, name: str) -> None:
    flow = await flowhook.card_flow()
    users = [f"{name}-{n}" for n in range(3)]
    for user in users:
        await put_customer(flowhook, user, plan="pro")
    task = await ok(flowhook, "POST", f"/action-flows/{flow['id']}/manual-starts", 202, json={"userIds": users})
    runner = BulkRunner(flowhook.services.store, BulkRunnerConfig(chunk_size=1))
    assert await runner.step() == 1  # the first customer's run is started
    await archive(flowhook, flow)
    await runner.drain()
    view = await ok(flowhook, "GET", f"/bulk-tasks/{task['id']}")
    assert (view["status"], view["processed"], view["started"]) == ("done", 3, 1)
    archived = {"code": "flow_archived", "reason": "the flow is archived"}
    assert view["skipped"] == [{"userId": users[1], **archived}, {"userId": users[2], **archived}]
    assert len(await keys(flowhook, flow)) == 1


async def test_a_test_sender_row_naming_an_archived_flow_is_skipped(flowhook, client, name: str) -> None:
    own, retired = await flowhook.card_flow(publish=False), await flowhook.card_flow(publish=False)
    await ok(flowhook, "POST", "/test-users", 201, json={"userId": name})
    await archive(flowhook, retired)
    text = f"flowConfigId,payload.target.usersById\n,{name}\n{retired['id']},{name}\n"
    url = f"/v1/default/action-flow/{own['id']}/csv-task/test"
    response = await client.post(url, content=text.encode(), headers={"content-type": "text/csv"})
    assert response.status_code == 202, response.text
    await BulkRunner(flowhook.services.store, BulkRunnerConfig()).drain()
    view = await ok(flowhook, "GET", f"/bulk-tasks/{response.json()['id']}")
    assert (view["status"], view["started"]) == ("done", 1)
    assert view["skipped"] == [{"row": 3, "code": "flow_archived", "reason": "the flow is archived"}]
    assert await keys(flowhook, retired) == []


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sfmc_jwt(claims: dict[str, Any]) -> str:
    """What Journey Builder posts: the claims, HS256-signed with the package's signing secret."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64url(json.dumps(claims).encode())}"
    signature = hmac.new(SFMC_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


async def test_a_journey_builder_execute_for_an_archived_flow_is_refused(flowhook, name: str) -> None:
    flow = await flowhook.card_flow()
    trigger = await flowhook.trigger(flow, type="sfmc", signingSecret=SFMC_SECRET, mode="live")
    await archive(flowhook, flow)
    claims = {"inArguments": [{"userId": name}], "activityInstanceId": str(uuid.uuid4()), "keyValue": name}
    response = await flowhook.sender().post(
        f"/sfmc/{trigger['hookId']}/execute", content=sfmc_jwt(claims), headers={"content-type": "application/jwt"}
    )
    assert refused(response) == (409, "flow_archived")
    assert await keys(flowhook, flow) == []


async def test_marketo_submissions_are_refused_and_a_stored_batch_reports_its_leads_archived(
    flowhook, receiver, name: str
) -> None:
    flow = await flowhook.card_flow()
    trigger = await flowhook.trigger(flow, type="marketo", mode="live")
    url = trigger["serviceUrl"].removeprefix("http://flowhook.test") + "submitAsyncAction"

    async def submit(token: str) -> Any:
        body = {
            "token": token,
            "apiCallBackKey": "callback-key",
            "callbackUrl": receiver.url,
            "objectData": [{"objectType": "lead", "objectContext": {"id": 7, "userId": name}}],
        }
        return await flowhook.sender().post(url, json=body, headers={"x-api-key": trigger["apiKey"]})

    stored = await submit(f"{name}-before")
    assert stored.status_code == 201, stored.text
    await archive(flowhook, flow)
    assert refused(await submit(f"{name}-after")) == (409, "flow_archived")
    store = flowhook.services.store
    callbacks = MarketoCallbacks(store, CallbackConfig(allow_http=True, retry_seconds=0))
    await BulkRunner(store, marketo=(MarketoLeads(store, flowhook.services.runner), callbacks)).drain()
    [(_, sent)] = receiver.calls
    activity = sent["objectData"][0]["activityData"]
    assert (activity["success"], activity["errorCode"]) == (False, "FLOW_ARCHIVED")
    assert await keys(flowhook, flow) == []


# --- retiring: card templates and segments ---


async def test_a_card_template_only_archived_flows_send_can_be_deleted_once_their_runs_started(
    flowhook, name: str
) -> None:
    """The QA finding: a template sent by any version of a published flow could never be deleted."""
    flow = await flowhook.card_flow()
    template_url = f"/v1/default/card-templates/{flow['steps'][0]['cardTemplateId']}"
    trigger = await flowhook.trigger(flow, mode="live", mapping=BY_KEY)
    assert (await flowhook.post(trigger, json.dumps({"user": name, "key": "pending"}))).status_code == 202
    assert refused(await flowhook.api.delete(template_url)) == (409, "card_template_in_use")
    await archive(flowhook, flow)
    assert refused(await flowhook.api.delete(template_url)) == (409, "card_template_in_use")  # a run is still to start
    await run_invocations(flowhook)
    assert (await flowhook.api.delete(template_url)).status_code == 204
    assert [card["definition"]["title"] for card in await cards(flowhook, name)] == ["Hi"]  # sent cards keep their copy


async def test_a_segment_only_archived_flows_trigger_on_can_be_deleted_and_their_triggers_go_with_it(
    flowhook, name: str
) -> None:
    """The QA finding: a segment a published flow's trigger named could never be deleted."""
    segment = await cohort_segment(flowhook, name)
    retired, active = await flowhook.flow(publish=True), await flowhook.flow(publish=True)
    retired_trigger = await flowhook.trigger(retired, type="segment", segmentId=segment["id"], mode="live")
    active_trigger = await flowhook.trigger(active, type="segment", segmentId=segment["id"], mode="live")
    await archive(flowhook, retired)
    segment_url = f"/v1/default/segments/{segment['id']}"
    in_use = await flowhook.api.delete(segment_url)
    assert refused(in_use) == (409, "segment_in_use")
    message = in_use.json()["error"]["message"]
    assert active_trigger["id"] in message and retired_trigger["id"] not in message
    await ok(flowhook, "GET", f"/triggers/{retired_trigger['id']}")  # kept while the segment is
    await ok(flowhook, "DELETE", f"/triggers/{active_trigger['id']}", 204)
    await ok(flowhook, "DELETE", f"/segments/{segment['id']}", 204)
    assert refused(await flowhook.api.get(f"/v1/default/triggers/{retired_trigger['id']}")) == (
        404,
        "trigger_not_found",
    )
    await archive(flowhook, retired, archived=False)
    listed = await ok(flowhook, "GET", f"/action-flows/{retired['id']}/triggers")
    assert [trigger["type"] for trigger in listed["data"]] == ["api"]


async def test_the_openapi_document_describes_archiving(flowhook) -> None:
    document = (await flowhook.api.get("/openapi.json")).json()
    paths = document["paths"]
    for action in ("archive", "unarchive"):
        operation = paths[f"/v1/{{env}}/action-flows/{{flowId}}/{action}"]["post"]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Flow"
        }
    listing = paths["/v1/{env}/action-flows"]["get"]
    assert "archived" in [parameter["name"] for parameter in listing["parameters"]]
    flow = document["components"]["schemas"]["Flow"]["properties"]
    assert flow["archived"]["type"] == "boolean" and "archivedAt" in flow
