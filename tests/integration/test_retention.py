"""Retention: identifying data is listed (dry run) and erased once its period after closure ends."""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.calendar import VIETNAM_TZ
from services.retention import add_years, due_for_erasure
from tests.factories import CaseScript


def test_only_cases_past_their_category_period_are_due(any_container):
    app = any_container.referrals
    old = CaseScript(start=datetime(2018, 3, 1, 9, tzinfo=VIETNAM_TZ))
    recent = CaseScript(start=datetime(2025, 3, 1, 9, tzinfo=VIETNAM_TZ))
    hiv = CaseScript(start=datetime(2019, 3, 1, 9, tzinfo=VIETNAM_TZ))
    open_case = CaseScript(start=datetime(2018, 3, 1, 9, tzinfo=VIETNAM_TZ))
    for case, category in ((old, "POOR_HOUSEHOLD"), (recent, "POOR_HOUSEHOLD"), (hiv, "HIV")):
        extra = {"financial_hardship": True} if category == "HIV" else {}
        wires = case.full_history()
        wires[0]["data"].update(eligible_category=category, **extra)
        wires[0]["identity"] = {"full_name": "Trần Văn Bình"}
        for wire in wires:
            app.record_event(wire)
    app.record_event(open_case.notification() | {"identity": {"full_name": "Lê Thị Cúc"}})

    now = datetime(2026, 6, 1, tzinfo=VIETNAM_TZ)
    due = due_for_erasure(app, {"default": 5, "HIV": 10}, now)
    assert [d.person_id for d in due] == [old.person_id]
    assert due[0].due_at == add_years(due[0].closed_at, 5)

    app.erase_person(due[0].person_id, "RETENTION_EXPIRED", due[0].rule, "retention-job")
    assert app.reveal_identity(old.case_id)["erased"] is True
    assert app.reveal_identity(recent.case_id)["identity"] == {"full_name": "Trần Văn Bình"}
    assert due_for_erasure(app, {"default": 5, "HIV": 10}, now) == []
    later = due_for_erasure(app, {"default": 5, "HIV": 10}, now + timedelta(days=365 * 5))
    assert {d.person_id for d in later} == {hiv.person_id, recent.person_id}


def test_add_years_moves_29_february_to_28_february():
    leap = datetime(2024, 2, 29, 12, tzinfo=VIETNAM_TZ)
    assert add_years(leap, 1) == datetime(2025, 2, 28, 12, tzinfo=VIETNAM_TZ)
