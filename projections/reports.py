"""The council's reports: for a province and a period, the per-agency table and the
time-limit compliance table, as CSV, XLSX (cover sheet + one sheet per table) and bar charts
per agency type (PNG).

Periods: the two statutory ones of JC 10/2018 Art. 20(5) — 01/01–31/10 ("jan-oct", Forms
06A/06B) and 01/01–31/12 ("full-year", Form 06C) — or any custom range of days, inclusive,
Vietnam-local. Counts are attributed by the event's local day; compliance verdicts by their
trigger's local day (see projections/compliance.py). Only pseudonymous case ids appear.

Functions the HTTP API calls: `build_report(container, province, start, end)`,
`report_xlsx_bytes(report)`, `report_csv_bytes(report, table)`, `report_chart_png(report, kind)`.
"""

from __future__ import annotations

import base64
import csv
import io
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from domain.calendar import VIETNAM_TZ
from domain.reference import KIND_NAMES_VI, LEVEL_NAMES_VI

PERIODS = ("jan-oct", "full-year")
PERIOD_NAMES_VI = {"jan-oct": "Kỳ báo cáo 01/01 – 31/10", "full-year": "Kỳ báo cáo 01/01 – 31/12"}

EVENT_HEADINGS_VI = {
    "NOTIFICATION_ISSUED": "Giải thích, thông báo quyền được TGPL",
    "AID_REQUESTED": "Tiếp nhận yêu cầu TGPL",
    "REQUEST_FORWARDED": "Cơ sở giam giữ chuyển yêu cầu cho cơ quan tố tụng",
    "REQUEST_TRANSFERRED": "Thông báo cho Trung tâm TGPL (Mẫu 03)",
    "APPOINTMENT_REQUESTED": "Đề nghị cử người bào chữa (chỉ định)",
    "CASE_TRANSFERRED": "Chuyển vụ việc",
    "REQUEST_ACCEPTED": "Thụ lý vụ việc",
    "REQUEST_REFUSED": "Từ chối thụ lý",
    "AID_ASSIGNED": "Cử người thực hiện TGPL",
    "COUNSEL_REGISTERED": "Đăng ký bào chữa, bảo vệ",
    "AID_DECLINED": "Người được TGPL từ chối",
    "INTERPRETER_REQUESTED": "Đề nghị bố trí người phiên dịch",
    "PROVIDER_CHANGED": "Thay đổi người thực hiện TGPL",
    "AID_DISCONTINUED": "Không tiếp tục TGPL",
    "CASE_CLOSED": "Kết thúc vụ việc",
    "QUALITY_ASSESSED": "Đánh giá chất lượng",
    # issue 17: appended, so the earlier columns keep their place in every export
    "PROCEDURAL_CONTACT": "Tiếp xúc tố tụng (bắt, tạm giữ, khởi tố, xét xử, bị hại, đương sự)",
    "NOT_ELIGIBLE_DETERMINED": "Xác định không thuộc diện được TGPL",
}
EVENT_COLUMNS = tuple(EVENT_HEADINGS_VI)
STATUS_HEADINGS_VI = {
    "met": "Đúng hạn",
    "missed": "Quá hạn",
    "running": "Đang trong hạn",
    "cancelled": "Không còn phải thực hiện",
}
CHART_EVENTS = {
    "legal_aid_centre": (
        "REQUEST_ACCEPTED",
        "REQUEST_REFUSED",
        "AID_ASSIGNED",
        "PROVIDER_CHANGED",
        "CASE_CLOSED",
    ),
    "_procedural": (
        "NOTIFICATION_ISSUED",
        "AID_REQUESTED",
        "REQUEST_TRANSFERRED",
        "APPOINTMENT_REQUESTED",
        "COUNSEL_REGISTERED",
    ),
}
CONTACT_TYPE = "PROCEDURAL_CONTACT"
CONTACTS_CHART = "notified"  # the chart of rule C2's figures per agency
CONTACT_HEADINGS_VI = {
    "contacts": "Lượt tiếp xúc tố tụng",
    "eligible": "Người thuộc diện (có thời hạn thông báo)",
    "met": "Được thông báo đúng hạn",
    "late": "Được thông báo muộn",
    "running": "Chưa được thông báo, còn trong hạn",
    "never": "Chưa bao giờ được thông báo, đã quá hạn",
    "cancelled": "Không áp dụng (xác định không thuộc diện)",
}
KIND_ORDER = (
    "police",
    "procuracy",
    "court",
    "detention_facility",
    "legal_aid_centre",
    "justice_department",
    "council",
)


def period_dates(year: int, period: str) -> tuple[date, date]:
    """The first and last day of a statutory period of `year` (JC 10/2018 Art. 20(5))."""
    if period == "jan-oct":
        return date(year, 1, 1), date(year, 10, 31)
    if period == "full-year":
        return date(year, 1, 1), date(year, 12, 31)
    raise ValueError(f"period must be one of {PERIODS}, not {period!r}")


def report_due_date(
    deadlines: dict[str, Any], province: str, year: int, period: str
) -> tuple[date, str] | None:
    """(due date, source) of the report of `province` for a statutory period of `year`, from
    the per-province table (`infra/reference_data/report_deadlines.json`: a provincial
    council's plan, e.g. Lạng Sơn's 10/11 and 10/01; JC 10/2018 Art. 20(5) sets only the
    periods), or None when the province has none."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {PERIODS}, not {period!r}")
    entry = (deadlines.get("provinces") or {}).get(province)
    if not entry or period not in entry:
        return None
    due = entry[period]
    try:
        when = date(year + int(due.get("year_offset", 0)), int(due["month"]), int(due["day"]))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"report deadlines, province {province}, period {period}: "
            f"needs month, day and year_offset ({error})"
        ) from None
    return when, str(entry.get("source", ""))


def statutory_period(start: date, end: date) -> str | None:
    """The statutory period (start, end) is, if it is one."""
    for period in PERIODS:
        if period_dates(start.year, period) == (start, end):
            return period
    return None


@dataclass
class AgencyRow:
    agency_id: str
    name_vi: str
    kind: str
    level: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class ComplianceRow:
    rule_id: str
    title_vi: str
    agency_id: str | None
    agency_name_vi: str
    met: int
    missed: int
    running: int
    cancelled: int
    legal_basis: str
    cases: dict[str, list[str]]
    late: int = 0  # of `missed`: the target came after the deadline
    never: int = 0  # of `missed`: no target yet, deadline passed (outstanding)
    missed_cases: dict[str, list[str]] = field(default_factory=dict)  # late / never

    @property
    def total(self) -> int:
        return self.met + self.missed + self.running + self.cancelled

    @property
    def on_time_rate(self) -> float | None:
        decided = self.met + self.missed
        return round(100.0 * self.met / decided, 1) if decided else None


@dataclass
class ContactRow:
    """Rule C2 for one agency: the persons it had a procedural contact with, and whether the
    eligible ones were told of the right in time (JC 10/2018 Art. 7(1); CPC 2015 Art. 71).

    `contacts` counts the agency's PROCEDURAL_CONTACT events in the period (by their day);
    the other figures are the C2 limits it is responsible for, by their trigger's day."""

    agency_id: str
    name_vi: str
    contacts: int = 0
    met: int = 0
    late: int = 0
    running: int = 0
    never: int = 0
    cancelled: int = 0
    cases: dict[str, list[str]] = field(default_factory=dict)

    @property
    def eligible(self) -> int:
        return self.met + self.late + self.running + self.never


LATE_ENTRY_HOURS = 24.0
"""Default threshold of a late entry (setting `late_entry_hours`)."""
CORRECTION_TYPES = ("EVENT_CORRECTED",)
WITHDRAWAL_TYPES = ("EVENT_WITHDRAWN",)
"""Wire types counted as corrections and withdrawals (issue 13 item 3), per agency that
recorded them."""


class LateEntries:
    """The late entries of a timeliness table, read from the audit trail when first asked
    (the report's JSON, CSV and workbook list them; its figures do not need them): those the
    table counted, as of the log position it counted up to, whatever was recorded since."""

    def __init__(self, read: Callable[[], list[tuple[Any, ...]]]) -> None:
        self._read: Callable[[], list[tuple[Any, ...]]] | None = read
        self._by_agency: dict[str, list[tuple[Any, ...]]] = {}
        self._lock = threading.Lock()

    def of(self, agency_id: str) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._read is not None:
                for entry in self._read():
                    self._by_agency.setdefault(entry[0], []).append(entry)
                self._read = None
        return self._by_agency.get(agency_id, [])


@dataclass
class TimelinessRow:
    """Timeliness of one agency's entries in the period (issue 13 item 5): the facts it
    reported that occurred in the period (by their Vietnam-local day), how many it recorded
    more than `late_entry_hours` after they occurred, the median and 90th percentile of the
    recording delay (hours), its corrections and withdrawals, and its held events."""

    agency_id: str
    name_vi: str
    events: int = 0
    late: int = 0
    median_hours: float | None = None
    p90_hours: float | None = None
    corrections: int = 0
    withdrawals: int = 0
    held: int = 0
    entries: LateEntries | None = field(default=None, repr=False, compare=False)
    """Where its late entries are read from (None: it has none)."""

    @property
    def late_entries(self) -> list[tuple[Any, ...]]:
        """(agency, case, version, type, position, occurred_at, recorded_at, delay µs), in
        log order."""
        return self.entries.of(self.agency_id) if self.entries is not None else []

    @property
    def late_cases(self) -> list[str]:
        """The cases of its late entries, each once, in the order of their first one."""
        return list(dict.fromkeys(e[1] for e in self.late_entries))

    @property
    def late_events(self) -> list[dict[str, Any]]:
        """The late entries (case, version, type, position, both clocks in UTC, delay in
        hours to 2 decimals), in log order."""
        return [
            {
                "case_id": e[1],
                "version": e[2],
                "type": e[3],
                "position": e[4],
                "occurred_at": e[5].astimezone(timezone.utc),
                "recorded_at": e[6].astimezone(timezone.utc),
                "delay_hours": round(_hours(e[7]), 2),
            }
            for e in self.late_entries
        ]


def delay_percentile(delays: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted `delays` (the smallest value with at least
    `fraction` of the values at or below it); the median is the usual one (the mean of the
    two middle values of an even count)."""
    if not delays:
        return None
    n = len(delays)
    if fraction == 0.5:
        middle = n // 2
        value = delays[middle] if n % 2 else (delays[middle - 1] + delays[middle]) / 2
    else:
        rank = max(1, -(-int(round(fraction * 1000)) * n // 1000))  # ceil(fraction * n)
        value = delays[min(n, rank) - 1]
    return round(value, 2)


def held_counts(
    projections: Any,
    agency_ids: Sequence[str],
    start: date,
    end: date,
    max_position: int | None = None,
) -> dict[str, int]:
    """Held events per agency (issue 13 item 2: facts recorded but not in effect, awaiting a
    predecessor): those each agency recorded that occurred on the days `start`..`end`
    (Vietnam-local) and that the case index lists as held when the report is built; with
    `max_position`, only those recorded at positions up to it (the report's checkpoint).
    Held is derived state, not a fact of the log: a published report keeps these counts in
    its record and regenerates with them (`infra.published_reports`)."""
    from datetime import time, timedelta

    if "case_index" not in projections:
        return {}
    occurred_from = datetime.combine(start, time(0), VIETNAM_TZ)
    occurred_to = datetime.combine(end + timedelta(days=1), time(0), VIETNAM_TZ)
    held = projections.view("case_index").held_of_agencies(agency_ids, occurred_from, occurred_to)
    if max_position is not None and held and "audit_trail" in projections:
        positions = projections.view("audit_trail").positions_of([(c, v) for _, c, v in held])
        held = [h for h in held if positions.get((h[1], h[2]), max_position + 1) <= max_position]
    counts: dict[str, int] = {}
    for agency_id, _, _ in held:
        counts[agency_id] = counts.get(agency_id, 0) + 1
    return counts


def timeliness_figures(
    projections: Any,
    agencies: Sequence[tuple[str, str]],
    start: date,
    end: date,
    late_hours: float = LATE_ENTRY_HOURS,
    max_position: int | None = None,
    held: Mapping[str, int] | None = None,
) -> list[TimelinessRow]:
    """One TimelinessRow per (agency id, name) in `agencies`, from the audit trail (both
    clocks of every event; see docs/projections.md), counting the events that occurred on
    the days `start`..`end` (Vietnam-local) and were recorded at positions <= `max_position`
    (the report's checkpoint) when given. A delay is recorded − occurred, 0 if negative
    (the wire's future tolerance).

    The view counts and picks the delays the percentiles read in SQL
    (`AuditTrailView.recording_delay_figures`); the late entries themselves are read only
    when a table lists them (`LateEntries`): a province-year entered from paper has every
    event late. Delays travel as integer microseconds and become hours here exactly as
    `timedelta.total_seconds() / 3600` did, so every figure, and every published report's
    bytes, stay the same."""
    from datetime import time, timedelta

    ids = [a for a, _ in agencies]
    occurred_from = datetime.combine(start, time(0), VIETNAM_TZ)
    occurred_to = datetime.combine(end + timedelta(days=1), time(0), VIETNAM_TZ)
    late_from = late_bound_us(late_hours)
    amendments = (*CORRECTION_TYPES, *WITHDRAWAL_TYPES)
    audit = projections.view("audit_trail")
    figures = audit.recording_delay_figures(
        ids, occurred_from, occurred_to, max_position, amendments, late_from
    )
    known = figures.entries
    entries = LateEntries(
        (lambda: known)
        if known is not None
        else lambda: audit.late_entries(
            ids, occurred_from, occurred_to, figures.up_to, amendments, late_from
        )
    )
    if held is None:  # `held`: the counts a published report recorded (regeneration)
        held = held_counts(projections, ids, start, end, max_position)
    rows = []
    for agency_id, name in agencies:
        by_type = figures.counts.get(agency_id, {})
        judged = figures.judged.get(agency_id, 0)
        ranked = _RankedDelays(judged, figures.ranked.get(agency_id, {}))
        rows.append(
            TimelinessRow(
                agency_id,
                name,
                events=judged,
                late=figures.late.get(agency_id, 0),
                median_hours=delay_percentile(ranked, 0.5),
                p90_hours=delay_percentile(ranked, 0.9),
                corrections=sum(by_type.get(t, 0) for t in CORRECTION_TYPES),
                withdrawals=sum(by_type.get(t, 0) for t in WITHDRAWAL_TYPES),
                held=held.get(agency_id, 0),
                entries=entries if figures.late.get(agency_id) else None,
            )
        )
    return rows


def late_bound_us(late_hours: float) -> int:
    """The smallest delay in microseconds that is late: `_hours(µs) > late_hours` exactly
    (a monotonic test, so every larger delay is late too)."""
    bound = max(0, int(late_hours * 3_600_000_000))
    for _ in range(64):  # a float's error is a few units here: bounded
        if bound > 0 and _hours(bound - 1) > late_hours:
            bound -= 1
        elif _hours(bound) <= late_hours:
            bound += 1
        else:
            break
    return bound


def _hours(micro: int) -> float:
    """A delay in hours, as `timedelta(microseconds=micro).total_seconds() / 3600`."""
    return micro / 1_000_000 / 3600


class _RankedDelays(Sequence[float]):
    """The sorted delays (hours) of `count` events, of which only the ranks the percentiles
    read are known (`projections.audit_trail.delay_ranks`)."""

    def __init__(self, count: int, ranked: dict[int, int]) -> None:
        self.count = count
        self.ranked = ranked

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: Any) -> Any:
        return _hours(self.ranked[index + 1])


@dataclass
class Report:
    """One province's figures for one period."""

    province: str
    province_name_vi: str
    start: date
    end: date
    generated_at: datetime
    judged_at: datetime
    reference_versions: dict[str, str]
    positions: dict[str, int]
    agencies: list[AgencyRow]
    compliance: list[ComplianceRow]
    overdue: list[dict[str, Any]] = field(default_factory=list)
    # the signed checkpoint of the log the figures were computed from: size, root (base64), note
    checkpoint: dict[str, Any] | None = None
    # submission date of a statutory period's report, per the province's council plan
    due: date | None = None
    due_source: str = ""
    # rule C2 (procedural contacts → notification of the right) per agency
    contacts: list[ContactRow] = field(default_factory=list)
    # issue 13 item 5: late entries per agency (None: a report published before it existed,
    # regenerated exactly as it was, without the timeliness table)
    timeliness: list[TimelinessRow] | None = None
    late_entry_hours: float = LATE_ENTRY_HOURS

    @property
    def due_vi(self) -> str:
        if self.due is None:
            return "Không có trong dữ liệu (theo kế hoạch của Hội đồng tỉnh)"
        return (
            f"{self.due:%d/%m/%Y} ({self.due_source})"
            if self.due_source
            else f"{self.due:%d/%m/%Y}"
        )

    # what the figures leave out: events a view could not apply (quarantined, issue 12)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def warning_lines_vi(self) -> list[str]:
        return [w["message"] for w in self.warnings]

    @property
    def late_entry_vi(self) -> str:
        """How the timeliness table counts (printed on the cover)."""
        return (
            f"Sự kiện được ghi vào sổ sau khi xảy ra hơn {self.late_entry_hours:g} giờ; "
            "thời gian ghi nhận = thời điểm ghi vào sổ − thời điểm xảy ra"
        )

    @property
    def checkpoint_vi(self) -> str:
        """One line naming the checkpoint, printed on every output of the report."""
        if self.checkpoint is None:
            return "Chưa gắn với điểm kiểm (checkpoint) của sổ"
        return (
            f"Điểm kiểm của sổ: {self.checkpoint['size']} sự kiện, gốc cây "
            f"{self.checkpoint['root']}"
        )

    @property
    def period_vi(self) -> str:
        return f"Từ ngày {self.start:%d/%m/%Y} đến ngày {self.end:%d/%m/%Y}"

    def slug(self) -> str:
        return f"bao-cao-{self.province}-{self.start:%Y%m%d}-{self.end:%Y%m%d}"


def build_report(
    container: Any,
    province: str,
    start: date,
    end: date,
    now: datetime | None = None,
) -> Report:
    """The report from the current views (the caller decides whether to catch up first).

    Limits still open are judged at `now` (default: the time of generation): running until
    their deadline, missed after it. Decided limits are as recorded.
    """
    reference = container.reference
    if province not in reference.provinces:
        raise ValueError(f"unknown province {province!r}")
    if end < start:
        raise ValueError("the period ends before it starts")
    generated = datetime.now(timezone.utc)
    now = now or generated
    projections = container.projections
    settings = getattr(container, "settings", None)
    late_hours = float(getattr(settings, "late_entry_hours", LATE_ENTRY_HOURS))
    agencies, compliance, contacts = report_figures(
        reference, container.rules, projections, province, start, end, now
    )
    period = statutory_period(start, end)
    due = (
        report_due_date(container.report_deadlines(), province, start.year, period)
        if period
        else None
    )

    positions = projections.positions()
    report_position = min(positions.get(name, 0) or 0 for name in ("agency_counts", "compliance"))
    checkpoint = None
    if report_position > 0:
        size, root, note = container.checkpoint_for_position(report_position)
        checkpoint = {
            "size": size,
            "root": base64.b64encode(root).decode(),
            "note": note,
            "position": report_position,
        }
    return Report(
        province=province,
        province_name_vi=reference.provinces[province].name_vi,
        start=start,
        end=end,
        generated_at=generated,
        judged_at=now,
        reference_versions=container.reference_versions(),
        positions=positions,
        agencies=agencies,
        compliance=compliance,
        overdue=projections.compliance.overdue(province, now=now),
        checkpoint=checkpoint,
        due=due[0] if due else None,
        due_source=due[1] if due else "",
        warnings=quarantine_warnings(projections, REPORT_VIEWS),
        contacts=contacts,
        timeliness=(
            report_timeliness(
                projections,
                agencies,
                start,
                end,
                late_hours,
                checkpoint["position"] if checkpoint else None,
            )
            if "audit_trail" in projections
            else None
        ),
        late_entry_hours=late_hours,
    )


def report_timeliness(
    projections: Any,
    agencies: Sequence[AgencyRow],
    start: date,
    end: date,
    late_hours: float,
    max_position: int | None,
    held: Mapping[str, int] | None = None,
) -> list[TimelinessRow]:
    """The timeliness table of a report: one row per agency of its agency table."""
    return timeliness_figures(
        projections,
        [(a.agency_id, a.name_vi) for a in agencies],
        start,
        end,
        late_hours,
        max_position,
        held,
    )


def report_figures(
    reference: Any,
    rules_table: Any,
    projections: Any,
    province: str,
    start: date,
    end: date,
    now: datetime,
) -> tuple[list[AgencyRow], list[ComplianceRow], list[ContactRow]]:
    """The report's figures from `projections` (the live views, or a replay of a log prefix:
    infra/published_reports.py): the agency table, the compliance table, rule C2."""
    table = projections.agency_counts.agency_table(province, start, end)
    agencies: list[AgencyRow] = []
    for agency in reference.agencies_in(province):
        counts = table.pop(agency.agency_id, {})
        active = (agency.validity.valid_from is None or agency.validity.valid_from <= end) and (
            agency.validity.valid_to is None or agency.validity.valid_to > start
        )
        if counts or (active and agency.kind not in ("council", "justice_department")):
            agencies.append(
                AgencyRow(agency.agency_id, agency.name_vi, agency.kind, agency.level, counts)
            )
    for agency_id, counts in table.items():  # recorded here but registered elsewhere
        agency = reference.agencies.get(agency_id)
        agencies.append(
            AgencyRow(
                agency_id,
                agency.name_vi if agency else agency_id,
                agency.kind if agency else "",
                agency.level if agency else "",
                counts,
            )
        )
    agencies.sort(
        key=lambda a: (KIND_ORDER.index(a.kind) if a.kind in KIND_ORDER else 99, a.agency_id)
    )
    rules = {rule.rule_id: rule for rule in rules_table}
    compliance = []
    for group in projections.compliance.summary(province, start, end, now=now):
        rule = rules.get(group["rule_id"])
        agency = reference.agencies.get(group["responsible_agency_id"] or "")
        compliance.append(
            ComplianceRow(
                rule_id=group["rule_id"],
                title_vi=rule.title_vi if rule else group["rule_id"],
                agency_id=group["responsible_agency_id"],
                agency_name_vi=agency.name_vi if agency else "(chưa xác định)",
                met=group["met"],
                missed=group["missed"],
                running=group["running"],
                cancelled=group["cancelled"],
                legal_basis=rule.legal_basis if rule else "",
                cases=group["cases"],
                late=group.get("late", 0),
                never=group.get("never", 0),
                missed_cases=group.get("missed_cases", {}),
            )
        )
    contacts = contact_figures(agencies, compliance, rules.values(), reference)
    return agencies, compliance, contacts


REPORT_VIEWS = ("agency_counts", "compliance")
"""The views a report's figures come from."""


def quarantine_warnings(projections: Any, names: Sequence[str]) -> list[dict[str, Any]]:
    """One warning per view whose figures leave out quarantined (or held) events."""
    out = []
    excluded = projections.excluded_events([n for n in names if n in projections])
    for name, count in excluded.items():
        if count:
            out.append(
                {
                    "code": "QUARANTINED_EVENTS_EXCLUDED",
                    "view": name,
                    "count": count,
                    "message": f"Số liệu của bảng «{name}» chưa tính {count} sự kiện bị cách ly "
                    "(không áp dụng được); xem /v1/projections/quarantine",
                    "message_en": f"the figures of view '{name}' exclude {count} quarantined "
                    "events (not applied); see /v1/projections/quarantine",
                }
            )
    return out


def contact_figures(
    agencies: Sequence[AgencyRow], compliance: Sequence[ComplianceRow], rules: Any, reference: Any
) -> list[ContactRow]:
    """Rule C2's figures per agency: contacts recorded, and the limits of the rules started
    by a contact (met, late, running, never, not applicable), with their cases."""
    contact_rules = {r.rule_id for r in rules if CONTACT_TYPE in r.trigger_types}
    rows: dict[str, ContactRow] = {}
    for agency in agencies:
        if agency.counts.get(CONTACT_TYPE):
            rows[agency.agency_id] = ContactRow(
                agency.agency_id, agency.name_vi, contacts=agency.counts[CONTACT_TYPE]
            )
    for group in compliance:
        if group.rule_id not in contact_rules:
            continue
        agency_id = group.agency_id or ""
        row = rows.get(agency_id)
        if row is None:
            known = reference.agencies.get(agency_id)
            row = rows[agency_id] = ContactRow(
                agency_id, known.name_vi if known else "(chưa xác định)"
            )
        for name in ("met", "late", "running", "never", "cancelled"):
            setattr(row, name, getattr(row, name) + getattr(group, name))
            source = group.missed_cases if name in ("late", "never") else group.cases
            row.cases.setdefault(name, []).extend(source.get(name, []))
    order = {a.agency_id: n for n, a in enumerate(agencies)}
    return sorted(rows.values(), key=lambda r: (order.get(r.agency_id, len(order)), r.agency_id))


# ------------------------------------------------------------------------------------ tables
AGENCY_HEADER = (
    "Mã cơ quan",
    "Tên cơ quan",
    "Loại cơ quan",
    "Cấp",
    *(EVENT_HEADINGS_VI[t] for t in EVENT_COLUMNS),
    "Tổng số sự kiện",
)
COMPLIANCE_HEADER = (
    "Mã thời hạn",
    "Thời hạn",
    "Mã cơ quan chịu trách nhiệm",
    "Cơ quan chịu trách nhiệm",
    "Đúng hạn",
    "Quá hạn",
    "Đang trong hạn",
    "Không còn phải thực hiện",
    "Tổng số",
    "Tỷ lệ đúng hạn (%)",
    "Căn cứ pháp lý",
)
CASES_HEADER = ("Mã thời hạn", "Mã cơ quan chịu trách nhiệm", "Kết quả", "Mã vụ việc")
CONTACTS_HEADER = (
    "Mã cơ quan",
    "Tên cơ quan",
    *CONTACT_HEADINGS_VI.values(),
    "Tỷ lệ thông báo đúng hạn (%)",
)
NEVER_HEADER = ("Mã cơ quan", "Tên cơ quan", "Kết quả", "Mã vụ việc")
TIMELINESS_HEADER = (
    "Mã cơ quan",
    "Tên cơ quan",
    "Số sự kiện xảy ra trong kỳ",
    "Số sự kiện ghi muộn",
    "Tỷ lệ ghi muộn (%)",
    "Thời gian ghi nhận trung vị (giờ)",
    "Thời gian ghi nhận bách phân vị 90 (giờ)",
    "Số lần đính chính",
    "Số lần rút sự kiện",
    "Số sự kiện đang chờ",
    "Mã vụ việc có sự kiện ghi muộn",
)
OVERDUE_HEADER = (
    "Mã vụ việc",
    "Mã thời hạn",
    "Bắt đầu tính (giờ Việt Nam)",
    "Hạn cuối (giờ Việt Nam)",
    "Số giờ quá hạn",
    "Mã cơ quan chịu trách nhiệm",
)


def agency_rows(report: Report) -> list[tuple[Any, ...]]:
    return [
        (
            a.agency_id,
            a.name_vi,
            KIND_NAMES_VI.get(a.kind, a.kind),
            LEVEL_NAMES_VI.get(a.level, a.level),
            *(a.counts.get(t, 0) for t in EVENT_COLUMNS),
            a.total,
        )
        for a in report.agencies
    ]


def compliance_rows(report: Report) -> list[tuple[Any, ...]]:
    return [
        (
            c.rule_id,
            c.title_vi,
            c.agency_id or "",
            c.agency_name_vi,
            c.met,
            c.missed,
            c.running,
            c.cancelled,
            c.total,
            c.on_time_rate if c.on_time_rate is not None else "",
            c.legal_basis,
        )
        for c in report.compliance
    ]


def case_rows(report: Report) -> list[tuple[Any, ...]]:
    return [
        (c.rule_id, c.agency_id or "", STATUS_HEADINGS_VI[status], case_id)
        for c in report.compliance
        for status in STATUS_HEADINGS_VI
        for case_id in c.cases.get(status, [])
    ]


def contact_rows(report: Report) -> list[tuple[Any, ...]]:
    out = []
    for c in report.contacts:
        decided = c.met + c.late + c.never
        rate = round(100.0 * c.met / decided, 1) if decided else ""
        out.append(
            (
                c.agency_id,
                c.name_vi,
                c.contacts,
                c.eligible,
                c.met,
                c.late,
                c.running,
                c.never,
                c.cancelled,
                rate,
            )
        )
    return out


def never_notified_rows(report: Report) -> list[tuple[Any, ...]]:
    """Per agency, the cases whose person was never told of the right (rule C2), missed
    first: the list an inspection team takes into the agency's files."""
    return [
        (c.agency_id, c.name_vi, CONTACT_HEADINGS_VI[kind], case_id)
        for c in report.contacts
        for kind in ("never", "running")
        for case_id in c.cases.get(kind, [])
    ]


def overdue_rows(report: Report) -> list[tuple[Any, ...]]:
    return [
        (
            r["case_id"],
            r["rule_id"],
            _local(r["trigger_at"]),
            _local(r["deadline"]),
            r["overdue_hours"],
            r["responsible_agency_id"] or "",
        )
        for r in report.overdue
    ]


def timeliness_rows(report: Report) -> list[tuple[Any, ...]]:
    """One row per agency (an empty table for a report published without timeliness)."""
    return [
        (
            t.agency_id,
            t.name_vi,
            t.events,
            t.late,
            round(100.0 * t.late / t.events, 1) if t.events else "",
            t.median_hours if t.median_hours is not None else "",
            t.p90_hours if t.p90_hours is not None else "",
            t.corrections,
            t.withdrawals,
            t.held,
            " ".join(t.late_cases),
        )
        for t in report.timeliness or ()
    ]


def _local(value: datetime) -> str:
    return value.astimezone(VIETNAM_TZ).strftime("%d/%m/%Y %H:%M")


TABLES = {
    "agencies": (AGENCY_HEADER, agency_rows),
    "compliance": (COMPLIANCE_HEADER, compliance_rows),
    "cases": (CASES_HEADER, case_rows),
    "overdue": (OVERDUE_HEADER, overdue_rows),
    "contacts": (CONTACTS_HEADER, contact_rows),
    "never_notified": (NEVER_HEADER, never_notified_rows),
    "timeliness": (TIMELINESS_HEADER, timeliness_rows),
}
OPTIONAL_TABLES = ("timeliness",)
"""Tables a report has only when its figure is set (a report published before the table
existed regenerates without it, byte for byte)."""


def report_tables(report: Report) -> tuple[str, ...]:
    """The names of the tables `report` has, in TABLES order."""
    return tuple(
        t
        for t in TABLES
        if t not in OPTIONAL_TABLES or (t == "timeliness" and report.timeliness is not None)
    )


def report_csv_bytes(report: Report, table: str = "agencies") -> bytes:
    """One table as CSV (UTF-8 with BOM, so spreadsheet programs read the diacritics)."""
    if table not in report_tables(report):
        raise ValueError(f"table must be one of {report_tables(report)}")
    header, rows = TABLES[table]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows(report))
    writer.writerow(())
    writer.writerow((report.checkpoint_vi,))
    for line in report.warning_lines_vi:
        writer.writerow((line,))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


# -------------------------------------------------------------------------------------- xlsx
REPORT_TITLE_VI = "BÁO CÁO KẾT QUẢ PHỐI HỢP THỰC HIỆN TRỢ GIÚP PHÁP LÝ TRONG HOẠT ĐỘNG TỐ TỤNG"
# A font with every Vietnamese glyph (fonts-dejavu-core on Debian, shipped with LibreOffice and
# matplotlib). Naming none left LibreOffice to substitute one without the stacked diacritics of
# capitals (Ấ, Ộ...), which it then clipped at row 1's default height.
XLSX_FONT = "DejaVu Sans"
XLSX_FONT_SIZE = 10
TITLE_SIZE = 13


def _header_footer_text(text: str) -> str:
    """`&` starts a code in Excel's header/footer language; a literal one is written `&&`."""
    return text.replace("&", "&&")


def _print_setup(
    sheet: Any, report: Report, *, title_rows: str | None, pages_down: int = 0
) -> None:
    """Landscape A4, fitted to the page width (as many pages down as needed), the header row
    repeated on every page, the report's title, province and period in the page header, its
    checkpoint and the page number ("Trang 2/5") in the footer."""
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = pages_down  # 0: as many pages as the rows need
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_options.horizontalCentered = True
    sheet.page_margins.left = sheet.page_margins.right = 0.4
    sheet.page_margins.top = sheet.page_margins.bottom = 0.75
    sheet.page_margins.header = sheet.page_margins.footer = 0.3
    if title_rows:
        sheet.print_title_rows = title_rows
    sheet.oddHeader.center.text = _header_footer_text(REPORT_TITLE_VI)
    sheet.oddHeader.center.font = f"{XLSX_FONT},Bold"
    sheet.oddHeader.center.size = 9
    sheet.oddHeader.left.text = _header_footer_text(report.province_name_vi)
    sheet.oddHeader.right.text = _header_footer_text(report.period_vi)
    for part in (sheet.oddHeader.left, sheet.oddHeader.right):
        part.font = f"{XLSX_FONT},Regular"
        part.size = 8
    sheet.oddFooter.left.text = _header_footer_text(report.checkpoint_vi)
    sheet.oddFooter.left.font = f"{XLSX_FONT},Regular"
    sheet.oddFooter.left.size = 7
    sheet.oddFooter.right.text = "Trang &P/&N"
    sheet.oddFooter.right.font = f"{XLSX_FONT},Regular"
    sheet.oddFooter.right.size = 8


def _name_the_font(sheet: Any) -> None:
    """Every cell in XLSX_FONT, keeping its weight and size."""
    from openpyxl.styles import Font

    fonts: dict[tuple[Any, Any], Any] = {}  # one Font object per weight and size
    for row in sheet.iter_rows():
        for cell in row:
            current = cell.font
            key = (current.b, current.sz if current.sz and current.sz != 11 else XLSX_FONT_SIZE)
            font = fonts.get(key)
            if font is None:
                font = fonts[key] = Font(name=XLSX_FONT, bold=key[0], size=key[1])
            cell.font = font


def report_xlsx_bytes(report: Report, *, fast: bool = True) -> bytes:
    """The workbook: a cover sheet, then one sheet per table (frozen header row), each set up
    to print (see _print_setup).

    `fast=False` builds every cell through openpyxl (the reference: the tests check that both
    give the same bytes, so published reports' sha256 do not depend on the path taken)."""
    from openpyxl import LXML, Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    fast = fast and not LXML  # the streamed rows reproduce the stdlib serialiser's bytes
    streamed: dict[str, list[tuple[Any, ...]]] = {}  # sheet title → rows 3… by column
    workbook = Workbook()
    cover = workbook.active
    cover.title = "Thông tin chung"
    bold = Font(bold=True)
    cover["A1"] = REPORT_TITLE_VI
    cover["A1"].font = Font(bold=True, size=TITLE_SIZE)
    cover["A1"].alignment = Alignment(vertical="center")
    cover.row_dimensions[1].height = 2 * TITLE_SIZE  # room for the marks above capitals
    lines = [
        ("Tỉnh, thành phố", f"{report.province_name_vi} ({report.province})"),
        ("Kỳ báo cáo", report.period_vi),
        (
            "Thời điểm lập báo cáo",
            report.generated_at.astimezone(VIETNAM_TZ).strftime("%d/%m/%Y %H:%M:%S (giờ Việt Nam)"),
        ),
        (
            "Thời điểm đánh giá thời hạn đang chạy",
            report.judged_at.astimezone(VIETNAM_TZ).strftime("%d/%m/%Y %H:%M:%S"),
        ),
        (
            "Căn cứ",
            "Thông tư liên tịch 10/2018/TTLT-BTP-BCA-BQP-BTC-TANDTC-VKSNDTC, Điều 20 khoản 5",
        ),
        (
            "Cách tính",
            "Số liệu theo ngày xảy ra sự kiện (giờ Việt Nam); thời hạn tính theo ngày "
            "bắt đầu tính thời hạn. Chỉ dùng mã vụ việc, không có thông tin định danh.",
        ),
        ("Vị trí sổ cái đã tổng hợp", ", ".join(f"{k}: {v}" for k, v in report.positions.items())),
        ("Điểm kiểm (checkpoint) của sổ", report.checkpoint_vi),
        ("Ghi chú đã ký của điểm kiểm", report.checkpoint["note"] if report.checkpoint else "—"),
        ("Hạn gửi báo cáo", report.due_vi),
        *((("Sự kiện ghi muộn", report.late_entry_vi),) if report.timeliness is not None else ()),
        *(("Cảnh báo", line) for line in report.warning_lines_vi),
    ]
    wrap = Alignment(wrap_text=True, vertical="top")
    for row, (label, value) in enumerate(lines, start=3):
        cover.cell(row=row, column=1, value=label).font = bold
        cover.cell(row=row, column=1).alignment = wrap
        cover.cell(row=row, column=2, value=value).alignment = wrap
        # LibreOffice does not grow rows to fit wrapped text on open: say how many lines
        text_lines = sum(1 + len(part) // 85 for part in str(value).split("\n"))
        cover.row_dimensions[row].height = 15 * max(1, text_lines)
    row = len(lines) + 4
    cover.cell(row=row, column=1, value="Phiên bản dữ liệu tham chiếu").font = bold
    for name, version in sorted(report.reference_versions.items()):
        row += 1
        cover.cell(row=row, column=1, value=name)
        cover.cell(row=row, column=2, value=version)
    cover.column_dimensions["A"].width = 40
    cover.column_dimensions["B"].width = 90
    _name_the_font(cover)
    _print_setup(cover, report, title_rows=None, pages_down=1)  # a fixed size: one page

    header_fill = PatternFill("solid", fgColor="DDEBF7")
    sheets = (
        ("Theo cơ quan", "agencies"),
        ("Tuân thủ thời hạn", "compliance"),
        ("Vụ việc theo kết quả", "cases"),
        ("Đang quá hạn", "overdue"),
        ("Thông báo quyền (C2)", "contacts"),
        ("Chưa được thông báo (C2)", "never_notified"),
        ("Tính kịp thời", "timeliness"),
    )
    for title, table in sheets:
        if table not in report_tables(report):
            continue
        header, rows = TABLES[table]
        sheet = workbook.create_sheet(title)
        sheet.append(list(header))
        for cell in sheet[1]:
            cell.font = bold
            cell.fill = header_fill
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        data = rows(report)
        columns = list(zip(*data, strict=True)) if data else [()] * len(header)
        # past the first data row (through openpyxl, so that styles are registered in the same
        # order), the rows are serialised by _streaming_writer: the same bytes, ~20× faster
        streams = fast and len(data) > 1 and _streamable(data, columns, len(header))
        for values in data[:1] if streams else data:
            sheet.append(list(values))
        if streams:
            streamed[title] = [column[1:] for column in columns]
        sheet.freeze_panes = "A2"
        header_lines = 1
        for index, heading in enumerate(header, start=1):
            column = columns[index - 1]
            longest = max(map(len, map(str, column)), default=0)
            numeric = all(issubclass(k, int | float) for k in set(map(type, column))) and bool(data)
            # numbers need little room: their headings wrap instead of widening the page
            width = (
                max(12, longest + 2)
                if numeric
                else min(60, max(10, longest + 2, min(len(heading), 28) + 2))
            )
            sheet.column_dimensions[get_column_letter(index)].width = width
            header_lines = max(header_lines, -(-len(heading) // max(1, int(width) - 2)))
        sheet.row_dimensions[1].height = max(30, 14 * min(header_lines + 1, 6))
        _name_the_font(sheet)
        _print_setup(sheet, report, title_rows="1:1")
    return _workbook_bytes(workbook, report.generated_at, streamed)


_ERROR_CODES = frozenset(("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A"))


def _streamable(
    data: Sequence[Sequence[Any]], columns: Sequence[Sequence[Any]], width: int
) -> bool:
    """Whether every value of `data` (`columns`: the same, by column) is one _rows_xml writes
    exactly as openpyxl would: a string openpyxl stores as it is (no formula, error code,
    illegal character or truncation), an int (not a bool) or a finite float; every row `width`
    values long. Otherwise the sheet goes through openpyxl cell by cell."""
    from math import isfinite

    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if len(columns) != width or any(len(values) != width for values in data):
        return False
    for column in columns:
        kinds = set(map(type, column))
        if not kinds <= {str, int, float}:
            return False
        if float in kinds and not all(isfinite(v) for v in column if type(v) is float):
            return False
        if str in kinds:
            texts = [v for v in column if type(v) is str] if len(kinds) > 1 else column
            if max(map(len, texts)) > 32767 or not _ERROR_CODES.isdisjoint(texts):
                return False
            joined = "\n" + "\n".join(texts)
            if ILLEGAL_CHARACTERS_RE.search(joined) or _FORMULA.search(joined):
                return False  # (a line break inside a value may flag a formula: fine)
    return True


_FORMULA = re.compile(r"\n=[^\n]")


def _rows_xml(columns: Sequence[Sequence[Any]], first_row: int, style: int) -> Iterator[str]:
    """`<row>` elements of the rows whose values are `columns` (by column), numbered from
    `first_row`, every cell with style `style`, byte for byte as openpyxl's etree cell writer
    (openpyxl/cell/_writer.py) serialises them through et_xmlfile: inline strings, numbers as
    "%.16g", `xml:space` when the text has leading or trailing white space, `<c … />` for the
    empty string. Built a column at a time, yielded in chunks of rows."""
    from openpyxl.utils import get_column_letter

    count = len(columns[0]) if columns else 0
    numbers = range(first_row, first_row + count)
    cells = [
        _column_cells(get_column_letter(n), column, numbers, style)
        for n, column in enumerate(columns, start=1)
    ]
    step = 20_000
    for start in range(0, count, step):
        yield "".join(
            [
                f'<row r="{number}">{"".join(row)}</row>'
                for number, row in zip(
                    numbers[start : start + step],
                    zip(*(c[start : start + step] for c in cells), strict=True),
                    strict=True,
                )
            ]
        )


def _column_cells(letter: str, column: Sequence[Any], numbers: range, style: int) -> list[str]:
    from xml.etree.ElementTree import _escape_cdata  # type: ignore[attr-defined]

    if set(map(type, column)) == {str}:
        joined = "".join(column)
        plain = (
            "&" not in joined
            and "<" not in joined
            and ">" not in joined
            and all(column)
            and list(map(str.strip, column)) == list(column)
        )
        if plain:  # the usual case: ids and headings
            return [
                f'<c r="{letter}{n}" s="{style}" t="inlineStr"><is><t>{v}</t></is></c>'
                for n, v in zip(numbers, column, strict=True)
            ]
    out = []
    for n, value in zip(numbers, column, strict=True):
        if type(value) is str:
            if not value:
                out.append(f'<c r="{letter}{n}" s="{style}" t="inlineStr" />')
                continue
            stripped = value.strip()
            space = ' xml:space="preserve"' if stripped and stripped != value else ""
            out.append(
                f'<c r="{letter}{n}" s="{style}" t="inlineStr"><is><t{space}>'
                f"{_escape_cdata(value)}</t></is></c>"
            )
        else:
            out.append(f'<c r="{letter}{n}" s="{style}" t="n"><v>{value:.16g}</v></c>')
    return out


def _streaming_writer(streamed: dict[str, list[tuple[Any, ...]]]) -> Any:
    """openpyxl's ExcelWriter whose worksheets named in `streamed` get those rows (given by
    column) appended after the ones openpyxl holds (row 2, the first data row, sets the rows'
    style)."""
    from openpyxl.drawing.spreadsheet_drawing import SpreadsheetDrawing
    from openpyxl.worksheet._writer import WorksheetWriter
    from openpyxl.worksheet.dimensions import SheetDimension
    from openpyxl.writer.excel import ExcelWriter

    class RowsWriter(WorksheetWriter):  # type: ignore[misc]
        def __init__(self, ws: Any, rows: list[tuple[Any, ...]]) -> None:
            self.extra = rows
            super().__init__(ws, out=io.BytesIO())  # in memory: no temporary file round trip

        def write_dimensions(self) -> None:
            first, _, last = self.ws.calculate_dimension().partition(":")
            column = last.rstrip("0123456789")
            self.xf.send(SheetDimension(f"{first}:{column}{2 + len(self.extra[0])}").to_tree())

        def write_rows(self) -> None:
            xf = self.xf.send(True)
            with xf.element("sheetData"):
                for row_idx, row in self.rows():
                    self.write_row(xf, row, row_idx)
                style = self.ws.cell(row=2, column=1).style_id
                for chunk in _rows_xml(self.extra, 3, style):
                    xf._file(chunk)
            self.xf.send(None)

    class Writer(ExcelWriter):  # type: ignore[misc]
        def write_worksheet(self, ws: Any) -> None:
            rows = streamed.get(ws.title)
            if rows is None:
                super().write_worksheet(ws)
                return
            ws._drawing = SpreadsheetDrawing()  # as ExcelWriter.write_worksheet
            ws._drawing.charts = ws._charts
            ws._drawing.images = ws._images
            writer = RowsWriter(ws, rows)
            writer.write()
            ws._rels = writer._rels
            self._archive.writestr(ws.path[1:], writer.out.getvalue())
            self.manifest.append(ws)

    return Writer


def _workbook_bytes(
    workbook: Any, instant: datetime, streamed: dict[str, list[tuple[Any, ...]]] | None = None
) -> bytes:
    """The workbook's bytes, the same every time for the same report: openpyxl's `save`
    stamps docProps/core.xml with the time of writing and each zip entry with the local
    clock; here both come from `instant` (the report's generation instant), so a published
    report regenerates byte for byte (infra/published_reports.py)."""
    import zipfile

    from openpyxl.writer.excel import ExcelWriter

    stamp = instant.astimezone(timezone.utc).replace(tzinfo=None, microsecond=0)
    workbook.properties.created = workbook.properties.modified = stamp
    local = instant.astimezone(VIETNAM_TZ)
    date_time = (
        max(local.year, 1980),
        local.month,
        local.day,
        local.hour,
        local.minute,
        local.second - local.second % 2,
    )

    class _FixedDates(zipfile.ZipFile):
        def writestr(self, name: Any, data: Any, *args: Any, **kwargs: Any) -> None:
            if not isinstance(name, zipfile.ZipInfo):
                name = zipfile.ZipInfo(name, date_time=date_time)
                name.compress_type = zipfile.ZIP_DEFLATED
                name.external_attr = 0o600 << 16
            super().writestr(name, data, *args, **kwargs)

        def write(self, filename: Any, arcname: Any = None, *args: Any, **kwargs: Any) -> None:
            # a worksheet goes through a temporary file: its mtime is not the report's
            self.writestr(arcname or Path(filename).name, Path(filename).read_bytes())

    buffer = io.BytesIO()
    archive = _FixedDates(buffer, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
    writer = _streaming_writer(streamed) if streamed else ExcelWriter
    writer(workbook, archive).save()  # writes every part, then closes the archive
    return buffer.getvalue()


def report_json_body(report: Report) -> dict[str, Any]:
    """The report as JSON (the `format=json` answer; its bytes: `report_json_bytes`)."""
    body: dict[str, Any] = {
        "province": report.province,
        "start": report.start.isoformat(),
        "end": report.end.isoformat(),
        "generated_at": report.generated_at.isoformat(),
        "reference_versions": report.reference_versions,
        "positions": report.positions,
        "checkpoint": report.checkpoint,
        "warnings": report.warnings,
        "tables": {
            t: {"header": list(h), "rows": [list(r) for r in rows(report)]}
            for t, (h, rows) in TABLES.items()
            if t in report_tables(report)
        },
        # rule C2 per agency, with the cases behind each figure (pseudonymous ids only)
        "notification_of_rights": [
            {
                "agency_id": c.agency_id,
                "name_vi": c.name_vi,
                "contacts": c.contacts,
                "eligible": c.eligible,
                "notified_in_time": c.met,
                "notified_late": c.late,
                "never_notified_running": c.running,
                "never_notified_missed": c.never,
                "not_applicable": c.cancelled,
                "cases": {
                    "notified_in_time": c.cases.get("met", []),
                    "notified_late": c.cases.get("late", []),
                    "never_notified_running": c.cases.get("running", []),
                    "never_notified_missed": c.cases.get("never", []),
                    "not_applicable": c.cases.get("cancelled", []),
                },
            }
            for c in report.contacts
        ],
    }
    if report.timeliness is not None:  # issue 13 item 5; absent from earlier publications
        body["timeliness"] = {
            "late_entry_hours": report.late_entry_hours,
            "agencies": [
                {
                    "agency_id": t.agency_id,
                    "name_vi": t.name_vi,
                    "events": t.events,
                    "late": t.late,
                    "median_delay_hours": t.median_hours,
                    "p90_delay_hours": t.p90_hours,
                    "corrections": t.corrections,
                    "withdrawals": t.withdrawals,
                    "held": t.held,
                    "late_cases": t.late_cases,
                    "late_events": [
                        {
                            **e,
                            "occurred_at": e["occurred_at"].isoformat(),
                            "recorded_at": e["recorded_at"].isoformat(),
                        }
                        for e in t.late_events
                    ],
                }
                for t in report.timeliness
            ],
        }
    return body


def report_json_bytes(report: Report) -> bytes:
    import json

    return json.dumps(report_json_body(report), ensure_ascii=False, default=str).encode("utf-8")


# ------------------------------------------------------------------------------------ charts
def chart_kinds(report: Report) -> list[str]:
    """Agency types that have a chart (those present in the table)."""
    present = {a.kind for a in report.agencies}
    kinds = [k for k in KIND_ORDER if k in present and k not in ("council", "justice_department")]
    return [*kinds, CONTACTS_CHART] if report.contacts else kinds


NO_DATA_VI = "Không có số liệu"


def report_chart_png(report: Report, kind: str) -> bytes:
    """A bar chart of the key counts of one agency type's agencies (PNG, DejaVu Sans)."""
    buffer = io.BytesIO()
    report_chart_figure(report, kind).savefig(buffer, format="png")
    return buffer.getvalue()


def report_chart_figure(report: Report, kind: str) -> Any:
    """The chart's matplotlib Figure. With no event to count (every bar zero, or no agency),
    the axis stays 0–5 in whole numbers and the plot says "Không có số liệu" — not the
    −0.045…0.045 axis matplotlib draws around nothing."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if kind == CONTACTS_CHART:
        return _contacts_chart_figure(report)
    events = CHART_EVENTS.get(kind, CHART_EVENTS["_procedural"])
    rows = [a for a in report.agencies if a.kind == kind]
    figure = Figure(figsize=(11, 6.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    font = {"family": "DejaVu Sans"}
    width = 0.8 / len(events)
    for i, event in enumerate(events):
        values = [a.counts.get(event, 0) for a in rows]
        positions = [n + (i - (len(events) - 1) / 2) * width for n in range(len(rows))]
        axes.bar(positions, values, width, label=EVENT_HEADINGS_VI[event])
    axes.set_xticks(range(len(rows)))
    axes.set_xticklabels([_wrap(a.name_vi, 22) for a in rows], fontdict={**font, "size": 8})
    axes.set_ylabel("Số sự kiện", fontdict=font)
    axes.set_title(
        f"{KIND_NAMES_VI.get(kind, kind).capitalize()} — {report.province_name_vi}\n"
        f"{report.period_vi}",
        fontdict={**font, "size": 12},
    )
    figure.text(0.01, 0.005, report.checkpoint_vi, fontdict={**font, "size": 7})
    from matplotlib.ticker import MaxNLocator

    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    if not any(a.counts.get(event, 0) for a in rows for event in events):
        axes.set_ylim(0, 5)
        axes.text(
            0.5,
            0.5,
            NO_DATA_VI,
            transform=axes.transAxes,
            ha="center",
            va="center",
            fontdict={**font, "size": 16},
            color="#555555",
        )
    else:
        axes.set_ylim(bottom=0)
    axes.legend(
        prop={"family": "DejaVu Sans", "size": 8},
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=3,
        frameon=False,
    )
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def _contacts_chart_figure(report: Report) -> Any:
    """Stacked bars per agency: eligible persons in contact notified in time, late, not yet
    (running), never (missed), and the not-applicable ones (rule C2)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    font = {"family": "DejaVu Sans"}
    rows = report.contacts
    figure = Figure(figsize=(11, 6.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    bottom = [0] * len(rows)
    colours = {
        "met": "#2e7d32",
        "late": "#f9a825",
        "running": "#90caf9",
        "never": "#c62828",
        "cancelled": "#bdbdbd",
    }
    for name, colour in colours.items():
        values = [getattr(r, name) for r in rows]
        axes.bar(
            range(len(rows)),
            values,
            0.6,
            bottom=bottom,
            color=colour,
            label=CONTACT_HEADINGS_VI[name],
        )
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_xticks(range(len(rows)))
    axes.set_xticklabels([_wrap(r.name_vi, 22) for r in rows], fontdict={**font, "size": 8})
    axes.set_ylabel("Số người (lượt tiếp xúc)", fontdict=font)
    axes.set_title(
        f"Giải thích, thông báo quyền được TGPL (C2) — {report.province_name_vi}\n"
        f"{report.period_vi}",
        fontdict={**font, "size": 12},
    )
    figure.text(0.01, 0.005, report.checkpoint_vi, fontdict={**font, "size": 7})
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(
        prop={"family": "DejaVu Sans", "size": 8},
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=3,
        frameon=False,
    )
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def _wrap(text: str, width: int) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\n".join(lines)


def write_report(report: Report, formats: Sequence[str], output: Path) -> list[Path]:
    """Writes the report in the given formats (xlsx, csv, png) under `output`."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        if fmt == "xlsx":
            path = output / f"{report.slug()}.xlsx"
            path.write_bytes(report_xlsx_bytes(report))
            written.append(path)
        elif fmt == "csv":
            for table in report_tables(report):
                path = output / f"{report.slug()}-{table}.csv"
                path.write_bytes(report_csv_bytes(report, table))
                written.append(path)
        elif fmt == "png":
            for kind in chart_kinds(report):
                path = output / f"{report.slug()}-{kind}.png"
                path.write_bytes(report_chart_png(report, kind))
                written.append(path)
        else:
            raise ValueError(f"format must be xlsx, csv or png, not {fmt!r}")
    return written
