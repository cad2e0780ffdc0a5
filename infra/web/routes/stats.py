"""The figures: the agency dashboard (counts, compliance, overdue, each number down to its
cases), the council's report page with its downloads, and the inspection pack. Everything is
pseudonymous and scoped to the principal's provinces (the rules of `infra/http/routes/reports.py`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from domain.calendar import VIETNAM_TZ
from domain.errors import NotAuthorisedError
from domain.reference import KIND_NAMES_VI
from infra.web import format as fmt
from infra.web.deps import PREFIX, ContainerDep, SessionDep, WebError, lang_of, renderer
from infra.web.inspection import build_pack, entered_late
from infra.web.queries import (
    agency_events,
    case_rows,
    compliance_group,
    held_anomaly_after,
    held_in_scope,
)
from infra.web.routes.cases import scope_agencies, status_name
from projections.reports import (
    AGENCY_HEADER,
    COMPLIANCE_HEADER,
    CONTACT_HEADINGS_VI,
    CONTACT_TYPE,
    CONTACTS_CHART,
    EVENT_COLUMNS,
    EVENT_HEADINGS_VI,
    PERIODS,
    agency_rows,
    build_report,
    chart_kinds,
    compliance_rows,
    period_dates,
    report_chart_png,
    report_csv_bytes,
    report_tables,
    report_xlsx_bytes,
)
from services.access import Principal

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Text = Annotated[str | None, Query()]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
KEY_EVENTS = (
    "NOTIFICATION_ISSUED",
    "AID_REQUESTED",
    "REQUEST_TRANSFERRED",
    "APPOINTMENT_REQUESTED",
    "REQUEST_ACCEPTED",
    "REQUEST_REFUSED",
    "AID_ASSIGNED",
    "COUNSEL_REGISTERED",
    "CASE_CLOSED",
)
STATUSES = ("met", "missed", "running", "cancelled")
# The report's tables on the English page (the downloads stay the council's Vietnamese)
REPORT_AGENCY_HEADER_EN = (
    "Agency code",
    "Agency",
    "Type of agency",
    "Level",
    *(fmt.event_title(t, "en") for t in EVENT_COLUMNS),
    "Total events",
)
REPORT_COMPLIANCE_HEADER_EN = (
    "Limit code",
    "Time limit",
    "Responsible agency code",
    "Responsible agency",
    "On time",
    "Late",
    "Still running",
    "No longer due",
    "Total",
    "On-time rate (%)",
    "Legal basis",
)
CONTACTS_CHART_NAME_VI = "giải thích, thông báo quyền (C2)"
CONTACTS_CHART_NAME_EN = "rights explained and notified (C2)"
# drill-down cells of the contacts table (rule C2): the missed ones split, and all eligible
MISSED_KINDS = ("late", "never")
ELIGIBLE = ("met", "missed", "running")
CONTACT_CELLS = ("met", "late", "running", "never", "cancelled")


def _cell_cases(group: dict[str, Any] | None, status: str) -> list[str]:
    """The cases behind one cell: a status, a kind of missed (late, never) or `eligible`."""
    if group is None:
        return []
    if status in MISSED_KINDS:
        return list(group.get("missed_cases", {}).get(status, []))
    if status == "eligible":
        return list(dict.fromkeys(c for s in ELIGIBLE for c in group["cases"][s]))
    return list(group["cases"][status])


def _cell_count(group: dict[str, Any] | None, status: str) -> int:
    if group is None:
        return 0
    if status == "eligible":
        return sum(group[s] for s in ELIGIBLE)
    return group.get(status, 0)


def _verdict_in_cell(verdict: dict[str, Any], status: str) -> bool:
    if status == "late":
        return verdict["status"] == "missed" and verdict["met_at"] is not None
    if status == "never":
        return verdict["status"] == "missed" and verdict["met_at"] is None
    if status == "eligible":
        return verdict["status"] in ELIGIBLE
    return verdict["status"] == status


# ------------------------------------------------------------------------------- helpers
def _now(container: Any) -> datetime:
    return container.referrals.clock()


def _province(principal: Principal, asked: str | None) -> str:
    """The asked province if the principal's, its first province if none asked; 403 else."""
    if principal.role not in ("inspector", "council"):
        raise WebError(403, "forbidden")
    if not asked:
        return sorted(principal.provinces)[0]
    if asked not in principal.provinces:
        raise WebError(403, "forbidden")
    return asked


def _period(date_from: str | None, date_to: str | None, today: date) -> tuple[date, date]:
    """The chosen days (default: the year to date); swapped when given backwards."""
    start = fmt.parse_day(date_from) or date(today.year, 1, 1)
    end = fmt.parse_day(date_to) or today
    return (start, end) if start <= end else (end, start)


def latest_statutory_period(today: date) -> tuple[int, str]:
    """The most recent statutory period that has ended (JC 10/2018 Art. 20(5))."""
    if today > date(today.year, 10, 31):
        return today.year, "jan-oct"
    return today.year - 1, "full-year"


def _judged(value: str | None, container: Any) -> datetime:
    """The instant limits are judged at: the one a number was shown with, else now."""
    parsed = fmt.parse_local(value) if value else None
    now = _now(container)
    return parsed if parsed is not None and parsed <= now else now


def _bar(value: int, top: int) -> float:
    return round(100.0 * value / top, 2) if top else 0.0


# ------------------------------------------------------------------------------ dashboard
@router.get("/dashboard")
def dashboard(
    request: Request,
    session: SessionDep,
    container: ContainerDep,
    province: Text = None,
    date_from: Annotated[str | None, Query(alias="from")] = None,
    date_to: Annotated[str | None, Query(alias="to")] = None,
) -> Response:
    """Per-agency counts and compliance for a period, with bars, and the overdue list."""
    principal = session.principal
    chosen = _province(principal, province)
    now = _now(container)
    today = fmt.today_vn(now)
    start, end = _period(date_from, date_to, today)
    report = build_report(container, chosen, start, end, now=now)
    top = max((a.total for a in report.agencies), default=0)
    totals = [
        {"agency": a, "total": a.total, "width": _bar(a.total, top)}
        for a in report.agencies
        if a.total
    ]
    compliance = []
    for row in report.compliance:
        decided = row.total or 1
        compliance.append(
            {"row": row, "widths": {s: _bar(getattr(row, s), decided) for s in STATUSES}}
        )
    lang = lang_of(request)
    headings = {
        t: (fmt.event_title(t, "en") if lang == "en" else EVENT_HEADINGS_VI[t]) for t in KEY_EVENTS
    }
    contact_rule = next((r for r in container.rules if CONTACT_TYPE in r.trigger_types), None)
    return renderer(request).page(
        request,
        "dashboard.html",
        session,
        province=chosen,
        provinces=sorted(principal.provinces),
        start=start,
        end=end,
        report=report,
        key_events=KEY_EVENTS,
        headings=headings,
        totals=totals,
        compliance=compliance,
        overdue=report.overdue[:200],
        overdue_total=len(report.overdue),
        judged=report.judged_at.astimezone(VIETNAM_TZ).isoformat(timespec="seconds"),
        presets=[
            ("preset_year", date(today.year, 1, 1), today),
            ("preset_jan_oct", *period_dates(today.year, "jan-oct")),
            ("preset_full_year", *period_dates(today.year, "full-year")),
        ],
        rules={r.rule_id: r for r in container.rules},
        hours_text=fmt.hours_text,
        projections_status=container.projections.status(),
        quarantine=_quarantine_in_scope(container, principal),
        contacts=report.contacts,
        contact_rule=contact_rule,
        contact_cells=CONTACT_CELLS,
        contact_headings=CONTACT_HEADINGS_VI,
        timeliness=report.timeliness or [],
        late_hours=f"{report.late_entry_hours:g}",
        delay_text=lambda hours: fmt.delay_text(hours, lang),
        held_by_agency=_held_by_agency(container, principal, chosen),
        held_after=f"{held_anomaly_after(container):g}",
    )


def _held_by_agency(container: Any, principal: Principal, province: str) -> list[dict[str, Any]]:
    """Per agency, its held events on the province's cases and how many are anomalies (held
    longer than the setting), agencies with an anomaly first."""
    counts: dict[str, dict[str, Any]] = {}
    for row in held_in_scope(container, principal):
        if row.get("province") != province:
            continue
        entry = counts.setdefault(
            row["agency_id"], {"agency_id": row["agency_id"], "held": 0, "anomalies": 0}
        )
        entry["held"] += 1
        entry["anomalies"] += int(bool(row["anomaly"]))
    return sorted(counts.values(), key=lambda e: (-e["anomalies"], -e["held"], e["agency_id"]))


@router.get("/held")
def held_page(
    request: Request,
    session: SessionDep,
    container: ContainerDep,
    agency_id: Text = None,
    anomaly: Text = None,
) -> Response:
    """Events recorded but not in effect, awaiting an earlier fact (ADR 0008), oldest first,
    with their age and the anomaly flag (held longer than `held_anomaly_after_hours`): an
    agency its own, an inspector or the council their provinces' (`anomaly=1`: only those)."""
    principal = session.principal
    agency_id = (agency_id or "").strip()[:64] or None
    try:
        rows = held_in_scope(container, principal, agency_id)
    except NotAuthorisedError:
        raise WebError(403, "forbidden") from None
    if agency_id is not None and principal.role != "agency":
        agency = container.reference.agencies.get(agency_id)
        if agency is not None and agency.province not in principal.provinces:
            raise WebError(403, "forbidden")
    only_anomalies = anomaly == "1"
    if only_anomalies:
        rows = [r for r in rows if r["anomaly"]]
    lang = lang_of(request)
    return renderer(request).page(
        request,
        "held.html",
        session,
        rows=rows,
        agency_id=agency_id or "",
        only_anomalies=only_anomalies,
        after=f"{held_anomaly_after(container):g}",
        anomalies=sum(1 for r in rows if r["anomaly"]),
        agencies=scope_agencies(container, principal.provinces),
        awaiting=lambda types: ", ".join(fmt.event_title(t, lang) for t in types) or "—",
        age_text=lambda hours: fmt.delay_text(hours, lang),
    )


def _quarantine_in_scope(container: Any, principal: Any) -> list[dict[str, Any]]:
    """Open quarantine rows of events recorded by agencies of the principal's provinces."""
    agencies = container.reference.agencies
    rows = []
    for row in container.projections.quarantine(limit=200):
        agency = agencies.get(row["agency_id"] or "")
        if agency is not None and agency.province in principal.provinces:
            rows.append(row)
    return rows


@router.get("/dashboard/cases")
def drill_down(
    request: Request,
    session: SessionDep,
    container: ContainerDep,
    province: Text = None,
    date_from: Annotated[str | None, Query(alias="from")] = None,
    date_to: Annotated[str | None, Query(alias="to")] = None,
    agency_id: Text = None,
    event_type: Text = None,
    rule_id: Text = None,
    status: Text = None,
    judged: Text = None,
    late: Text = None,
) -> Response:
    """The cases behind one number of the dashboard: an agency's events of a type (`late=1`:
    only those entered late, issue 13 item 5), or one (rule, agency, result) cell of the
    compliance table."""
    principal = session.principal
    chosen = _province(principal, province)
    now = _judged(judged, container)
    start, end = _period(date_from, date_to, fmt.today_vn(now))
    reference = container.reference
    lang = lang_of(request)
    context: dict[str, Any] = {
        "province": chosen,
        "start": start,
        "end": end,
        "agency_id": agency_id,
        "judged": judged or "",
    }
    if rule_id:
        if status not in (*STATUSES, *MISSED_KINDS, "eligible"):
            raise WebError(404, "not_found")
        responsible = None if agency_id in (None, "", "-") else agency_id
        group = compliance_group(container, chosen, start, end, rule_id, responsible, now)
        case_ids = _cell_cases(group, status)
        rows, hidden = case_rows(container, case_ids, principal.provinces)
        details = {}
        compliance = container.projections.compliance
        for row in rows:
            details[row["case_id"]] = [
                v
                for v in compliance.verdicts(row["case_id"], now=now)
                if v["rule_id"] == rule_id
                and _verdict_in_cell(v, status)
                and v["responsible_agency_id"] == responsible
                and start <= v["trigger_day"] <= end
            ]
        rule = next((r for r in container.rules if r.rule_id == rule_id), None)
        context.update(
            kind="limits",
            rule=rule,
            rule_id=rule_id,
            status=status,
            count=_cell_count(group, status),
            rows=rows,
            hidden=hidden,
            details=details,
            responsible=responsible,
        )
    else:
        agency = reference.agencies.get(agency_id or "")
        if agency is None:
            raise WebError(404, "not_found")
        if agency.province not in principal.provinces:
            raise WebError(403, "forbidden")
        types = (event_type,) if event_type else None
        events, histories = agency_events(
            container, agency.agency_id, start, end, principal.provinces, types
        )
        late_hours = float(container.settings.late_entry_hours)
        if late == "1":  # the timeliness table's "entered late" cell
            events = [(c, e) for c, e in events if entered_late(e, late_hours)]
        rows, hidden = case_rows(container, [c for c, _ in events], principal.provinces)
        context.update(
            kind="events",
            agency=agency,
            event_type=event_type or "",
            events=events,
            rows={r["case_id"]: r for r in rows},
            cases=len({c for c, _ in events}),
            hidden=hidden,
            late_only=late == "1",
            late_hours=f"{late_hours:g}",
        )
    return renderer(request).page(
        request, "drilldown.html", session, status_name=lambda s: status_name(s, lang), **context
    )


# -------------------------------------------------------------------------------- reports
def _report_period(
    year: str | None, period: str | None, date_from: str | None, date_to: str | None, today: date
) -> tuple[int, str, date, date]:
    default_year, default_period = latest_statutory_period(today)
    chosen_year = (
        int(year) if year and year.isdigit() and 2018 <= int(year) <= 2100 else default_year
    )
    chosen = period if period in (*PERIODS, "custom") else default_period
    if chosen == "custom":
        start, end = _period(date_from, date_to, today)
    else:
        start, end = period_dates(chosen_year, chosen)
    return chosen_year, chosen, start, end


@router.get("/reports")
def report_page(
    request: Request,
    session: SessionDep,
    container: ContainerDep,
    province: Text = None,
    year: Text = None,
    period: Text = None,
    date_from: Annotated[str | None, Query(alias="from")] = None,
    date_to: Annotated[str | None, Query(alias="to")] = None,
) -> Response:
    """Pick province and period (the two statutory ones preselected); tables, charts and
    downloads (XLSX, CSV, PNG) of `projections.reports`."""
    principal = session.principal
    chosen = _province(principal, province)
    now = _now(container)
    today = fmt.today_vn(now)
    chosen_year, chosen_period, start, end = _report_period(year, period, date_from, date_to, today)
    report = build_report(container, chosen, start, end, now=now)
    query = {"province": chosen, "from": start.isoformat(), "to": end.isoformat()}
    english = lang_of(request) == "en"
    rows = agency_rows(report)
    if english:  # the agency type and level columns; names stay Vietnamese (legal terms)
        rows = [
            (
                r[0],
                r[1],
                fmt.KIND_NAMES_EN.get(a.kind, r[2]),
                fmt.LEVEL_NAMES_EN.get(a.level, r[3]),
                *r[4:],
            )
            for r, a in zip(rows, report.agencies, strict=True)
        ]
    kind_names = fmt.KIND_NAMES_EN if english else KIND_NAMES_VI
    return renderer(request).page(
        request,
        "report.html",
        session,
        report=report,
        province=chosen,
        provinces=sorted(principal.provinces),
        year=chosen_year,
        period=chosen_period,
        years=list(range(today.year, today.year - 5, -1)),
        start=start,
        end=end,
        agency_header=REPORT_AGENCY_HEADER_EN if english else AGENCY_HEADER,
        agency_rows=rows,
        compliance_header=REPORT_COMPLIANCE_HEADER_EN if english else COMPLIANCE_HEADER,
        compliance_rows=compliance_rows(report),
        kinds=[
            (
                k,
                (CONTACTS_CHART_NAME_EN if english else CONTACTS_CHART_NAME_VI)
                if k == CONTACTS_CHART
                else kind_names.get(k, k),
            )
            for k in chart_kinds(report)
        ],
        tables=report_tables(report),
        download_query=query,
    )


@router.get("/reports/download")
def report_download(
    session: SessionDep,
    container: ContainerDep,
    province: Text = None,
    date_from: Annotated[str | None, Query(alias="from")] = None,
    date_to: Annotated[str | None, Query(alias="to")] = None,
    format: Text = "xlsx",  # noqa: A002 - the query parameter is named `format`
    table: Text = "agencies",
    kind: Text = None,
) -> Response:
    """The report of a province and days as XLSX, one table as CSV, or one chart as PNG."""
    chosen = _province(session.principal, province)
    now = _now(container)
    start, end = _period(date_from, date_to, fmt.today_vn(now))
    report = build_report(container, chosen, start, end, now=now)
    name = report.slug()
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if format == "xlsx":
        return Response(
            report_xlsx_bytes(report),
            media_type=XLSX,
            headers={**headers, "Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    if format == "csv" and table in report_tables(report):
        return Response(
            report_csv_bytes(report, table),
            media_type="text/csv; charset=utf-8",
            headers={
                **headers,
                "Content-Disposition": f'attachment; filename="{name}-{table}.csv"',
            },
        )
    if format in ("png", "chart"):
        kinds = chart_kinds(report)
        chosen_kind = kind if kind in kinds else (kinds[0] if kinds else "police")
        disposition = "attachment" if format == "png" else "inline"
        return Response(
            report_chart_png(report, chosen_kind),
            media_type="image/png",
            headers={
                **headers,
                "Content-Disposition": f'{disposition}; filename="{name}-{chosen_kind}.png"',
            },
        )
    raise WebError(404, "not_found")


# ----------------------------------------------------------------------------- inspection
@router.get("/inspection")
def inspection_page(
    request: Request,
    session: SessionDep,
    container: ContainerDep,
    agency_id: Text = None,
    date_from: Annotated[str | None, Query(alias="from")] = None,
    date_to: Annotated[str | None, Query(alias="to")] = None,
) -> Response:
    """The inspection checklist of one agency and period, printable."""
    principal = session.principal
    _province(principal, None)
    now = _now(container)
    start, end = _period(date_from, date_to, fmt.today_vn(now))
    pack = None
    if agency_id:
        agency = container.reference.agencies.get(agency_id)
        if agency is None:
            raise WebError(404, "not_found")
        if agency.province not in principal.provinces:
            raise WebError(403, "forbidden")
        pack = build_pack(container, agency, start, end, now, principal.provinces)
    return renderer(request).page(
        request,
        "inspection.html",
        session,
        pack=pack,
        agency_id=agency_id or "",
        agencies=scope_agencies(container, principal.provinces),
        start=start,
        end=end,
        delay_text=lambda hours: fmt.delay_text(hours, lang_of(request)),
    )
