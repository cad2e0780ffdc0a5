"""Retention of identifying data: how long after a case closes a person's data is kept.

The period per eligible category is configuration (REFERRALS_RETENTION_YEARS, JSON, with a
'default'), because the law leaves it to the controller's documented purpose (Decree 13/2023
Art. 2(1), PDPL 2025): the project does not claim a legal number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from services.referrals import Referrals


@dataclass(frozen=True)
class DueErasure:
    """A person whose identifying data is past its retention period."""

    person_id: str
    case_id: str
    closed_at: datetime
    category: str | None
    due_at: datetime
    rule: str


def add_years(instant: datetime, years: int) -> datetime:
    """Same day and time `years` later (29 Feb -> 28 Feb)."""
    try:
        return instant.replace(year=instant.year + years)
    except ValueError:
        return instant.replace(year=instant.year + years, day=28)


def due_for_erasure(
    referrals: Referrals, years_by_category: Mapping[str, int], now: datetime
) -> list[DueErasure]:
    """Persons of closed cases past retention, not yet erased, whose every case is closed."""
    default = years_by_category.get("default", 10)
    due: dict[str, DueErasure] = {}
    blocked: set[str] = set()
    for case_id, closed_at, category in referrals.closed_cases():
        referral = referrals.get_case(case_id)
        person_id = referral.person.get("person_id")
        if not person_id or referrals.vault.is_erased(person_id):
            continue
        years = years_by_category.get(category or "", default)
        due_at = add_years(closed_at, years)
        if due_at > now:
            blocked.add(person_id)
            continue
        due[person_id] = DueErasure(
            person_id,
            case_id,
            closed_at,
            category,
            due_at,
            f"Hết thời hạn lưu trữ {years} năm sau khi kết thúc vụ việc",
        )
    return [d for p, d in sorted(due.items()) if p not in blocked]
