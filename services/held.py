"""Held events (issue 13, ADR 0008): facts recorded but not in effect, awaiting an earlier fact.

Listed per agency (its own) and per province (inspectors, the council), each with how long it
has waited on the recording clock, and flagged as an anomaly once it has waited longer than
`held_anomaly_after_hours` (a setting, 72 h by default): a predecessor that never comes is for
people to resolve (a correction or a withdrawal), never for the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from domain.errors import NotAuthorisedError
from services.access import ROLE_NAMES_VI, Principal


def held_scope(principal: Principal, agency_id: str | None) -> dict[str, Any]:
    """The filter a principal may list: an agency its own held events; an inspector or the
    council those of its provinces' cases (optionally one agency's)."""
    if principal.role == "agency":
        if agency_id not in (None, principal.agency_id):
            raise NotAuthorisedError(
                "NOT_AUTHORISED",
                "agency_id",
                rule_vi=f"cơ quan «{principal.agency_id}» chỉ xem các sự kiện đang chờ của mình",
                rule_en=f"agency '{principal.agency_id}' lists only its own held events",
            )
        return {"agency_id": principal.agency_id, "provinces": None}
    if principal.role in ("inspector", "council"):
        return {"agency_id": agency_id, "provinces": sorted(principal.provinces)}
    raise NotAuthorisedError(
        "NOT_AUTHORISED",
        None,
        rule_vi=f"vai trò {ROLE_NAMES_VI[principal.role]} không xem danh sách sự kiện đang chờ",
        rule_en=f"the {principal.role} role cannot list held events",
    )


# held for the scope rule: the poster has no part in the case (ADR 0008 addendum)
SCOPE_REASONS = frozenset({"AGENCY_NOT_HOLDER", "AGENCY_NOT_ADDRESSED_CENTRE"})


def held_listing(
    rows: Iterable[Mapping[str, Any]],
    now: datetime,
    anomaly_after_hours: float,
    principal: Principal | None = None,
) -> list[dict[str, Any]]:
    """Each held event with `age_hours` (since it was recorded) and `anomaly` (held longer than
    the setting). An agency listing its own events held for the scope rule does not see their
    `version` (None): it would tell it how many events a case it has no part in holds."""
    limit = timedelta(hours=anomaly_after_hours)
    out = []
    hide = principal is not None and principal.role == "agency"
    for row in rows:
        recorded = row.get("recorded_at")
        age = now - recorded if isinstance(recorded, datetime) else None
        out.append(
            {
                **row,
                "version": (
                    None if hide and row.get("reason") in SCOPE_REASONS else row.get("version")
                ),
                "age_hours": round(age.total_seconds() / 3600, 1) if age is not None else None,
                "anomaly": age is not None and age > limit,
            }
        )
    return out
