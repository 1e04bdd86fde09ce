"""Whatever a sender posts, the answer is one of the documented ones and the request is logged once.

Also: no signature a forger can write passes, or makes anything but a 401.

Hypothesis generates bodies (bytes, JSON, forms, broken UTF-8), content types
(valid, odd and wrong), methods, query strings and extra headers, against a
JavaScript mapping that reads them all. Derandomized, so a run is repeatable.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.anyio

SOURCE = """
function map(request) {
  const body = request.body;
  if (body && typeof body === 'object' && body.skip) return null;
  const user = body && typeof body === 'object' ? body.user : request.query.user;
  return {targetUserIds: [user], variables: {n: String(request.rawBody.length)}};
}
"""
ANSWERS = {
    200: {"skipped"},
    202: {"accepted", "duplicate"},
    400: {"invalid_body"},
    415: {"unsupported_media_type"},
    422: {"mapping_error", "validation_error"},
}
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/vnd.api+json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "text/csv",
        "application/xml",
        "application/octet-stream",
        "multipart/form-data; boundary=x",
        "",
        ";;",
        "text/",
    ]
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
BODIES = st.one_of(
    st.binary(max_size=200),
    JSON_VALUES.map(orjson.dumps),
    st.dictionaries(st.sampled_from(["user", "skip", "x"]), JSON_VALUES, max_size=3).map(orjson.dumps),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3).map(
        lambda form: "&".join(f"{k}={v}" for k, v in form.items()).encode()
    ),
)
HEADER_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda name: name not in ("content-length", "transfer-encoding", "host", "content-type")
)
PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)  # what an HTTP client can put in a header
HEADERS = st.dictionaries(HEADER_NAMES, st.text(PRINTABLE, max_size=20))


@pytest.fixture(scope="module")
async def hook(flowhook) -> dict[str, Any]:
    return await flowhook.trigger(mapping={"kind": "javascript", "source": SOURCE})


@settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["POST", "PUT"]),
    content_type=CONTENT_TYPES,
    body=BODIES,
    query=st.dictionaries(st.sampled_from(["user", "q", "token"]), st.text(max_size=10), max_size=2),
    headers=HEADERS,
)
async def test_every_request_gets_a_documented_answer_and_one_log_entry(
    flowhook, hook, method, content_type, body, query, headers
) -> None:
    sent = {**headers, "content-type": content_type} if content_type else headers
    response = await flowhook.sender().request(
        method, f"/hooks/{hook['hookId']}", content=body, params=query, headers=sent
    )
    answer = response.json()
    code = "skipped" if answer.get("skipped") else answer["error"]["code"] if "error" in answer else "accepted"
    assert code in ANSWERS.get(response.status_code, set()), (response.status_code, answer)
    request_id = answer["requestId"] if "requestId" in answer else answer["error"]["requestId"]
    entry = await flowhook.entry(request_id)
    assert (entry["status"], entry["cause"]) == (response.status_code, code)
    assert entry["bodyBytes"] == len(body)


@pytest.fixture(scope="module")
async def signed_hook(flowhook) -> dict[str, Any]:
    return await flowhook.trigger(
        mapping={"kind": "passthrough"}, verification={"preset": "stripe", "secret": "whsec_property"}
    )


SIGNATURE_PARTS = st.one_of(
    st.text(PRINTABLE, max_size=30),
    st.builds(lambda t: f"t={t}", st.one_of(st.integers(-(2**70), 2**70), st.text(PRINTABLE, max_size=12))),
    st.builds(
        lambda v: f"v1={v}",
        st.one_of(st.text(alphabet="0123456789abcdef", max_size=70), st.text(PRINTABLE, max_size=20)),
    ),
)


@settings(
    max_examples=200, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    signature=st.lists(SIGNATURE_PARTS, max_size=5).map(",".join),
    body=st.binary(max_size=100),
)
async def test_a_forged_or_garbled_signature_is_a_401_and_logged(flowhook, signed_hook, signature, body) -> None:
    headers = {"content-type": "application/json", "stripe-signature": signature}
    response = await flowhook.sender().post(f"/hooks/{signed_hook['hookId']}", content=body, headers=headers)
    error = response.json()["error"]
    assert (response.status_code, error["code"]) == (401, "signature_invalid"), error
    entry = await flowhook.entry(error["requestId"])
    assert (entry["status"], entry["cause"], entry["headers"]["stripe-signature"]) == (401, error["code"], "[redacted]")
