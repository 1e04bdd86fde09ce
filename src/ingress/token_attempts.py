"""How many client authentications `POST /oauth/token` hashes: failed ones are limited, as Okta or Auth0 do.

Each attempt costs one scrypt (~60 ms of CPU, 16 MiB), so 200 requests with
made-up client ids kept a real client waiting 11 s for its token. Each
failure takes one attempt from token buckets of `per_minute` attempts that
refill at `per_minute` a minute: the bucket of the client id and the bucket
of the client's address (IPv6 by /64, the block one host is usually given).
An attempt is taken before the hash, so concurrent requests cannot all pass
a full bucket, and given back when the secret matches: a client that
authenticates never runs out. With either bucket empty a request is refused
with 429 and `Retry-After`, before any hashing.

Known and unknown client ids are limited alike, so that no answer tells
whether a client id exists: every attempt takes from the bucket of its
client id (whether a credential has it is not even asked here) and from the
bucket of its address, and at most `MAX_PENDING` hashes wait at once; an
unknown id is hashed against a decoy (ingress.client_secrets), so it costs
the same scrypt and gets the same 401. (A limit for unknown ids alone, as
there was, was an oracle: empty an address's bucket with made-up ids, then
a known id was still hashed, 401, where an unknown one was a 429.)

What keeps a real client from being locked out by others (a NAT neighbour
making up ids, someone sending wrong secrets for its id, a flood from many
addresses) is its secret, the one thing an attacker lacks: a client id and
secret that authenticated in the last `REMEMBERED_SECONDS` are let through
every limit (and still hashed, so a revoked credential fails). A client new
to this process authenticates under the limits like anyone else.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_PENDING = 8  # hashes of attempts under the limits waiting or running at once
MAX_BUCKETS = 10_000  # per kind of key; the least recently used go first (a full bucket is no bucket)
#: How long an authenticated client id and secret pass the limits: a day, many times a token's lifetime.
REMEMBERED_SECONDS = 24 * 3600


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

    def retry_after(self, key: str) -> int | None:
        """None if `key`'s bucket holds an attempt, else the whole seconds until it does. Asking makes no bucket."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return None
        tokens = min(self._capacity, bucket.tokens + (self._clock() - bucket.updated) * self._per_second)
        return None if tokens >= 1 else math.ceil((1 - tokens) / self._per_second)

    def take(self, key: str) -> None:
        """Take one attempt from `key`'s bucket; TooManyAttempts if it has none."""
        retry_after = self.retry_after(key)
        if retry_after is not None:
            raise TooManyAttempts(retry_after)
        self._refilled(key).tokens -= 1

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
    """One attempt about to be hashed: `remembered` (its client id and secret, `digest`, authenticated lately:
    not counted), or counted against the buckets of `client_id` and `address`."""

    client_id: str
    address: str
    digest: bytes
    remembered: bool


class TokenAttempts:
    """The token endpoint's limits, the same whether a client id exists or not (see the module)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._by_client = FailureBuckets(per_minute, clock)
        self._by_address = FailureBuckets(per_minute, clock)
        self._clock = clock
        self._pending = 0
        self._remembered: OrderedDict[bytes, float] = OrderedDict()  # digest -> remembered until
        self._key = secrets.token_bytes(32)  # a digest of a secret is of no use outside this process

    def begin(self, client_id: str, client_secret: str, address: str) -> Attempt:
        """Count an attempt about to be hashed; TooManyAttempts if the client id's or the address's bucket is
        empty, or MAX_PENDING hashes already wait (unless it authenticated lately)."""
        digest, key = self._digest(client_id, client_secret), _address_key(address)
        until = self._remembered.get(digest)
        if until is not None and until > self._clock():
            return Attempt(client_id, key, digest, remembered=True)
        if self._pending >= MAX_PENDING:
            raise TooManyAttempts(1)
        retry_after = max(self._by_client.retry_after(client_id) or 0, self._by_address.retry_after(key) or 0)
        if retry_after:
            raise TooManyAttempts(retry_after)
        self._by_client.take(client_id)
        self._by_address.take(key)
        self._pending += 1
        return Attempt(client_id, key, digest, remembered=False)

    def end(self, attempt: Attempt, *, succeeded: bool) -> None:
        """The hash is done (or abandoned): a success does not count, and is remembered; a remembered pair
        that failed (its credential revoked) is forgotten."""
        if not attempt.remembered:
            self._pending -= 1
            if succeeded:
                self._by_client.give_back(attempt.client_id)
                self._by_address.give_back(attempt.address)
        if succeeded:
            self._remember(attempt.digest)
        else:
            self._remembered.pop(attempt.digest, None)

    def _digest(self, client_id: str, client_secret: str) -> bytes:
        pair = f"{len(client_id)}:{client_id}{client_secret}".encode()
        return hashlib.blake2b(pair, key=self._key, digest_size=32).digest()

    def _remember(self, digest: bytes) -> None:
        self._remembered.pop(digest, None)
        if len(self._remembered) >= MAX_BUCKETS:
            self._remembered.popitem(last=False)
        self._remembered[digest] = self._clock() + REMEMBERED_SECONDS


def _address_key(address: str) -> str:
    """The address, or its /64 for IPv6 (one host commonly holds a whole /64)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)
