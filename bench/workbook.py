"""The council workbook at province-year scale without a database (issue 16):
`python -m bench.workbook [--case-lines N] [--repeat R]`.

A synthetic report shaped like Lạng Sơn 2024 in the 5M-event dataset (≈ 160,000 case lines in
the cases sheet, a few thousand overdue and never-notified lines, ~200 agencies); prints the
seconds `report_xlsx_bytes` takes (each run, and the worst) and the workbook's size."""

from __future__ import annotations

import argparse
import time
from datetime import date, datetime, timedelta, timezone

from projections.reports import (
    EVENT_COLUMNS,
    AgencyRow,
    ComplianceRow,
    ContactRow,
    Report,
    report_xlsx_bytes,
)

RULES = ("C1_12H", "C2_NOTIFY", "C3_ACCEPT", "C4_ASSIGN", "C5_REGISTER", "C6_FORWARD")


def synthetic_report(case_lines: int = 160_000, agencies: int = 200) -> Report:
    now = datetime(2025, 1, 5, 3, 4, 5, tzinfo=timezone.utc)
    rows = [
        AgencyRow(
            f"lsn-agency-{n:03d}",
            f"Công an xã số {n}, tỉnh Lạng Sơn",
            "police",
            "commune",
            {t: (n * 7 + i) % 130 for i, t in enumerate(EVENT_COLUMNS)},
        )
        for n in range(agencies)
    ]
    groups = len(RULES) * 40
    per_group = max(1, case_lines // groups)
    compliance, serial = [], 0
    for rule in RULES:
        for a in range(40):
            ids = [f"VV-LSN-2024-{serial + k:010d}" for k in range(per_group)]
            serial += per_group
            q = per_group // 10
            cases = {
                "met": ids[3 * q :],
                "missed": ids[: 2 * q],
                "running": ids[2 * q : 3 * q],
                "cancelled": [],
            }
            compliance.append(
                ComplianceRow(
                    rule,
                    "Chuyển yêu cầu TGPL cho Trung tâm trong 12 giờ",
                    f"lsn-agency-{a:03d}",
                    f"Công an xã số {a}",
                    len(cases["met"]),
                    2 * q,
                    q,
                    0,
                    "TTLT 10/2018 Điều 5 khoản 1",
                    cases,
                    late=q,
                    never=q,
                    missed_cases={"late": ids[:q], "never": ids[q : 2 * q]},
                )
            )
    contacts = [
        ContactRow(
            f"lsn-agency-{a:03d}",
            f"Công an xã số {a}",
            contacts=900,
            met=700,
            late=50,
            running=60,
            never=90,
            cases={
                "never": [f"VV-LSN-2024-{a:04d}{k:06d}" for k in range(90)],
                "running": [f"VV-LSN-2024-{a:04d}{k:06d}" for k in range(90, 150)],
            },
        )
        for a in range(40)
    ]
    overdue = [
        {
            "case_id": f"VV-LSN-2024-{n:010d}",
            "rule_id": RULES[n % len(RULES)],
            "trigger_at": now - timedelta(days=3, hours=n % 50),
            "deadline": now - timedelta(days=2),
            "overdue_hours": 48.0 + n % 50,
            "responsible_agency_id": f"lsn-agency-{n % 40:03d}",
        }
        for n in range(5_000)
    ]
    return Report(
        province="LSN",
        province_name_vi="Tỉnh Lạng Sơn",
        start=date(2024, 1, 1),
        end=date(2024, 12, 31),
        generated_at=now,
        judged_at=now,
        reference_versions={"agencies": "2026-11-23.1", "holidays": "2024@1"},
        positions={"agency_counts": 5_000_000, "compliance": 5_000_000},
        agencies=rows,
        compliance=compliance,
        overdue=overdue,
        contacts=contacts,
        checkpoint={
            "size": 5_000_000,
            "root": "aVeFZzCeqcXAYys0vYmYX7tpX5oPiv9wPWcgfgoYeuM=",
            "note": "legal-aid-ledger.example/log\n5000000\n",
            "position": 5_000_000,
        },
        due=date(2025, 1, 10),
        due_source="Kế hoạch của Hội đồng tỉnh",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case-lines", type=int, default=160_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--openpyxl",
        action="store_true",
        help="every cell through openpyxl (the reference path, fast=False)",
    )
    options = parser.parse_args()
    report = synthetic_report(options.case_lines)
    lines = sum(len(v) for c in report.compliance for v in c.cases.values())
    seconds, cpu, size = [], [], 0
    for _ in range(max(1, min(options.repeat, 10))):
        started, started_cpu = time.perf_counter(), time.process_time()
        size = len(report_xlsx_bytes(report, fast=not options.openpyxl))
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    print(
        f"workbook: {lines:,} case lines, {size:,} bytes, runs "
        f"{', '.join(f'{s:.2f}' for s in seconds)} s (CPU "
        f"{', '.join(f'{s:.2f}' for s in cpu)} s), worst {max(seconds):.2f} s"
    )


if __name__ == "__main__":
    main()
