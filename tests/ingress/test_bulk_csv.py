"""CSV bulk starts: POST /v1/{env}/action-flow/{flowId}/csv-task and …/csv-task/test, and their progress."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import sqlalchemy as sa

from ingress.api.cursors import Binding
from store.clock import utcnow
from store.tables import bulk_tasks, customers, invocations

pytestmark = pytest.mark.anyio

VARIABLES = [
    {"name": "firstName", "type": "string", "required": True},
    {"name": "amount", "type": "number"},
    {"name": "vip", "type": "boolean", "default": False},
    {"name": "extra", "type": "object"},
]


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return either_database


@pytest.fixture(scope="module")
async def client(flowhook):
    return await flowhook.api_client()


async def add_customers(flowhook, *profiles: tuple[str, dict[str, Any]], env: str = "default") -> None:
    """Customer profiles, written straight to the store (the customers API is another module's)."""
    now = utcnow()
    rows = [
        {"environment_id": env, "user_id": user, "attributes": attributes, "created_at": now, "updated_at": now}
        for user, attributes in profiles
    ]
    await flowhook.services.store.write(lambda conn: conn.execute(sa.insert(customers), rows))


async def started(flowhook, flow_id: str) -> list[dict[str, Any]]:
    """The flow's invocations, oldest first: key, mode and payload."""
    query = (
        sa.select(invocations.c.flow_invocation_id, invocations.c.mode, invocations.c.payload)
        .where(invocations.c.flow_id == flow_id)
        .order_by(invocations.c.seq)
    )
    rows = await flowhook.services.store.read(lambda conn: conn.execute(query).all())
    return [{"key": key, "mode": mode, "payload": payload} for key, mode, payload in rows]


async def upload(client, flow: dict[str, Any], text: str | bytes, *, test: bool = False, **headers: str) -> Any:
    path = f"/v1/default/action-flow/{flow['id']}/csv-task" + ("/test" if test else "")
    content = text.encode() if isinstance(text, str) else text
    return await client.post(path, content=content, headers={"content-type": "text/csv", **headers})


async def finished(client, task_id: str, within_s: float = 20.0) -> dict[str, Any]:
    """The task once the runner has finished it."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        response = await client.get(f"/v1/default/bulk-tasks/{task_id}")
        assert response.status_code == 200, response.text
        task: dict[str, Any] = response.json()
        if task["status"] in ("done", "failed"):
            return task
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish within {within_s} s")


async def run(client, flow: dict[str, Any], text: str, *, test: bool = False) -> dict[str, Any]:
    response = await upload(client, flow, text, test=test)
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["status"] == "pending" and response.headers["location"] == f"/v1/default/bulk-tasks/{created['id']}"
    return await finished(client, created["id"])


async def test_rows_start_the_published_flow_for_the_customers_they_match(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    await add_customers(
        flowhook,
        ("csv-ann", {"email": "ann@example.com", "plan": "gold"}),
        ("csv-bo", {"email": "bo@example.com", "plan": "gold"}),
        ("csv-cy", {"email": "cy@example.com", "plan": "free", "tags": ["a", "b"]}),
        *[(f"csv-many-{n}", {"email": f"m{n}@example.com", "plan": "bulk"}) for n in range(11)],
        *[(f"csv-ten-{n}", {"email": f"t{n}@example.com", "plan": "ten", "age": 40}) for n in range(10)],
    )
    text = (
        "\ufefftarget.attributes.plan,payload.variables.firstName,payload.variables.amount,"
        "payload.variables.vip,payload.metadata.source,payload.cardOptions.priority\r\n"
        "gold,Ann,12.5,TRUE,crm,5\r\n"  # row 2: ann and bo
        "free,Cy,,,,\r\n"  # row 3: cy, defaults
        "nobody,Dee,1,false,,\r\n"  # row 4: no match
        "bulk,Eve,1,false,,\r\n"  # row 5: 11 matches
        "ten,Fay,3,false,,\r\n"  # row 6: exactly 10
        'gold,"Gus, Jr.",lots,false,,\r\n'  # row 7: not a number
        "gold,Hal,1,maybe,,\r\n"  # row 8: not a boolean
        "gold,,1,false,,\r\n"  # row 9: firstName required
        "\r\n"  # a blank line is no row
        "gold,Ida\r\n"  # row 11: too few cells
    )
    task = await run(client, flow, text)
    assert (task["kind"], task["status"], task["flowId"]) == ("csv", "done", flow["id"])
    assert (task["total"], task["processed"], task["started"]) == (9, 9, 3)
    assert task["skipped"] == [
        {"row": 4, "code": "no_match", "reason": "no customer matches target.attributes.plan = 'nobody'"},
        {
            "row": 5,
            "code": "too_many_matches",
            "reason": "more than 10 customers match target.attributes.plan = 'bulk'",
        },
        {"row": 7, "code": "invalid_variable", "reason": "payload.variables.amount: 'lots' is not a number"},
        {"row": 8, "code": "invalid_variable", "reason": "payload.variables.vip: 'maybe' is not a boolean"},
        {"row": 9, "code": "validation_error", "reason": "required variable 'firstName' is missing"},
        {"row": 11, "code": "wrong_cell_count", "reason": "the row has 2 cells; the header has 6"},
    ]
    first, second, third = await started(flowhook, flow["id"])
    assert first == {
        "key": f"{task['id']}:2",
        "mode": "live",
        "payload": {
            "targetUserIds": ["csv-ann", "csv-bo"],
            "variables": {"firstName": "Ann", "amount": 12.5, "vip": True},
            "metadata": {"source": "crm"},
            "cardOptions": {"priority": "5"},
        },
    }
    assert second["payload"] == {"targetUserIds": ["csv-cy"], "variables": {"firstName": "Cy", "vip": False}}
    assert third["payload"]["targetUserIds"] == [f"csv-ten-{n}" for n in range(10)]
    assert third["payload"]["variables"] == {"firstName": "Fay", "amount": 3, "vip": False}


async def test_attributes_are_and_combined_and_matched_as_text(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    await add_customers(
        flowhook,
        ("and-1", {"city": "Oslo", "age": 40, "member": True, "tags": ["x", "y"]}),
        ("and-2", {"city": "Oslo", "age": 41, "member": False, "tags": ["x"]}),
        ("and-3", {"city": "Bergen", "age": 40, "member": True, "tags": "x|y"}),
    )
    text = (
        "target.attributes.city,target.attributes.age,payload.variables.firstName\n"
        "Oslo,40,A\n"  # and-1 only
        "Oslo,42,B\n"  # nobody
        "target,,C\n"  # no city 'target', no empty age
    )
    task = await run(client, flow, text)
    assert task["started"] == 1 and [item["row"] for item in task["skipped"]] == [3, 4]
    [only] = await started(flowhook, flow["id"])
    assert only["payload"]["targetUserIds"] == ["and-1"]
    other = await flowhook.flow(variables=VARIABLES, publish=True)
    task = await run(
        client,
        other,
        "target.attributes.member,target.attributes.tags,payload.variables.firstName\ntrue,x|y,A\nfalse,x,B\n",
    )
    assert (task["started"], task["skipped"]) == (2, [])
    assert [item["payload"]["targetUserIds"] for item in await started(flowhook, other["id"])] == [
        ["and-1", "and-3"],  # a list attribute matches its items joined by |, as the string "x|y" does
        ["and-2"],
    ]


async def test_the_same_file_twice_starts_nothing_new(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    await add_customers(flowhook, ("idem-1", {"code": "i1"}), ("idem-2", {"code": "i2"}))
    text = "flowInvocationId,target.attributes.code,payload.variables.firstName\norder-1,i1,A\norder-2,i2,B\n"
    first = await run(client, flow, text)
    assert (first["started"], first["skipped"]) == (2, [])
    again = await run(client, flow, text)
    assert (again["processed"], again["started"]) == (2, 0)
    assert again["skipped"] == [
        {
            "row": 2,
            "code": "already_started",
            "reason": "flowInvocationId 'order-1' started this flow before; nothing new was started",
        },
        {
            "row": 3,
            "code": "already_started",
            "reason": "flowInvocationId 'order-2' started this flow before; nothing new was started",
        },
    ]
    changed = await run(client, flow, text.replace("order-2,i2,B", "order-2,i2,Changed"))
    assert changed["started"] == 0
    assert changed["skipped"][1] == {
        "row": 3,
        "code": "idempotency_conflict",
        "reason": "flowInvocationId 'order-2' was already used with another payload",
    }
    assert [item["key"] for item in await started(flowhook, flow["id"])] == ["order-1", "order-2"]


@pytest.mark.parametrize(
    ("text", "test", "messages"),
    [
        ("payload.variables.firstName\nAnn\n", False, ["no target: add a target.attributes.<field> column"]),
        (
            "target.attributes.email,flowConfigId,payload.target.usersById,payload.foo,target.attributes.\nx,y,z,w,v\n",
            False,
            [
                "column 'flowConfigId' is for the test sender (…/csv-task/test) only",
                "column 'payload.target.usersById' is for the test sender (…/csv-task/test) only",
                "unknown column 'payload.foo'; allowed: target.attributes.<field>, payload.variables.<name>, "
                "payload.metadata.<name>, payload.notificationDetail.<name>, payload.cardOptions.<name>, "
                "flowInvocationId",
                "unknown column 'target.attributes.'; allowed: target.attributes.<field>, payload.variables.<name>, "
                "payload.metadata.<name>, payload.notificationDetail.<name>, payload.cardOptions.<name>, "
                "flowInvocationId",
            ],
        ),
        (
            "target.attributes.email,target.attributes.email\nx,y\n",
            False,
            ["column 'target.attributes.email' appears twice"],
        ),
        (
            "target.attributes.email,payload.target.usersById\nx,y\n",
            True,
            ["target customers by target.attributes.<field> or by payload.target.usersById, not both"],
        ),
        (
            "flowConfigId\nx\n",
            True,
            ["no target: add a target.attributes.<field> column or a payload.target.usersById column"],
        ),
        ("target.attributes.email\n", False, ["the file has a header and no rows"]),
        ("", False, ["the file is empty: a header row is required"]),
        (b"target.attributes.email\n\xff\n", False, ["the file is not UTF-8 (byte 24)"]),
        ("target.attributes.email\na\x00b\n", False, ["the file holds the NUL character (U+0000)"]),
    ],
)
async def test_a_header_that_cannot_work_is_a_422_listing_every_problem(
    flowhook, client, text: str | bytes, test: bool, messages: list[str]
) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    response = await upload(client, flow, text, test=test)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_csv"
    assert [problem["message"] for problem in error["errors"]] == messages


async def test_limits_content_type_auth_and_publication(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    big = "target.attributes.email\n" + "x" * (10 * 1024 * 1024)
    too_large = await upload(client, flow, big)
    assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "body_too_large"
    json_body = await upload(client, flow, "target.attributes.email\nx\n", **{"content-type": "application/json"})
    assert json_body.status_code == 415
    good = "target.attributes.email\nx\n"
    path = f"/v1/default/action-flow/{flow['id']}/csv-task"
    anonymous = await flowhook.sender().post(path, content=good, headers={"content-type": "text/csv"})
    assert anonymous.status_code == 401
    admin = await flowhook.api.post(path, content=good, headers={"content-type": "text/csv"})
    assert admin.status_code == 401  # the admin token is no access token
    assert (await flowhook.api.post("/v1/environments", json={"id": "csv-elsewhere"})).status_code == 201
    elsewhere = await flowhook.api_client(env="csv-elsewhere")
    mismatch = await upload(elsewhere, flow, good)
    assert mismatch.status_code == 403 and mismatch.json()["error"]["code"] == "environment_mismatch"
    draft = await flowhook.flow(variables=VARIABLES)
    unpublished = await upload(client, draft, good)
    assert unpublished.status_code == 409 and unpublished.json()["error"]["code"] == "flow_not_published"
    missing = await upload(client, {"id": "flw_missing"}, good)
    assert missing.status_code == 404
    unknown_task = await client.get("/v1/default/bulk-tasks/bulk_missing")
    assert unknown_task.status_code == 404 and unknown_task.json()["error"]["code"] == "bulk_task_not_found"


async def test_the_test_route_reaches_test_users_only_with_a_flow_per_row(flowhook, client) -> None:
    template = await flowhook.api.post(
        "/v1/default/card-templates",
        json={
            "name": "Hi",
            "definition": {"title": "Hi {{firstName}}", "actions": [{"label": "OK", "action": "complete"}]},
        },
    )
    assert template.status_code == 201, template.text
    steps = [{"type": "send-card", "id": "hi", "cardTemplateId": template.json()["id"]}]
    flow = await flowhook.flow(variables=VARIABLES, steps=steps)  # drafts: /test needs no publication
    other = await flowhook.flow(variables=[{"name": "firstName", "type": "number"}], steps=steps)
    for user in ("tester-1", "tester-2"):
        response = await flowhook.api.post("/v1/default/test-users", json={"userId": user})
        assert response.status_code == 201, response.text
    text = (
        "flowConfigId,payload.target.usersById,payload.variables.firstName\n"
        ",tester-1|customer-1,Ann\n"  # row 2: the path's flow; customer-1 is no test user
        f"{other['id']},tester-2,7\n"  # row 3: another flow, whose firstName is a number
        "flw_nope,tester-1,Bo\n"  # row 4
        f"{other['id']},tester-2,Bo\n"  # row 5: not a number for that flow
        ",|,Cy\n"  # row 6: nobody
    )
    task = await run(client, flow, text, test=True)
    assert (task["kind"], task["started"]) == ("csv-test", 2)
    assert task["skipped"] == [
        {"row": 4, "code": "flow_not_found", "reason": "flowConfigId 'flw_nope': no such flow in this environment"},
        {"row": 5, "code": "invalid_variable", "reason": "payload.variables.firstName: 'Bo' is not a number"},
        {"row": 6, "code": "no_users", "reason": "the row names no user in payload.target.usersById"},
    ]
    [mine] = await started(flowhook, flow["id"])
    [theirs] = await started(flowhook, other["id"])
    assert (mine["mode"], mine["payload"]["targetUserIds"]) == ("test", ["tester-1", "customer-1"])
    assert theirs["payload"]["variables"] == {"firstName": 7}
    await flowhook.expanded(flow, f"{task['id']}:2")
    cards = (await flowhook.api.get("/v1/default/users/tester-1/cards", params={"eventSource": "test"})).json()
    assert [card["definition"]["title"] for card in cards["data"]] == ["Hi Ann"]
    ignored = (await flowhook.api.get("/v1/default/users/customer-1/cards", params={"eventSource": "test"})).json()
    assert ignored["data"] == []


async def test_progress_is_readable_with_the_admin_token_too(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    response = await upload(client, flow, "target.attributes.code,payload.variables.firstName\nnone,A\n")
    task = await finished(client, response.json()["id"])
    read = await flowhook.api.get(f"/v1/default/bulk-tasks/{task['id']}")
    assert read.status_code == 200 and read.json()["id"] == task["id"]
    assert set(read.json()) == {
        "id",
        "kind",
        "flowId",
        "status",
        "total",
        "processed",
        "started",
        "skipped",
        "createdAt",
        "updatedAt",
    }
    assert (await flowhook.sender().get(f"/v1/default/bulk-tasks/{task['id']}")).status_code == 401


async def test_the_openapi_document_describes_bulk_starts(flowhook) -> None:
    paths = (await flowhook.sender().get("/openapi.json")).json()["paths"]
    csv_task = paths["/v1/{env}/action-flow/{flowId}/csv-task"]["post"]
    assert list(csv_task["requestBody"]["content"]) == ["text/csv", "multipart/form-data"]
    assert {"200", "400", "404"} <= set(paths["/v1/{env}/bulk-tasks/{taskId}/skipped"]["get"]["responses"])
    assert {"202", "401", "403", "409", "413", "415", "422"} <= set(csv_task["responses"])
    assert "post" in paths["/v1/{env}/action-flow/{flowId}/csv-task/test"]
    assert "422" in paths["/v1/{env}/action-flows/{flowId}/manual-starts"]["post"]["responses"]
    assert paths["/v1/{env}/bulk-tasks/{taskId}"]["get"]["security"] == [{"adminToken": []}, {"oauth2": ["events"]}]


async def test_skipped_rows_are_listed_in_pages_with_their_codes(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    text = "target.attributes.code,payload.variables.firstName\n" + "".join(f"nobody-{n},A\n" for n in range(5))
    task = await run(client, flow, text)
    path = f"/v1/default/bulk-tasks/{task['id']}/skipped"
    pages, cursor = [], None
    while True:
        response = await client.get(path, params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        pages.append(response.json()["data"])
        cursor = response.json()["nextCursor"]
        if cursor is None:
            break
    assert [[item["row"] for item in page] for page in pages] == [[2, 3], [4, 5], [6]]
    assert [item for page in pages for item in page] == task["skipped"]
    assert task["skipped"][0] == {
        "row": 2,
        "code": "no_match",
        "reason": "no customer matches target.attributes.code = 'nobody-0'",
    }
    everything = await flowhook.api.get(path)  # the admin token reads it too; 100 a page by default
    assert everything.status_code == 200 and everything.json() == {"data": task["skipped"], "nextCursor": None}
    other = await run(client, flow, text)
    first = (await client.get(path, params={"limit": 2})).json()["nextCursor"]
    elsewhere = await client.get(f"/v1/default/bulk-tasks/{other['id']}/skipped", params={"cursor": first})
    assert (elsewhere.status_code, elsewhere.json()["error"]["code"]) == (400, "invalid_cursor")
    made_up = Binding("bulk-task-skipped", "task", ("default", task["id"])).next_cursor(2**62)  # the API's binding
    assert (await client.get(path, params={"cursor": made_up})).json() == {"data": [], "nextCursor": None}
    too_many = await client.get(path, params={"limit": 1001})
    assert (too_many.status_code, too_many.json()["error"]["code"]) == (400, "invalid_parameter")
    missing = await client.get("/v1/default/bulk-tasks/bulk_missing/skipped")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "bulk_task_not_found")
    assert (await flowhook.sender().get(path)).status_code == 401


async def post_form(client, flow: dict[str, Any], **kwargs: Any) -> Any:
    return await client.post(f"/v1/default/action-flow/{flow['id']}/csv-task", **kwargs)


async def test_a_file_uploaded_as_a_form_starts_as_the_body_would(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    await add_customers(flowhook, ("form-1", {"code": "f1"}))
    text = "\ufefftarget.attributes.code,payload.variables.firstName\r\nf1,Ann\r\nnobody,Bo\r\n"
    response = await post_form(
        client,
        flow,
        files={"csv": ("welcome.csv", text.encode(), "application/vnd.ms-excel")},  # what Windows browsers say
        data={"note": "a field beside the file is ignored"},
    )
    assert response.status_code == 202, response.text
    task = await finished(client, response.json()["id"])
    assert (task["total"], task["started"]) == (2, 1)
    assert task["skipped"] == [
        {"row": 3, "code": "no_match", "reason": "no customer matches target.attributes.code = 'nobody'"}
    ]
    [only] = await started(flowhook, flow["id"])
    assert only["payload"] == {"targetUserIds": ["form-1"], "variables": {"firstName": "Ann", "vip": False}}


FORM_XYZ = {"content-type": "multipart/form-data; boundary=xyz"}
CUT_OFF_FORM = (
    b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\nContent-Type: text/csv\r\n\r\n'
    b"target.attributes.code,payload.variables.firstName\nx,A\n"
)


async def test_a_form_needs_exactly_one_readable_file_within_the_limit(flowhook, client) -> None:
    flow = await flowhook.flow(variables=VARIABLES, publish=True)
    good = b"target.attributes.code,payload.variables.firstName\nx,A\n"
    refusals = [
        ({"files": {"file": (None, good)}}, "one_file_required", "it holds no file part"),  # a field, no filename
        (
            {"files": [("a", ("a.csv", good, "text/csv")), ("b", ("b.csv", good, "text/csv"))]},
            "one_file_required",
            "it holds 2 file parts",
        ),
        ({"content": good, "headers": {"content-type": "multipart/form-data"}}, "invalid_form", "lacks a boundary"),
        (
            {"content": b"not a form", "headers": {"content-type": "multipart/form-data; boundary=xyz"}},
            "invalid_form",
            "",
        ),
        # Cut off: the parser took it for a form without its file (one_file_required), a misleading answer.
        ({"content": CUT_OFF_FORM, "headers": FORM_XYZ}, "invalid_form", "closing delimiter"),
        ({"content": b"", "headers": FORM_XYZ}, "invalid_form", "closing delimiter"),
    ]
    for request, code, message in refusals:
        response = await post_form(client, flow, **request)
        assert (response.status_code, response.json()["error"]["code"]) == (400, code), response.text
        assert message in response.json()["error"]["message"]
    big = b"target.attributes.email\n" + b"x" * (10 * 1024 * 1024)
    too_large = await post_form(client, flow, files={"file": ("big.csv", big, "text/csv")})
    assert (too_large.status_code, too_large.json()["error"]["code"]) == (413, "body_too_large")
    latin = await post_form(client, flow, files={"file": ("l.csv", b"target.attributes.email\n\xe9\n", "text/csv")})
    assert (latin.status_code, latin.json()["error"]["code"]) == (422, "invalid_csv")
    assert latin.json()["error"]["errors"][0]["message"] == "the file is not UTF-8 (byte 24)"
    assert (await count_tasks_of(flowhook, flow["id"])) == 0


async def count_tasks_of(flowhook, flow_id: str) -> int:
    query = sa.select(sa.func.count()).select_from(bulk_tasks).where(bulk_tasks.c.flow_id == flow_id)
    return int(await flowhook.services.store.read(lambda conn: conn.execute(query).scalar_one()))
