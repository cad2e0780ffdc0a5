"""Rows over the dataset: projection rebuild from zero (against PostgreSQL COPY of the same
rows), case replay as of a date (against a primary-key read of one row), council report.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from datetime import date, datetime, timezone

from eventsourcing.persistence import StoredEvent

from bench.measure import Figure, Stopwatch, latencies, percentile
from bench.store import BASELINE_SCHEMA, Target

EVENTS_TABLE = "referrals_events"


def copy_rate(target: Target, schema: str, rows: int, log: Callable[[str], None]) -> float:
    """Rows per second of PostgreSQL COPY of the log's first `rows` rows into a new table
    (binary COPY out of the events table streamed into binary COPY in)."""
    target.fresh_schema(BASELINE_SCHEMA)
    with target.connect() as source, target.connect() as sink:
        sink.execute(
            f'CREATE TABLE "{BASELINE_SCHEMA}".copied (notification_id bigint, '
            "originator_id uuid, originator_version bigint, topic text, state bytea)"
        )
        with Stopwatch() as watch:
            with (
                source.cursor().copy(
                    f"COPY (SELECT notification_id, originator_id, originator_version, topic, state "
                    f'FROM "{schema}".{EVENTS_TABLE} ORDER BY notification_id LIMIT {int(rows)}) '
                    "TO STDOUT (FORMAT BINARY)"
                ) as out,
                sink.transaction(),
                sink.cursor().copy(
                    f'COPY "{BASELINE_SCHEMA}".copied FROM STDIN (FORMAT BINARY)'
                ) as into,
            ):
                for block in out:
                    into.write(block)
        copied = sink.execute(f'SELECT count(*) FROM "{BASELINE_SCHEMA}".copied').fetchone()[0]
    rate = copied / watch.seconds if watch.seconds else 0.0
    log(f"copy: {copied:,} rows in {watch.seconds:.1f}s ({rate:,.0f} rows/s)")
    return rate


def rebuild(
    target: Target,
    log: Callable[[str], None],
    processes: bool = True,
) -> list[Figure]:
    """`Projections.rebuild()` of every view from event zero."""
    from infra.bootstrap import build_container

    container = build_container(target.settings(target.dataset))
    try:
        total = container.projections.max_notification_id()
        last = [time.monotonic()]

        def progress(done: int, of: int) -> None:
            if time.monotonic() - last[0] > 30:
                last[0] = time.monotonic()
                log(f"rebuild: {done:,}/{of:,}")

        result = container.projections.rebuild(progress, processes=processes)
        count = container.referrals.recorder.max_notification_id() or 0
    finally:
        container.close()
    with target.connect() as conn:  # autovacuum is off on this server: statistics for the
        conn.execute(f'ANALYZE "{target.dataset}".case_index')  # report's and replay's plans
        conn.execute(f'ANALYZE "{target.dataset}".agency_counts')
        conn.execute(f'ANALYZE "{target.dataset}".compliance_verdict')
        conn.execute(f'ANALYZE "{target.dataset}".audit_trail')  # the timeliness table's scan
    log(
        f"rebuild: {result['events']:,} events in {result['seconds']:.0f}s "
        f"({result['events_per_second']:,.0f}/s) {result.get('by_view', '')}"
    )
    baseline = copy_rate(target, target.dataset, count, log)
    return [
        Figure(
            row="projection rebuild from zero (all views)",
            store="postgres",
            what=f"rebuild of {', '.join(result['projections'])} over {total:,} events"
            + (" (one process per view)" if result.get("processes") else ""),
            value=result["events_per_second"],
            unit="events/s",
            baseline_what="PostgreSQL COPY of the same rows (out and in, binary)",
            baseline=baseline,
            target="≥ 30,000 events/s",
            met=result["events_per_second"] >= 30_000,
            details=result,
        )
    ]


def replay(
    target: Target,
    samples: int,
    log: Callable[[str], None],
    max_seconds: float = 120.0,
) -> list[Figure]:
    """`Referrals.case_as_of(case, at)` (history and state as the ledger knew them at `at`)
    for random cases and instants, against a primary-key read of one stored event."""
    from infra.bootstrap import build_container

    container = build_container(target.settings(target.dataset))
    rng = random.Random(5)
    try:
        with target.connect() as conn:
            stored = conn.execute(
                f"SELECT count(*), min(notification_id), max(notification_id) "
                f'FROM "{target.dataset}".{EVENTS_TABLE}'
            ).fetchone()
            # random stored events: their case, and an instant around when it was recorded
            picks = []
            for _ in range(samples):
                position = rng.randint(stored[1], stored[2])
                row = conn.execute(
                    f"SELECT originator_id, originator_version, topic, state FROM "
                    f'"{target.dataset}".{EVENTS_TABLE} WHERE notification_id >= %s '
                    "ORDER BY notification_id LIMIT 1",
                    (position,),
                ).fetchone()
                picks.append(row)
        app = container.referrals
        cases = []
        for originator_id, version, topic, state in picks:
            event = app.mapper.to_domain_event(
                StoredEvent(originator_id, version, topic, bytes(state))
            )
            if not hasattr(event, "case_id"):
                continue
            # half as of the event's recording (a partial history), half as of now
            at = event.timestamp if rng.random() < 0.5 else datetime.now(timezone.utc)
            cases.append((event.case_id, at, originator_id, version))
        for case_id, at, _, _ in cases[:50]:  # warm-up: connections, statements
            app.case_as_of(case_id, at)
        events_seen: list[int] = []

        def one(i: int) -> None:
            case_id, at, _, _ = cases[i]
            _, history = app.case_as_of(case_id, at)
            events_seen.append(len(history))

        replay_ms = latencies(one, len(cases), max_seconds)
        with target.connect() as conn:
            statement = (
                f'SELECT * FROM "{target.dataset}".{EVENTS_TABLE} '
                "WHERE originator_id = %s AND originator_version = %s"
            )
            for _, _, originator_id, version in cases[:50]:
                conn.execute(statement, (originator_id, version), prepare=True).fetchone()
            pk_ms = latencies(
                lambda i: conn.execute(
                    statement, (cases[i][2], cases[i][3]), prepare=True
                ).fetchone(),
                len(cases),
                max_seconds,
            )
    finally:
        container.close()
    p50, p99 = percentile(replay_ms, 50), percentile(replay_ms, 99)
    b50, b99 = percentile(pk_ms, 50), percentile(pk_ms, 99)
    log(
        f"replay: {len(replay_ms)} cases (mean {statistics.mean(events_seen):.1f} events), "
        f"p50 {p50:.2f} ms p99 {p99:.2f} ms; pk read p50 {b50:.3f} p99 {b99:.3f} ms"
    )
    common = dict(
        store="postgres",
        unit="ms",
        target="p99 ≤ 10 ms",
        baseline_what="primary-key read of one stored event (psycopg, prepared)",
        details={
            "samples": len(replay_ms),
            "stored_events": stored[0],
            "mean_events_per_case": statistics.mean(events_seen),
            "max_ms": max(replay_ms),
        },
    )
    return [
        Figure(
            row="case replay (history + state as of a date)",
            what="case_as_of p50",
            value=p50,
            baseline=b50,
            met=None,
            **common,
        ),  # type: ignore[arg-type]
        Figure(
            row="case replay (history + state as of a date)",
            what="case_as_of p99",
            value=p99,
            baseline=b99,
            met=p99 <= 10,
            **common,
        ),  # type: ignore[arg-type]
    ]


def report(
    target: Target,
    province: str,
    year: int,
    log: Callable[[str], None],
    repeat: int = 3,
) -> list[Figure]:
    """The council report of a province-year from the views: figures (`build_report`) and the
    XLSX workbook the council receives."""
    from infra.bootstrap import build_container
    from projections.reports import build_report, report_xlsx_bytes

    container = build_container(target.settings(target.dataset))
    try:
        pending = container.projections.process_pending(timeout=3600)
        if pending:
            log(f"report: views caught up on {pending:,} events first")
        start, end = date(year, 1, 1), date(year, 12, 31)
        build_report(container, province, start, end)  # warm-up (statements, checkpoint)
        figures_s, xlsx_s = [], []
        rows = cases = 0
        for _ in range(repeat):
            with Stopwatch() as watch:
                built = build_report(container, province, start, end)
            figures_s.append(watch.seconds)
            with Stopwatch() as watch:
                report_xlsx_bytes(built)
            xlsx_s.append(watch.seconds)
            rows = sum(sum(a.counts.values()) for a in built.agencies)
            cases = sum(len(v) for c in built.compliance for v in c.cases.values())
    finally:
        container.close()
    worst_figures, worst_xlsx = max(figures_s), max(xlsx_s)
    log(
        f"report {province} {year}: figures median {statistics.median(figures_s):.3f}s "
        f"(worst {worst_figures:.3f}s), xlsx median {statistics.median(xlsx_s):.3f}s "
        f"(worst {worst_xlsx:.3f}s), {rows:,} events counted, {cases:,} case lines"
    )
    details = {
        "figures_s": figures_s,
        "xlsx_s": xlsx_s,
        "events_counted": rows,
        "case_lines": cases,
    }
    return [
        Figure(
            row="council report for a province-year",
            store="postgres",
            what=f"{province} {year} (01/01–31/12) figures from the views (`build_report`: "
            f"{rows:,} events, {cases:,} case lines), worst of {repeat}",
            value=worst_figures,
            unit="s",
            target="≤ 1 s",
            met=worst_figures <= 1.0,
            details=details,
        ),
        Figure(
            row="council report for a province-year",
            store="postgres",
            what=f"the same report as the XLSX workbook (openpyxl), worst of {repeat}",
            value=worst_xlsx,
            unit="s",
            target="≤ 1 s",
            met=worst_xlsx <= 1.0,
            details=details,
        ),
    ]
