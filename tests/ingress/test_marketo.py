"""Marketo triggers over HTTP: the service definition, status, submitAsyncAction, and the callback.

The app runs without its background loops; each test drives the bulk runner
(with Marketo's planner and callback sender) and the executor itself, as
tests/ingress/test_bulk_resume.py does, so nothing depends on timing. A real
HTTP server on 127.0.0.1 (a thread: the conftest's `receiver`) receives the
callbacks. Runs on SQLite, and on PostgreSQL too when FLOWHOOK_TEST_POSTGRES
names a server.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from flows.bulk_runner import BulkRunner, BulkRunnerConfig
from flows.executor import Executor, ExecutorConfig
from flows.marketo_callbacks import CallbackConfig, MarketoCallbacks
from flows.marketo_leads import MarketoLeads
from store.tables import bulk_tasks, invocations

pytestmark = pytest.mark.anyio

_users = itertools.count()
_tokens = itertools.count()


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return {**either_database, "executor": False, "marketo_allow_http_callbacks": True}


async def ok(flowhook, method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
    response = await flowhook.api.request(method, f"/v1/default{url}", **kwargs)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def marketo_trigger(flowhook, **body: Any) -> dict[str, Any]:
    flow = await flowhook.card_flow()
    url = f"/action-flows/{flow['id']}/triggers"
    return await ok(flowhook, "POST", url, 201, json={"type": "marketo", **body})  # type: ignore[no-any-return]


async def test_user(flowhook) -> str:
    user = f"mkto-{next(_users)}"
    await ok(flowhook, "POST", "/test-users", 201, json={"userId": user})
    return user


def submission(callback_url: str, leads: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """What Marketo posts to submitAsyncAction: one objectData item per lead."""
    return {
        "token": f"one-time-token-{next(_tokens)}",
        "apiCallBackKey": "callback-key-123",
        "callbackUrl": callback_url,
        "batchId": "batch-1",
        "campaignId": 1234,
        "context": {"subscription": {"munchkinId": "123-ABC-456"}},
        "campaignContext": {"id": 1234, "name": "Spring"},
        "objectData": [
            {"objectType": "lead", "objectContext": lead, "flowStepContext": {"userIdField": "externalId"}}
            for lead in leads
        ],
        **extra,
    }


async def submit(flowhook, trigger: dict[str, Any], body: Any, key: str | None = None) -> Any:
    url = trigger["serviceUrl"].removeprefix("http://flowhook.test") + "submitAsyncAction"
    headers = {"x-api-key": key if key is not None else trigger["apiKey"]}
    return await flowhook.sender().post(url, json=body, headers=headers)


def runner(flowhook, *, attempts: int = 3, chunk_size: int = 200) -> BulkRunner:
    store = flowhook.services.store
    callbacks = MarketoCallbacks(store, CallbackConfig(allow_http=True, attempts=attempts, retry_seconds=0))
    marketo = (MarketoLeads(store, flowhook.services.runner), callbacks)
    return BulkRunner(store, BulkRunnerConfig(chunk_size=chunk_size), marketo=marketo)


async def run_all(flowhook, bulk: BulkRunner | None = None) -> None:
    """Leads, callbacks, then the runs they started."""
    await (bulk or runner(flowhook)).drain()
    await Executor(flowhook.services.store, ExecutorConfig()).drain()


async def cards(flowhook, user: str) -> list[dict[str, Any]]:
    return (await ok(flowhook, "GET", f"/users/{user}/cards"))["data"]  # type: ignore[no-any-return]


async def task_view(flowhook, task_id: str) -> dict[str, Any]:
    return await ok(flowhook, "GET", f"/bulk-tasks/{task_id}")  # type: ignore[no-any-return]


async def stored(flowhook, flow_id: str) -> list[dict[str, Any]]:
    query = sa.select(invocations).where(invocations.c.flow_id == flow_id)
    rows = await flowhook.services.store.read(lambda conn: conn.execute(query).all())
    return [dict(row._mapping) for row in rows]


async def test_the_trigger_shows_its_api_key_once_and_its_service_urls(flowhook) -> None:
    trigger = await marketo_trigger(flowhook)
    key = trigger["apiKey"]
    assert len(key) >= 32
    service = trigger["serviceUrl"]
    assert service.startswith("http://flowhook.test/marketo/") and service.endswith("/")
    assert trigger["serviceDefinitionUrl"] == f"{service}serviceDefinition.json"
    assert (trigger["type"], trigger["mode"]) == ("marketo", "test")
    assert trigger["mapping"] == {"kind": "jmespath", "fields": {"targetUserIds": "body.userId"}}
    again = await ok(flowhook, "GET", f"/triggers/{trigger['id']}")
    assert again["apiKey"] == "••••" + key[-4:]
    assert key not in orjson.dumps(await ok(flowhook, "GET", f"/action-flows/{trigger['flowId']}/triggers")).decode()


async def test_a_marketo_trigger_has_no_webhook_url_nor_webhook_settings(flowhook) -> None:
    trigger = await marketo_trigger(flowhook)
    key = trigger["serviceUrl"].rstrip("/").rsplit("/", 1)[1]
    response = await flowhook.sender().post(f"/hooks/{key}", json={"targetUserIds": ["u"]})
    assert response.status_code == 404
    patched = await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"verification": {}})
    assert patched.status_code == 422


async def test_the_service_definition_names_the_paths_and_the_api_key_header(flowhook) -> None:
    trigger = await marketo_trigger(flowhook)
    url = trigger["serviceDefinitionUrl"].removeprefix("http://flowhook.test")
    document = (await flowhook.sender().get(url)).json()
    assert document["x-schemaVersion"] and document["servers"] == [{"url": trigger["serviceUrl"]}]
    assert {"/submitAsyncAction", "/getServiceDefinition", "/status"} <= set(document["paths"])
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    base = trigger["serviceUrl"].removeprefix("http://flowhook.test")
    definition = await flowhook.sender().get(f"{base}getServiceDefinition", headers={"x-api-key": trigger["apiKey"]})
    body = definition.json()
    assert body["invocationEndpoint"] == f"{trigger['serviceUrl']}submitAsyncAction"
    assert body["authSetting"] == {"authType": "apiKey", "headerName": "x-api-key"}
    assert [a["apiName"] for a in body["invocationPayloadDef"]["flowAttributes"]] == ["userIdField"]
    assert (await flowhook.sender().get(f"{base}getServiceDefinition")).status_code == 401


async def test_status_needs_the_api_key(flowhook) -> None:
    trigger = await marketo_trigger(flowhook)
    url = trigger["serviceUrl"].removeprefix("http://flowhook.test") + "status"
    answered = await flowhook.sender().get(url, headers={"x-api-key": trigger["apiKey"]})
    assert answered.status_code == 200 and answered.json()["status"] == "ok"
    for headers in ({}, {"x-api-key": "wrong"}):
        refused = await flowhook.sender().get(url, headers=headers)
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "api_key_invalid")


async def status_of(flowhook, trigger: dict[str, Any]) -> dict[str, Any]:
    url = trigger["serviceUrl"].removeprefix("http://flowhook.test") + "status"
    answered = await flowhook.sender().get(url, headers={"x-api-key": trigger["apiKey"]})
    assert answered.status_code == 200, answered.text
    return answered.json()  # type: ignore[no-any-return]


async def test_status_reports_a_flow_that_will_fail_every_lead_as_an_error(flowhook) -> None:
    """Marketo polls `status` nightly and logs its errors: a flow step that can start nothing must say so."""
    unpublished = await flowhook.card_flow(publish=False)
    live = await ok(
        flowhook, "POST", f"/action-flows/{unpublished['id']}/triggers", 201, json={"type": "marketo", "mode": "live"}
    )
    answered = await status_of(flowhook, live)
    assert (answered["status"], answered["warnings"]) == ("error", [])
    assert answered["errors"] == ["the Action Flow is not published: every lead fails (FLOW_NOT_PUBLISHED) until it is"]
    test = await ok(flowhook, "POST", f"/action-flows/{unpublished['id']}/triggers", 201, json={"type": "marketo"})
    assert (await status_of(flowhook, test))["errors"] == []  # a test run uses the draft
    await ok(flowhook, "POST", f"/action-flows/{unpublished['id']}/publish")
    assert (await status_of(flowhook, live))["status"] == "ok"
    await ok(flowhook, "POST", f"/action-flows/{unpublished['id']}/archive")
    archived = await status_of(flowhook, live)
    assert (archived["status"], archived["errors"]) == (
        "error",
        ["the Action Flow is archived: every lead fails (FLOW_ARCHIVED) until it is unarchived"],
    )


async def test_a_batch_for_an_archived_flow_is_refused_in_the_senders_terms(flowhook, receiver) -> None:
    trigger = await marketo_trigger(flowhook, mode="live")
    await ok(flowhook, "POST", f"/action-flows/{trigger['flowId']}/archive")
    refused = await submit(flowhook, trigger, submission(receiver.url, [{"id": 1, "externalId": "u"}]))
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "flow_archived")
    message = refused.json()["error"]["message"]
    assert trigger["flowId"] not in message and "unarchive" not in message  # the admin API is not Marketo's business


async def test_a_batch_starts_the_flows_and_calls_back_with_every_lead(flowhook, receiver) -> None:
    trigger = await marketo_trigger(flowhook)
    ann, bob = await test_user(flowhook), await test_user(flowhook)
    leads = [{"id": 11, "externalId": ann}, {"id": 12, "email": "no-id@example.com"}, {"id": 13, "externalId": bob}]
    body = submission(receiver.url, leads)
    response = await submit(flowhook, trigger, body)
    assert response.status_code == 201, response.text
    task_id = response.json()["taskId"]
    assert (await task_view(flowhook, task_id))["callback"]["status"] == "pending"
    await run_all(flowhook)
    assert len(await cards(flowhook, ann)) == 1 and len(await cards(flowhook, bob)) == 1
    [(headers, sent)] = receiver.calls
    assert (headers["x-api-key"], headers["x-callback-token"]) == ("callback-key-123", body["token"])
    assert headers["content-type"] == "application/json"
    assert (sent["munchkinId"], sent["token"]) == ("123-ABC-456", body["token"]) and sent["time"]
    assert [item["leadData"] for item in sent["objectData"]] == [{"id": 11}, {"id": 12}, {"id": 13}]
    activities = [item["activityData"] for item in sent["objectData"]]
    assert activities[0] == activities[2] == {"success": True}
    assert (activities[1]["success"], activities[1]["errorCode"]) == (False, "VALIDATION_ERROR")
    task = await task_view(flowhook, task_id)
    assert (task["kind"], task["status"], task["processed"], task["started"]) == ("marketo", "done", 3, 2)
    assert [(item["lead"], item["leadId"], item["code"]) for item in task["skipped"]] == [(2, 12, "validation_error")]
    assert (task["callback"]["status"], task["callback"]["attempts"], task["callback"]["httpStatus"]) == (
        "sent",
        1,
        200,
    )
    assert "callback-key-123" not in orjson.dumps(task).decode()


async def test_a_resubmitted_batch_starts_nothing_new_and_reports_success(flowhook, receiver) -> None:
    trigger = await marketo_trigger(flowhook)
    user = await test_user(flowhook)
    body = submission(receiver.url, [{"id": 21, "externalId": user}])
    for _ in range(2):
        assert (await submit(flowhook, trigger, body)).status_code == 201
        await run_all(flowhook)
    assert len(await stored(flowhook, trigger["flowId"])) == 1
    assert len(await cards(flowhook, user)) == 1
    assert [sent["objectData"][0]["activityData"] for _, sent in receiver.calls] == [{"success": True}] * 2


async def test_a_live_trigger_of_an_unpublished_flow_reports_every_lead_failed(flowhook, receiver) -> None:
    flow = await flowhook.card_flow(publish=False)
    trigger = await ok(
        flowhook, "POST", f"/action-flows/{flow['id']}/triggers", 201, json={"type": "marketo", "mode": "live"}
    )
    assert (
        await submit(flowhook, trigger, submission(receiver.url, [{"id": 1, "externalId": "x"}]))
    ).status_code == 201
    await run_all(flowhook)
    [(_, sent)] = receiver.calls
    assert sent["objectData"][0]["activityData"]["errorCode"] == "FLOW_NOT_PUBLISHED"


async def test_refused_submissions_store_nothing(flowhook, receiver, caplog) -> None:
    trigger = await marketo_trigger(flowhook)
    body = submission(receiver.url, [{"id": 1, "externalId": "x"}])
    before = await count_tasks(flowhook)
    with caplog.at_level(logging.WARNING):
        wrong = await submit(flowhook, trigger, body, key="not-the-key")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "api_key_invalid")
    assert "not-the-key" not in caplog.text and trigger["apiKey"] not in caplog.text
    assert (await submit(flowhook, trigger, body, key="")).status_code == 401
    unknown = await flowhook.sender().post("/marketo/no-such-key/submitAsyncAction", json=body)
    assert unknown.status_code == 404
    nul = await flowhook.sender().post("/marketo/a%00b/submitAsyncAction", json=body)  # PostgreSQL cannot compare it
    assert nul.status_code == 404
    for broken in ({**body, "callbackUrl": "ftp://x"}, {**body, "objectData": "x"}, {**body, "token": 5}):
        assert (await submit(flowhook, trigger, broken)).status_code == 400
    await ok(flowhook, "PATCH", f"/triggers/{trigger['id']}", json={"mode": "disabled"})
    disabled = await submit(flowhook, trigger, body)
    assert (disabled.status_code, disabled.json()["error"]["code"]) == (403, "trigger_disabled")
    assert await count_tasks(flowhook) == before


async def count_tasks(flowhook) -> int:
    query = sa.select(sa.func.count()).select_from(bulk_tasks)
    return int(await flowhook.services.store.read(lambda conn: conn.execute(query).scalar_one()))


async def test_a_failing_callback_is_retried_then_recorded_as_failed(flowhook, receiver) -> None:
    trigger = await marketo_trigger(flowhook)
    receiver.status = 503
    response = await submit(flowhook, trigger, submission(receiver.url, [{"id": 1, "externalId": "x"}]))
    await run_all(flowhook, runner(flowhook, attempts=3))
    assert len(receiver.calls) == 3
    callback = (await task_view(flowhook, response.json()["taskId"]))["callback"]
    assert (callback["status"], callback["attempts"], callback["httpStatus"]) == ("failed", 3, 503)


async def test_a_callback_server_that_is_down_is_retried_then_recorded_as_failed(flowhook, receiver) -> None:
    trigger = await marketo_trigger(flowhook)
    url = receiver.url
    receiver.shutdown()
    receiver.server_close()  # nothing listens on the port any more
    response = await submit(flowhook, trigger, submission(url, [{"id": 1, "externalId": "x"}]))
    await run_all(flowhook, runner(flowhook, attempts=2))
    callback = (await task_view(flowhook, response.json()["taskId"]))["callback"]
    assert (callback["status"], callback["attempts"]) == ("failed", 2)
    assert "Error" in callback["lastError"]


async def test_a_runner_that_dies_mid_batch_is_resumed_without_starting_a_lead_twice(flowhook, receiver) -> None:
    trigger = await marketo_trigger(flowhook)
    users = [await test_user(flowhook) for _ in range(5)]
    leads = [{"id": 100 + n, "externalId": user} for n, user in enumerate(users)]
    response = await submit(flowhook, trigger, submission(receiver.url, leads))
    task_id = response.json()["taskId"]
    assert await runner(flowhook, chunk_size=2).step() == 2
    # that runner's process dies here; a new one carries on from the third lead
    await run_all(flowhook, runner(flowhook, chunk_size=2))
    task = await task_view(flowhook, task_id)
    assert (task["status"], task["processed"], task["started"], task["skipped"]) == ("done", 5, 5, [])
    assert len(await stored(flowhook, trigger["flowId"])) == 5
    for user in users:
        assert len(await cards(flowhook, user)) == 1
    [(_, sent)] = receiver.calls
    assert [item["activityData"] for item in sent["objectData"]] == [{"success": True}] * 5


async def test_the_openapi_document_describes_the_service_routes(flowhook) -> None:
    paths = (await flowhook.api.get("/openapi.json")).json()["paths"]
    for name, method in (("serviceDefinition.json", "get"), ("status", "get"), ("submitAsyncAction", "post")):
        assert method in paths[f"/marketo/{{key}}/{name}"]
