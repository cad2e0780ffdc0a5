"""Timeliness is itself a figure (issue 13 item 5): per agency and period, the events entered
late (recorded more than `late_entry_hours` after they occurred), the median and 90th
percentile of the recording delay, corrections, withdrawals and held events — in the
council report (XLSX sheet, CSV table, JSON block), on SQLite and PostgreSQL.

The events: five police contacts recorded now that occurred 1 h, 2 h, 5 h, 30 h and 72 h ago
(two late: median 5 h, 90th percentile 72 h), and one commune-police contact 3 h ago (on
time)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta
from typing import Any

from domain.calendar import VIETNAM_TZ
from infra.bootstrap import Container, build_container
from infra.settings import Settings
from projections.reports import (
    build_report,
    delay_percentile,
    report_csv_bytes,
    report_json_bytes,
    report_xlsx_bytes,
    timeliness_figures,
)
from tests.factories import POLICE, POLICE_2, CaseScript

HOURS_AGO = (1, 2, 5, 30, 72)


def _record(container: Container) -> tuple[dict[int, str], str, tuple[date, date]]:
    now = datetime.now(VIETNAM_TZ).replace(microsecond=0)
    cases = {}
    wires = []
    for hours in HOURS_AGO:
        script = CaseScript(start=now - timedelta(hours=hours), holder=POLICE)
        cases[hours] = script.case_id
        wires.append(script.contact())
    other = CaseScript(start=now - timedelta(hours=3), holder=POLICE_2)
    wires.append(other.contact())
    results = container.referrals.record_batch(wires)
    assert all(not hasattr(r, "error") for r in results), results
    container.projections.process_pending()
    today = now.date()
    return cases, other.case_id, (today - timedelta(days=10), today)


def test_late_entries_median_and_p90_per_agency_in_the_report(any_container: Container) -> None:
    cases, on_time, period = _record(any_container)
    report = build_report(any_container, "LSN", *period)
    assert report.timeliness is not None and report.late_entry_hours == 24.0
    rows = {t.agency_id: t for t in report.timeliness}
    police = rows[POLICE]
    assert (police.events, police.late) == (5, 2)
    assert sorted(police.late_cases) == sorted([cases[30], cases[72]])
    assert police.median_hours == 5.0 and police.p90_hours == 72.0
    assert (police.corrections, police.withdrawals, police.held) == (0, 0, 0)
    commune = rows[POLICE_2]
    assert (commune.events, commune.late, commune.late_cases) == (1, 0, [])
    assert commune.median_hours == 3.0

    table = list(
        csv.reader(io.StringIO(report_csv_bytes(report, "timeliness").decode("utf-8-sig")))
    )
    assert table[0][:4] == [
        "Mã cơ quan",
        "Tên cơ quan",
        "Số sự kiện xảy ra trong kỳ",
        "Số sự kiện ghi muộn",
    ]
    police_row = next(r for r in table if r and r[0] == POLICE)
    assert police_row[2:8] == ["5", "2", "40.0", "5.0", "72.0", "0"]
    assert cases[72] in police_row[-1] and cases[1] not in police_row[-1]
    assert on_time not in report_csv_bytes(report, "timeliness").decode("utf-8-sig")

    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(report_xlsx_bytes(report)))
    assert book.sheetnames[-1] == "Tính kịp thời"
    sheet = {r[0]: r for r in book["Tính kịp thời"].iter_rows(min_row=2, values_only=True)}
    assert sheet[POLICE][2:7] == (5, 2, 40.0, 5.0, 72.0)
    cover = [
        r for r in book["Thông tin chung"].iter_rows(values_only=True) if r[0] == "Sự kiện ghi muộn"
    ]
    assert cover and "24 giờ" in cover[0][1]

    body = json.loads(report_json_bytes(report))
    block = {a["agency_id"]: a for a in body["timeliness"]["agencies"]}
    assert body["timeliness"]["late_entry_hours"] == 24.0
    assert (block[POLICE]["late"], block[POLICE]["median_delay_hours"]) == (2, 5.0)
    assert {e["case_id"] for e in block[POLICE]["late_events"]} == {cases[30], cases[72]}
    assert "timeliness" in body["tables"]


def test_the_threshold_is_a_setting(sqlite_settings: Settings) -> None:
    container = build_container(sqlite_settings.model_copy(update={"late_entry_hours": 4.0}))
    try:
        cases, _, period = _record(container)
        report = build_report(container, "LSN", *period)
    finally:
        container.close()
    police = next(t for t in report.timeliness or () if t.agency_id == POLICE)
    assert police.late == 3 and cases[5] in police.late_cases
    assert report.late_entry_hours == 4.0


def test_events_that_occurred_outside_the_period_are_not_counted(
    any_container: Container,
) -> None:
    _, _, (start, end) = _record(any_container)
    report = build_report(
        any_container, "LSN", start - timedelta(days=30), start - timedelta(days=1)
    )
    assert all(t.events == 0 and t.late == 0 for t in report.timeliness or ())


def test_median_of_an_even_count_and_the_nearest_rank_p90() -> None:
    assert delay_percentile([], 0.5) is None
    assert delay_percentile([1.0, 2.0, 30.0, 72.0], 0.5) == 16.0
    assert delay_percentile([float(n) for n in range(1, 11)], 0.9) == 9.0
    assert delay_percentile([float(n) for n in range(1, 12)], 0.9) == 10.0
    assert delay_percentile([3.0], 0.9) == 3.0


def test_a_published_report_regenerates_with_its_timeliness_byte_for_byte(
    any_container: Container,
) -> None:
    from infra import published_reports as pr

    cases, _, period = _record(any_container)
    report = build_report(any_container, "LSN", *period)
    record = pr.publish(any_container, report, "test")
    assert "csv:timeliness" in record["sha256"] and record["late_entry_hours"] == 24.0
    late = CaseScript(start=datetime.now(VIETNAM_TZ) - timedelta(hours=50), holder=POLICE)
    any_container.referrals.record_event(late.contact())  # entered late, after publication
    any_container.projections.process_pending()
    again, outputs, same = pr.regenerated_outputs(any_container, record)
    assert all(same.values()), same
    assert next(t for t in again.timeliness or () if t.agency_id == POLICE).late == 2
    now = build_report(any_container, "LSN", *period)
    assert next(t for t in now.timeliness or () if t.agency_id == POLICE).late == 3
    moved = {tuple(c["key"]): c for c in pr.difference(any_container, record, again, now)["moved"]}
    cell = moved[("timeliness", POLICE, "late")]
    assert (cell["published"], cell["corrected"], cell["cases_in"]) == (2, 3, [late.case_id])
    assert len(cell["late_entries"]) == 1


def test_a_report_published_before_the_timeliness_table_regenerates_without_it(
    any_container: Container,
) -> None:
    from infra import published_reports as pr

    _record(any_container)
    report = build_report(any_container, "LSN", date.today() - timedelta(days=10), date.today())
    report.timeliness = None  # as every report published before issue 13 item 5
    record = pr.publish(any_container, report, "test")
    assert "csv:timeliness" not in record["sha256"]
    again, outputs, same = pr.regenerated_outputs(any_container, record)
    assert all(same.values()) and again.timeliness is None and "csv:timeliness" not in outputs


def test_the_timeliness_table_over_http(any_container: Container) -> None:
    from fastapi.testclient import TestClient

    from infra.http.app import create_app

    cases, _, (start, end) = _record(any_container)
    token = any_container.tokens.create("council", "Hội đồng LSN", provinces=["LSN"])[0]
    with TestClient(create_app(any_container)) as http:
        answer = http.get(
            f"/v1/reports/LSN?from={start}&to={end}&format=csv&table=timeliness",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200, answer.text
    text = answer.content.decode("utf-8-sig")
    assert "Số sự kiện ghi muộn" in text and cases[72] in text and cases[1] not in text


def _row_by_row(
    container: Container, agency_ids: list[str], start: date, end: date, late_hours: float
) -> dict[str, dict[str, Any]]:
    """The timeliness figures as the first version computed them (one Python step per
    event, issue 13 item 5): what the set-based figures must equal, to the byte."""
    from datetime import time

    occurred_from = datetime.combine(start, time(0), VIETNAM_TZ)
    occurred_to = datetime.combine(end + timedelta(days=1), time(0), VIETNAM_TZ)
    out: dict[str, dict[str, Any]] = {
        a: {
            "events": 0,
            "late": 0,
            "corrections": 0,
            "withdrawals": 0,
            "cases": [],
            "late_events": [],
        }
        for a in agency_ids
    }
    delays: dict[str, list[float]] = {a: [] for a in agency_ids}
    audit = container.projections.view("audit_trail")
    for entry in audit.recording_delays(agency_ids, occurred_from, occurred_to, None):
        row = out[entry["agency_id"]]
        if entry["type"] == "EVENT_CORRECTED":
            row["corrections"] += 1
            continue
        if entry["type"] == "EVENT_WITHDRAWN":
            row["withdrawals"] += 1
            continue
        hours = max(0.0, (entry["recorded_at"] - entry["occurred_at"]).total_seconds() / 3600)
        row["events"] += 1
        delays[entry["agency_id"]].append(hours)
        if hours > late_hours:
            row["late"] += 1
            row["late_events"].append(
                {
                    "case_id": entry["case_id"],
                    "version": entry["version"],
                    "type": entry["type"],
                    "position": entry["position"],
                    "occurred_at": entry["occurred_at"],
                    "recorded_at": entry["recorded_at"],
                    "delay_hours": round(hours, 2),
                }
            )
            if entry["case_id"] not in row["cases"]:
                row["cases"].append(entry["case_id"])
    for agency_id, values in delays.items():
        values.sort()
        out[agency_id]["median"] = delay_percentile(values, 0.5)
        out[agency_id]["p90"] = delay_percentile(values, 0.9)
    return out


def test_the_set_based_figures_equal_the_row_by_row_reckoning(any_container: Container) -> None:
    """Random delays to the microsecond (some negative: posted "from the future" within the
    wire's tolerance), corrections and withdrawals, and thresholds on an event's exact delay:
    the counts, the late entries (and their order), the late cases, the median and the 90th
    percentile are those of the per-event reckoning, on SQLite and PostgreSQL."""
    import random

    from tests.integration.test_correction_projections import _amend

    rng = random.Random(13)
    now = datetime.now(VIETNAM_TZ)
    wires: list[dict[str, Any]] = []
    amendments: list[dict[str, Any]] = []
    for n in range(60):
        hours = rng.choice([rng.uniform(0, 2), rng.uniform(20, 30), rng.uniform(40, 400)])
        start = now - timedelta(hours=hours, microseconds=rng.randrange(1_000_000))
        if n % 17 == 0:
            start = now + timedelta(seconds=rng.uniform(1, 60))  # within the 5-minute tolerance
        script = CaseScript(start=start, holder=rng.choice([POLICE, POLICE_2]))
        contact = script.contact(after=timedelta(0))
        wires.append(contact)
        if n % 9 == 0:
            amendments.append(
                _amend(script, "EVENT_WITHDRAWN", contact, reason_code="ENTERED_TWICE")
            )
    for wire in wires + amendments:
        any_container.referrals.record_event(wire)
    any_container.projections.process_pending()
    period = (now.date() - timedelta(days=30), now.date() + timedelta(days=1))
    agencies = [(POLICE, "police"), (POLICE_2, "commune police")]
    police = _row_by_row(any_container, [POLICE], *period, 0.0)[POLICE]["late_events"]
    exact = sorted(e["recorded_at"] - e["occurred_at"] for e in police)[len(police) // 2]
    exact_hours = exact.total_seconds() / 3600  # that event is late below it, not at it
    for late_hours in (24.0, 1.0, exact_hours, exact_hours - 1e-9, 0.0):
        got = {
            t.agency_id: t
            for t in timeliness_figures(any_container.projections, agencies, *period, late_hours)
        }
        expected = _row_by_row(any_container, [POLICE, POLICE_2], *period, late_hours)
        for agency_id in (POLICE, POLICE_2):
            want, have = expected[agency_id], got[agency_id]
            assert (have.events, have.late, have.corrections, have.withdrawals) == (
                want["events"],
                want["late"],
                want["corrections"],
                want["withdrawals"],
            ), (late_hours, agency_id)
            assert have.late_cases == want["cases"]
            assert have.late_events == want["late_events"]
            assert (have.median_hours, have.p90_hours) == (want["median"], want["p90"])
        assert sum(t.late for t in got.values()) > 0
    late_at = {
        h: sum(t.late for t in timeliness_figures(any_container.projections, agencies, *period, h))
        for h in (exact_hours, exact_hours - 1e-9)
    }
    assert late_at[exact_hours - 1e-9] == late_at[exact_hours] + 1  # the boundary itself
    assert expected[POLICE]["withdrawals"] + expected[POLICE_2]["withdrawals"] == len(amendments)


def test_the_ranks_the_percentiles_read_give_the_percentiles_of_every_delay() -> None:
    import random

    from projections.audit_trail import delay_ranks
    from projections.reports import _hours, _RankedDelays

    rng = random.Random(16)
    for count in [*range(1, 60), 99, 100, 101, 999, 1000, 1001]:
        micro = sorted(rng.randrange(0, 10**12) for _ in range(count))
        ranked = _RankedDelays(count, {r: micro[r - 1] for r in delay_ranks(count)})
        hours = [_hours(m) for m in micro]
        for fraction in (0.5, 0.9):
            assert delay_percentile(ranked, fraction) == delay_percentile(hours, fraction)
    assert delay_percentile(_RankedDelays(0, {}), 0.5) is None


def test_a_delay_in_microseconds_is_the_delay_in_hours_of_timedelta() -> None:
    import random

    from projections.reports import _hours

    rng = random.Random(24)
    for _ in range(20_000):
        micro = rng.choice([rng.randrange(10**13), 24 * 3_600_000_000 + rng.randrange(-3, 4)])
        assert _hours(micro) == timedelta(microseconds=micro).total_seconds() / 3600


def test_the_late_bound_is_the_first_late_microsecond() -> None:
    import random

    from projections.reports import _hours, late_bound_us

    rng = random.Random(5)
    for late_hours in [
        0.0,
        1e-9,
        24.0,
        72.0,
        0.1,
        1 / 3,
        *(rng.uniform(0, 10_000) for _ in range(500)),
    ]:
        bound = late_bound_us(late_hours)
        assert _hours(bound) > late_hours
        assert bound == 0 or _hours(bound - 1) <= late_hours


def test_the_late_entries_are_those_counted_when_the_table_was_built(
    any_container: Container,
) -> None:
    """The entries are read when a table lists them: those recorded after the report was
    built are not in it (its counts and its lists stay one consistent picture)."""
    cases, _, period = _record(any_container)
    report = build_report(any_container, "LSN", *period)
    late = CaseScript(start=datetime.now(VIETNAM_TZ) - timedelta(hours=50), holder=POLICE)
    any_container.referrals.record_event(late.contact())
    any_container.projections.process_pending()
    police = next(t for t in report.timeliness or () if t.agency_id == POLICE)
    assert police.late == 2 and sorted(police.late_cases) == sorted([cases[30], cases[72]])
    assert late.case_id not in {e["case_id"] for e in police.late_events}
    again = build_report(any_container, "LSN", *period)
    assert (
        late.case_id in next(t for t in again.timeliness or () if t.agency_id == POLICE).late_cases
    )


def test_held_events_are_counted_for_the_agency_that_recorded_them(
    any_container: Container,
) -> None:
    """Issue 13 item 5: the held column counts the facts each agency recorded in the period
    that are held (awaiting a predecessor); a published report keeps the count it had (held
    is derived state), the report as corrected now shows the fact taking effect."""
    from infra import published_reports as pr
    from tests.factories import CENTRE

    app = any_container.referrals
    case = CaseScript(start=datetime.now(VIETNAM_TZ) - timedelta(days=2), holder=POLICE)
    for wire in (case.notification(), case.request(), case.transfer(), case.accept()):
        app.record_event(wire)
    assign, register = case.assign(), case.register()
    assert app.record_event(register).held  # posted before the assignment it follows
    any_container.projections.process_pending()
    period = (date.today() - timedelta(days=10), date.today())

    report = build_report(any_container, "LSN", *period)
    rows = {t.agency_id: t for t in report.timeliness or ()}
    assert rows[POLICE].held == 1 and rows[CENTRE].held == 0
    assert rows[POLICE].events == 4  # recorded, so its recording delay counts too
    record = pr.publish(any_container, report, "test")
    assert record["held_counts"] == {POLICE: 1}

    assert not app.record_event(assign).held  # the predecessor arrives: both take effect
    any_container.projections.process_pending()
    now = build_report(any_container, "LSN", *period)
    assert next(t for t in now.timeliness or () if t.agency_id == POLICE).held == 0
    again, _, same = pr.regenerated_outputs(any_container, record)
    assert all(same.values()), same  # as published: held 1
    assert next(t for t in again.timeliness or () if t.agency_id == POLICE).held == 1
    moved = {tuple(c["key"]): c for c in pr.difference(any_container, record, again, now)["moved"]}
    cell = moved[("timeliness", POLICE, "held")]
    assert (cell["published"], cell["corrected"]) == (1, 0)


def test_the_stored_recording_delay_is_the_delay_of_both_clocks(any_container: Container) -> None:
    """Each audit-trail row keeps its recording delay in microseconds (what the timeliness
    figures count and rank); a trail made before that column gains it at start, and its rows
    (NULL) are reckoned from both clocks, giving the same figures."""
    import random

    rng = random.Random(7)
    now = datetime.now(VIETNAM_TZ)
    for n in range(40):
        hours = rng.choice([rng.uniform(0, 2), rng.uniform(20, 30), rng.uniform(40, 400)])
        start = now - timedelta(hours=hours, microseconds=rng.randrange(1_000_000))
        if n % 13 == 0:
            start = now + timedelta(seconds=rng.uniform(1, 60))  # a negative delay counts as 0
        script = CaseScript(start=start, holder=rng.choice([POLICE, POLICE_2]))
        any_container.referrals.record_event(script.contact(after=timedelta(0)))
    any_container.projections.process_pending()
    audit = any_container.projections.view("audit_trail")
    with audit.read() as tx:
        rows = tx.execute(
            f"SELECT occurred_at, recorded_at, recording_delay_us FROM {audit.t('audit_trail')}"
        )
    reckoned = [
        max(
            0, (audit.v_ts(r["recorded_at"]) - audit.v_ts(r["occurred_at"])) // timedelta.resolution
        )
        if r["occurred_at"] is not None
        else None
        for r in rows
    ]
    assert [r["recording_delay_us"] for r in rows] == reckoned
    assert sum(1 for d in reckoned if d == 0) >= 1 and len(set(reckoned)) > 30
    period = (now.date() - timedelta(days=30), now.date() + timedelta(days=1))
    agencies = [(POLICE, "police"), (POLICE_2, "commune police")]

    def figures() -> list[tuple[Any, ...]]:
        return [
            (t.agency_id, t.events, t.late, t.median_hours, t.p90_hours, t.late_events)
            for late_hours in (24.0, 1.0)
            for t in timeliness_figures(any_container.projections, agencies, *period, late_hours)
        ]

    stored = figures()
    with audit._write() as cursor:  # a trail made before the column, opened by this code
        cursor.execute(f"ALTER TABLE {audit.t('audit_trail')} DROP COLUMN recording_delay_us")
    audit.create_table()
    with audit.read() as tx:
        assert {
            r["recording_delay_us"]
            for r in tx.execute(f"SELECT recording_delay_us FROM {audit.t('audit_trail')}")
        } == {None}
    assert figures() == stored
    assert any(row[2] for row in stored)
