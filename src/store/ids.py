"""Identifiers: a readable kind prefix, a time part, and enough randomness not to be guessed.

Ids lead with the time in milliseconds so that rows inserted together land
next to each other in every index keyed by id: with purely random ids, each
accepted webhook dirtied a random leaf page of three unique indexes, and
committing those pages cost SQLite three times what storing the rows did.

The random part is read from the OS 4 KiB at a time: `os.urandom` releases
the GIL, and a busy server's event loop then waits for the store's writer
thread to hand it back, several times per request.
"""

from __future__ import annotations

import os
import secrets
import threading
import time

_ENTROPY_CHUNK = 4096
_TIME_DIGITS = 12  # hex digits of milliseconds since the epoch: good until the year 10889
_RANDOM_DIGITS = 20
_HEX = frozenset("0123456789abcdef")


class _Entropy:
    """os.urandom, read in chunks; each byte is handed out once, across threads and forks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunk = b""
        self._offset = 0
        os.register_at_fork(after_in_child=self._forget)

    def take(self, size: int) -> bytes:
        with self._lock:
            if self._offset + size > len(self._chunk):
                self._chunk, self._offset = os.urandom(_ENTROPY_CHUNK), 0
            start = self._offset
            self._offset += size
            return self._chunk[start : self._offset]

    def _forget(self) -> None:
        """A forked child must not hand out its parent's bytes again."""
        self._lock = threading.Lock()
        self._chunk, self._offset = b"", 0


_entropy = _Entropy()


def new_id(prefix: str) -> str:
    """`req_018c1f3a9b2e5f0e…` — milliseconds since the epoch (48 bits), then 80 random bits, hex."""
    return f"{prefix}_{time.time_ns() // 1_000_000:0{_TIME_DIGITS}x}{_entropy.take(_RANDOM_DIGITS // 2).hex()}"


def time_part(identifier: str) -> str:
    """The millisecond prefix of an id made by `new_id` (or derived from one); "" for any other string."""
    _, _, rest = identifier.partition("_")
    head = rest[:_TIME_DIGITS]
    if len(rest) < _TIME_DIGITS + _RANDOM_DIGITS or not _HEX.issuperset(head):
        return ""
    return head


def new_uuid7() -> str:
    """A version 7 UUID (RFC 9562: time-ordered, 74 random bits), as text."""
    random_bits = int.from_bytes(_entropy.take(10)) >> 6  # 74 bits: 12 after the version, 62 after the variant
    value = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | (random_bits >> 62) << 64 | 0b10 << 62
    value |= random_bits & ((1 << 62) - 1)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def new_hook_id() -> str:
    """The secret part of a webhook URL: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)
