"""An inline preview runs the mapping on the request's real secrets, as a live request does, and echoes none of
them: secret query parameters were echoed in clear (while secret headers were hidden from the mapping itself)."""

from __future__ import annotations

from typing import Any

import pytest

from ingress.redaction import REDACTED, redact_values, request_secrets

pytestmark = pytest.mark.anyio

URL = "/v1/default/mappings/preview"
#: Says whether it saw the real secrets, and echoes them everywhere a preview answer can carry them.
ECHO = {
    "kind": "javascript",
    "source": """function map(r) {
  console.log('token', r.query.token, 'key', r.headers['x-api-key']);
  return {targetUserIds: ['u1'],
          variables: {tokenSeen: r.query.token === 'tok-abc123', keySeen: r.headers['x-api-key'] === 'key-abc123'},
          metadata: {query: r.query, headers: r.headers, path: r.path}};
}""",
}
THROWS = {"kind": "javascript", "source": "function map(r) { throw new Error('bad token ' + r.query.token); }"}
INVALID = {"kind": "jmespath", "fields": {"targetUserIds": "query.token", "variables": "query.token"}}


async def preview(flowhook: Any, mapping: dict[str, Any], request: dict[str, Any], **more: Any) -> dict[str, Any]:
    answer = await flowhook.api.post(URL, json={"mapping": mapping, "request": request, **more})
    assert answer.status_code == 200, answer.text
    assert "abc123" not in answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_a_raw_requests_secrets_reach_the_mapping_but_not_the_answer(flowhook: Any) -> None:
    request = {
        "body": {},
        "path": "/hooks/x?sig=sig-abc123&page=1",
        "query": {"token": "tok-abc123", "page": "2"},
        "headers": {"X-Api-Key": "key-abc123", "X-Other": "kept"},
    }
    result = await preview(flowhook, ECHO, request)
    assert result["ok"] is True, result
    assert result["output"]["variables"] == {"tokenSeen": True, "keySeen": True}
    metadata = result["output"]["metadata"]
    assert metadata["query"] == {"token": REDACTED, "page": "2"}
    assert (metadata["headers"]["x-api-key"], metadata["headers"]["x-other"]) == (REDACTED, "kept")
    assert metadata["path"] == f"/hooks/x?sig={REDACTED}&page=1"
    assert result["logs"] == [{"level": "log", "message": f"token {REDACTED} key {REDACTED}"}]


async def test_a_request_objects_secrets_are_not_echoed_either(flowhook: Any) -> None:
    request = {
        "method": "POST",
        "path": "/hooks/x",
        "headers": {"x-api-key": "key-abc123"},
        "query": {"token": "tok-abc123"},
        "body": {},
        "rawBody": "{}",
        "contentType": "application/json",
    }
    result = await preview(flowhook, ECHO, request)
    assert result["output"]["variables"] == {"tokenSeen": True, "keySeen": True}
    assert result["output"]["metadata"]["query"] == {"token": REDACTED}


async def test_an_error_or_a_validation_error_does_not_echo_a_query_secret(flowhook: Any) -> None:
    request = {"body": {}, "query": "token=tok-abc123"}
    thrown = await preview(flowhook, THROWS, request)
    assert thrown["error"]["message"] == f"bad token {REDACTED}"
    invalid = await preview(flowhook, INVALID, request)
    assert invalid["ok"] is False and invalid["validationErrors"], invalid


async def test_a_triggers_own_signature_header_reaches_the_mapping_and_is_not_echoed(flowhook: Any) -> None:
    verification = {"secret": "abcdefabcdefabcdef", "signature": {"header": "X-Custom-Check"}}
    mapping = {
        "kind": "jmespath",
        "fields": {"targetUserIds": "'u1'", "variables.seen": "headers.\"x-custom-check\" == 'chk-abc123'"},
    }
    trigger = await flowhook.trigger(mapping=mapping, verification=verification)
    request = {"body": {}, "headers": {"X-Custom-Check": "chk-abc123"}}
    echo = {**mapping, "fields": {**mapping["fields"], "metadata.check": 'headers."x-custom-check"'}}
    result = await preview(flowhook, echo, request, triggerId=trigger["id"])
    assert result["output"]["variables"] == {"seen": True}
    assert result["output"]["metadata"] == {"check": REDACTED}


def test_request_secrets_are_the_secret_headers_query_parameters_and_path_parameters() -> None:
    request = {
        "path": "/x?api_key=p1&page=3",
        "headers": {"authorization": "Bearer a", "x-sent": "t", "accept": "*/*"},
        "query": {"code": ["c1", "c2"], "page": "2", "signature": ""},
    }
    assert request_secrets(request, ["X-Sent"]) == {"p1", "Bearer a", "t", "c1", "c2"}
    assert request_secrets({"headers": ["not", "a", "dict"], "query": "x", "path": 5}) == frozenset()


def test_redact_values_replaces_secrets_in_strings_and_keys_and_short_ones_only_whole() -> None:
    data = {"a": "x-secret1-y", "secret1": [1, "p", "pp"], "n": None}
    assert redact_values(data, frozenset({"secret1", "p"})) == {
        "a": f"x-{REDACTED}-y",
        REDACTED: [1, REDACTED, "pp"],
        "n": None,
    }
    # One pass, longest first: a secret inside "[redacted]" or inside a longer secret is not found again.
    assert redact_values("abcdef dact", frozenset({"abcdef", "abcd", "dact"})) == f"{REDACTED} {REDACTED}"
