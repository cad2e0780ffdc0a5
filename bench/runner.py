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
from typing import Any

from bench.machine import load_average, machine_info
from bench.measure import Figure
from bench.store import Dataset, Target, dataset_schema, ensure_dataset, wait_for_database

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
    import dataclasses

    from infra.process_tuning import tune_for_throughput

    tune_for_throughput()
    target = options.target = dataclasses.replace(
        options.target, dataset=dataset_schema(options.events)
    )
    target.ensure_database()
    with target.connect() as conn:
        info = machine_info(conn)
    info["command"] = _command_line(options)
    info["dataset_schema"] = target.dataset
    started = time.perf_counter()
    figures: list[Figure] = []
    failures: list[str] = []
    ran: set[str] = set()

    def attempt(row: str, call: Callable[[], list[Figure]]) -> None:
        if not options.wants(row):
            return
        log(f"--- {row} (load average {load_average()})")
        wait_for_database(target)
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
            figure.details["bench_row"] = row
            figure.details["run"] = info["date"]
        figures.extend(got)
        ran.add(row)

    events = options.events
    dataset: list[Dataset] = []
    needs_dataset = any(options.wants(r) for r in ("load", "rebuild", "replay", "report"))
    if options.wants("load"):
        attempt("load", lambda: _load(options, dataset, log))
    elif needs_dataset:  # the reading rows alone: the dataset as it is (loaded if missing)
        dataset.append(
            ensure_dataset(target, events, options.seed, True, options.load_processes, log)
        )
    small = max(20_000, min(200_000, events // 25))
    if options.wants("batch"):
        from bench.api import batch_posts

        attempt("batch", lambda: batch_posts(target, options.workers, small, 4, options.seed, log))
    if options.wants("single"):
        from bench.api import single_posts

        attempt("single", lambda: single_posts(target, options.workers, options.seconds, log))
    if options.wants("kafka"):
        from bench.kafka import kafka_ingest

        attempt("kafka", lambda: kafka_ingest(target, max(20_000, small // 2), options.seed, log))
    if dataset or not needs_dataset:
        from bench import reads

        attempt("rebuild", lambda: reads.rebuild(target, log))
        attempt("replay", lambda: reads.replay(target, 2000 if events >= 1_000_000 else 500, log))
        attempt("report", lambda: reads.report(target, options.province, options.year, log))
    if options.wants("sqlite"):
        from bench.embedded import sqlite_rows

        attempt("sqlite", lambda: sqlite_rows(options, min(events, 100_000), log))
    info["seconds"] = round(time.perf_counter() - started)
    info["load_average_at_end"] = load_average()
    earlier_runs: list[dict[str, Any]] = []
    if options.only:  # the other rows' figures stay as the last run that measured them left them
        figures = [*_earlier_figures(options.output.with_suffix(".json"), ran), *figures]
        order = {row: index for index, row in enumerate(ROWS)}
        figures.sort(key=lambda f: order.get(f.details.get("bench_row", ""), len(ROWS)))
        earlier_runs = _earlier_runs(
            options.output.with_suffix(".json"),
            {f.details.get("run") for f in figures} - {info["date"]},
        )
    from bench.results import write_results

    path = write_results(
        options.output,
        figures,
        info,
        dataset[0] if dataset else None,
        failures,
        options,
        earlier_runs,
    )
    (options.output.with_suffix(".json")).write_text(
        json.dumps(
            {
                "machine": info,
                "earlier_runs": earlier_runs,
                "figures": [asdict(f) | {"ratio": f.ratio} for f in figures],
                "failures": failures,
            },
            indent=1,
            default=str,
            ensure_ascii=False,
        )
    )
    log(f"results: {path} ({info['seconds']} s)")
    return figures, path


def _earlier_figures(path: Path, ran: set[str]) -> list[Figure]:
    """The figures of the rows not run now, from the previous results (marked with their run)."""
    if not path.exists():
        return []
    kept = []
    for item in json.loads(path.read_text()).get("figures", []):
        item.pop("ratio", None)
        figure = Figure(**item)
        if figure.details.get("bench_row") not in ran:
            if "from the run of" not in figure.note:
                figure.note = (figure.note + "; " if figure.note else "") + (
                    f"from the run of {figure.details.get('run', '?')}"
                )
            kept.append(figure)
    return kept


def _earlier_runs(path: Path, dates: set[Any]) -> list[dict[str, Any]]:
    """The machine/run records of the earlier runs whose figures are kept."""
    if not path.exists():
        return []
    saved = json.loads(path.read_text())
    runs = [saved.get("machine", {}), *saved.get("earlier_runs", [])]
    seen, out = set(), []
    for run in runs:
        if run.get("date") in dates and run.get("date") not in seen:
            seen.add(run.get("date"))
            out.append(run)
    return out


def _load(options: Options, out: list[Dataset], log: Callable[[str], None]) -> list[Figure]:
    dataset = ensure_dataset(
        options.target, options.events, options.seed, options.reuse, options.load_processes, log
    )
    out.append(dataset)
    rate = dataset.loaded_events / dataset.seconds if dataset.seconds else 0.0
    note = "" if not dataset.reused else "measured when the dataset was loaded (reused now)"
    return [
        Figure(
            row="batch posts (1,000 per request)",
            store="postgres",
            what=f"dataset load: `Referrals.record_batch`, 1,000 a call, {dataset.processes} "
            f"loader processes, {dataset.loaded_events:,} events (generation included)",
            value=rate,
            unit="events/s",
            target="≥ 30,000 events/s",
            met=rate >= 30_000,
            note=note,
            details=asdict(dataset),
        )
    ]


def _command_line(options: Options) -> str:
    parts = ["referrals bench", f"--scale {options.scale:g}"]
    if options.reuse:
        parts.append("--reuse")
    if options.only:
        parts.extend(f"--only {r}" for r in options.only)
    parts.append(f"--workers {options.workers}")
    return " ".join(parts)
