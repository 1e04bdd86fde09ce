"""How many client authentications `POST /oauth/token` hashes: failed ones are limited, as Okta or Auth0 do.

Each attempt costs one scrypt (~60 ms of CPU, 16 MiB), so 200 requests with
made-up client ids kept a real client waiting 11 s for its token. Each
failure takes one attempt from a token bucket of `per_minute` attempts that
refills at `per_minute` a minute: the bucket of the client id when the
credential exists, else the bucket of the client's address (IPv6 by /64, the
block one host is usually given). An attempt is taken before the hash, so
concurrent requests cannot all pass a full bucket, and given back when the
secret matches: a client that authenticates never runs out. With its bucket
empty a request is refused with 429 and `Retry-After`, before any hashing.

A client is limited by its own id's failures, not by its address's: a
flood of made-up ids cannot lock out a real client that shares the
attacker's address (a NAT, or a proxy that `FLOWHOOK_TRUSTED_PROXIES` does not
name). Made-up ids from many addresses are bounded as well: at most
`MAX_DECOYS` of their hashes wait at once, so a real client's hash never
queues behind more of them than that. (Whether a client id exists can be told from a
429 for an unknown one while a known one is still hashed; client ids are not
secrets, and the secret check itself takes the same time either way.)
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_DECOYS = 8  # hashes of unknown client ids waiting or running at once
MAX_BUCKETS = 10_000  # per kind of key; the least recently used go first (a full bucket is no bucket)


class TooManyAttempts(Exception):
    """Refused before hashing; `retry_after` whole seconds until the next attempt is allowed."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed client authentications; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class _Bucket:
    tokens: float
    updated: float


class FailureBuckets:
    """A token bucket of attempts per key, `per_minute` deep, refilled at `per_minute` a minute."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = float(per_minute)
        self._per_second = per_minute / 60
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> None:
        """Take one attempt from `key`'s bucket; TooManyAttempts if it has none."""
        bucket = self._refilled(key)
        if bucket.tokens < 1:
            raise TooManyAttempts(math.ceil((1 - bucket.tokens) / self._per_second))
        bucket.tokens -= 1

    def give_back(self, key: str) -> None:
        """The attempt succeeded: it does not count."""
        bucket = self._refilled(key)
        bucket.tokens = min(self._capacity, bucket.tokens + 1)

    def _refilled(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(self._capacity, now)
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.popitem(last=False)
        bucket.tokens = min(self._capacity, bucket.tokens + (now - bucket.updated) * self._per_second)
        bucket.updated = now
        self._buckets[key] = bucket  # most recently used last
        return bucket


@dataclass(frozen=True)
class Attempt:
    """One counted attempt: of a known client (`client_id`) or of an unknown one from `address`."""

    client_id: str | None = None
    address: str | None = None


class TokenAttempts:
    """The token endpoint's limits: per client id for known clients, per address for unknown ones."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._by_client = FailureBuckets(per_minute, clock)
        self._by_address = FailureBuckets(per_minute, clock)
        self._decoys = 0

    def begin(self, client_id: str, known: bool, address: str) -> Attempt:
        """Count an attempt about to be hashed; TooManyAttempts if its bucket is empty (or, for an unknown
        client, if MAX_DECOYS hashes already wait)."""
        if known:
            self._by_client.take(client_id)
            return Attempt(client_id=client_id)
        if self._decoys >= MAX_DECOYS:
            raise TooManyAttempts(1)
        key = _address_key(address)
        self._by_address.take(key)
        self._decoys += 1
        return Attempt(address=key)

    def end(self, attempt: Attempt, *, succeeded: bool) -> None:
        """The hash is done (or abandoned): a success does not count against the client."""
        if attempt.address is not None:
            self._decoys -= 1
        elif succeeded and attempt.client_id is not None:
            self._by_client.give_back(attempt.client_id)


def _address_key(address: str) -> str:
    """The address, or its /64 for IPv6 (one host commonly holds a whole /64)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)
