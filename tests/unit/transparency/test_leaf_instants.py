"""A leaf's instants are RFC 3339 UTC text with a "Z" and six fraction digits; the fast path
(isoformat) writes exactly what strftime wrote for every year, so no leaf hash moves."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from services.transparency.leaves import rfc3339


def _as_before(moment: datetime) -> str:
    """The text leaves held before the fast path (issue 16 review)."""
    try:
        utc = moment.astimezone(timezone.utc)
    except OverflowError:
        return moment.isoformat(timespec="microseconds")
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_every_instant_is_written_as_before() -> None:
    rng = random.Random(16)
    zones = [timezone(timedelta(minutes=m)) for m in (-719, -300, 0, 7 * 60, 14 * 60)]
    samples = [
        datetime(1, 1, 1, tzinfo=timezone.utc),
        datetime(1, 1, 1, 5, tzinfo=zones[-1]),  # before year 1 in UTC: its own offset
        datetime(999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc),  # unpadded year
        datetime(1000, 1, 1, 6, 59, tzinfo=zones[3]),  # 999 in UTC
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc),
    ]
    for _ in range(5000):
        samples.append(
            datetime(rng.randrange(1, 10000), 1, 1, tzinfo=rng.choice(zones))
            + timedelta(seconds=rng.randrange(0, 364 * 86_400), microseconds=rng.randrange(10**6))
            if rng.random() < 0.3
            else datetime(2026, 1, 1, tzinfo=rng.choice(zones))
            + timedelta(microseconds=rng.randrange(10**14) * rng.choice((0, 1)))
        )
    for moment in samples:
        assert rfc3339(moment) == _as_before(moment), moment
