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
from infra.http.schemas import (
    _DAY,
    ID_PATTERN,  # an agency id: never NUL or control bytes
    Day,
)
from projections.agency_counts import DIMENSIONS
from projections.reports import (
    PERIODS,
    build_report,
    chart_kinds,
    period_dates,
    report_chart_png,
    report_csv_bytes,
    report_json_bytes,
    report_xlsx_bytes,
)
from services.access import Principal

router = APIRouter(tags=["reports"])

_ERRORS = error_responses(401, 403, 422, 503)
_ONE_PROVINCE = (
    "`province` is required when the token covers more than one province (FIELD_INVALID province)"
)
_STATS_ERRORS = error_responses(
    401,
    403,
    422,
    503,
    rules=_ONE_PROVINCE + "; `from`/`to` "
    f"within {FIRST_REPORT_DAY.isoformat()} to "
    f"{LAST_REPORT_DAY.isoformat()}",
)
_DIMENSION = "(" + "|".join(DIMENSIONS) + ")"
_GROUP_BY = f"^{_DIMENSION}(,{_DIMENSION})*$"
_PROVINCE_DOC = (
    "Mã tỉnh; bắt buộc khi mã truy cập có nhiều tỉnh (thiếu → 422), mặc định: tỉnh "
    "duy nhất của mã truy cập"
)
Province = Annotated[str, Path(pattern=r"^[A-Z]{2,4}$", description="Mã tỉnh, thành phố")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _refuse(rule_vi: str, rule_en: str, field: str | None = None) -> NotAuthorisedError:
    return NotAuthorisedError("NOT_AUTHORISED", field, rule_vi=rule_vi, rule_en=rule_en)


def _invalid(field: str, rule_vi: str, rule_en: str) -> InvalidEventError:
    return InvalidEventError("FIELD_INVALID", field, rule_vi=rule_vi, rule_en=rule_en)


def _province_for(principal: Principal, province: str | None) -> str:
    """The province a council or inspector may read (its only one when not given)."""
    if principal.role not in ("council", "inspector"):
        raise _refuse(
            "chỉ Hội đồng phối hợp liên ngành và thanh tra được xem báo cáo, số liệu",
            "only council and inspector principals read reports and statistics",
        )
    if province is None:
        if len(principal.provinces) == 1:
            return next(iter(principal.provinces))
        raise _invalid("province", "cần chọn tỉnh, thành phố", "a province is required")
    if province not in principal.provinces:
        raise _refuse(
            f"không được xem số liệu của tỉnh, thành phố «{province}»",
            f"province '{province}' is outside this token's scope",
            "province",
        )
    return province


def _days(start: date | None, end: date | None) -> tuple[date | None, date | None]:
    """`from` and `to` if within the days a period may name (422 naming the field if not)."""
    for name, day in (("from", start), ("to", end)):
        if day is not None and not FIRST_REPORT_DAY <= day <= LAST_REPORT_DAY:
            raise _invalid(
                name,
                f"phải trong khoảng {FIRST_REPORT_DAY.isoformat()} đến "
                f"{LAST_REPORT_DAY.isoformat()}",
                f"must be within {FIRST_REPORT_DAY.isoformat()} to {LAST_REPORT_DAY.isoformat()}",
            )
    return start, end


def _period(
    year: int | None, period: str | None, start: date | None, end: date | None
) -> tuple[date, date]:
    start, end = _days(start, end)
    if start is not None or end is not None:
        if start is None or end is None or end < start:
            raise _invalid(
                "from",
                "cần cả ngày bắt đầu và ngày kết thúc (không trước ngày bắt đầu)",
                "give both from and to, to not before from",
            )
        return start, end
    if year is None:
        raise _invalid(
            "year",
            "cần năm báo cáo (year) hoặc khoảng ngày (from, to)",
            "give year (and period) or from and to",
        )
    try:
        return period_dates(year, period or "full-year")
    except ValueError:
        raise _invalid(
            "period",
            f"kỳ báo cáo phải là một trong {', '.join(PERIODS)}",
            f"period must be one of {', '.join(PERIODS)}",
        ) from None


TABLE_PATTERN = "^(agencies|compliance|cases|overdue|contacts|never_notified|timeliness)$"
"""The report's CSV tables (projections.reports.TABLES)."""


def _iso(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, (date, datetime)) else v) for k, v in row.items()}


@router.get(
    "/v1/reports/{province}",
    responses={
        **error_responses(
            401,
            403,
            422,
            503,
            rules="give `year` (and `period`) or both `from` and `to` (`to` not "
            f"before `from`, both within {FIRST_REPORT_DAY.isoformat()} to "
            f"{LAST_REPORT_DAY.isoformat()}): neither answers 422 FIELD_INVALID year",
        ),
        200: {"content": {XLSX: {}, "text/csv": {}, "image/png": {}, "application/json": {}}},
    },
    summary="Báo cáo của Hội đồng (XLSX, CSV, PNG hoặc JSON)",
)
def read_report(
    province: Province,
    principal: CurrentPrincipal,
    container: ContainerDep,
    year: Annotated[
        int | None,
        Query(
            ge=2018,
            le=2100,
            description=("Năm báo cáo; cần `year` hoặc cả `from` và `to` (thiếu cả hai → 422)"),
        ),
    ] = None,
    period: Annotated[str | None, Query(pattern="^(jan-oct|full-year)$")] = None,
    date_from: Annotated[Day, Query(alias="from", json_schema_extra=_DAY)] = None,
    date_to: Annotated[Day, Query(alias="to", json_schema_extra=_DAY)] = None,
    format: Annotated[str, Query(pattern="^(xlsx|csv|png|json)$")] = "xlsx",  # noqa: A002 - the query parameter is named `format`
    table: Annotated[str, Query(pattern=TABLE_PATTERN)] = "agencies",
    kind: Annotated[str | None, Query(pattern="^[a-z_]{2,40}$")] = None,
) -> Response:
    """The report of a province for a statutory period (`year` + `period`) or a range."""
    province = _province_for(principal, province)
    start, end = _period(year, period, date_from, date_to)
    report = build_report(container, province, start, end)
    name = report.slug()
    if format == "xlsx":
        return Response(
            report_xlsx_bytes(report),
            media_type=XLSX,
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    if format == "csv":
        return Response(
            report_csv_bytes(report, table),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}-{table}.csv"'},
        )
    if format == "png":
        kinds = chart_kinds(report)
        chosen = kind or (kinds[0] if kinds else "police")
        return Response(report_chart_png(report, chosen), media_type="image/png")
    return Response(report_json_bytes(report), media_type="application/json")


@router.post(
    "/v1/reports/{province}/published",
    responses=error_responses(401, 403, 409, 422, 503),
    summary="Công bố báo cáo (lưu để lập lại đúng từng byte)",
)
def publish_report(
    province: Province,
    principal: CurrentPrincipal,
    container: ContainerDep,
    year: Annotated[int | None, Query(ge=2018, le=2100)] = None,
    period: Annotated[str | None, Query(pattern="^(jan-oct|full-year)$")] = None,
    date_from: Annotated[Day, Query(alias="from", json_schema_extra=_DAY)] = None,
    date_to: Annotated[Day, Query(alias="to", json_schema_extra=_DAY)] = None,
) -> dict[str, Any]:
    """Generates the report of a province for a period from the views and records it as
    published: the checkpoint it names, the reference versions, the sha256 of each output.
    Council principals only."""
    from infra.published_reports import publish

    if principal.role != "council":
        raise _refuse(
            "chỉ Hội đồng phối hợp liên ngành được công bố báo cáo",
            "only council principals publish reports",
        )
    province = _province_for(principal, province)
    start, end = _period(year, period, date_from, date_to)
    report = build_report(container, province, start, end)
    return publish(container, report, principal.principal_id)


@router.get("/v1/reports/{province}/published", responses=_ERRORS, summary="Các báo cáo đã công bố")
def list_published_reports(
    province: Province, principal: CurrentPrincipal, container: ContainerDep
) -> dict[str, Any]:
    """Every publication of the province, oldest first (record, checkpoint, sha256)."""
    from infra.published_reports import store_of

    province = _province_for(principal, province)
    rows = store_of(container).find(province)
    return {"province": province, "total": len(rows), "rows": rows}


@router.get(
    "/v1/reports/{province}/published/{report_id}",
    responses={
        **error_responses(401, 403, 404, 409, 422, 503),
        200: {"content": {XLSX: {}, "text/csv": {}, "application/json": {}}},
    },
    summary="Báo cáo đã công bố: lập lại như đã công bố, hoặc như đã đính chính",
)
def read_published_report(
    province: Province,
    report_id: Annotated[str, Path(pattern=r"^[a-z0-9-]{1,80}$")],
    principal: CurrentPrincipal,
    container: ContainerDep,
    as_: Annotated[str, Query(alias="as", pattern="^(published|corrected)$")] = "published",
    format: Annotated[str, Query(pattern="^(summary|xlsx|csv|json)$")] = "summary",  # noqa: A002
    table: Annotated[str, Query(pattern=TABLE_PATTERN)] = "agencies",
    judge_at: Annotated[str, Query(pattern="^(published|now)$")] = "published",
) -> Response:
    """`as=published`: regenerated from the checkpoint it names (the log prefix, the
    reference versions recorded with it), byte for byte — checked against the sha256 stored
    at publication (409 REPORT_NOT_REPRODUCED if an output differs). `as=corrected`: from
    today's views, with `difference` (summary): which figures moved, and which late entries
    and reference publications moved them. `format=summary` answers the comparison as JSON;
    xlsx, csv (`table`) and json answer the output itself."""
    import json

    from infra import published_reports as pr

    province = _province_for(principal, province)
    record = pr.find_published(container, province, report_id)
    published, outputs, same = pr.regenerated_outputs(container, record)
    summary: dict[str, Any] = {
        "record": record,
        "as": as_,
        "reproduced": all(same.values()),
        "outputs": {
            name: {
                "sha256": pr.sha256(data),
                "published_sha256": record["sha256"].get(name),
                "identical": same[name],
            }
            for name, data in outputs.items()
        },
    }
    report = published
    if as_ == "corrected":
        report = pr.corrected(container, record, judge_at)
        summary["difference"] = pr.difference(container, record, published, report)
        outputs = pr.outputs_of(report)
    if format == "summary":
        return Response(
            json.dumps(summary, ensure_ascii=False, default=str), media_type="application/json"
        )
    name = {"xlsx": "xlsx", "json": "json"}.get(format, f"csv:{table}")
    if name not in outputs:  # a table the report did not have when it was published
        from domain.errors import NotFoundError

        raise NotFoundError(
            "PUBLISHED_REPORT_NOT_FOUND", "table", value=f"{report_id}: {name}", province=province
        )
    data = outputs[name]
    if as_ == "published" and not same[name]:
        raise pr.not_reproduced(record, name, data)
    media = {"xlsx": XLSX, "json": "application/json"}.get(format, "text/csv; charset=utf-8")
    filename = pr.output_filename(report, name)
    return Response(
        data,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Report-SHA256": pr.sha256(data),
            "X-Published-SHA256": record["sha256"].get(name, ""),
        },
    )


@router.get("/v1/stats/agency-counts", responses=_STATS_ERRORS, summary="Số liệu theo cơ quan")
def read_agency_counts(
    principal: CurrentPrincipal,
    container: ContainerDep,
    province: Annotated[
        str | None, Query(pattern=r"^[A-Z]{2,4}$", description=_PROVINCE_DOC)
    ] = None,
    date_from: Annotated[Day, Query(alias="from", json_schema_extra=_DAY)] = None,
    date_to: Annotated[Day, Query(alias="to", json_schema_extra=_DAY)] = None,
    group_by: Annotated[
        str,
        Query(
            pattern=_GROUP_BY,
            max_length=200,
            description=("Các chiều, cách nhau bằng dấu phẩy: " + ", ".join(DIMENSIONS)),
        ),
    ] = "agency_id,event_type",
    agency_id: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)] = None,
) -> dict[str, Any]:
    """Sums of recorded events, grouped by any of agency_id, event_type, province, category,
    procedural_role, stage, day (Vietnam-local day of occurrence, `from`..`to` inclusive)."""
    province = _province_for(principal, province)
    groups = [g for g in group_by.split(",") if g]
    unknown = [g for g in groups if g not in DIMENSIONS]
    if unknown:
        raise _invalid(
            "group_by",
            f"chỉ nhóm theo: {', '.join(DIMENSIONS)}",
            f"group only by: {', '.join(DIMENSIONS)}",
        )
    date_from, date_to = _days(date_from, date_to)
    rows = container.projections.agency_counts.counts(
        province, date_from, date_to, groups, agency_id=agency_id
    )
    return {
        "province": province,
        "from": date_from,
        "to": date_to,
        "group_by": groups,
        "rows": [_iso(r) for r in rows],
    }


@router.get("/v1/stats/compliance", responses=_STATS_ERRORS, summary="Tuân thủ thời hạn")
def read_compliance(
    principal: CurrentPrincipal,
    container: ContainerDep,
    province: Annotated[
        str | None, Query(pattern=r"^[A-Z]{2,4}$", description=_PROVINCE_DOC)
    ] = None,
    date_from: Annotated[Day, Query(alias="from", json_schema_extra=_DAY)] = None,
    date_to: Annotated[Day, Query(alias="to", json_schema_extra=_DAY)] = None,
    rule_id: Annotated[str | None, Query(pattern=r"^[A-Z][A-Z0-9_]{0,40}$")] = None,
    agency_id: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)] = None,
) -> dict[str, Any]:
    """Per rule and responsible agency: met, missed, running and cancelled limits (judged now)
    with the case ids behind each number; a limit counts in the period of its trigger day."""
    province = _province_for(principal, province)
    date_from, date_to = _days(date_from, date_to)
    now = datetime.now(timezone.utc)
    rows = container.projections.compliance.summary(
        province, date_from, date_to, now=now, rule_id=rule_id, agency_id=agency_id
    )
    return {"province": province, "from": date_from, "to": date_to, "judged_at": now, "rows": rows}


@router.get("/v1/stats/overdue", responses=_STATS_ERRORS, summary="Thời hạn đang bị quá")
def read_overdue(
    principal: CurrentPrincipal,
    container: ContainerDep,
    province: Annotated[
        str | None, Query(pattern=r"^[A-Z]{2,4}$", description=_PROVINCE_DOC)
    ] = None,
    agency_id: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Limits past their deadline now with nothing done yet, most overdue first."""
    province = _province_for(principal, province)
    now = datetime.now(timezone.utc)
    rows = container.projections.compliance.overdue(province, agency_id=agency_id, now=now)
    return {
        "province": province,
        "judged_at": now,
        "total": len(rows),
        "rows": [_iso(r) for r in rows[:limit]],
    }


@router.get(
    "/v1/projections/status",
    responses=error_responses(401, 403, 503),
    summary="Trạng thái các bảng tổng hợp",
)
def read_projections_status(principal: CurrentPrincipal, container: ContainerDep) -> dict[str, Any]:
    """Position and lag (log end − position) of every projection."""
    if principal.role not in ("council", "inspector", "admin"):
        raise _refuse(
            "chỉ Hội đồng, thanh tra và quản trị được xem trạng thái",
            "only council, inspector and admin principals read the status",
        )
    return {
        "projections": [s.as_dict() for s in container.projections.status()],
        "quarantine_url": "/v1/projections/quarantine",
    }


@router.get(
    "/v1/projections/quarantine",
    responses=_ERRORS,
    summary="Sự kiện các bảng tổng hợp chưa áp dụng được (cách ly)",
)
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
        raise _refuse(
            "chỉ Hội đồng, thanh tra và quản trị được xem các sự kiện bị cách ly",
            "only council, inspector and admin principals read the quarantine",
        )
    agencies = container.reference.agencies
    rows = []
    for row in container.projections.quarantine(include_resolved=include_resolved, limit=limit):
        agency = agencies.get(row["agency_id"] or "")
        if principal.role != "admin" and (
            agency is None or agency.province not in principal.provinces
        ):
            continue
        rows.append(_iso(row))
    return {"total": len(rows), "rows": rows[:limit]}
