"""Issue 13 item 3: the views follow corrections and withdrawals (case_index, agency_counts,
compliance re-derive the case), and `referrals rebuild` reproduces them; on SQLite and
PostgreSQL (any_container)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from infra.bootstrap import Container
from services.access import case_scope
from tests.factories import CENTRE, POLICE, CaseScript

YEAR = (date(2018, 1, 1), date(2030, 12, 31))


def _counts(container: Container, agency: str) -> dict[str, int]:
    return container.projections.agency_counts.agency_table("LSN", *YEAR).get(agency, {})


def _amend(
    script: CaseScript, wire_type: str, target: dict[str, Any], **data: Any
) -> dict[str, Any]:
    return script.event(
        wire_type,
        agency=target["agency_id"],
        after=timedelta(minutes=1),
        data={"target_event_id": target["event_id"], **data},
    )


def test_views_follow_a_corrected_instant_and_a_withdrawal_and_rebuild_reproduces_them(
    any_container: Container,
) -> None:
    app = any_container.referrals
    projections = any_container.projections
    late = CaseScript()
    notification, request, transfer = late.notification(), late.request(), late.transfer()
    twice = CaseScript()
    wires = [twice.notification(), twice.request(), twice.transfer(), twice.accept()]
    for wire in (notification, request, transfer, *wires):
        app.record_event(wire)
    projections.process_pending()
    compliance = projections.compliance
    assert compliance.verdicts(late.case_id)[0]["rule_id"] == "C1_12H"
    assert compliance.verdicts(late.case_id)[0]["status"] == "met"
    assert _counts(any_container, CENTRE)["REQUEST_ACCEPTED"] == 1
    assert projections.case_index.get(twice.case_id)["status"] == "ACCEPTED"

    corrected_at = datetime.fromisoformat(request["occurred_at"]) + timedelta(days=3)
    app.record_event(
        _amend(
            late,
            "EVENT_CORRECTED",
            transfer,
            changes={"occurred_at": corrected_at.isoformat()},
            reason_code="WRONG_OCCURRED_AT",
        )
    )
    app.record_event(_amend(twice, "EVENT_WITHDRAWN", wires[3], reason_code="ENTERED_TWICE"))
    projections.process_pending(batch_size=1)  # one page per event: the incremental paths

    c1 = next(v for v in compliance.verdicts(late.case_id) if v["rule_id"] == "C1_12H")
    assert c1["status"] == "missed"  # the transfer came three days after the request
    assert c1["met_at"] == corrected_at.astimezone(timezone.utc)
    row = projections.case_index.get(late.case_id)
    assert row["last_occurred_at"] == corrected_at.astimezone(timezone.utc).isoformat()
    assert row["version"] == 4
    assert "REQUEST_ACCEPTED" not in _counts(any_container, CENTRE)  # the withdrawn one left
    assert _counts(any_container, POLICE)["REQUEST_TRANSFERRED"] == 2
    assert "EVENT_CORRECTED" not in _counts(any_container, POLICE)  # not a lifecycle fact
    assert projections.case_index.get(twice.case_id)["status"] == "AT_CENTRE"
    assert projections.case_index.held() == []

    paged = {name: p.view.dump() for name, p in projections.projections.items()}
    projections.rebuild()  # from the log, all at once: the same views
    assert {name: p.view.dump() for name, p in projections.projections.items()} == paged


def test_a_withdrawal_takes_away_the_read_scope_its_fact_gave_as_a_rebuild_does(
    any_container: Container,
) -> None:
    # the Centre's only part in the case is the transfer addressed to it; the police withdraw
    # it as posted on the wrong case: the Centre no longer has a part (case_index_agency, the
    # case search and the read scope), exactly as a rebuild from zero gives
    app = any_container.referrals
    projections = any_container.projections
    case = CaseScript()
    notification, request, transfer = case.notification(), case.request(), case.transfer()
    for wire in (notification, request, transfer):
        app.record_event(wire)
    projections.process_pending()
    index = projections.case_index
    assert index.touched_agencies(case.case_id) == sorted({POLICE, CENTRE})

    app.record_event(_amend(case, "EVENT_WITHDRAWN", transfer, reason_code="WRONG_CASE"))
    projections.process_pending(batch_size=1)
    derived = sorted(app.get_case(case.case_id).posters_in_scope())
    assert derived == [POLICE]
    assert index.touched_agencies(case.case_id) == derived
    assert index.search(touched_by=CENTRE)[1] == 0
    scope = case_scope(case.case_id, app.case_history(case.case_id), app.reference)
    assert scope.touched_by == {POLICE} and scope.centre is None

    paged = {name: p.view.dump() for name, p in projections.projections.items()}
    projections.rebuild()
    assert {name: p.view.dump() for name, p in projections.projections.items()} == paged
    assert index.touched_agencies(case.case_id) == derived
