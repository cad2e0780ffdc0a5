"""The council workbook of a large province prints as a sane number of landscape pages, each
numbered, each with the table's header row and the report's checkpoint (LibreOffice → PDF →
pdftotext). No database: the report is built by hand, as `build_report` would return it."""

from __future__ import annotations

import math
import shutil
import subprocess
import unicodedata
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from projections.reports import (
    EVENT_COLUMNS,
    AgencyRow,
    ComplianceRow,
    Report,
    report_xlsx_bytes,
)
from tests.conftest import IN_CI

# At 100 % a landscape A4 page (595 pt high, 1.5 in of margins) holds ~32 rows of 15 pt; fitting
# to the width only shrinks the rows, so at least this many rows fit on every page.
ROWS_PER_PAGE_AT_LEAST = 25


def tools() -> tuple[str, str, str]:
    found = (
        shutil.which("libreoffice") or shutil.which("soffice"),
        shutil.which("pdftotext"),
        shutil.which("pdfinfo"),
    )
    if None in found:
        if IN_CI:
            pytest.fail("libreoffice and poppler-utils are required in CI")
        pytest.skip("libreoffice or pdftotext/pdfinfo not on PATH")
    return found  # type: ignore[return-value]


def large_report() -> Report:
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    agencies = [
        AgencyRow(
            f"hni-agency-{n:03d}",
            f"Công an phường số {n}, Thành phố Hà Nội",
            "police",
            "commune",
            {t: (n * 7 + i) % 13 for i, t in enumerate(EVENT_COLUMNS)},
        )
        for n in range(150)
    ]
    cases = {
        "met": [f"VV-HNI-2026-{n:010d}" for n in range(120)],
        "missed": [f"VV-HNI-2026-{n:010d}" for n in range(120, 160)],
        "running": [],
        "cancelled": [],
    }
    compliance = [
        ComplianceRow(
            f"C{n}",
            "Chuyển yêu cầu TGPL cho Trung tâm trong 12 giờ",
            f"hni-agency-{n:03d}",
            f"Công an phường số {n}",
            120,
            40,
            3,
            1,
            "TTLT 10/2018 Điều 5 khoản 1",
            cases,
        )
        for n in range(3)
    ]
    overdue = [
        {
            "case_id": f"VV-HNI-2026-{n:010d}",
            "rule_id": "C1_12H",
            "trigger_at": now - timedelta(days=3),
            "deadline": now - timedelta(days=2),
            "overdue_hours": 48.0,
            "responsible_agency_id": "hni-agency-001",
        }
        for n in range(90)
    ]
    return Report(
        province="HNI",
        province_name_vi="Thành phố Hà Nội",
        start=date(2026, 1, 1),
        end=date(2026, 10, 31),
        generated_at=now,
        judged_at=now,
        reference_versions={"agencies": "2026-11-23.1"},
        positions={"agency_counts": 99},
        agencies=agencies,
        compliance=compliance,
        overdue=overdue,
        checkpoint={
            "size": 99,
            "root": "aVeFZzCeqcXAYys0vYmYX7tpX5oPiv9wPWcgfgoYeuM=",
            "note": "legal-aid-ledger.example/log\n99\n",
            "position": 99,
        },
    )


def test_a_large_workbook_prints_few_numbered_pages_with_headers(tmp_path: Path) -> None:
    office, pdftotext, pdfinfo = tools()
    report = large_report()
    path = tmp_path / "large.xlsx"
    path.write_bytes(report_xlsx_bytes(report))
    done = subprocess.run(
        [
            office,
            "--headless",
            f"-env:UserInstallation=file://{tmp_path}/lo-profile",
            "--convert-to",
            "pdf",
            "--outdir",
            str(tmp_path),
            str(path),
        ],
        capture_output=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr.decode()
    pdf = tmp_path / "large.pdf"
    info = subprocess.run([pdfinfo, str(pdf)], capture_output=True, timeout=60, check=True)
    pages = int(
        next(
            line.split()[-1]
            for line in info.stdout.decode().splitlines()
            if line.startswith("Pages:")
        )
    )
    rows = {"agencies": 150, "compliance": 3, "cases": 3 * 160, "overdue": 90}
    bound = 1 + sum(math.ceil(n / ROWS_PER_PAGE_AT_LEAST) for n in rows.values())
    assert 5 <= pages <= bound, (
        pages,
        bound,
    )  # 23 here (the 480 case rows take 16); 70 without print setup
    text = unicodedata.normalize(
        "NFC",
        subprocess.run(
            [pdftotext, "-layout", str(pdf), "-"], capture_output=True, timeout=60, check=True
        ).stdout.decode(),
    )
    sheets = [page for page in text.split("\f") if page.strip()]
    assert len(sheets) == pages
    for number, page in enumerate(sheets, start=1):
        flat = " ".join(page.split())
        assert f"Trang {number}/{pages}" in flat, number
        assert report.checkpoint["root"] in flat, number  # type: ignore[index]
        assert "BÁO CÁO KẾT QUẢ PHỐI HỢP THỰC HIỆN TRỢ GIÚP PHÁP LÝ" in flat, number
    case_pages = [p for p in sheets if "VV-HNI-2026-0000000" in p and "Kết quả" in p]
    assert len(case_pages) >= 2  # the cases table spans pages, its header row on each
    assert all("Mã vụ việc" in p for p in case_pages)
