"""Failed client authentications at POST /oauth/token are limited, and hashed apart from other work.

Each attempt costs one scrypt: 200 requests with made-up client ids, hashed
on the default thread pool and unlimited, kept a real client waiting 11 s
for its token. The limits are the same for known and unknown client ids, so
that no answer tells which exist.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

import pytest

from ingress import client_secrets
from ingress.token_attempts import MAX_PENDING, REMEMBERED_SECONDS, FailureBuckets, TokenAttempts, TooManyAttempts

pytestmark = pytest.mark.anyio

PER_MINUTE = 3
TOKEN_URL = "/oauth/token"
GRANT = {"grant_type": "client_credentials"}


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    return {"oauth_failures_per_minute": PER_MINUTE}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_holds_per_minute_attempts_and_refills_at_that_rate() -> None:
    clock = Clock()
    buckets = FailureBuckets(10, clock)
    for _ in range(10):
        buckets.take("a")
    with pytest.raises(TooManyAttempts) as refused:
        buckets.take("a")
    assert refused.value.retry_after == 6  # one attempt every 6 s
    buckets.take("b")  # another key has its own bucket
    clock.now += 6
    buckets.take("a")
    with pytest.raises(TooManyAttempts):
        buckets.take("a")
    buckets.give_back("a")  # an attempt that succeeded does not count
    buckets.take("a")


def test_hashes_waiting_at_once_are_bounded_but_not_for_a_client_that_authenticated_lately() -> None:
    clock = Clock()
    attempts = TokenAttempts(100, clock)
    attempts.end(attempts.begin("fh_ci_known", "right", "198.51.100.1"), succeeded=True)
    started = [attempts.begin(f"fh_ci_{index}", "x", f"198.51.100.{index}") for index in range(MAX_PENDING)]
    with pytest.raises(TooManyAttempts):
        attempts.begin("fh_ci_other", "x", "198.51.100.200")
    with pytest.raises(TooManyAttempts):
        attempts.begin("fh_ci_known", "wrong", "198.51.100.200")  # a known id without its secret is no one
    attempts.begin("fh_ci_known", "right", "198.51.100.200")  # the client that authenticated is not refused
    attempts.end(started[0], succeeded=False)
    attempts.begin("fh_ci_other", "x", "198.51.100.200")
    for attempt in started[1:]:
        attempts.end(attempt, succeeded=False)
    clock.now += REMEMBERED_SECONDS
    for index in range(MAX_PENDING - 1):
        attempts.begin(f"fh_ci_{index}", "x", f"198.51.100.{index}")
    with pytest.raises(TooManyAttempts):
        attempts.begin("fh_ci_known", "right", "198.51.100.200")  # remembered for REMEMBERED_SECONDS only


def test_a_remembered_client_that_fails_is_forgotten() -> None:
    """Its credential was revoked: its next attempts are counted like anyone's."""
    attempts = TokenAttempts(1)
    attempts.end(attempts.begin("fh_ci_known", "right", "198.51.100.1"), succeeded=True)
    attempts.end(attempts.begin("fh_ci_known", "right", "198.51.100.1"), succeeded=False)
    attempts.end(attempts.begin("fh_ci_known", "right", "198.51.100.1"), succeeded=False)
    with pytest.raises(TooManyAttempts):
        attempts.begin("fh_ci_known", "right", "198.51.100.2")


def test_an_ipv6_host_is_limited_by_its_64() -> None:
    attempts = TokenAttempts(2)
    for index, address in enumerate(("2001:db8::1", "2001:db8::2")):
        attempts.end(attempts.begin(f"fh_ci_{index}", "x", address), succeeded=False)
    with pytest.raises(TooManyAttempts):
        attempts.begin("fh_ci_nobody", "x", "2001:db8::ffff")
    attempts.begin("fh_ci_nobody", "x", "2001:db8:0:1::1")  # the next /64


async def test_made_up_client_ids_from_an_address_are_refused_with_429_and_retry_after(flowhook) -> None:
    credential = await flowhook.credential()
    sender = flowhook.sender("192.0.2.10")
    right = basic(credential["clientId"], credential["clientSecret"])
    assert (await sender.post(TOKEN_URL, data=GRANT, headers=right)).status_code == 200  # before the flood
    for index in range(PER_MINUTE):
        response = await sender.post(TOKEN_URL, data=GRANT, headers=basic(f"fh_ci_madeup{index}", "x"))
        assert response.status_code == 401, response.text
    refused = await sender.post(TOKEN_URL, data=GRANT, headers=basic("fh_ci_madeup", "x"))
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"] == "temporarily_unavailable"
    assert refused.json()["error_description"].startswith("too many failed client authentications")
    assert int(refused.headers["retry-after"]) == 60 // PER_MINUTE
    assert refused.headers["cache-control"] == "no-store"
    other = await flowhook.sender("192.0.2.11").post(TOKEN_URL, data=GRANT, headers=basic("fh_ci_madeup", "x"))
    assert other.status_code == 401  # another address has its own bucket
    real = await sender.post(TOKEN_URL, data=GRANT, headers=right)
    assert real.status_code == 200, real.text  # a real client is not locked out by its address's neighbours


def answers(responses: list[Any]) -> list[tuple[int, Any, str | None]]:
    """What a caller can tell the responses apart by: status, body, Retry-After."""
    return [(response.status_code, response.json(), response.headers.get("retry-after")) for response in responses]


async def test_an_address_out_of_attempts_is_refused_alike_for_known_and_unknown_client_ids(flowhook) -> None:
    """Made-up ids emptied the address's bucket; a known id was then still hashed (401) where an unknown one
    was a 429, which told which client ids exist."""
    credential = await flowhook.credential()
    sender = flowhook.sender("192.0.2.50")
    for index in range(PER_MINUTE):
        await sender.post(TOKEN_URL, data=GRANT, headers=basic(f"fh_ci_drain{index}", "x"))
    known = await sender.post(TOKEN_URL, data=GRANT, headers=basic(credential["clientId"], "wrong"))
    unknown = await sender.post(TOKEN_URL, data=GRANT, headers=basic("fh_ci_0123456789abcdef01234567", "wrong"))
    assert answers([known]) == answers([unknown])
    assert known.status_code == 429


async def test_wrong_secrets_from_many_addresses_give_the_same_answers_for_known_and_unknown_ids(flowhook) -> None:
    """A known id's bucket emptied after PER_MINUTE failures from anywhere, an unknown id's never did."""
    credential = await flowhook.credential()
    seen = []
    for client_id, subnet in ((credential["clientId"], 60), ("fh_ci_0123456789abcdef01234567", 61)):
        responses = [
            await flowhook.sender(f"198.18.{subnet}.{index}").post(
                TOKEN_URL, data=GRANT, headers=basic(client_id, "wrong")
            )
            for index in range(PER_MINUTE + 2)
        ]
        seen.append(answers(responses))
    assert seen[0] == seen[1]
    assert [status for status, _, _ in seen[0]] == [401] * PER_MINUTE + [429, 429]


async def test_wrong_secrets_for_a_client_are_refused_with_429_wherever_they_come_from(flowhook) -> None:
    credential = await flowhook.credential()
    for index in range(PER_MINUTE):
        wrong = await flowhook.sender(f"192.0.2.{20 + index}").post(
            TOKEN_URL, data=GRANT, headers=basic(credential["clientId"], "wrong")
        )
        assert wrong.status_code == 401, wrong.text
    right = basic(credential["clientId"], credential["clientSecret"])
    refused = await flowhook.sender("192.0.2.30").post(TOKEN_URL, data=GRANT, headers=right)
    assert refused.status_code == 429, refused.text  # until its bucket refills: nothing is hashed meanwhile
    assert refused.headers["retry-after"]


async def test_successful_authentications_do_not_count(flowhook) -> None:
    credential = await flowhook.credential()
    right = basic(credential["clientId"], credential["clientSecret"])
    for _ in range(PER_MINUTE * 3):
        response = await flowhook.sender().post(TOKEN_URL, data=GRANT, headers=right)
        assert response.status_code == 200, response.text


async def test_secrets_are_hashed_on_a_thread_of_their_own(flowhook, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    verify = client_secrets.verify_secret

    def recording(secret: str, stored: str) -> bool:
        threads.append(threading.current_thread().name)
        return verify(secret, stored)

    monkeypatch.setattr(client_secrets, "verify_secret", recording)
    credential = await flowhook.credential()
    response = await flowhook.sender("192.0.2.40").post(
        TOKEN_URL, data=GRANT, headers=basic(credential["clientId"], credential["clientSecret"])
    )
    assert response.status_code == 200, response.text
    assert len(threads) == 1 and threads[0].startswith("flowhook-scrypt")  # not the default pool's


async def test_the_openapi_document_lists_the_429(flowhook) -> None:
    document = (await flowhook.api.get("/openapi.json")).json()
    assert "429" in document["paths"]["/oauth/token"]["post"]["responses"]
