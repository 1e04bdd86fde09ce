"""ingress.token_cache: how long a looked-up access token is trusted, and what makes it forgotten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingress.token_cache import TokenCache
from store.credentials import AccessToken

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.seconds = 100.0

    def __call__(self) -> float:
        return self.seconds


def token(client_id: str = "cl_1", *, expires_in: float = 3600) -> AccessToken:
    return AccessToken(client_id, "default", ["events"], NOW + timedelta(seconds=expires_in))


def test_a_token_is_trusted_for_the_ttl_then_looked_up_again() -> None:
    clock = Clock()
    cache = TokenCache(1.0, clock=clock)
    cache.put("h1", token(), cache.revocations)
    clock.seconds += 0.999
    assert cache.get("h1", NOW) == token()
    clock.seconds += 0.001
    assert cache.get("h1", NOW) is None
    assert cache.get("h1", NOW) is None  # forgotten, not refreshed by asking


def test_a_token_is_never_trusted_past_its_own_expiry() -> None:
    cache = TokenCache(60.0, clock=Clock())
    cache.put("h1", token(expires_in=5), cache.revocations)
    assert cache.get("h1", NOW + timedelta(seconds=4)) is not None
    assert cache.get("h1", NOW + timedelta(seconds=5)) is None


def test_a_ttl_of_zero_trusts_nothing() -> None:
    cache = TokenCache(0.0, clock=Clock())
    cache.put("h1", token(), cache.revocations)
    assert cache.get("h1", NOW) is None


def test_revoking_forgets_only_that_credentials_tokens() -> None:
    cache = TokenCache(60.0, clock=Clock())
    cache.put("a1", token("cl_a"), cache.revocations)
    cache.put("a2", token("cl_a"), cache.revocations)
    cache.put("b1", token("cl_b"), cache.revocations)
    cache.forget_client("cl_a")
    assert cache.get("a1", NOW) is None and cache.get("a2", NOW) is None
    assert cache.get("b1", NOW) == token("cl_b")


def test_a_lookup_that_raced_with_a_revocation_is_not_remembered() -> None:
    """The read began before the revocation committed, so it may have seen the credential still there."""
    cache = TokenCache(60.0, clock=Clock())
    before_the_read = cache.revocations
    cache.forget_client("cl_a")  # committed while the read was under way
    cache.put("a1", token("cl_a"), before_the_read)
    assert cache.get("a1", NOW) is None
    cache.put("a1", token("cl_a"), cache.revocations)  # a read begun afterwards is trusted again
    assert cache.get("a1", NOW) is not None


def test_looking_up_a_remembered_token_again_drops_nothing_else() -> None:
    cache = TokenCache(60.0, max_entries=2, clock=Clock())
    cache.put("h1", token("c1"), cache.revocations)
    cache.put("h2", token("c2"), cache.revocations)
    cache.put("h2", token("c2"), cache.revocations)  # the cache is full, but h2 only moves to the end
    assert cache.get("h1", NOW) is not None and cache.get("h2", NOW) is not None


def test_past_its_size_the_oldest_entry_goes_first() -> None:
    cache = TokenCache(60.0, max_entries=2, clock=Clock())
    cache.put("h1", token("c1"), cache.revocations)
    cache.put("h2", token("c2"), cache.revocations)
    cache.put("h1", token("c1"), cache.revocations)  # looked up again: now the newest
    cache.put("h3", token("c3"), cache.revocations)
    assert cache.get("h2", NOW) is None
    assert cache.get("h1", NOW) is not None and cache.get("h3", NOW) is not None
