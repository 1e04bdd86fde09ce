"""Identifiers: time-ordered (so index inserts stay local), unguessable, unique across threads."""

from __future__ import annotations

import re
import threading
import time
import uuid

from store.idempotent import derived_id
from store.ids import new_id, new_uuid7, time_part


def test_ids_carry_their_prefix_a_millisecond_clock_and_80_random_bits() -> None:
    before = time.time_ns() // 1_000_000
    identifier = new_id("req")
    after = time.time_ns() // 1_000_000
    assert re.fullmatch(r"req_[0-9a-f]{32}", identifier)
    assert before <= int(identifier[4:16], 16) <= after


def test_ids_made_in_later_milliseconds_sort_later() -> None:
    first = new_id("inv")
    time.sleep(0.002)
    assert new_id("inv") > first


def test_uuid7_is_a_valid_version_7_uuid_with_the_time_in_front() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid.UUID(new_uuid7())
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert before <= value.int >> 80 <= time.time_ns() // 1_000_000


def test_no_two_threads_get_the_same_random_bytes() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(into: list[str]) -> None:
        into.extend(new_uuid7() for _ in range(5000))

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [value for into in made for value in into]
    assert len(set(everything)) == len(everything)


def test_time_part_is_read_from_ids_made_here_and_from_ids_derived_from_them() -> None:
    invocation = new_id("inv")
    instance = derived_id("fli", invocation, "user-1")
    card = derived_id("crd", instance, "step-1")
    assert time_part(invocation) == time_part(instance) == time_part(card) == invocation[4:16]
    for foreign in ("evt_1", "fli_" + "a" * 24, "no-prefix", "x_" + "Z" * 32, ""):
        assert time_part(foreign) == ""


def test_derived_ids_are_stable_and_sort_with_their_parents_time() -> None:
    older = new_id("inv")
    time.sleep(0.002)
    newer = new_id("inv")
    assert derived_id("fli", older, "u") == derived_id("fli", older, "u")
    assert derived_id("fli", older, "u") != derived_id("fli", older, "v") != derived_id("fli", newer, "u")
    # Whatever the hash: every effect of the older invocation sorts before any of the newer one.
    assert max(derived_id("fli", older, f"u{n}") for n in range(50)) < min(
        derived_id("fli", newer, f"u{n}") for n in range(50)
    )
    assert re.fullmatch(r"fli_[0-9a-f]{36}", derived_id("fli", older, "u"))
    assert re.fullmatch(r"evt_[0-9a-f]{24}", derived_id("evt", "card-from-elsewhere", "seen"))
