"""ISO-8601 durations for waits and card expiry: what a timer can use, and clear refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flows.durations import DurationError, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT10M", timedelta(minutes=10)),
        ("P1D", timedelta(days=1)),
        ("PT0.5S", timedelta(seconds=0.5)),
        ("P1W2DT3H", timedelta(weeks=1, days=2, hours=3)),
        ("P366D", timedelta(days=366)),
    ],
)
def test_durations_a_timer_can_use(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("P1M", "not an ISO-8601 duration"),  # months have no fixed length
        ("P", "names no amount of time"),
        ("PT", "not an ISO-8601 duration"),
        ("PT0S", "is zero"),
        ("P367D", "longer than the maximum"),
        ("PT849234273896693712084H", "longer than the maximum"),  # beyond what a timedelta holds
        ("P75W46DT0849234273896693712084H285792257M", "longer than the maximum"),
    ],
)
def test_refused_durations_say_why(text: str, reason: str) -> None:
    with pytest.raises(DurationError, match=reason):
        parse_duration(text)
