"""IP allowlists over HTTP: CIDR ranges, IPv6, and Forwarded / X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.anyio

PROXY = "10.0.0.5"
BODY = orjson.dumps({"targetUserIds": ["u1"]})


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    return {"trusted_proxies": ("10.0.0.0/24", "fd00::1")}


async def test_cidr_ranges_and_single_addresses(flowhook) -> None:
    trigger = await flowhook.trigger(allowedIps=["192.0.2.0/28", "198.51.100.9"])
    for ip, status in [("192.0.2.14", 202), ("192.0.2.16", 403), ("198.51.100.9", 202), ("198.51.100.10", 403)]:
        assert (await flowhook.post(trigger, BODY, ip=ip)).status_code == status, ip
    refused = await flowhook.log(trigger, cause="ip_not_allowed")
    assert sorted(entry["clientIp"] for entry in refused) == ["192.0.2.16", "198.51.100.10"]


async def test_ipv6_clients_and_ranges(flowhook) -> None:
    trigger = await flowhook.trigger(allowedIps=["2001:db8:abcd::/48"])
    assert (await flowhook.post(trigger, BODY, ip="2001:db8:abcd:12::1")).status_code == 202
    assert (await flowhook.post(trigger, BODY, ip="2001:db8:ffff::1")).status_code == 403
    assert (await flowhook.post(trigger, BODY, ip="192.0.2.1")).status_code == 403


async def test_an_empty_allowlist_allows_everyone(flowhook) -> None:
    trigger = await flowhook.trigger(allowedIps=[])
    assert (await flowhook.post(trigger, BODY, ip="2001:db8::99")).status_code == 202


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(flowhook) -> None:
    trigger = await flowhook.trigger(allowedIps=["192.0.2.1"])
    spoofed = await flowhook.post(trigger, BODY, ip="203.0.113.50", x_forwarded_for="192.0.2.1")
    assert spoofed.status_code == 403
    entry = await flowhook.entry(spoofed.json()["error"]["requestId"])
    assert entry["clientIp"] == "203.0.113.50"


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(flowhook) -> None:
    trigger = await flowhook.trigger(allowedIps=["192.0.2.1"])
    allowed = await flowhook.post(trigger, BODY, ip=PROXY, x_forwarded_for="192.0.2.1")
    assert allowed.status_code == 202
    # The client wrote the left-most hop itself: only the hop our proxy saw counts.
    forged_chain = await flowhook.post(trigger, BODY, ip=PROXY, x_forwarded_for="192.0.2.1, 203.0.113.50")
    assert forged_chain.status_code == 403
    ipv6_proxy = await flowhook.post(trigger, BODY, ip="fd00::1", x_forwarded_for="192.0.2.1")
    assert ipv6_proxy.status_code == 202
    assert (await flowhook.entry(allowed.json()["requestId"]))["clientIp"] == "192.0.2.1"


async def test_bad_allowlist_entries_are_refused_at_save(flowhook) -> None:
    flow = await flowhook.flow()
    response = await flowhook.api.post(
        f"/v1/default/action-flows/{flow['id']}/triggers", json={"allowedIps": ["10.0.0.0/8", "10.0.0.300"]}
    )
    assert response.status_code == 422
    assert response.json()["error"] | {"message": None} == {
        "code": "invalid_allowed_ips",
        "message": None,
        "path": "$.allowedIps[1]",
    }


async def test_forwarded_is_not_read_unless_configured(flowhook) -> None:
    """Behind a proxy that writes X-Forwarded-For, a client's own `Forwarded` header proves nothing."""
    trigger = await flowhook.trigger(allowedIps=["192.0.2.1"])
    spoofed = await flowhook.post(trigger, BODY, ip=PROXY, forwarded="for=192.0.2.1", x_forwarded_for="198.51.100.4")
    assert spoofed.status_code == 403
    assert (await flowhook.entry(spoofed.json()["error"]["requestId"]))["clientIp"] == "198.51.100.4"
