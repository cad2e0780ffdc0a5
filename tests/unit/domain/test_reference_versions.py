"""Issue 14: which reference version judges which verdict (effective dating), pure."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from typing import Any

from domain.calendar import VIETNAM_TZ
from domain.deadlines import CaseFact
from domain.reference_versions import (
    ReferenceRecord,
    ReferenceSet,
    canonical,
    judge_with_basis,
    sha256_hex,
)
from infra.reference_data import shipped_documents

SHIPPED = shipped_documents()
T = datetime(2026, 12, 1, tzinfo=UTC)


def _record(
    ref: str, version: int, content: Any, effective_from: date | None = None, sequence: int = 0
) -> ReferenceRecord:
    kind, _, key = ref.partition("/")
    text = canonical(content)
    return ReferenceRecord(
        kind,
        key,
        version,
        json.loads(text),
        text,
        sha256_hex(text),
        effective_from,
        None,
        "test",
        "admin:test",
        T,
        "",
        "",
        "",
        sequence,
    )


def _base() -> list[ReferenceRecord]:
    return [_record(ref, 1, content) for ref, content in SHIPPED.items()]


def _vn(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=VIETNAM_TZ)


def _c3_case(transfer: str, assigned: str) -> list[CaseFact]:
    common = dict(
        agency_id="lsn-police",
        holder_agency_id="lsn-police",
        centre_id="lsn-centre",
        procedural_role="WITNESS",
        stage="INVESTIGATION",
        proceedings_kind="criminal",
    )
    return [
        CaseFact(1, "REQUEST_TRANSFERRED", _vn(transfer), **common),
        CaseFact(2, "AID_ASSIGNED", _vn(assigned), **{**common, "agency_id": "lsn-centre"}),
    ]


def _c3(refs: ReferenceSet, facts: list[CaseFact]) -> tuple[Any, tuple[str, ...]]:
    return next(
        (v, b)
        for v, b in judge_with_basis(facts, refs, _vn("2027-01-01 00:00"))
        if v.rule_id == "C3"
    )


def test_a_time_limit_table_applies_from_its_effective_date_only() -> None:
    table = copy.deepcopy(SHIPPED["time_limits"])
    for rule in table["rules"]:
        if rule["rule_id"] == "C3":
            rule["limit"] = 5
    refs = ReferenceSet([*_base(), _record("time_limits", 2, table, date(2026, 7, 1))])
    before, basis_before = _c3(refs, _c3_case("2026-06-01 10:00", "2026-06-08 10:00"))
    after, basis_after = _c3(refs, _c3_case("2026-07-06 10:00", "2026-07-13 10:00"))
    assert (before.status, basis_before[0]) == ("missed", "time_limits@1")  # 3 working days
    assert (after.status, basis_after[0]) == ("met", "time_limits@2")  # 5 working days


def test_a_calendar_correction_applies_to_its_whole_year_and_names_it() -> None:
    facts = _c3_case("2026-08-21 20:41", "2026-08-26 20:01")
    previous = copy.deepcopy(SHIPPED["holidays/2026"])
    previous["extra_working_days"] = ["2026-01-10"]
    records = [r for r in _base() if r.ref != "holidays/2026"]
    old = ReferenceSet([*records, _record("holidays/2026", 1, previous)])
    new = ReferenceSet(
        [
            *records,
            _record("holidays/2026", 1, previous),
            _record("holidays/2026", 2, SHIPPED["holidays/2026"], date(2026, 12, 1)),
        ]
    )
    v_old, b_old = _c3(old, facts)
    v_new, b_new = _c3(new, facts)
    assert (v_old.status, b_old) == ("met", ("time_limits@1", "holidays/2026@1"))
    assert (v_new.status, b_new) == ("missed", ("time_limits@1", "holidays/2026@2"))


def test_a_limit_in_hours_names_no_calendar() -> None:
    facts = _c3_case("2026-08-21 20:41", "2026-08-22 10:00")
    immediate = [
        (v, b) for v, b in judge_with_basis(facts, ReferenceSet(_base()), _vn("2027-01-01 00:00"))
    ]
    assert all(
        b == ("time_limits@1",)
        for v, b in immediate
        if v.rule_id in ("C1_12H", "C1_24H", "C3_IMMEDIATE")
    )
