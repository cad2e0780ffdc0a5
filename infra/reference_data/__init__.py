"""Loads the versioned reference-data files (agencies, categories, code lists, holidays, time
limits) shipped in this folder, or from a folder named in settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from domain.calendar import WorkingCalendar, calendar_from_record
from domain.deadlines import TimeLimitRule, rules_from_records
from domain.reference import ReferenceData, reference_from_records

SHIPPED = Path(__file__).parent
_NOT_CODE_LISTS = {"holidays", "time_limits", "report_deadlines"}


def _read(folder: Path, stem: str) -> dict[str, Any]:
    with (folder / f"{stem}.json").open(encoding="utf-8") as handle:
        return json.load(handle)


def load_reference(folder: Path | None = None) -> ReferenceData:
    """Agencies, provinces, eligible categories and every code list."""
    folder = folder or SHIPPED
    files = {
        path.stem: _read(folder, path.stem)
        for path in sorted(folder.glob("*.json"))
        if path.stem not in _NOT_CODE_LISTS
    }
    return reference_from_records(files)


def load_calendar(folder: Path | None = None) -> WorkingCalendar:
    """Vietnamese public holidays and compensatory working days (data, verified yearly)."""
    return calendar_from_record(_read(folder or SHIPPED, "holidays"))


def load_time_limits(folder: Path | None = None) -> tuple[TimeLimitRule, ...]:
    """The legal time-limit rules table."""
    return rules_from_records(_read(folder or SHIPPED, "time_limits")["rules"])


def load_report_deadlines(folder: Path | None = None) -> dict[str, Any]:
    """Per-province report submission dates (a provincial council's plan, not a national rule);
    an empty table when the folder has no such file."""
    path = (folder or SHIPPED) / "report_deadlines.json"
    if not path.exists():
        return {"provinces": {}}
    return _read(folder or SHIPPED, "report_deadlines")


def versions(folder: Path | None = None) -> dict[str, str]:
    """The version string of every reference file, for reports and /health."""
    folder = folder or SHIPPED
    return {
        p.stem: str(_read(folder, p.stem).get("version", "?"))
        for p in sorted(folder.glob("*.json"))
    }


def shipped_documents(folder: Path | None = None) -> dict[str, Any]:
    """Every shipped file as reference documents (issue 14): one per file stem, and the
    calendar split into one document per year (`holidays/<year>`)."""
    folder = folder or SHIPPED
    out: dict[str, Any] = {}
    for path in sorted(folder.glob("*.json")):
        content = _read(folder, path.stem)
        if path.stem == "holidays":
            for year, entry in content["years"].items():
                out[f"holidays/{year}"] = entry
        else:
            out[path.stem] = content
    return out
