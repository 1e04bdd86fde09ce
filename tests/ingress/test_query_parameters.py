"""Paging parameters of the analytics and card listings: a `limit` is an ASCII decimal number in range, else a 400.

`str.isdigit` takes "²" (which `int` then refused: a 500) and "１" (read as
1). A cursor is no longer a number at all: one that looks like a number,
however large, is a 400 `invalid_cursor` (tests/flows/test_cursors.py), not a
500 from the store.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio

LISTINGS = ("/v1/default/analytics/events", "/v1/default/users/u-1/cards")


@pytest.mark.parametrize("url", LISTINGS)
@pytest.mark.parametrize("value", ["²", "１", "٣", "1e3", "-1", "0", "9223372036854775808"])
async def test_a_limit_that_is_not_an_ascii_number_in_range_is_a_400(flowhook, url: str, value: str) -> None:
    response = await flowhook.api.get(url, params={"limit": value})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_parameter"


@pytest.mark.parametrize("url", LISTINGS)
@pytest.mark.parametrize("value", ["²", "１", "9223372036854775807", "9223372036854775808", "99999999999999999999999"])
async def test_a_cursor_that_looks_like_a_number_is_a_400(flowhook, url: str, value: str) -> None:
    response = await flowhook.api.get(url, params={"cursor": value})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_cursor"


async def test_a_credential_name_is_at_most_200_characters(flowhook) -> None:
    too_long = await flowhook.api.post("/v1/default/credentials", json={"name": "n" * 201, "roles": ["events"]})
    assert too_long.status_code == 422, too_long.text
    assert too_long.json()["error"] == {
        "code": "invalid_field",
        "message": "name must be a non-empty string of at most 200 characters",
        "path": "$.name",
    }
    longest = await flowhook.api.post("/v1/default/credentials", json={"name": "n" * 200, "roles": ["events"]})
    assert longest.status_code == 201, longest.text
