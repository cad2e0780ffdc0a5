"""A benchmark figure beside its baseline from the same run, and timing helpers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    """One row of RESULTS.md: what was measured, against what, and whether the target holds.

    `value` and `baseline` share `unit`; `ratio` is value / baseline (for latencies, where
    less is better, `ratio` is still value / baseline: how many baseline reads one costs).
    `met` is None when there is no target (a figure reported for information).
    """

    row: str
    store: str
    what: str
    value: float
    unit: str
    baseline_what: str = ""
    baseline: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline  # type: ignore[operator]


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of the values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def latencies(call: Callable[[int], Any], count: int, max_seconds: float) -> list[float]:
    """Milliseconds of `call(i)` for i in 0..count-1, stopping early after `max_seconds`."""
    out: list[float] = []
    deadline = time.monotonic() + max_seconds
    for i in range(count):
        started = time.perf_counter()
        call(i)
        out.append((time.perf_counter() - started) * 1000)
        if time.monotonic() > deadline:
            break
    return out


class Stopwatch:
    """`with Stopwatch() as w: ...` then `w.seconds`."""

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


def fmt(value: float | None, unit: str = "") -> str:
    """A figure for the table: thousands separated, 2 decimals below 10."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{value:,.2f}" if abs(value) < 10 else f"{value:,.0f}"
    return f"{text} {unit}".strip()
