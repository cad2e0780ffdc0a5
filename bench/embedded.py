"""The rows that apply to the embedded default (SQLite), on a smaller dataset (≤ 100,000
events, in `var/bench/sqlite`, created afresh): batch load through `record_batch`, projection
rebuild, case replay, council report, and single HTTP posts (one uvicorn worker: SQLite has one
writer at a time). Baselines as on PostgreSQL, with SQLite's own bulk insert standing in for
COPY and an `executemany` of the same events standing in for the library's save.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import statistics
import time
from collections.abc import Callable
from datetime import date, datetime, timezone
from itertools import islice
from typing import Any

from bench.measure import Figure, Stopwatch, latencies, percentile


def sqlite_rows(options: Any, events: int, log: Callable[[str], None]) -> list[Figure]:
    from bench.data import batches, cases_for, stream_events
    from infra.bootstrap import build_container
    from infra.settings import Settings
    from projections.reports import build_report, report_xlsx_bytes

    folder = options.target.data_dir / "sqlite"
    shutil.rmtree(folder, ignore_errors=True)
    settings = Settings(
        _env_file=None,
        data_dir=folder,  # type: ignore[call-arg]
        projections_in_process=False,
        case_cache_size=200_000,
    )
    container = build_container(settings)
    figures: list[Figure] = []
    try:
        app = container.referrals
        with Stopwatch() as watch:
            loaded = 0
            stream = islice(
                stream_events(options.seed, cases_for(events), container.reference), events
            )
            for batch in batches(stream, 1000):
                loaded += sum(1 for r in app.record_batch(batch) if hasattr(r, "version"))
        load_rate = loaded / watch.seconds
        log(f"sqlite: loaded {loaded:,} events ({load_rate:,.0f}/s)")
        ledger_file = settings.sqlite_file
        baseline = _sqlite_insert_rate(ledger_file, folder / "copy.sqlite", loaded)
        figures.append(
            Figure(
                row="batch posts (1,000 per request)",
                store="sqlite",
                what=f"`record_batch`, 1,000 a call, {loaded:,} events (generation included)",
                value=load_rate,
                unit="events/s",
                baseline_what="SQLite executemany INSERT of the same stored rows, one transaction",
                baseline=baseline,
                target="≥ 30,000 events/s (set for PostgreSQL)",
                met=load_rate >= 30_000,
            )
        )
        result = container.projections.rebuild()
        log(f"sqlite: rebuild {result['events_per_second']:,.0f}/s")
        figures.append(
            Figure(
                row="projection rebuild from zero (all views)",
                store="sqlite",
                what=f"rebuild of every view over {loaded:,} events (in process)",
                value=result["events_per_second"],
                unit="events/s",
                baseline_what="SQLite executemany INSERT of the same number of rows",
                baseline=baseline,
                target="≥ 30,000 events/s",
                met=result["events_per_second"] >= 30_000,
                details=result,
            )
        )
        figures.extend(_replay(container, ledger_file, log))
        start, end = date(options.year, 1, 1), date(options.year, 12, 31)
        build_report(container, options.province, start, end)
        worst = 0.0
        for _ in range(3):
            with Stopwatch() as w:
                report_xlsx_bytes(build_report(container, options.province, start, end))
            worst = max(worst, w.seconds)
        figures.append(
            Figure(
                row="council report for a province-year",
                store="sqlite",
                what=f"{options.province} {options.year}: figures + XLSX, worst of 3 "
                f"({loaded:,} events stored)",
                value=worst,
                unit="s",
                target="≤ 1 s",
                met=worst <= 1.0,
            )
        )
    finally:
        container.close()
    figures.extend(_single_posts(options, folder, log))
    return figures


def _sqlite_insert_rate(source: Any, scratch: Any, rows: int) -> float:
    with sqlite3.connect(str(source)) as conn:
        data = conn.execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events LIMIT ?",
            (rows,),
        ).fetchall()
    target = sqlite3.connect(str(scratch))
    try:
        target.execute(
            "CREATE TABLE copied (originator_id TEXT, originator_version INTEGER, "
            "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
        )
        with Stopwatch() as watch:
            with target:
                target.executemany("INSERT INTO copied VALUES (?, ?, ?, ?)", data)
    finally:
        target.close()
    return len(data) / watch.seconds if watch.seconds else 0.0


def _replay(container: Any, ledger_file: Any, log: Callable[[str], None]) -> list[Figure]:
    app = container.referrals
    rng = random.Random(5)
    with sqlite3.connect(str(ledger_file)) as conn:
        top = conn.execute("SELECT max(rowid) FROM stored_events").fetchone()[0]
        picks = [
            conn.execute(
                "SELECT originator_id, originator_version FROM stored_events "
                "WHERE rowid >= ? LIMIT 1",
                (rng.randint(1, top),),
            ).fetchone()
            for _ in range(500)
        ]
        cases = []
        for originator_id, version in picks:
            event = next(
                iter(
                    app.events.get(
                        app.recorder.convert_originator_id(originator_id),
                        gt=version - 1,
                        lte=version,
                    )
                )
            )
            at = event.timestamp if rng.random() < 0.5 else datetime.now(timezone.utc)
            cases.append((event.case_id, at))
        ms = latencies(lambda i: app.case_as_of(*cases[i]), len(cases), 60)
        pk = latencies(
            lambda i: conn.execute(
                "SELECT * FROM stored_events WHERE originator_id = ? AND originator_version = ?",
                picks[i],
            ).fetchone(),
            len(picks),
            60,
        )
    log(f"sqlite: replay p50 {percentile(ms, 50):.2f} p99 {percentile(ms, 99):.2f} ms")
    common = dict(
        row="case replay (history + state as of a date)",
        store="sqlite",
        unit="ms",
        baseline_what="primary-key read of one stored event",
        target="p99 ≤ 10 ms",
        details={"samples": len(ms), "mean_ms": statistics.mean(ms)},
    )
    return [
        Figure(
            what="case_as_of p50",
            value=percentile(ms, 50),
            baseline=percentile(pk, 50),
            met=None,
            **common,
        ),  # type: ignore[arg-type]
        Figure(
            what="case_as_of p99",
            value=percentile(ms, 99),
            baseline=percentile(pk, 99),
            met=percentile(ms, 99) <= 10,
            **common,
        ),  # type: ignore[arg-type]
    ]


def _single_posts(options: Any, folder: Any, log: Callable[[str], None]) -> list[Figure]:
    from bench.api import SINGLE_AGENCY, _ledger_body_size
    from bench.servers import (
        HELLO_SCRIPT,
        HOST,
        WRK_SCRIPT,
        free_port,
        ledger_command,
        run_wrk,
        server,
        uvicorn_command,
        wrk_available,
    )
    from infra.bootstrap import build_container
    from infra.settings import Settings

    if not wrk_available():
        return []
    posts = folder / "posts"
    settings = Settings(
        _env_file=None,
        data_dir=posts,  # type: ignore[call-arg]
        projections_in_process=False,
    )
    container = build_container(settings)
    try:
        token = container.tokens.create(  # type: ignore[union-attr]
            "agency", "bench", agency_id=SINGLE_AGENCY, reference=container.reference
        )[0]
    finally:
        container.close()
    env = {
        "REFERRALS_STORE": "sqlite",
        "REFERRALS_DATA_DIR": str(posts.resolve()),
        "REFERRALS_PROJECTIONS_IN_PROCESS": "false",
    }
    size = _ledger_body_size()
    body = '{"pad": "' + "x" * max(1, size - 11) + '"}'
    work = options.target.data_dir / "http"
    port = free_port()
    with server(
        uvicorn_command("bench.hello:app", port, 1),
        f"http://{HOST}:{port}/docs",
        work / "hello-sqlite.log",
    ):
        hello = run_wrk(
            f"http://{HOST}:{port}/hello", HELLO_SCRIPT, [body], options.seconds, 16, 2, work
        )
    port = free_port()
    with server(
        ledger_command(port, 1, "warning"),
        f"http://{HOST}:{port}/health",
        work / "ledger-sqlite.log",
        env=env,
    ):
        run_wrk(
            f"http://{HOST}:{port}/v1/events",
            WRK_SCRIPT,
            [f"Q{int(time.time())}w", SINGLE_AGENCY, token, "/v1/events"],
            3,
            16,
            2,
            work,
        )
        ledger = run_wrk(
            f"http://{HOST}:{port}/v1/events",
            WRK_SCRIPT,
            [f"Q{int(time.time())}", SINGLE_AGENCY, token, "/v1/events"],
            options.seconds,
            16,
            2,
            work,
        )
    log(f"sqlite: single posts {ledger['rate']:,.0f}/s vs hello {hello['rate']:,.0f}/s")
    ratio = ledger["rate"] / hello["rate"] if hello["rate"] else 0.0
    return [
        Figure(
            row="single-event HTTP posts",
            store="sqlite",
            what="POST /v1/events, 16 connections, 1 uvicorn worker (one SQLite writer)",
            value=ledger["rate"],
            unit="events/s",
            baseline_what="FastAPI hello-world POST, same body, 1 worker",
            baseline=hello["rate"],
            target="≥ 1,000 events/s and ≥ 0.45 × baseline",
            met=ledger["rate"] >= 1000 and ratio >= 0.45 and ledger["bad"] == 0,
            details={"ledger": ledger, "hello": hello},
        )
    ]
