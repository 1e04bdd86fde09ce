"""User ids and flowInvocationIds are free-form strings: one holding a slash is reachable by URL too.

The client percent-encodes it (`team%2Fada`); the server sees the decoded path, so the
routes that end in, or hold, such an id take the rest of the path as the id.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

pytestmark = pytest.mark.anyio

USER = "team/ada"
KEY = "orders/2024/17"


async def test_a_user_and_an_invocation_key_with_slashes(flowhook) -> None:
    template = await flowhook.template({"title": "t"})
    flow = await flowhook.flow([{"type": "send-card", "id": "s", "cardTemplateId": template["id"]}])
    await flowhook.test_user(USER)
    assert await flowhook.start(await flowhook.trigger(flow), [USER], flowInvocationId=KEY) == KEY
    await flowhook.settle()

    [card] = await flowhook.cards(quote(USER, safe=""))
    assert (card["userId"], card["flowInvocationId"]) == (USER, KEY)
    invocation = await flowhook.invocation(flow, quote(KEY, safe=""))
    assert (invocation["flowInvocationId"], invocation["targetedUserIds"]) == (KEY, [USER])

    assert (await flowhook.api.delete(f"/v1/default/test-users/{quote(USER, safe='')}")).status_code == 204
    users = [user["userId"] for user in (await flowhook.ok("GET", "/v1/default/test-users"))["data"]]
    assert USER not in users
