"""Credentials a security review found in the request log: short header names (`X-Pass`, `X-Sig`, `X-Otp`,
…), `key` followed by a digit, and the query parameters `sig` (Azure SAS), `pwd` and `code` (OAuth)."""

from __future__ import annotations

import orjson
import pytest

from ingress.redaction import REDACTED, is_secret_bearing, redact_path, redact_query

pytestmark = pytest.mark.anyio

HEADERS = ["x-pass", "x-passcode", "x-pwd", "x-sig", "x-sig256", "x-bearer", "x-otp", "x-totp", "x-client-cert"]
HEADERS += ["x-ssl-client-cert", "x-apikey2", "X-ApiKey2", "x-api-key-2"]


@pytest.mark.parametrize("name", HEADERS)
def test_short_secret_header_names_are_redacted(name: str) -> None:
    assert is_secret_bearing(name)


@pytest.mark.parametrize(
    "name",
    ["x-signal", "x-design-id", "x-assignee", "x-passenger-count", "x-passport-country", "x-hotpath", "x-error-code"],
)
def test_words_that_merely_contain_them_are_kept(name: str) -> None:
    assert not is_secret_bearing(name)


@pytest.mark.parametrize("name", ["sig", "pwd", "code", "Code", "otp", "pass", "apikey2"])
def test_secret_query_parameters(name: str) -> None:
    assert redact_query(f"{name}=s3cr3t&x=1") == f"{name}={REDACTED}&x=1"


def test_code_is_secret_as_a_whole_parameter_name_only() -> None:
    kept = "country_code=US&zip-code=10115&error_code=7"
    assert redact_query(kept) == kept


@pytest.mark.parametrize(
    ("path", "redacted"),
    [
        ("/x?token=abc&y=2", f"/x?token={REDACTED}&y=2"),
        ("/hooks/h?sv=2022&sig=abc%3D", f"/hooks/h?sv=2022&sig={REDACTED}"),
        ("/x", "/x"),
        ("/x?", "/x?"),
        ("/x?y=1?token=2", "/x?y=1?token=2"),  # the first ? starts the query: `y` is 1?token=2
    ],
)
def test_a_paths_query_is_redacted(path: str, redacted: str) -> None:
    assert redact_path(path) == redacted


async def test_the_request_log_keeps_none_of_them(flowhook) -> None:
    trigger = await flowhook.trigger(mapping={"kind": "jmespath", "fields": {"targetUserIds": "'u1'"}})
    headers = {name: f"LEAK-{index}" for index, name in enumerate(HEADERS)}
    response = await flowhook.sender().post(
        f"/hooks/{trigger['hookId']}?sig=LEAK-SIG&pwd=LEAK-PWD&code=LEAK-CODE&x=1",
        content=b"{}",
        headers={"content-type": "application/json", **headers},
    )
    assert response.status_code == 202, response.text
    entry = await flowhook.entry(response.json()["requestId"])
    assert entry["query"] == f"sig={REDACTED}&pwd={REDACTED}&code={REDACTED}&x=1"
    assert b"LEAK" not in orjson.dumps(entry)
