"""The inspection pack: the checklist an inspection team works through for one agency and one
period, with the failing cases listed (domain.md §4; the Lạng Sơn and Trà Vinh seed plans).

Items:
- FORM_03 (id kept): every legal-aid request (or appointment request) the agency received was
  preceded by a recorded explanation of the right, whatever form it names (JC 10/2018
  Art. 7(1); CPC Art. 71; C2; Form 03 is the notice to the Centre, issue 20);
  notifications without the reference of the procedural minutes are counted as a remark;
- TRANSFER: requests transferred to the Centre within the limit (rules C1_12H, C1_24H);
- REGISTRATION: defence/protection registered within the limit (C4_CRIMINAL, C4_CIVIL_ADMIN);
- REFUSAL: every refusal of the Centre is in writing with a reason (LAL Art. 30(3); C6);
- ASSIGNMENT (Centres): providers assigned within the limit (C3, C3_IMMEDIATE);
- NOTIFIED (issue 17): every eligible person the agency arrested, held, charged, tried or
  recognised as a victim or litigant (PROCEDURAL_CONTACT) was told of the right within the
  limit (rule C2; JC 10/2018 Art. 7(1); CPC Art. 71); the pack also lists the persons never
  told (limit passed, no notification recorded) for the team to take into the agency's files.

Beside the checklist, the agency's timeliness (issue 13 item 5): the events it recorded more
than `late_entry_hours` after they occurred, the median and 90th percentile of its recording
delay, its corrections, withdrawals and held events (projections.reports.timeliness_figures),
with the late entries listed; and the agency's held events that have waited longer than
`held_anomaly_after_hours` (ADR 0008: anomalies, for people to resolve), listed.

Limits come from the compliance read model (judged at `now`), attributed to the responsible
agency and to the period of their trigger day; events by their Vietnam-local day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from domain.reference import Agency
from infra.web.format import hours_text, vn_time
from infra.web.queries import agency_events, held_anomaly_after
from projections.reports import LATE_ENTRY_HOURS, TimelinessRow, timeliness_figures
from services.held import held_listing

TRANSFER_RULES = ("C1_12H", "C1_24H")
REGISTRATION_RULES = ("C4_CRIMINAL", "C4_CIVIL_ADMIN")
ASSIGNMENT_RULES = ("C3", "C3_IMMEDIATE")
NOTIFICATION_RULES = ("C2",)


@dataclass
class Failing:
    case_id: str
    detail_vi: str
    detail_en: str
    never: bool = False  # the target was never recorded (outstanding), not merely late


@dataclass
class CheckItem:
    key: str
    title_vi: str
    title_en: str
    basis: str
    applicable: bool = True
    checked: int = 0
    running: int = 0
    failing: list[Failing] = field(default_factory=list)
    remark_vi: str = ""
    remark_en: str = ""

    @property
    def status(self) -> str:
        """na | none | fail | watch | pass."""
        if not self.applicable:
            return "na"
        if self.failing:
            return "fail"
        if self.checked == 0:
            return "none"
        return "watch" if self.running else "pass"


@dataclass
class InspectionPack:
    agency: Agency
    start: date
    end: date
    judged_at: datetime
    items: list[CheckItem]
    # rule C2: persons in contact never told of the right (deadline passed, nothing recorded)
    never_notified: list[Failing] = field(default_factory=list)
    # issue 13 item 5: the agency's late entries, delays, corrections, withdrawals, held events
    timeliness: TimelinessRow | None = None
    late_entry_hours: float = LATE_ENTRY_HOURS
    # issue 13 item 2: the agency's events held longer than the setting (anomalies), now
    held_anomalies: list[dict[str, Any]] = field(default_factory=list)
    held_anomaly_after_hours: float = 72.0

    @property
    def failing_cases(self) -> int:
        return len({f.case_id for item in self.items for f in item.failing})


def build_pack(
    container: Any, agency: Agency, start: date, end: date, now: datetime, provinces: frozenset[str]
) -> InspectionPack:
    """The checklist of one agency for the days `start`..`end` (inclusive, Vietnam time)."""
    procedural = agency.is_procedural
    centre = agency.is_centre
    events, histories = agency_events(
        container,
        agency.agency_id,
        start,
        end,
        provinces,
        ("AID_REQUESTED", "APPOINTMENT_REQUESTED", "NOTIFICATION_ISSUED", "REQUEST_REFUSED"),
    )
    items = [
        _form_03(events, histories, procedural),
        _limits(
            container,
            "TRANSFER",
            "Chuyển yêu cầu TGPL cho Trung tâm đúng thời hạn",
            "Requests transferred to the Centre within the limit",
            TRANSFER_RULES,
            agency,
            start,
            end,
            now,
            procedural,
        ),
        _limits(
            container,
            "REGISTRATION",
            "Đăng ký bào chữa, bảo vệ quyền lợi đúng thời hạn",
            "Defence or protection registered within the limit",
            REGISTRATION_RULES,
            agency,
            start,
            end,
            now,
            procedural,
        ),
        _refusals(events, centre, container.reference),
        _limits(
            container,
            "ASSIGNMENT",
            "Cử người thực hiện TGPL đúng thời hạn",
            "Legal-aid providers assigned within the limit",
            ASSIGNMENT_RULES,
            agency,
            start,
            end,
            now,
            centre,
        ),
    ]
    notified = _limits(
        container,
        "NOTIFIED",
        "Giải thích, thông báo quyền được TGPL cho người thuộc diện khi bị bắt, "
        "tạm giữ, khởi tố, xét xử, là bị hại, đương sự đúng thời hạn",
        "Eligible persons arrested, held, charged, tried, or recognised as "
        "victims or litigants told of the right within the limit",
        NOTIFICATION_RULES,
        agency,
        start,
        end,
        now,
        procedural,
    )
    items.insert(1, notified)
    if not centre:
        items = [i for i in items if i.key != "ASSIGNMENT"]
    never = [f for f in notified.failing if f.never]
    late_hours = float(getattr(container.settings, "late_entry_hours", LATE_ENTRY_HOURS))
    timeliness = None
    if "audit_trail" in container.projections:
        [timeliness] = timeliness_figures(
            container.projections, [(agency.agency_id, agency.name_vi)], start, end, late_hours
        )
    held_after = held_anomaly_after(container)
    held_rows = container.projections.case_index.held(
        agency_id=agency.agency_id, provinces=sorted(provinces)
    )
    anomalies = [r for r in held_listing(held_rows, now, held_after) if r["anomaly"]]
    return InspectionPack(
        agency, start, end, now, items, never, timeliness, late_hours, anomalies, held_after
    )


def entered_late(event: Any, late_hours: float) -> bool:
    """Whether a stored event was recorded more than `late_hours` after it occurred."""
    return (event.timestamp - event.occurred_at).total_seconds() > late_hours * 3600


def _form_03(
    events: list[tuple[str, Any]], histories: dict[str, list[Any]], applicable: bool
) -> CheckItem:
    # the id stays FORM_03 (pages and tests name it); issue 20: Mẫu 03 is the notice to the
    # Centre (REQUEST_TRANSFERRED), so any recorded explanation of the right counts here
    item = CheckItem(
        "FORM_03",
        "Giải thích, thông báo về quyền được TGPL được ghi nhận trước khi tiếp nhận yêu cầu",
        "Explanation of the right to legal aid recorded before each request",
        "TTLT 10/2018 Điều 7 khoản 1; BLTTHS Điều 71",
        applicable,
    )
    if not applicable:
        return item
    notices = without_minutes = 0
    for case_id, event in events:
        if event.WIRE_TYPE == "NOTIFICATION_ISSUED":
            notices += 1
            if not event.data.get("minutes_ref"):
                without_minutes += 1
            continue
        if event.WIRE_TYPE not in ("AID_REQUESTED", "APPOINTMENT_REQUESTED"):
            continue
        item.checked += 1
        before = [e for e in histories[case_id] if e.originator_version < event.originator_version]
        if not any(e.WIRE_TYPE == "NOTIFICATION_ISSUED" for e in before):
            what_vi = "không có giải thích, thông báo nào được ghi trước đó"
            what_en = "no notification recorded before it"
            item.failing.append(
                Failing(
                    case_id,
                    f"Yêu cầu lúc {vn_time(event.occurred_at)}: {what_vi}",
                    f"Request at {vn_time(event.occurred_at)}: {what_en}",
                )
            )
    item.remark_vi = (
        f"{notices} lần giải thích, thông báo về quyền được ghi trong kỳ; "
        f"{without_minutes} lần chưa ghi số biên bản tố tụng."
    )
    item.remark_en = (
        f"{notices} explanations recorded in the period; {without_minutes} "
        "without the reference of the procedural minutes."
    )
    return item


def _refusals(events: list[tuple[str, Any]], applicable: bool, reference: Any) -> CheckItem:
    item = CheckItem(
        "REFUSAL",
        "Từ chối thụ lý bằng văn bản, có nêu lý do",
        "Refusals in writing, with a reason",
        "Luật TGPL 2017 Điều 30 khoản 3",
        applicable,
    )
    if not applicable:
        return item
    reasons = reference.code_lists.get("refusal_reasons", {})
    for case_id, event in events:
        if event.WIRE_TYPE != "REQUEST_REFUSED":
            continue
        item.checked += 1
        written = bool(event.data.get("written"))
        reason = event.data.get("reason")
        if not written or not reason:
            item.failing.append(
                Failing(
                    case_id,
                    f"Từ chối lúc {vn_time(event.occurred_at)}: "
                    + ("không bằng văn bản" if not written else "không nêu lý do"),
                    f"Refusal at {vn_time(event.occurred_at)}: "
                    + ("not in writing" if not written else "no reason given"),
                )
            )
        elif reason not in reasons:
            item.failing.append(
                Failing(
                    case_id,
                    f"Lý do «{reason}» không thuộc Điều 30 khoản 3",
                    f"Reason '{reason}' is not one of Art. 30(3)",
                )
            )
    return item


def _limits(
    container: Any,
    key: str,
    title_vi: str,
    title_en: str,
    rule_ids: tuple[str, ...],
    agency: Agency,
    start: date,
    end: date,
    now: datetime,
    applicable: bool,
) -> CheckItem:
    rules = {r.rule_id: r for r in container.rules}
    basis = "; ".join(dict.fromkeys(rules[r].legal_basis for r in rule_ids if r in rules))
    item = CheckItem(key, title_vi, title_en, basis, applicable)
    if not applicable or agency.province is None:
        return item
    compliance = container.projections.compliance
    for rule_id in rule_ids:
        for group in compliance.summary(
            agency.province, start, end, now=now, rule_id=rule_id, agency_id=agency.agency_id
        ):
            item.checked += group["met"] + group["missed"] + group["running"]
            item.running += group["running"]
            for case_id in group["cases"]["missed"]:
                item.failing.extend(
                    _missed(compliance, case_id, rule_id, agency.agency_id, start, end, now)
                )
    return item


def _missed(
    compliance: Any,
    case_id: str,
    rule_id: str,
    agency_id: str,
    start: date,
    end: date,
    now: datetime,
) -> list[Failing]:
    out = []
    for verdict in compliance.verdicts(case_id, now=now):
        if (
            verdict["rule_id"] != rule_id
            or verdict["status"] != "missed"
            or verdict["responsible_agency_id"] != agency_id
            or not start <= verdict["trigger_day"] <= end
        ):
            continue
        deadline = verdict["deadline"]
        if verdict["met_at"] is not None:
            late = (verdict["met_at"] - deadline).total_seconds() / 3600
            vi = (
                f"{rule_id}: hạn {vn_time(deadline)}, thực hiện lúc "
                f"{vn_time(verdict['met_at'])} (muộn {hours_text(late)})"
            )
            en = (
                f"{rule_id}: due {vn_time(deadline)}, done {vn_time(verdict['met_at'])} "
                f"({late:.1f} h late)"
            )
        else:
            late = (now - deadline).total_seconds() / 3600
            vi = f"{rule_id}: hạn {vn_time(deadline)}, chưa thực hiện (đã quá {hours_text(late)})"
            en = f"{rule_id}: due {vn_time(deadline)}, not done ({late:.1f} h overdue)"
        out.append(Failing(case_id, vi, en, never=verdict["met_at"] is None))
    return out
