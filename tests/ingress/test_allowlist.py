"""IP allowlist and client address resolution behind trusted proxies."""

from __future__ import annotations

import pytest

from ingress.allowlist import IpAllowlist, client_ip

# --- IpAllowlist ---------------------------------------------------------------------


def test_empty_list_allows_everyone_but_contains_nobody() -> None:
    allowlist = IpAllowlist([])
    assert allowlist.allows("203.0.113.7") and allowlist.allows("2001:db8::1")
    assert not allowlist.contains("203.0.113.7")


@pytest.mark.parametrize(
    ("entries", "allowed", "refused"),
    [
        (["203.0.113.7"], ["203.0.113.7", " 203.0.113.7 "], ["203.0.113.8", "2001:db8::1"]),
        (["10.0.0.0/8"], ["10.0.0.0", "10.255.255.255"], ["11.0.0.0", "9.255.255.255"]),
        (["2001:db8::1"], ["2001:db8::1", "2001:0db8:0000::0001"], ["2001:db8::2", "203.0.113.7"]),
        (["2001:db8:abcd::/48"], ["2001:db8:abcd::1", "2001:db8:abcd:ffff::1"], ["2001:db8:abce::1"]),
        (["192.0.2.0/24", "2001:db8::/32"], ["192.0.2.9", "2001:db8:1::9"], ["198.51.100.1", "2001:db9::1"]),
        (["0.0.0.0/0"], ["1.2.3.4"], ["::1"]),
        (["10.1.2.99/24"], ["10.1.2.1"], ["10.1.3.1"]),  # host bits are ignored, as ip_network(strict=False)
    ],
)
def test_addresses_and_cidr_ranges(entries: list[str], allowed: list[str], refused: list[str]) -> None:
    allowlist = IpAllowlist(entries)
    assert [ip for ip in allowed if not allowlist.allows(ip)] == []
    assert [ip for ip in refused if allowlist.allows(ip)] == []


def test_ipv4_mapped_ipv6_is_the_ipv4_address() -> None:
    """A dual-stack socket reports an IPv4 client as ::ffff:a.b.c.d."""
    assert IpAllowlist(["10.0.0.0/8"]).allows("::ffff:10.1.2.3")
    assert not IpAllowlist(["10.0.0.0/8"]).allows("::ffff:11.1.2.3")
    mapped_entry = IpAllowlist(["::ffff:10.0.0.0/104"])
    assert mapped_entry.allows("10.1.2.3") and mapped_entry.allows("::ffff:10.1.2.3")
    assert not mapped_entry.allows("11.0.0.1")


def test_scoped_ipv6_addresses() -> None:
    assert IpAllowlist(["fe80::/10"]).allows("fe80::1%eth0")


def test_unparseable_client_is_never_allowed_by_a_non_empty_list() -> None:
    allowlist = IpAllowlist(["0.0.0.0/0", "::/0"])
    for ip in ("", "testclient", "unknown", "10.0.0.256", "[::1]"):
        assert not allowlist.allows(ip)


@pytest.mark.parametrize(
    "entry", ["", "example.com", "10.0.0.256", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/8/8", "1.2.3"]
)
def test_invalid_entry_is_a_value_error_naming_it(entry: str) -> None:
    with pytest.raises(ValueError) as caught:
        IpAllowlist(["192.0.2.1", entry])
    assert repr(entry) in str(caught.value)


def test_entries_are_kept_as_given() -> None:
    assert IpAllowlist([" 10.0.0.0/8", "2001:db8::1"]).entries == (" 10.0.0.0/8", "2001:db8::1")


# --- client_ip -----------------------------------------------------------------------

PROXIES = IpAllowlist(["10.0.0.0/8", "fd00::/8"])


def test_without_trusted_proxies_forwarded_for_is_ignored() -> None:
    headers = {"x-forwarded-for": "192.0.2.1"}
    assert client_ip("203.0.113.7", headers, None) == "203.0.113.7"
    # An empty trusted list trusts nobody (an empty *allowlist* allows everybody).
    assert client_ip("203.0.113.7", headers, IpAllowlist([])) == "203.0.113.7"


def test_an_untrusted_peers_forwarded_for_is_ignored() -> None:
    """The spoofing case: a client claims to be an allowlisted address."""
    assert client_ip("203.0.113.7", {"x-forwarded-for": "10.9.9.9, 192.0.2.1"}, PROXIES) == "203.0.113.7"


def test_a_trusted_peer_hands_over_to_the_last_hop() -> None:
    assert client_ip("10.0.0.2", {"x-forwarded-for": "198.51.100.4"}, PROXIES) == "198.51.100.4"


def test_the_chain_is_walked_right_to_left_over_trusted_proxies_only() -> None:
    # client forged "192.0.2.1" itself; 198.51.100.4 is who reached our first proxy.
    headers = {"x-forwarded-for": "192.0.2.1, 198.51.100.4, 10.0.0.9, fd00::7"}
    assert client_ip("10.0.0.2", headers, PROXIES) == "198.51.100.4"


def test_when_every_hop_is_trusted_the_leftmost_is_the_client() -> None:
    assert client_ip("10.0.0.2", {"x-forwarded-for": "10.3.3.3, 10.2.2.2"}, PROXIES) == "10.3.3.3"


def test_no_or_empty_forwarded_for_means_the_peer() -> None:
    assert client_ip("10.0.0.2", {}, PROXIES) == "10.0.0.2"
    assert client_ip("10.0.0.2", {"x-forwarded-for": ""}, PROXIES) == "10.0.0.2"


def test_a_garbled_hop_stops_the_walk_at_the_last_vouched_address() -> None:
    headers = {"x-forwarded-for": "198.51.100.4, unknown, 10.0.0.9"}
    assert client_ip("10.0.0.2", headers, PROXIES) == "10.0.0.9"
    assert client_ip("10.0.0.2", {"x-forwarded-for": "198.51.100.4, "}, PROXIES) == "10.0.0.2"


@pytest.mark.parametrize(
    ("hop", "client"),
    [
        ("2001:db8::5", "2001:db8::5"),
        ("[2001:db8::5]:4711", "2001:db8::5"),
        ("[2001:db8::5]", "2001:db8::5"),
        ("198.51.100.4:4711", "198.51.100.4"),
        ("::ffff:198.51.100.4", "198.51.100.4"),
    ],
)
def test_forwarded_hops_with_ipv6_ports_and_brackets(hop: str, client: str) -> None:
    assert client_ip("fd00::1", {"x-forwarded-for": hop}, PROXIES) == client


def test_ipv6_and_mapped_peers() -> None:
    assert client_ip("2001:db8::9", {"x-forwarded-for": "192.0.2.1"}, PROXIES) == "2001:db8::9"
    assert client_ip("::ffff:10.0.0.2", {"x-forwarded-for": "192.0.2.1"}, PROXIES) == "192.0.2.1"
    assert client_ip("::ffff:203.0.113.7", {}, None) == "203.0.113.7"


def test_a_peer_that_is_not_an_address_is_returned_as_is() -> None:
    """Starlette's TestClient reports "testclient"; it is never trusted."""
    assert client_ip("testclient", {"x-forwarded-for": "10.0.0.1"}, PROXIES) == "testclient"
