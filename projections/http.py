"""Read-model routes for council staff and inspectors: reports, statistics, overdue limits and
the projections' status. The lead includes `router` in `infra.http.app.create_app`.

Access: a council principal reads its own province, an inspector its provinces (province
codes in the token); an administrator reads only the projections' status. Everything here is
pseudonymous (case ids, agency ids, counts); no identity ever.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from domain.calendar import FIRST_REPORT_DAY, LAST_REPORT_DAY
from domain.errors import InvalidEventError, NotAuthorisedError
from infra.http.deps import ContainerDep, CurrentPrincipal
from infra.http.routes import error_responses
from infra.http.schemas import ID_PATTERN  # an agency id: never NUL or control bytes
from projections.agency_counts import DIMENSIONS
from projections.reports import (
    PERIODS,
    TABLES,
    build_report,
    chart_kinds,
    period_dates,
    report_chart_png,
    report_csv_bytes,
    report_xlsx_bytes,
)
from services.access import Principal

router = APIRouter(tags=["reports"])

_ERRORS = error_responses(401, 403, 422, 503)
Province = Annotated[str, Path(pattern=r"^[A-Z]{2,4}$", description="Mã tỉnh, thành phố")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _refuse(rule_vi: str, rule_en: str, field: str | None = None) -> NotAuthorisedError:
    return NotAuthorisedError("NOT_AUTHORISED", field, rule_vi=rule_vi, rule_en=rule_en)


def _invalid(field: str, rule_vi: str, rule_en: str) -> InvalidEventError:
    return InvalidEventError("FIELD_INVALID", field, rule_vi=rule_vi, rule_en=rule_en)


def _province_for(principal: Principal, province: str | None) -> str:
    """The province a council or inspector may read (its only one when not given)."""
    if principal.role not in ("council", "inspector"):
        raise _refuse("chỉ Hội đồng phối hợp liên ngành và thanh tra được xem báo cáo, số liệu",
                      "only council and inspector principals read reports and statistics")
    if province is None:
        if len(principal.provinces) == 1:
            return next(iter(principal.provinces))
        raise _invalid("province", "cần chọn tỉnh, thành phố", "a province is required")
    if province not in principal.provinces:
        raise _refuse(f"không được xem số liệu của tỉnh, thành phố «{province}»",
                      f"province '{province}' is outside this token's scope", "province")
    return province


def _days(start: date | None, end: date | None) -> tuple[date | None, date | None]:
    """`from` and `to` if within the days a period may name (422 naming the field if not)."""
    for name, day in (("from", start), ("to", end)):
        if day is not None and not FIRST_REPORT_DAY <= day <= LAST_REPORT_DAY:
            raise _invalid(name, f"phải trong khoảng {FIRST_REPORT_DAY.isoformat()} đến "
                                 f"{LAST_REPORT_DAY.isoformat()}",
                           f"must be within {FIRST_REPORT_DAY.isoformat()} to "
                           f"{LAST_REPORT_DAY.isoformat()}")
    return start, end


def _period(year: int | None, period: str | None, start: date | None,
            end: date | None) -> tuple[date, date]:
    start, end = _days(start, end)
    if start is not None or end is not None:
        if start is None or end is None or end < start:
            raise _invalid("from", "cần cả ngày bắt đầu và ngày kết thúc (không trước ngày bắt "
                                   "đầu)", "give both from and to, to not before from")
        return start, end
    if year is None:
        raise _invalid("year", "cần năm báo cáo (year) hoặc khoảng ngày (from, to)",
                       "give year (and period) or from and to")
    try:
        return period_dates(year, period or "full-year")
    except ValueError:
        raise _invalid("period", f"kỳ báo cáo phải là một trong {', '.join(PERIODS)}",
                       f"period must be one of {', '.join(PERIODS)}") from None


def _iso(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, (date, datetime)) else v) for k, v in row.items()}


@router.get("/v1/reports/{province}", responses={**_ERRORS, 200: {"content": {
    XLSX: {}, "text/csv": {}, "image/png": {}, "application/json": {}}}},
    summary="Báo cáo của Hội đồng (XLSX, CSV, PNG hoặc JSON)")
def read_report(
    province: Province,
    principal: CurrentPrincipal,
    container: ContainerDep,
    year: Annotated[int | None, Query(ge=2018, le=2100)] = None,
    period: Annotated[str | None, Query(pattern="^(jan-oct|full-year)$")] = None,
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
    format: Annotated[str, Query(pattern="^(xlsx|csv|png|json)$")] = "xlsx",  # noqa: A002
    table: Annotated[str, Query(
        pattern="^(agencies|compliance|cases|overdue|contacts|never_notified)$")] = "agencies",
    kind: Annotated[str | None, Query(pattern="^[a-z_]{2,40}$")] = None,
) -> Response:
    """The report of a province for a statutory period (`year` + `period`) or a range."""
    province = _province_for(principal, province)
    start, end = _period(year, period, date_from, date_to)
    report = build_report(container, province, start, end)
    name = report.slug()
    if format == "xlsx":
        return Response(report_xlsx_bytes(report), media_type=XLSX, headers={
            "Content-Disposition": f'attachment; filename="{name}.xlsx"'})
    if format == "csv":
        return Response(report_csv_bytes(report, table), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition":
                                 f'attachment; filename="{name}-{table}.csv"'})
    if format == "png":
        kinds = chart_kinds(report)
        chosen = kind or (kinds[0] if kinds else "police")
        return Response(report_chart_png(report, chosen), media_type="image/png")
    import json

    body = {
        "province": report.province, "start": start.isoformat(), "end": end.isoformat(),
        "generated_at": report.generated_at.isoformat(),
        "reference_versions": report.reference_versions, "positions": report.positions,
        "checkpoint": report.checkpoint, "warnings": report.warnings,
        "tables": {t: {"header": list(h), "rows": [list(r) for r in rows(report)]}
                   for t, (h, rows) in TABLES.items()},
        # rule C2 per agency, with the cases behind each figure (pseudonymous ids only)
        "notification_of_rights": [
            {"agency_id": c.agency_id, "name_vi": c.name_vi, "contacts": c.contacts,
             "eligible": c.eligible, "notified_in_time": c.met, "notified_late": c.late,
             "never_notified_running": c.running, "never_notified_missed": c.never,
             "not_applicable": c.cancelled,
             "cases": {"notified_in_time": c.cases.get("met", []),
                       "notified_late": c.cases.get("late", []),
                       "never_notified_running": c.cases.get("running", []),
                       "never_notified_missed": c.cases.get("never", []),
                       "not_applicable": c.cases.get("cancelled", [])}}
            for c in report.contacts],
    }
    return Response(json.dumps(body, ensure_ascii=False, default=str),
                    media_type="application/json")


@router.get("/v1/stats/agency-counts", responses=_ERRORS, summary="Số liệu theo cơ quan")
def read_agency_counts(
    principal: CurrentPrincipal,
    container: ContainerDep,
    province: Annotated[str | None, Query(pattern=r"^[A-Z]{2,4}$")] = None,
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
    group_by: Annotated[str, Query(pattern=r"^[a-z_,]{1,200}$")] = "agency_id,event_type",
    agency_id: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)] = None,
) -> dict[str, Any]:
    """Sums of recorded events, grouped by any of agency_id, event_type, province, category,
    procedural_role, stage, day (Vietnam-local day of occurrence, `from`..`to` inclusive)."""
    province = _province_for(principal, province)
    groups = [g for g in group_by.split(",") if g]
    unknown = [g for g in groups if g not in DIMENSIONS]
    if unknown:
        raise _invalid("group_by", f"chỉ nhóm theo: {', '.join(DIMENSIONS)}",
                       f"group only by: {', '.join(DIMENSIONS)}")
    date_from, date_to = _days(date_from, date_to)
    rows = container.projections.agency_counts.counts(
        province, date_from, date_to, groups, agency_id=agency_id)
    return {"province": province, "from": date_from, "to": date_to, "group_by": groups,
            "rows": [_iso(r) for r in rows]}


@router.get("/v1/stats/compliance", responses=_ERRORS, summary="Tuân thủ thời hạn")
def read_compliance(
    principal: CurrentPrincipal,
    container: ContainerDep,
    province: Annotated[str | None, Query(pattern=r"^[A-Z]{2,4}$")] = None,
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
    rule_id: Annotated[str | None, Query(pattern=r"^[A-Z][A-Z0-9_]{0,40}$")] = None,
    agency_id: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)] = None,
) -> dict[str, Any]:
    """Per rule and responsible agency: met, missed, running and cancelled limits (judged now)
    with the case ids behind each number; a limit counts in the period of its trigger day."""
    province = _province_for(principal, province)
    date_from, date_to = _days(date_from, date_to)
    now = datetime.now(timezone.utc)
    rows = container.projections.compliance.summary(province, date_from, date_to, now=now,
                                                    rule_id=rule_id, agency_id=agency_id)
    return {"province": province, "from": date_from, "to": date_to, "judged_at": now,
            "rows": rows}


@router.get("/v1/stats/overdue", responses=_ERRORS, summary="Thời hạn đang bị quá")
def read_overdue(
    principal: CurrentPrincipal,
    container: ContainerDep,
    province: Annotated[str | None, Query(pattern=r"^[A-Z]{2,4}$")] = None,
    agency_id: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Limits past their deadline now with nothing done yet, most overdue first."""
    province = _province_for(principal, province)
    now = datetime.now(timezone.utc)
    rows = container.projections.compliance.overdue(province, agency_id=agency_id, now=now)
    return {"province": province, "judged_at": now, "total": len(rows),
            "rows": [_iso(r) for r in rows[:limit]]}


@router.get("/v1/projections/status", responses=error_responses(401, 403, 503),
            summary="Trạng thái các bảng tổng hợp")
def read_projections_status(principal: CurrentPrincipal, container: ContainerDep
                            ) -> dict[str, Any]:
    """Position and lag (log end − position) of every projection."""
    if principal.role not in ("council", "inspector", "admin"):
        raise _refuse("chỉ Hội đồng, thanh tra và quản trị được xem trạng thái",
                      "only council, inspector and admin principals read the status")
    return {"projections": [s.as_dict() for s in container.projections.status()],
            "quarantine_url": "/v1/projections/quarantine"}


@router.get("/v1/projections/quarantine", responses=_ERRORS,
            summary="Sự kiện các bảng tổng hợp chưa áp dụng được (cách ly)")
def read_projections_quarantine(
    principal: CurrentPrincipal,
    container: ContainerDep,
    include_resolved: Annotated[bool, Query(alias="all")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """The events each view could not apply (`failed`, with the error) or holds behind one
    of their case (`held`), oldest first; `all=true` adds the resolved ones (history).
    Council and inspectors see the events recorded by agencies of their provinces;
    administrators every one (pseudonymous ids only)."""
    if principal.role not in ("council", "inspector", "admin"):
        raise _refuse("chỉ Hội đồng, thanh tra và quản trị được xem các sự kiện bị cách ly",
                      "only council, inspector and admin principals read the quarantine")
    agencies = container.reference.agencies
    rows = []
    for row in container.projections.quarantine(include_resolved=include_resolved,
                                                limit=limit):
        agency = agencies.get(row["agency_id"] or "")
        if principal.role != "admin" and (
                agency is None or agency.province not in principal.provinces):
            continue
        rows.append(_iso(row))
    return {"total": len(rows), "rows": rows[:limit]}
