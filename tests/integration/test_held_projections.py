"""Issue 13 / ADR 0008: the read models count a held event only once it takes effect, and judge
time limits on the effective facts in occurred order (case_index, agency_counts, compliance)."""

from __future__ import annotations

from datetime import date, timezone

import pytest

from infra.bootstrap import Container
from tests.factories import CENTRE, POLICE, PROCURACY, CaseScript

pytestmark = [pytest.mark.postgres]

YEAR = (date(2018, 1, 1), date(2030, 12, 31))


def _counts(container: Container, agency: str) -> dict[str, int]:
    return container.projections.agency_counts.agency_table("LSN", *YEAR).get(agency, {})


def _rules(container: Container, case_id: str) -> dict[str, dict]:
    return {v["rule_id"]: v for v in container.projections.compliance.verdicts(case_id)}


def test_a_held_event_counts_and_is_judged_only_once_it_takes_effect(
    pg_container: Container,
) -> None:
    app = pg_container.referrals
    case = CaseScript()
    for wire in (case.notification(), case.request(), case.transfer(), case.accept()):
        app.record_event(wire)
    assign = case.assign()
    register = case.register()  # dated after the assignment, posted before it: held
    assert app.record_event(register).held
    pg_container.projections.process_pending()

    row = pg_container.projections.case_index.get(case.case_id)
    assert row["status"] == "ACCEPTED"
    assert "COUNSEL_REGISTERED" not in _counts(pg_container, POLICE)
    assert not any(r.startswith("C4") for r in _rules(pg_container, case.case_id))

    assert not app.record_event(assign).held  # the predecessor arrives: both take effect
    pg_container.projections.process_pending()

    row = pg_container.projections.case_index.get(case.case_id)
    assert (row["status"], row["version"]) == ("REGISTERED", 6)
    last = app.get_case(case.case_id).last_occurred_at  # the registration's, not the assignment's
    assert row["last_occurred_at"] == last.astimezone(timezone.utc).isoformat()
    assert _counts(pg_container, POLICE)["COUNSEL_REGISTERED"] == 1
    assert _counts(pg_container, CENTRE)["AID_ASSIGNED"] == 1
    assert _rules(pg_container, case.case_id)["C4_CRIMINAL"]["status"] != "cancelled"


def test_a_fact_held_for_a_poster_with_no_part_gives_it_nothing_in_the_views(
    pg_container: Container,
) -> None:
    app = pg_container.referrals
    case = CaseScript()
    app.record_event(case.notification())
    app.record_event(case.request())
    early = case.transfer(agency=PROCURACY)  # the procuracy does not hold the case (yet)
    assert app.record_event(early).awaiting["reason"] == "AGENCY_NOT_HOLDER"
    pg_container.projections.process_pending()

    index = pg_container.projections.case_index
    assert index.get(case.case_id)["status"] == "REQUESTED"
    assert index.get(case.case_id)["centre_id"] is None
    assert PROCURACY not in index.touched_agencies(case.case_id)
    assert CENTRE not in index.touched_agencies(case.case_id)
    assert _counts(pg_container, PROCURACY) == {}
    c1 = _rules(pg_container, case.case_id)["C1_12H"]
    assert c1["target_version"] is None  # the held transfer does not meet the limit
