"""The benchmark's data: realistic multi-year, multi-province referral histories, streamed.

`infra.sample_data.generate_events` builds every event in memory and sorts them; for millions
of events this streams the same histories instead: cases are opened in time order and each
case's events wait in a heap until their time comes, so memory holds only the cases still
running. Deterministic by seed (each case has its own random generator, seeded from the
run's seed and the case number), and the same for any `part`/`parts` split: part k of n
yields exactly the events of the cases whose number is k modulo n, in the same order.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from domain.calendar import VIETNAM_TZ
from domain.reference import ReferenceData
from infra.sample_data import _case_history

START = datetime(2019, 1, 1, tzinfo=VIETNAM_TZ)
END = datetime(2026, 6, 30, tzinfo=VIETNAM_TZ)
EVENTS_PER_CASE = 8.3  # measured mean of the generator (cases still running at END included;
# 7.9 before procedural contacts were generated, issue 17)


def cases_for(events: int) -> int:
    """How many cases give at least `events` events (a margin over the measured mean)."""
    return max(1, int(events / EVENTS_PER_CASE * 1.08) + 10)


def provinces_of(reference: ReferenceData) -> list[str]:
    """The provinces whose register has a legal-aid centre (the generator needs one)."""
    return sorted({a.province for a in reference.agencies.values() if a.province and a.is_centre})


def stream_events(
    seed: int,
    cases: int,
    reference: ReferenceData,
    start: datetime = START,
    end: datetime = END,
    provinces: Sequence[str] | None = None,
    identity_ratio: float = 0.5,
    case_prefix: str = "BV",
    part: int = 0,
    parts: int = 1,
) -> Iterator[dict[str, Any]]:
    """Wire events of `cases` cases opened between `start` and `end`, in occurred_at order
    (ties by case number). Events after `end` are left out: those cases are still running."""
    provinces = list(provinces or provinces_of(reference))
    opening = random.Random(seed)
    span = (end - start).total_seconds() * 0.97
    offsets = sorted(opening.random() * span for _ in range(cases))
    limit = end.isoformat(timespec="seconds")
    waiting: list[tuple[str, int, int, list[dict[str, Any]]]] = []  # (at, case, index, events)
    for n, offset in enumerate(offsets):
        if n % parts != part:
            continue
        opened = start + timedelta(seconds=offset)
        now = opened.astimezone(VIETNAM_TZ).isoformat(timespec="seconds")
        while waiting and waiting[0][0] <= now:
            yield _next(waiting)
        history = _case_history(
            random.Random(seed * 1_000_003 + n),
            seed,
            n,
            provinces[n % len(provinces)],
            opened,
            reference,
            identity_ratio,
            case_prefix,
        )
        history = [e for e in history if e["occurred_at"] <= limit]
        if history:
            heapq.heappush(waiting, (history[0]["occurred_at"], n, 0, history))
    while waiting:
        yield _next(waiting)


def _next(waiting: list[tuple[str, int, int, list[dict[str, Any]]]]) -> dict[str, Any]:
    at, n, index, history = waiting[0]
    if index + 1 < len(history):
        heapq.heapreplace(waiting, (history[index + 1]["occurred_at"], n, index + 1, history))
    else:
        heapq.heappop(waiting)
    return history[index]


def batches(events: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """The stream cut into lists of `size` (the last one shorter)."""
    while True:
        chunk = list(islice(events, size))
        if not chunk:
            return
        yield chunk
