"""A percent-escape that is not UTF-8 in a path id or query parameter is a 400, as a NUL is.

Decoded, every such escape became U+FFFD, so `PUT /customers/%FF` and
`PUT /customers/%FE` wrote one customer. A U+FFFD sent as itself
(`%EF%BF%BD`) is an id like any other. A hook URL with such an escape names
no hook: a 404, as any id no hook has.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio

CUSTOMERS = "/v1/default/customers"


def refused(response, message: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == {"code": "invalid_parameter", "message": message}


@pytest.mark.parametrize("escape", ["%FF", "%FE", "%C3", "a%E9b", "%ED%A0%80"])
async def test_an_id_with_an_escape_that_is_not_utf8_is_a_400_and_stores_nothing(flowhook, escape: str) -> None:
    put = await flowhook.api.put(f"{CUSTOMERS}/{escape}", json={"attributes": {"who": escape}})
    refused(put, "the path has a percent-escape that is not UTF-8")
    refused(await flowhook.api.get(f"{CUSTOMERS}/{escape}"), "the path has a percent-escape that is not UTF-8")
    refused(
        await flowhook.api.get(f"/v1/default/users/{escape}/cards"), "the path has a percent-escape that is not UTF-8"
    )
    assert (await flowhook.api.get(f"{CUSTOMERS}/%EF%BF%BD")).status_code == 404


async def test_a_replacement_character_sent_as_utf8_is_an_id(flowhook) -> None:
    put = await flowhook.api.put(f"{CUSTOMERS}/%EF%BF%BD", json={"attributes": {"who": "fffd"}})
    assert put.status_code in (200, 201), put.text
    found = await flowhook.api.get(f"{CUSTOMERS}/%EF%BF%BD")
    assert found.status_code == 200, found.text
    assert found.json()["userId"] == "\ufffd"
    refused(await flowhook.api.get(f"{CUSTOMERS}/%FF"), "the path has a percent-escape that is not UTF-8")


async def test_a_query_parameter_with_an_escape_that_is_not_utf8_is_a_400(flowhook) -> None:
    events = "/v1/default/analytics/events"
    refused(
        await flowhook.api.get(f"{events}?userId=%FF"),
        "query parameter 'userId' has a percent-escape that is not UTF-8",
    )
    refused(
        await flowhook.api.get(f"{events}?a=1&%FFx=2"), "query parameter '�x' has a percent-escape that is not UTF-8"
    )
    assert (await flowhook.api.get(f"{events}?userId=%EF%BF%BD")).status_code == 200


async def test_a_hook_url_with_an_escape_that_is_not_utf8_names_no_hook(flowhook) -> None:
    for path in ("/hooks/%FF", "/hooks/%EF%BF%BD"):
        answer = await flowhook.sender().post(path, content=b"{}", headers={"content-type": "application/json"})
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "hook_not_found"
        entry = await flowhook.entry(answer.json()["error"]["requestId"])
        assert (entry["status"], entry["cause"]) == (404, "hook_not_found")
