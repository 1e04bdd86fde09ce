"""Access tokens looked up recently, so a busy client does not cost a store read per request.

Looking a token up in the store took a third of the server's CPU per event
on `POST /v1/{env}/events` (a read-pool thread, a transaction, a join), for
an answer that changes only when the token expires or its credential is
revoked. An entry is trusted for `ttl` seconds and never past the token's
own expiry. Revoking a credential through this process forgets its tokens at
once; another process sharing the database (`--workers`, PostgreSQL) stops
trusting them within `ttl`: the service's `config_cache_seconds`, the same
bound as for every other configuration change. Unknown tokens are not remembered: a token issued
by another process works with its first request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from store.credentials import AccessToken

#: Entries kept at most; past it the oldest are dropped (a client whose token is dropped only pays a read).
TOKEN_CACHE_ENTRIES = 10_000


class TokenCache:
    def __init__(
        self,
        ttl: float,
        max_entries: int = TOKEN_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[AccessToken, float]] = {}  # token hash -> (token, trusted until)
        self.revocations = 0  # how many `forget_client` calls so far; see `put`

    def get(self, token_hash: str, now: datetime) -> AccessToken | None:
        """The token if it was looked up less than `ttl` ago and has not expired by `now`."""
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        token, trusted_until = entry
        if self._clock() >= trusted_until or now >= token.expires_at:
            del self._entries[token_hash]
            return None
        return token

    def put(self, token_hash: str, token: AccessToken, revocations: int) -> None:
        """Remember a token read from the store while `revocations` was the count: a read that raced with a
        revocation in this process may have seen the credential still there, and is not remembered."""
        if revocations != self.revocations:
            return
        self._entries.pop(token_hash, None)  # re-inserted last: it is now the newest
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest (dicts keep insertion order)
        self._entries[token_hash] = (token, self._clock() + self._ttl)

    def forget_client(self, client_id: str) -> None:
        """Drop the tokens of a credential this process has just revoked."""
        self.revocations += 1
        for token_hash in [key for key, (token, _) in self._entries.items() if token.client_id == client_id]:
            del self._entries[token_hash]
