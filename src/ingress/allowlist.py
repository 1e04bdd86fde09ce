"""Which client may call a hook (SPEC §3 IP allowlist), and who the client is.

The client address is the socket peer. The forwarding header the trusted
proxies write (`X-Forwarded-For` by default, or RFC 7239 `Forwarded`) is only
believed when the peer is one of the server's trusted proxies, and then only
as far as the chain of trusted proxies goes: anything left of the first
untrusted hop was written by the client and may be forged. Only that one
header is read: most proxies append to `X-Forwarded-For` and pass a client's
`Forwarded` through untouched, so reading both would let a client choose.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Final

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

_IPV4_MAPPED: Final = IPv6Network("::ffff:0:0/96")


class IpAllowlist:
    """IPv4/IPv6 addresses and CIDR ranges; `allows` is True for everyone when the list is empty.

    IPv4-mapped IPv6 (`::ffff:10.0.0.1`, what a dual-stack socket reports for
    an IPv4 client) is treated as the IPv4 address, in entries and in lookups.
    """

    __slots__ = ("_networks", "allows", "entries")

    def __init__(self, entries: Iterable[str]):
        self.entries: tuple[str, ...] = tuple(entries)
        self._networks: tuple[Network, ...] = tuple(_parse_network(entry) for entry in self.entries)
        #: The allowlist decision, remembered per address: a sender calls from the same few addresses.
        self.allows: Callable[[str], bool] = lru_cache(maxsize=1024)(self._allows)

    def contains(self, ip: str) -> bool:
        """True only when `ip` is inside one of the entries (an empty list contains nothing)."""
        address = parse_address(ip)
        return address is not None and self.contains_address(address)

    def _allows(self, ip: str) -> bool:
        """The allowlist decision: everyone when empty, else only listed addresses (never an unparseable one)."""
        return not self._networks or self.contains(ip)

    def contains_address(self, address: Address) -> bool:
        """`contains` for an address already parsed with `parse_address`."""
        return any(address in network for network in self._networks)


@lru_cache(maxsize=4096)
def parse_address(text: str) -> Address | None:
    """`text` as an IP address with IPv4-mapped IPv6 unwrapped; None when it is not one."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _parse_network(entry: str) -> Network:
    try:
        network = ipaddress.ip_network(entry.strip(), strict=False)
    except (ValueError, AttributeError):
        raise ValueError(f"invalid IP address or CIDR range: {entry!r}") from None
    if isinstance(network, IPv6Network) and network.subnet_of(_IPV4_MAPPED):
        mapped = IPv4Address(int(network.network_address) & 0xFFFFFFFF)
        return IPv4Network((mapped, network.prefixlen - 96))
    return network


def client_ip(
    peer: str, headers: Mapping[str, str], trusted_proxies: IpAllowlist | None, header: str = "x-forwarded-for"
) -> str:
    """The client's address: the peer, or the right-most untrusted hop of `header`.

    `header` is one of FORWARDING_HEADERS. Walks it right to left from the
    peer while the current hop is a trusted proxy. A hop that is not an IP
    address (`unknown`, an obfuscated name, garbage) stops the walk at the
    last address a trusted proxy vouched for. An empty or absent trusted list
    trusts nobody (unlike an empty allowlist, which allows everybody).
    """
    chain, parse_hop = headers.get(header), FORWARDING_HEADERS[header]
    if trusted_proxies is None or not chain:
        return _canonical(peer)
    client = parse_address(peer)
    if client is None:
        return peer
    for hop in reversed(chain.split(",")):
        if not trusted_proxies.contains_address(client):
            break
        address = parse_hop(hop)
        if address is None:
            break
        client = address
    return str(client)


@lru_cache(maxsize=4096)
def _canonical(peer: str) -> str:
    """The peer address as `client_ip` reports it (IPv4-mapped unwrapped), or as given when not an address."""
    address = parse_address(peer)
    return peer if address is None else str(address)


def _parse_hop(hop: str) -> Address | None:
    """One X-Forwarded-For entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:5678`."""
    hop = hop.strip()
    if hop.startswith("["):
        return parse_address(hop[1:].partition("]")[0])
    if hop.count(":") == 1:
        hop = hop.partition(":")[0]
    return parse_address(hop)


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_BARE_VALUE = r"[!#$%&'*+.^_`|~0-9A-Za-z:\[\]-]+"  # a token, or `ip:port`, `[ipv6]` some proxies leave unquoted
_PAIR = re.compile(rf'\s*({_TOKEN})=({_BARE_VALUE}|"(?:[^"\\]|\\.)*")\s*')
_QUOTED_PAIR = re.compile(r"\\(.)")


def _parse_element(element: str) -> Address | None:
    """The `for=` address of one RFC 7239 element: `for=192.0.2.60;proto=http;by=203.0.113.43`.

    Names are case-insensitive; the node may be quoted and carry a port
    (`for="[2001:db8:cafe::17]:4711"`). None, which stops the walk, for
    `unknown`, an obfuscated `_name`, no `for`, a repeated `for`, or an
    element that does not parse. The header is split on every comma and
    semicolon, so quoted values cannot contain one (node values never do),
    and an unclosed quote the client wrote cannot swallow the elements our
    proxies appended.
    """
    node: str | None = None
    for pair in element.split(";"):
        if not pair.strip():
            continue
        match = _PAIR.fullmatch(pair)
        if match is None:
            return None
        name, value = match.groups()
        if name.lower() == "for":
            if node is not None:
                return None
            node = _QUOTED_PAIR.sub(r"\1", value[1:-1]) if value.startswith('"') else value
    return None if node is None else _parse_hop(node)


#: The forwarding headers a deployment's proxies may write, and how each hop of one is read.
FORWARDING_HEADERS: dict[str, Callable[[str], Address | None]] = {
    "x-forwarded-for": _parse_hop,
    "forwarded": _parse_element,
}
