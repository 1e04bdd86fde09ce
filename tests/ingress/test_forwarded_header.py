"""RFC 7239 `Forwarded` from trusted proxies, for deployments whose proxies write it (FLOWHOOK_FORWARDED_HEADER)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.anyio

PROXY = "10.0.0.5"
BODY = orjson.dumps({"targetUserIds": ["u1"]})


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    return {"trusted_proxies": ("10.0.0.0/24", "fd00::1"), "forwarded_header": "forwarded"}


@pytest.fixture(scope="module")
async def open_trigger(flowhook) -> dict[str, Any]:
    return await flowhook.trigger(allowedIps=[])


async def client_ip_logged(flowhook, trigger: dict[str, Any], peer: str, headers: list[tuple[str, str]]) -> str:
    """The client address the request log shows for a webhook from `peer` with these (repeatable) headers."""
    response = await flowhook.sender(peer).post(
        f"/hooks/{trigger['hookId']}", content=BODY, headers=[("content-type", "application/json"), *headers]
    )
    assert response.status_code == 202, response.text
    entry = await flowhook.entry(response.json()["requestId"])
    address: str = entry["clientIp"]
    return address


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
        ('For="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),  # names are case-insensitive; IPv6 is quoted
        ('for="192.0.2.60:4711"', "192.0.2.60"),
        ("for=192.0.2.60:4711", "192.0.2.60"),  # unquoted port: not RFC 7239, but proxies send it
        ('for="\\192.0.2.60"', "192.0.2.60"),  # a quoted-pair
        (";for=192.0.2.60;", "192.0.2.60"),  # empty pairs are allowed
        ("for=192.0.2.43, for=198.51.100.17", "198.51.100.17"),  # the hop our proxy saw, not the client's claim
        ("for=192.0.2.43,for=10.0.0.9", "192.0.2.43"),  # trusted proxies are skipped
        ('for=192.0.2.43, for="[fd00::1]:80"', "192.0.2.43"),
        ("for=_hidden", PROXY),  # obfuscated and unknown nodes are not addresses: the proxy is all we know
        ("for=unknown", PROXY),
        ('for="_gazonk"', PROXY),
        ("for=192.0.2.43, for=unknown", PROXY),
        ("proto=https;by=10.0.0.5", PROXY),  # no for=
    ],
)
async def test_forwarded_from_a_trusted_proxy_names_the_client(flowhook, open_trigger, forwarded, client) -> None:
    assert await client_ip_logged(flowhook, open_trigger, PROXY, [("forwarded", forwarded)]) == client


@pytest.mark.parametrize(
    "forwarded",
    [
        'for="192.0.2.1',  # unclosed quote
        "for=",
        "for",
        "garbage",
        "for=192.0.2.1;for=198.51.100.17",  # for= twice in one element
        "for=192.0.2.1;proto",
        "for=192.0.2.1 garbage",
        ",,",
        "for=192.0.2.0/24",
    ],
)
async def test_a_malformed_forwarded_from_a_trusted_proxy_stops_at_the_proxy(flowhook, open_trigger, forwarded) -> None:
    """As with an X-Forwarded-For hop that is not an address: nothing a trusted proxy vouched for is lost."""
    assert await client_ip_logged(flowhook, open_trigger, PROXY, [("forwarded", forwarded)]) == PROXY


async def test_a_malformed_element_written_by_the_client_cannot_hide_the_proxys(flowhook, open_trigger) -> None:
    unclosed = 'for="192.0.2.1, for=198.51.100.17'  # the client's unclosed quote, then our proxy's element
    assert await client_ip_logged(flowhook, open_trigger, PROXY, [("forwarded", unclosed)]) == "198.51.100.17"


async def test_repeated_forwarded_headers_are_one_list(flowhook, open_trigger) -> None:
    headers = [("forwarded", "for=192.0.2.43"), ("forwarded", "for=198.51.100.17")]
    assert await client_ip_logged(flowhook, open_trigger, PROXY, headers) == "198.51.100.17"


async def test_x_forwarded_for_is_not_read(flowhook, open_trigger) -> None:
    assert await client_ip_logged(flowhook, open_trigger, PROXY, [("x-forwarded-for", "198.51.100.4")]) == PROXY
    headers = [("x-forwarded-for", "198.51.100.4"), ("forwarded", "for=192.0.2.60")]
    assert await client_ip_logged(flowhook, open_trigger, PROXY, headers) == "192.0.2.60"
    unknown = [("x-forwarded-for", "198.51.100.4"), ("forwarded", "for=unknown")]
    assert await client_ip_logged(flowhook, open_trigger, PROXY, unknown) == PROXY  # never spliced together


async def test_a_spoofed_forwarded_from_an_untrusted_peer_is_ignored(flowhook) -> None:
    trigger = await flowhook.trigger(allowedIps=["192.0.2.1"])
    spoofed = await flowhook.post(trigger, BODY, ip="203.0.113.50", forwarded="for=192.0.2.1")
    assert spoofed.status_code == 403
    assert (await flowhook.entry(spoofed.json()["error"]["requestId"]))["clientIp"] == "203.0.113.50"
    allowed = await flowhook.post(trigger, BODY, ip=PROXY, forwarded='for="192.0.2.1:4711"')
    assert allowed.status_code == 202
