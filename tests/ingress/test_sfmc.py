"""SFMC triggers over HTTP: a Journey Builder custom activity's config.json, JWT-signed execute and lifecycle calls.

The JWTs are made here with `hmac` directly (PyJWT is not installed),
independently of ingress.hs256. Runs on SQLite, and on PostgreSQL too when
FLOWHOOK_TEST_POSTGRES names a server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import logging
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from store.tables import invocations

pytestmark = pytest.mark.anyio

SECRET = "sfmc-signing-secret-0123456789abcdefXYZW"
_users = itertools.count()


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return either_database


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims: dict[str, Any], secret: str = SECRET, header: dict[str, Any] | None = None) -> str:
    """A compact JWT; HS256 unless `header` says otherwise (HS512 signs with SHA-512, `none` leaves it unsigned)."""
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    digests = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}
    alg = header["alg"]
    signature = hmac.new(secret.encode(), signing_input.encode(), digests[alg]).digest() if alg in digests else b""
    return f"{signing_input}.{b64url(signature)}"


def execute_claims(user: str | None, **extra: Any) -> dict[str, Any]:
    """What Journey Builder's execute JWT decodes to (one contact's pass through the activity)."""
    arguments: list[dict[str, Any]] = [{"userId": user}] if user is not None else []
    return {
        "inArguments": [*arguments, {"plan": "pro"}],
        "outArguments": [],
        "activityObjectID": str(uuid.uuid4()),
        "journeyId": str(uuid.uuid4()),
        "activityId": str(uuid.uuid4()),
        "definitionInstanceId": str(uuid.uuid4()),
        "activityInstanceId": str(uuid.uuid4()),
        "keyValue": user,
        "mode": 0,
        **extra,
    }


async def ok(flowhook, method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
    response = await flowhook.api.request(method, f"/v1/default{url}", **kwargs)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def sfmc_trigger(flowhook, flow: dict[str, Any] | None = None, **body: Any) -> dict[str, Any]:
    flow = flow or await flowhook.card_flow("x")
    url = f"/action-flows/{flow['id']}/triggers"
    return await ok(flowhook, "POST", url, 201, json={"type": "sfmc", "signingSecret": SECRET, **body})  # type: ignore[no-any-return]


async def call(flowhook, trigger: dict[str, Any], action: str, body: str | bytes) -> Any:
    content = body.encode() if isinstance(body, str) else body
    url = f"/sfmc/{trigger['hookId']}/{action}"
    return await flowhook.sender().post(url, content=content, headers={"content-type": "application/jwt"})


async def test_user(flowhook) -> str:
    user = f"sfmc-tester-{next(_users)}"
    await ok(flowhook, "POST", "/test-users", 201, json={"userId": user})
    return user


async def stored(flowhook, flow_id: str) -> list[dict[str, Any]]:
    query = sa.select(invocations).where(invocations.c.flow_id == flow_id)
    rows = await flowhook.services.store.read(lambda conn: conn.execute(query).all())
    return [dict(row._mapping) for row in rows]


async def cards(flowhook, user: str) -> list[dict[str, Any]]:
    await flowhook.services.executor.drain()
    return (await ok(flowhook, "GET", f"/users/{user}/cards"))["data"]  # type: ignore[no-any-return]


def refused(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def test_the_trigger_gives_its_activity_urls_and_masks_the_secret(flowhook) -> None:
    trigger = await sfmc_trigger(flowhook)
    endpoint = f"http://flowhook.test/sfmc/{trigger['hookId']}"
    assert (trigger["type"], trigger["mode"], trigger["endpointUrl"]) == ("sfmc", "test", endpoint)
    assert trigger["configUrl"] == f"{endpoint}/config.json"
    assert trigger["signingSecret"] == "••••" + SECRET[-4:]
    assert trigger["mapping"] == {
        "kind": "jmespath",
        "fields": {"targetUserIds": "body.arguments.userId", "variables": "body.arguments"},
    }
    read = await ok(flowhook, "GET", f"/triggers/{trigger['id']}")
    assert read["signingSecret"] == trigger["signingSecret"]
    assert SECRET not in json.dumps(read)
    assert SECRET not in (await flowhook.api.get(f"/v1/default/action-flows/{trigger['flowId']}/triggers")).text


async def test_config_json_describes_a_signed_rest_activity(flowhook) -> None:
    trigger = await sfmc_trigger(flowhook)
    response = await flowhook.sender().get(f"/sfmc/{trigger['hookId']}/config.json")
    assert response.status_code == 200, response.text
    config = response.json()
    endpoint = trigger["endpointUrl"]
    assert (config["workflowApiVersion"], config["type"]) == ("1.1", "REST")
    assert config["lang"]["en-US"]["name"]
    execute = config["arguments"]["execute"]
    assert (execute["url"], execute["useJwt"], execute["inArguments"]) == (
        f"{endpoint}/execute",
        True,
        [{"userId": "{{Contact.Key}}"}],
    )
    assert {"timeout", "retryCount", "retryDelay", "concurrentRequests"} <= set(execute)
    assert config["configurationArguments"] == {
        name: {"url": f"{endpoint}/{name}", "useJwt": True} for name in ("save", "publish", "validate", "stop")
    }
    assert SECRET not in response.text


async def test_execute_starts_the_flow_and_the_card_reaches_the_test_user(flowhook) -> None:
    flow = await flowhook.card_flow("Hello from the journey")
    trigger = await sfmc_trigger(flowhook, flow)
    user = await test_user(flowhook)
    claims = execute_claims(user)
    response = await call(flowhook, trigger, "execute", jwt(claims))
    assert response.status_code == 200, response.text
    key = f"sfmc:{claims['activityInstanceId']}"
    assert response.json() == {"flowInvocationId": key, "mode": "test"}
    [invocation] = await stored(flowhook, flow["id"])
    assert (invocation["flow_invocation_id"], invocation["mode"], invocation["trigger_id"]) == (
        key,
        "test",
        trigger["id"],
    )
    assert invocation["payload"]["targetUserIds"] == [user]
    assert invocation["payload"]["variables"] == {"userId": user, "plan": "pro"}
    [card] = await cards(flowhook, user)
    assert (card["definition"], card["eventSource"], card["flowInvocationId"]) == (
        {"title": "Hello from the journey"},
        "test",
        key,
    )


async def test_a_retried_execute_starts_nothing_new(flowhook) -> None:
    flow = await flowhook.card_flow("Once")
    trigger = await sfmc_trigger(flowhook, flow)
    user = await test_user(flowhook)
    claims = execute_claims(user)
    first = await call(flowhook, trigger, "execute", jwt(claims))
    again = await call(flowhook, trigger, "execute", jwt({**claims, "iat": int(time.time()) + 1}))  # signed anew
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert len(await stored(flowhook, flow["id"])) == 1
    assert len(await cards(flowhook, user)) == 1


async def test_without_an_activity_instance_the_key_derives_from_journey_and_contact(flowhook) -> None:
    flow = await flowhook.card_flow("Keyed")
    trigger = await sfmc_trigger(flowhook, flow)
    claims = execute_claims("someone")
    del claims["activityInstanceId"]
    first = await call(flowhook, trigger, "execute", jwt(claims))
    again = await call(flowhook, trigger, "execute", jwt(claims))
    assert first.status_code == 200, first.text
    assert first.json()["flowInvocationId"].startswith("sfmc:")
    assert again.json() == first.json()
    other_pass = await call(flowhook, trigger, "execute", jwt({**claims, "definitionInstanceId": "another"}))
    assert other_pass.json()["flowInvocationId"] != first.json()["flowInvocationId"]
    assert len(await stored(flowhook, flow["id"])) == 2


def _tampered(token: str) -> str:
    header, _, signature = token.split(".")
    claims = execute_claims("mallory")
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


BAD_TOKENS = {
    "tampered payload": lambda: _tampered(jwt(execute_claims("alice"))),
    "wrong secret": lambda: jwt(execute_claims("alice"), secret="another-secret-0123456789abcdef"),
    "alg none": lambda: jwt(execute_claims("alice"), header={"alg": "none", "typ": "JWT"}),
    "alg HS512": lambda: jwt(execute_claims("alice"), header={"alg": "HS512", "typ": "JWT"}),
    "expired": lambda: jwt(execute_claims("alice", exp=int(time.time()) - 3600)),
    "not yet valid": lambda: jwt(execute_claims("alice", nbf=int(time.time()) + 3600)),
    "garbage": lambda: "this is not a token",
    "json body": lambda: json.dumps(execute_claims("alice")),
    "empty": lambda: "",
    "bad base64": lambda: "e30.e30.!!!",
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_a_call_that_is_not_signed_with_the_secret_is_401_and_stores_nothing(flowhook, case, caplog) -> None:
    flow = await flowhook.card_flow("Never")
    trigger = await sfmc_trigger(flowhook, flow)
    token = BAD_TOKENS[case]()
    with caplog.at_level(logging.WARNING, logger="flowhook.ingress"):
        response = await call(flowhook, trigger, "execute", token)
    assert refused(response) == (401, "signature_invalid")
    assert await stored(flowhook, flow["id"]) == []
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert trigger["id"] in logged
    assert SECRET not in logged
    if token:
        assert token not in logged


async def test_a_token_within_its_validity_is_accepted(flowhook) -> None:
    trigger = await sfmc_trigger(flowhook)
    now = int(time.time())
    claims = execute_claims("timely", exp=now + 60, nbf=now - 60, iat=now)
    assert (await call(flowhook, trigger, "execute", jwt(claims))).status_code == 200


@pytest.mark.parametrize("action", ["save", "publish", "validate", "stop"])
async def test_lifecycle_calls_are_answered_once_verified(flowhook, action) -> None:
    trigger = await sfmc_trigger(flowhook)
    claims = {"activityObjectID": str(uuid.uuid4()), "interactionId": str(uuid.uuid4()), "inArguments": []}
    response = await call(flowhook, trigger, action, jwt(claims))
    assert (response.status_code, response.json()) == (200, {})
    assert refused(await call(flowhook, trigger, action, "")) == (401, "signature_invalid")
    assert refused(await call(flowhook, trigger, action, jwt(claims, secret="x" * 32))) == (401, "signature_invalid")


async def test_unknown_key_is_404_disabled_is_403_and_the_key_is_no_webhook(flowhook) -> None:
    trigger = await sfmc_trigger(flowhook)
    token = jwt(execute_claims("bob"))
    assert refused(await call(flowhook, {"hookId": "hk_unknown"}, "execute", token)) == (404, "activity_not_found")
    unknown_config = await flowhook.sender().get("/sfmc/hk_unknown/config.json")
    assert refused(unknown_config) == (404, "activity_not_found")
    assert refused(await flowhook.sender().get("/sfmc/a%00b/config.json")) == (404, "activity_not_found")
    assert (await flowhook.post(trigger, "{}")).status_code == 404  # /hooks/{its key} is not a webhook
    await ok(flowhook, "PATCH", f"/triggers/{trigger['id']}", json={"mode": "disabled"})
    assert refused(await call(flowhook, trigger, "execute", token)) == (403, "trigger_disabled")
    disabled_config = await flowhook.sender().get(f"/sfmc/{trigger['hookId']}/config.json")
    assert refused(disabled_config) == (403, "trigger_disabled")
    assert await stored(flowhook, trigger["flowId"]) == []


async def test_live_needs_the_flow_published(flowhook) -> None:
    draft_only = await flowhook.card_flow("Draft", publish=False)
    unpublished = await sfmc_trigger(flowhook, draft_only, mode="live")
    response = await call(flowhook, unpublished, "execute", jwt(execute_claims("carol")))
    assert refused(response) == (409, "flow_not_published")
    assert await stored(flowhook, draft_only["id"]) == []
    published = await flowhook.card_flow("Live")
    live = await sfmc_trigger(flowhook, published, mode="live")
    user = f"sfmc-customer-{next(_users)}"
    response = await call(flowhook, live, "execute", jwt(execute_claims(user)))
    assert (response.status_code, response.json()["mode"]) == (200, "live")
    [card] = await cards(flowhook, user)
    assert card["eventSource"] == "live"


async def test_a_javascript_mapping_reads_the_in_arguments(flowhook) -> None:
    source = """function map(request) {
      const args = request.body.arguments;
      const n = request.body.inArguments.length;
      return {targetUserIds: [args.contactKey], variables: {plan: args.plan.toUpperCase(), n},
              flowInvocationId: 'js-' + request.body.activityInstanceId};
    }"""
    flow = await flowhook.card_flow("JS")
    trigger = await sfmc_trigger(flowhook, flow, mapping={"kind": "javascript", "source": source})
    user = await test_user(flowhook)
    claims = execute_claims(None, inArguments=[{"contactKey": user}, {"plan": "pro"}])
    response = await call(flowhook, trigger, "execute", jwt(claims))
    assert response.status_code == 200, response.text
    assert response.json()["flowInvocationId"] == f"js-{claims['activityInstanceId']}"
    [invocation] = await stored(flowhook, flow["id"])
    assert invocation["payload"]["variables"] == {"plan": "PRO", "n": 2}
    assert len(await cards(flowhook, user)) == 1


async def test_a_missing_user_id_is_a_validation_error(flowhook) -> None:
    flow = await flowhook.card_flow("Nobody")
    trigger = await sfmc_trigger(flowhook, flow)
    response = await call(flowhook, trigger, "execute", jwt(execute_claims(None)))
    assert refused(response) == (422, "validation_error")
    assert response.json()["error"]["errors"]
    assert await stored(flowhook, flow["id"]) == []


async def test_a_failing_mapping_is_422_and_a_reused_key_with_another_payload_409(flowhook) -> None:
    flow = await flowhook.card_flow("Fails")
    failing = await sfmc_trigger(
        flowhook, flow, mapping={"kind": "javascript", "source": "function map(r) { boom(); }"}
    )
    assert refused(await call(flowhook, failing, "execute", jwt(execute_claims("dan")))) == (422, "mapping_error")
    trigger = await sfmc_trigger(flowhook, flow)
    claims = execute_claims("dan")
    assert (await call(flowhook, trigger, "execute", jwt(claims))).status_code == 200
    changed = {**claims, "inArguments": [{"userId": "dan", "plan": "free"}]}
    assert refused(await call(flowhook, trigger, "execute", jwt(changed))) == (409, "idempotency_conflict")
    assert len(await stored(flowhook, flow["id"])) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"type": "sfmc"}, "invalid_field"),
        ({"type": "sfmc", "signingSecret": ""}, "invalid_signing_secret"),
        ({"type": "sfmc", "signingSecret": "short"}, "invalid_signing_secret"),
        ({"type": "sfmc", "signingSecret": "••••" + SECRET[-4:] + "0123456789ab"}, "invalid_signing_secret"),
        ({"type": "sfmc", "signingSecret": 12345678901234567890}, "invalid_signing_secret"),
        ({"type": "sfmc", "signingSecret": SECRET + " "}, "invalid_signing_secret"),  # as a webhook secret
        ({"type": "sfmc", "signingSecret": "\n" + SECRET}, "invalid_signing_secret"),
        ({"type": "sfmc", "signingSecret": SECRET, "verification": {"secret": SECRET}}, "invalid_field"),
        ({"type": "webhook", "signingSecret": SECRET}, "invalid_field"),
    ],
)
async def test_a_trigger_that_cannot_work_is_refused_when_saved(flowhook, body, code) -> None:
    flow = await flowhook.card_flow("Refused")
    response = await flowhook.api.post(f"/v1/default/action-flows/{flow['id']}/triggers", json=body)
    assert refused(response) == (422, code)
    assert SECRET not in response.text


async def test_the_secret_can_be_changed_and_the_old_one_stops_working(flowhook) -> None:
    trigger = await sfmc_trigger(flowhook)
    new_secret = "rotated-signing-secret-abcdefghijklmnop"
    patched = await ok(flowhook, "PATCH", f"/triggers/{trigger['id']}", json={"signingSecret": new_secret})
    assert patched["signingSecret"] == "••••" + new_secret[-4:]
    masked = await flowhook.api.patch(
        f"/v1/default/triggers/{trigger['id']}", json={"signingSecret": patched["signingSecret"]}
    )
    assert refused(masked) == (422, "invalid_signing_secret")
    assert refused(await call(flowhook, trigger, "execute", jwt(execute_claims("eve")))) == (401, "signature_invalid")
    assert (await call(flowhook, trigger, "execute", jwt(execute_claims("eve"), secret=new_secret))).status_code == 200


async def test_an_sfmc_trigger_has_no_capture_or_samples(flowhook) -> None:
    trigger = await sfmc_trigger(flowhook)
    response = await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/capture")
    assert refused(response) == (409, "not_a_webhook_trigger")


async def test_the_openapi_document_describes_the_activity_routes(flowhook) -> None:
    document = (await flowhook.api.get("/openapi.json")).json()
    for action in ("execute", "save", "publish", "validate", "stop"):
        assert "post" in document["paths"][f"/sfmc/{{key}}/{action}"]
    assert "get" in document["paths"]["/sfmc/{key}/config.json"]
    assert "SfmcTrigger" in document["components"]["schemas"]


async def test_an_oversized_body_is_413_and_stores_nothing(flowhook) -> None:
    flow = await flowhook.card_flow("Big")
    trigger = await sfmc_trigger(flowhook, flow)
    response = await call(flowhook, trigger, "execute", b"x" * (2 * 1024 * 1024 + 1))
    assert refused(response) == (413, "body_too_large")
    assert await stored(flowhook, flow["id"]) == []
