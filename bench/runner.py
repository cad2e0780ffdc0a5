"""Runs every benchmark row (or the chosen ones) and writes bench/RESULTS.md.

Every figure is printed beside a baseline measured in the same run, on the same machine. The
dataset (5 million events at scale 1) is loaded once into the `referrals_bench` database and
reused by `--reuse`; `--scale 0.02` runs every row on 100,000 events in a few minutes.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.machine import load_average, machine_info
from bench.measure import Figure
from bench.store import Dataset, Target, ensure_dataset

FULL_EVENTS = 5_000_000
ROWS = ("load", "batch", "single", "kafka", "rebuild", "replay", "report", "sqlite")


@dataclass
class Options:
    scale: float = 1.0
    reuse: bool = False
    seed: int = 2026
    only: Sequence[str] = ()
    output: Path = Path(__file__).resolve().parent / "RESULTS.md"
    workers: int = 2
    seconds: float = 20.0
    load_processes: int = 2
    province: str = "LSN"
    year: int = 2024
    target: Target = field(default_factory=Target)

    @property
    def events(self) -> int:
        return max(10_000, int(FULL_EVENTS * self.scale))

    def wants(self, row: str) -> bool:
        return not self.only or row in self.only


def run(options: Options, log: Callable[[str], None] = print) -> tuple[list[Figure], Path]:
    """Runs the rows; returns the figures and the results file written."""
    from infra.process_tuning import tune_for_throughput

    tune_for_throughput()
    target = options.target
    target.ensure_database()
    with target.connect() as conn:
        info = machine_info(conn)
    info["command"] = _command_line(options)
    started = time.perf_counter()
    figures: list[Figure] = []
    failures: list[str] = []

    def attempt(row: str, call: Callable[[], list[Figure]]) -> None:
        if not options.wants(row):
            return
        log(f"--- {row} (load average {load_average()})")
        row_started = time.perf_counter()
        try:
            got = call()
        except Exception as error:  # noqa: BLE001 - one failed row must not lose the others
            failures.append(f"{row}: {type(error).__name__}: {error}")
            log(traceback.format_exc())
            return
        for figure in got:
            figure.details.setdefault("load_average_after", load_average())
            figure.details.setdefault("row_seconds", round(time.perf_counter() - row_started, 1))
        figures.extend(got)

    events = options.events
    dataset: list[Dataset] = []
    needs_dataset = any(options.wants(r) for r in ("load", "rebuild", "replay", "report"))
    if needs_dataset:
        attempt("load", lambda: _load(options, dataset, log))
    small = max(20_000, min(200_000, events // 25))
    if options.wants("batch"):
        from bench.api import batch_posts

        attempt("batch", lambda: batch_posts(target, options.workers, small, 4, options.seed,
                                             log))
    if options.wants("single"):
        from bench.api import single_posts

        attempt("single", lambda: single_posts(target, options.workers, options.seconds, log))
    if options.wants("kafka"):
        from bench.kafka import kafka_ingest

        attempt("kafka", lambda: kafka_ingest(target, max(20_000, small // 2), options.seed,
                                              log))
    if dataset or not needs_dataset:
        from bench import reads

        attempt("rebuild", lambda: reads.rebuild(target, log))
        attempt("replay", lambda: reads.replay(target, 2000 if events >= 1_000_000 else 500,
                                               log))
        attempt("report", lambda: reads.report(target, options.province, options.year, log))
    if options.wants("sqlite"):
        from bench.embedded import sqlite_rows

        attempt("sqlite", lambda: sqlite_rows(options, min(events, 100_000), log))
    info["seconds"] = round(time.perf_counter() - started)
    info["load_average_at_end"] = load_average()
    from bench.results import write_results

    path = write_results(options.output, figures, info, dataset[0] if dataset else None,
                         failures, options)
    (options.output.with_suffix(".json")).write_text(json.dumps(
        {"machine": info, "figures": [asdict(f) | {"ratio": f.ratio} for f in figures],
         "failures": failures}, indent=1, default=str, ensure_ascii=False))
    log(f"results: {path} ({info['seconds']} s)")
    return figures, path


def _load(options: Options, out: list[Dataset], log: Callable[[str], None]) -> list[Figure]:
    dataset = ensure_dataset(options.target, options.events, options.seed, options.reuse,
                             options.load_processes, log)
    out.append(dataset)
    rate = dataset.loaded_events / dataset.seconds if dataset.seconds else 0.0
    note = "" if not dataset.reused else "measured when the dataset was loaded (reused now)"
    return [Figure(
        row="batch posts (1,000 per request)", store="postgres",
        what=f"dataset load: `Referrals.record_batch`, 1,000 a call, {dataset.processes} "
             f"loader processes, {dataset.loaded_events:,} events (generation included)",
        value=rate, unit="events/s", target="≥ 30,000 events/s", met=rate >= 30_000,
        note=note, details=asdict(dataset),
    )]


def _command_line(options: Options) -> str:
    parts = ["referrals bench", f"--scale {options.scale:g}"]
    if options.reuse:
        parts.append("--reuse")
    if options.only:
        parts.extend(f"--only {r}" for r in options.only)
    parts.append(f"--workers {options.workers}")
    return " ".join(parts)
