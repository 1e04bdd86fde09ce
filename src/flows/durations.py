"""ISO-8601 durations for waits and card expiry (`PT10M`, `P1D`, `PT0.5S`).

Only weeks, days, hours, minutes and seconds: a month or a year has no fixed
length, and a timer must know exactly when it is due.
"""

from __future__ import annotations

import re
from datetime import timedelta

MAX_DURATION = timedelta(days=366)

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


class DurationError(ValueError):
    """Not a duration a timer can use; the message says why."""


def parse_duration(text: str) -> timedelta:
    """`PT10M` -> 10 minutes; refuses empty, zero and over-long (> 366 days) durations."""
    match = _DURATION.match(text)
    if match is None or text.endswith("T"):
        raise DurationError(f"{text!r} is not an ISO-8601 duration like PT10M, P1D or PT0.5S (no months or years)")
    parts = {name: float(value) for name, value in match.groupdict().items() if value is not None}
    if not parts:
        raise DurationError(f"{text!r} names no amount of time")
    try:
        duration = timedelta(**parts)
    except OverflowError:  # more days than a timedelta holds: far beyond the maximum anyway
        duration = timedelta.max
    if duration <= timedelta(0):
        raise DurationError(f"{text!r} is zero; a wait must last some time")
    if duration > MAX_DURATION:
        raise DurationError(f"{text!r} is longer than the maximum of 366 days")
    return duration


def doubling(attempts: int, base_seconds: float, max_seconds: float) -> timedelta:
    """The wait before retry number `attempts` (1, 2, …): base, 2×base, 4×base …, at most `max_seconds`."""
    return timedelta(seconds=min(base_seconds * 2 ** (attempts - 1), max_seconds))
