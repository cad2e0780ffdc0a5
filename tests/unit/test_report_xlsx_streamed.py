"""The council workbook's rows past the first of each sheet are serialised by our own writer
(issue 16: 28 s → under 1 s of CPU for a province-year). Published reports record the
workbook's sha256 and regenerate byte for byte, so the fast path must give exactly the bytes
openpyxl gives cell by cell (`fast=False`) — and the bytes the code before issue 16 gave."""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
import zlib
from datetime import date, datetime, timedelta, timezone

import pytest
from openpyxl import load_workbook

from projections.reports import (
    EVENT_COLUMNS,
    AgencyRow,
    ComplianceRow,
    ContactRow,
    Report,
    report_xlsx_bytes,
)

NAMES = (
    "Công an tỉnh Lạng Sơn",
    "A & B <b>x</b> > y",
    " leading space",
    "trailing ",
    "   ",
    "",
    "tab\tinside",
    "line\nbreak",
    "\"quoted\" 'x'",
    "Ấ Ộ ữ ự ỹ",
    "#N/A?",
    "=",
)


def tricky_report(
    cases_per_group: int = 40, *, agency_name: str | None = None, hours: object = 48.5
) -> Report:
    now = datetime(2026, 11, 1, 2, 3, 4, tzinfo=timezone.utc)
    agencies = [
        AgencyRow(
            f"lsn-agency-{n:03d}",
            agency_name or NAMES[n % len(NAMES)],
            "police",
            "commune",
            {t: (n * 7 + i) % 13 for i, t in enumerate(EVENT_COLUMNS)},
        )
        for n in range(30)
    ]
    compliance = []
    for n in range(12):
        ids = [f"VV-LSN-2026-{n:02d}{k:08d}" for k in range(cases_per_group)]
        q = cases_per_group // 4
        compliance.append(
            ComplianceRow(
                f"C{n}",
                NAMES[n % len(NAMES)],
                f"lsn-agency-{n:03d}" if n % 3 else None,
                NAMES[(n + 3) % len(NAMES)],
                2 * q,
                q,
                q,
                0 if n % 2 else 3,
                "TTLT 10/2018 & CPC",
                {
                    "met": ids[: 2 * q],
                    "missed": ids[2 * q : 3 * q],
                    "running": ids[3 * q :],
                    "cancelled": [],
                },
                late=q // 2,
                never=q - q // 2,
                missed_cases={
                    "late": ids[2 * q : 2 * q + q // 2],
                    "never": ids[2 * q + q // 2 : 3 * q],
                },
            )
        )
    overdue = [
        {
            "case_id": f"VV-LSN-2026-{n:010d}",
            "rule_id": "C1_12H",
            "trigger_at": now - timedelta(days=3, minutes=n),
            "deadline": now,
            "overdue_hours": hours if n % 2 else 48 + n / 7,
            "responsible_agency_id": f"lsn-agency-{n % 5:03d}" if n % 4 else None,
        }
        for n in range(25)
    ]
    contacts = [
        ContactRow(
            f"lsn-agency-{a:03d}",
            NAMES[a % len(NAMES)],
            contacts=9,
            met=3,
            late=1,
            running=2,
            never=3,
            cases={
                "never": [f"VV-LSN-2026-{a:04d}{k:06d}" for k in range(3)],
                "running": [" VV ", "V&V"],
            },
        )
        for a in range(6)
    ]
    return Report(
        province="LSN",
        province_name_vi="Tỉnh Lạng Sơn",
        start=date(2026, 1, 1),
        end=date(2026, 10, 31),
        generated_at=now,
        judged_at=now,
        reference_versions={"agencies": "2026-11-23.1"},
        positions={"agency_counts": 99},
        agencies=agencies,
        compliance=compliance,
        overdue=overdue,
        contacts=contacts,
        checkpoint={
            "size": 99,
            "root": "aVeFZzCeqcXAYys0vYmYX7tpX5oPiv9wPWcgfgoYeuM=",
            "note": "legal-aid-ledger.example/log\n99\n",
            "position": 99,
        },
    )


# sha256 of report_xlsx_bytes(tricky_report()) by the code before issue 16 (commit c2d88d5,
# openpyxl 3.1.5, et_xmlfile without lxml); deflate's bytes depend on the zlib in use
BEFORE_ISSUE_16 = {
    "sha256": "f050fa4d20feb0583d2437245a8dc58e968c2cf74cd06786cd4c077886ec9a89",
    "zlib": "1.2.13",
}


def test_the_streamed_rows_are_the_bytes_openpyxl_writes() -> None:
    report = tricky_report()
    assert report_xlsx_bytes(report) == report_xlsx_bytes(report, fast=False)


@pytest.mark.parametrize(
    "change",
    [
        {"agency_name": "=SUM(A1:A3)"},  # a formula for openpyxl: that sheet goes cell by cell
        {"agency_name": "#DIV/0!"},  # an error code, likewise
        {"hours": None},  # an empty numeric cell, likewise
        {"hours": float("nan")},
        {"cases_per_group": 1},
        {"cases_per_group": 0},
    ],
)
def test_sheets_the_fast_path_cannot_write_exactly_go_through_openpyxl(change: dict) -> None:
    report = tricky_report(**change)
    assert report_xlsx_bytes(report) == report_xlsx_bytes(report, fast=False)


def test_the_workbook_is_byte_identical_to_the_one_published_before_issue_16() -> None:
    if zlib.ZLIB_RUNTIME_VERSION != BEFORE_ISSUE_16["zlib"]:
        pytest.skip(f"recorded with zlib {BEFORE_ISSUE_16['zlib']}")
    data = report_xlsx_bytes(tricky_report())
    assert hashlib.sha256(data).hexdigest() == BEFORE_ISSUE_16["sha256"]


def test_the_workbook_reads_back_with_every_row() -> None:
    report = tricky_report(cases_per_group=200)
    book = load_workbook(io.BytesIO(report_xlsx_bytes(report)))
    cases = book["Vụ việc theo kết quả"]
    lines = [
        (c.rule_id, c.agency_id or "", s, case)
        for c in report.compliance
        for s, ids in c.cases.items()
        for case in ids
    ]
    assert cases.max_row == 1 + len(lines)
    assert cases.cell(row=cases.max_row, column=4).value == lines[-1][3]
    overdue = [list(r) for r in book["Đang quá hạn"].iter_rows(min_row=2, values_only=True)]
    hours = [o["overdue_hours"] for o in report.overdue]  # openpyxl writes 16 digits
    assert [r[4] for r in overdue] == pytest.approx(hours, rel=1e-15)
    assert zipfile.ZipFile(io.BytesIO(report_xlsx_bytes(report))).testzip() is None


def test_a_large_workbook_costs_little_cpu() -> None:
    report = tricky_report(cases_per_group=4_000)  # 48,000 case lines: ~7 s of CPU before
    started = time.process_time()
    report_xlsx_bytes(report)
    assert time.process_time() - started < 2.5
