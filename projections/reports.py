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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from domain.calendar import VIETNAM_TZ
from domain.reference import KIND_NAMES_VI, LEVEL_NAMES_VI

PERIODS = ("jan-oct", "full-year")
PERIOD_NAMES_VI = {"jan-oct": "Kỳ báo cáo 01/01 – 31/10", "full-year": "Kỳ báo cáo 01/01 – 31/12"}

EVENT_HEADINGS_VI = {
    "NOTIFICATION_ISSUED": "Giải thích, thông báo quyền được TGPL (Mẫu 03)",
    "AID_REQUESTED": "Tiếp nhận yêu cầu TGPL",
    "REQUEST_TRANSFERRED": "Chuyển yêu cầu cho Trung tâm TGPL",
    "APPOINTMENT_REQUESTED": "Đề nghị cử người bào chữa (chỉ định)",
    "CASE_TRANSFERRED": "Chuyển vụ việc",
    "REQUEST_ACCEPTED": "Thụ lý vụ việc",
    "REQUEST_REFUSED": "Từ chối thụ lý",
    "AID_ASSIGNED": "Cử người thực hiện TGPL",
    "COUNSEL_REGISTERED": "Đăng ký bào chữa, bảo vệ",
    "AID_DECLINED": "Người được TGPL từ chối",
    "PROVIDER_CHANGED": "Thay đổi người thực hiện TGPL",
    "AID_DISCONTINUED": "Không tiếp tục TGPL",
    "CASE_CLOSED": "Kết thúc vụ việc",
    "QUALITY_ASSESSED": "Đánh giá chất lượng",
}
EVENT_COLUMNS = tuple(EVENT_HEADINGS_VI)
STATUS_HEADINGS_VI = {
    "met": "Đúng hạn", "missed": "Quá hạn", "running": "Đang trong hạn",
    "cancelled": "Không còn phải thực hiện",
}
CHART_EVENTS = {
    "legal_aid_centre": ("REQUEST_ACCEPTED", "REQUEST_REFUSED", "AID_ASSIGNED",
                         "PROVIDER_CHANGED", "CASE_CLOSED"),
    "_procedural": ("NOTIFICATION_ISSUED", "AID_REQUESTED", "REQUEST_TRANSFERRED",
                    "APPOINTMENT_REQUESTED", "COUNSEL_REGISTERED"),
}
KIND_ORDER = ("police", "procuracy", "court", "detention_facility", "legal_aid_centre",
              "justice_department", "council")


def period_dates(year: int, period: str) -> tuple[date, date]:
    """The first and last day of a statutory period of `year` (JC 10/2018 Art. 20(5))."""
    if period == "jan-oct":
        return date(year, 1, 1), date(year, 10, 31)
    if period == "full-year":
        return date(year, 1, 1), date(year, 12, 31)
    raise ValueError(f"period must be one of {PERIODS}, not {period!r}")


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

    @property
    def total(self) -> int:
        return self.met + self.missed + self.running + self.cancelled

    @property
    def on_time_rate(self) -> float | None:
        decided = self.met + self.missed
        return round(100.0 * self.met / decided, 1) if decided else None


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

    @property
    def checkpoint_vi(self) -> str:
        """One line naming the checkpoint, printed on every output of the report."""
        if self.checkpoint is None:
            return "Chưa gắn với điểm kiểm (checkpoint) của sổ"
        return (f"Điểm kiểm của sổ: {self.checkpoint['size']} sự kiện, gốc cây "
                f"{self.checkpoint['root']}")

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
    table = projections.agency_counts.agency_table(province, start, end)
    agencies: list[AgencyRow] = []
    for agency in reference.agencies_in(province):
        counts = table.pop(agency.agency_id, {})
        active = (agency.validity.valid_from is None or agency.validity.valid_from <= end) and (
            agency.validity.valid_to is None or agency.validity.valid_to > start)
        if counts or (active and agency.kind not in ("council", "justice_department")):
            agencies.append(AgencyRow(agency.agency_id, agency.name_vi, agency.kind,
                                      agency.level, counts))
    for agency_id, counts in table.items():  # recorded here but registered elsewhere
        agency = reference.agencies.get(agency_id)
        agencies.append(AgencyRow(agency_id, agency.name_vi if agency else agency_id,
                                  agency.kind if agency else "", agency.level if agency else "",
                                  counts))
    agencies.sort(key=lambda a: (KIND_ORDER.index(a.kind) if a.kind in KIND_ORDER else 99,
                                 a.agency_id))
    rules = {rule.rule_id: rule for rule in container.rules}
    compliance = []
    for group in projections.compliance.summary(province, start, end, now=now):
        rule = rules.get(group["rule_id"])
        agency = reference.agencies.get(group["responsible_agency_id"] or "")
        compliance.append(ComplianceRow(
            rule_id=group["rule_id"], title_vi=rule.title_vi if rule else group["rule_id"],
            agency_id=group["responsible_agency_id"],
            agency_name_vi=agency.name_vi if agency else "(chưa xác định)",
            met=group["met"], missed=group["missed"], running=group["running"],
            cancelled=group["cancelled"], legal_basis=rule.legal_basis if rule else "",
            cases=group["cases"],
        ))
    positions = projections.positions()
    report_position = min(positions.get(name, 0) or 0 for name in ("agency_counts", "compliance"))
    checkpoint = None
    if report_position > 0:
        size, root, note = container.checkpoint_for_position(report_position)
        checkpoint = {"size": size, "root": base64.b64encode(root).decode(), "note": note,
                      "position": report_position}
    return Report(
        province=province, province_name_vi=reference.provinces[province].name_vi,
        start=start, end=end, generated_at=generated, judged_at=now,
        reference_versions=container.reference_versions(),
        positions=positions, agencies=agencies, compliance=compliance,
        overdue=projections.compliance.overdue(province, now=now), checkpoint=checkpoint,
    )


# ------------------------------------------------------------------------------------ tables
AGENCY_HEADER = ("Mã cơ quan", "Tên cơ quan", "Loại cơ quan", "Cấp",
                 *(EVENT_HEADINGS_VI[t] for t in EVENT_COLUMNS), "Tổng số sự kiện")
COMPLIANCE_HEADER = ("Mã thời hạn", "Thời hạn", "Mã cơ quan chịu trách nhiệm",
                     "Cơ quan chịu trách nhiệm", "Đúng hạn", "Quá hạn", "Đang trong hạn",
                     "Không còn phải thực hiện", "Tổng số", "Tỷ lệ đúng hạn (%)",
                     "Căn cứ pháp lý")
CASES_HEADER = ("Mã thời hạn", "Mã cơ quan chịu trách nhiệm", "Kết quả", "Mã vụ việc")
OVERDUE_HEADER = ("Mã vụ việc", "Mã thời hạn", "Bắt đầu tính (giờ Việt Nam)",
                  "Hạn cuối (giờ Việt Nam)", "Số giờ quá hạn", "Mã cơ quan chịu trách nhiệm")


def agency_rows(report: Report) -> list[tuple[Any, ...]]:
    return [(a.agency_id, a.name_vi, KIND_NAMES_VI.get(a.kind, a.kind),
             LEVEL_NAMES_VI.get(a.level, a.level),
             *(a.counts.get(t, 0) for t in EVENT_COLUMNS), a.total) for a in report.agencies]


def compliance_rows(report: Report) -> list[tuple[Any, ...]]:
    return [(c.rule_id, c.title_vi, c.agency_id or "", c.agency_name_vi, c.met, c.missed,
             c.running, c.cancelled, c.total,
             c.on_time_rate if c.on_time_rate is not None else "", c.legal_basis)
            for c in report.compliance]


def case_rows(report: Report) -> list[tuple[Any, ...]]:
    return [(c.rule_id, c.agency_id or "", STATUS_HEADINGS_VI[status], case_id)
            for c in report.compliance for status in STATUS_HEADINGS_VI
            for case_id in c.cases.get(status, [])]


def overdue_rows(report: Report) -> list[tuple[Any, ...]]:
    return [(r["case_id"], r["rule_id"], _local(r["trigger_at"]), _local(r["deadline"]),
             r["overdue_hours"], r["responsible_agency_id"] or "") for r in report.overdue]


def _local(value: datetime) -> str:
    return value.astimezone(VIETNAM_TZ).strftime("%d/%m/%Y %H:%M")


TABLES = {
    "agencies": (AGENCY_HEADER, agency_rows),
    "compliance": (COMPLIANCE_HEADER, compliance_rows),
    "cases": (CASES_HEADER, case_rows),
    "overdue": (OVERDUE_HEADER, overdue_rows),
}


def report_csv_bytes(report: Report, table: str = "agencies") -> bytes:
    """One table as CSV (UTF-8 with BOM, so spreadsheet programs read the diacritics)."""
    if table not in TABLES:
        raise ValueError(f"table must be one of {tuple(TABLES)}")
    header, rows = TABLES[table]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows(report))
    writer.writerow(())
    writer.writerow((report.checkpoint_vi,))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


# -------------------------------------------------------------------------------------- xlsx
def report_xlsx_bytes(report: Report) -> bytes:
    """The workbook: a cover sheet, then one sheet per table (frozen header row)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    cover = workbook.active
    cover.title = "Thông tin chung"
    bold = Font(bold=True)
    cover["A1"] = "BÁO CÁO KẾT QUẢ PHỐI HỢP THỰC HIỆN TRỢ GIÚP PHÁP LÝ TRONG HOẠT ĐỘNG TỐ TỤNG"
    cover["A1"].font = Font(bold=True, size=13)
    lines = [
        ("Tỉnh, thành phố", f"{report.province_name_vi} ({report.province})"),
        ("Kỳ báo cáo", report.period_vi),
        ("Thời điểm lập báo cáo",
         report.generated_at.astimezone(VIETNAM_TZ).strftime("%d/%m/%Y %H:%M:%S (giờ Việt Nam)")),
        ("Thời điểm đánh giá thời hạn đang chạy",
         report.judged_at.astimezone(VIETNAM_TZ).strftime("%d/%m/%Y %H:%M:%S")),
        ("Căn cứ", "Thông tư liên tịch 10/2018/TTLT-BTP-BCA-BQP-BTC-TANDTC-VKSNDTC, Điều 20 "
                   "khoản 5"),
        ("Cách tính", "Số liệu theo ngày xảy ra sự kiện (giờ Việt Nam); thời hạn tính theo ngày "
                      "bắt đầu tính thời hạn. Chỉ dùng mã vụ việc, không có thông tin định danh."),
        ("Vị trí sổ cái đã tổng hợp", ", ".join(f"{k}: {v}" for k, v in report.positions.items())),
        ("Điểm kiểm (checkpoint) của sổ", report.checkpoint_vi),
        ("Ghi chú đã ký của điểm kiểm",
         report.checkpoint["note"] if report.checkpoint else "—"),
    ]
    for row, (label, value) in enumerate(lines, start=3):
        cover.cell(row=row, column=1, value=label).font = bold
        cover.cell(row=row, column=2, value=value)
    row = len(lines) + 4
    cover.cell(row=row, column=1, value="Phiên bản dữ liệu tham chiếu").font = bold
    for name, version in sorted(report.reference_versions.items()):
        row += 1
        cover.cell(row=row, column=1, value=name)
        cover.cell(row=row, column=2, value=version)
    cover.column_dimensions["A"].width = 40
    cover.column_dimensions["B"].width = 90

    header_fill = PatternFill("solid", fgColor="DDEBF7")
    sheets = (
        ("Theo cơ quan", "agencies"),
        ("Tuân thủ thời hạn", "compliance"),
        ("Vụ việc theo kết quả", "cases"),
        ("Đang quá hạn", "overdue"),
    )
    for title, table in sheets:
        header, rows = TABLES[table]
        sheet = workbook.create_sheet(title)
        sheet.append(list(header))
        for cell in sheet[1]:
            cell.font = bold
            cell.fill = header_fill
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        data = rows(report)
        for values in data:
            sheet.append(list(values))
        sheet.freeze_panes = "A2"
        for index, heading in enumerate(header, start=1):
            longest = max([len(str(r[index - 1])) for r in data] or [0])
            width = min(60, max(10, longest + 2, min(len(heading), 28) + 2))
            sheet.column_dimensions[get_column_letter(index)].width = width
        sheet.row_dimensions[1].height = 45
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------ charts
def chart_kinds(report: Report) -> list[str]:
    """Agency types that have a chart (those present in the table)."""
    present = {a.kind for a in report.agencies}
    return [k for k in KIND_ORDER if k in present and k not in ("council", "justice_department")]


def report_chart_png(report: Report, kind: str) -> bytes:
    """A bar chart of the key counts of one agency type's agencies (PNG, DejaVu Sans)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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
    axes.set_title(f"{KIND_NAMES_VI.get(kind, kind).capitalize()} — {report.province_name_vi}\n"
                   f"{report.period_vi}", fontdict={**font, "size": 12})
    figure.text(0.01, 0.005, report.checkpoint_vi, fontdict={**font, "size": 7})
    from matplotlib.ticker import MaxNLocator

    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(prop={"family": "DejaVu Sans", "size": 8}, loc="upper center",
                bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


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
            for table in TABLES:
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
