"""Procedural contacts (issue 17) and rule C2: a person with an eligible category who is
arrested, held, charged, tried, or recognised as a victim or litigant is told of the right to
legal aid (JC 10/2018 Art. 7(1); CPC 2015 Art. 71) within the rules table's limit."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from domain.catalogue import EVENT_TYPES
from domain.deadlines import rules_from_records
from domain.errors import InvalidEventError, RuleViolationError
from domain.referral import Status
from tests.factories import CENTRE, DETENTION, POLICE, CaseScript

DATA = Path(__file__).resolve().parents[3] / "infra" / "reference_data"
RULES_DOC = json.loads((DATA / "time_limits.json").read_text(encoding="utf-8"))
C2_RECORD = next(r for r in RULES_DOC["rules"] if r["rule_id"] == "C2")


def later() -> datetime:
    """An instant after every event the test records (time limits only count events the
    ledger had recorded by the instant they are judged at)."""
    return datetime.now(UTC) + timedelta(days=1)


def c2(referrals, case: CaseScript, at=None):
    at = at or later()
    return [v for v in referrals.time_limits(case.case_id, at=at) if v.rule_id == "C2"]


# --- the event ---------------------------------------------------------------------------


def test_contact_opens_a_case_that_stands_at_contact_until_the_person_is_told(referrals):
    case = CaseScript()
    referrals.record_event(case.contact())
    state = referrals.get_case(case.case_id)
    assert state.status == Status.CONTACT
    assert "chưa giải thích" in state.snapshot_view()["status_vi"]
    referrals.record_event(case.notification())
    assert referrals.get_case(case.case_id).status == Status.OPEN


def test_contact_joins_an_open_case_when_posted_by_its_holder(referrals):
    case = CaseScript()
    referrals.record_event(case.notification())
    referrals.record_event(case.contact(role="SUSPECT", category=None))
    state = referrals.get_case(case.case_id)
    assert state.status == Status.OPEN
    assert state.person["procedural_role"] == "SUSPECT"
    assert state.person["eligible_category"] == "POOR_HOUSEHOLD"


def test_contact_is_refused_when_it_does_not_name_the_role(referrals):
    case = CaseScript()
    referrals.record_event(case.notification())
    wire = case.event("PROCEDURAL_CONTACT", data={"stage": "INDICTMENT"})
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(wire)
    assert (error.value.code, error.value.field) == ("FIELD_REQUIRED", "data.procedural_role")


def test_contact_is_refused_when_posted_by_a_legal_aid_centre(referrals):
    case = CaseScript(holder=CENTRE)
    with pytest.raises(RuleViolationError) as error:
        referrals.record_event(case.contact())
    assert error.value.code in ("AGENCY_KIND_NOT_PERMITTED", "AGENCY_WRONG_KIND")
    assert error.value.field == "agency_id"


def test_detention_facility_may_open_a_case_with_a_contact_from_its_intake_logbook(referrals):
    case = CaseScript(holder=DETENTION)
    referrals.record_event(
        case.contact(
            role="TEMPORARILY_DETAINED", category="UNDETERMINED", register_ref="STG/2026/117"
        )
    )
    assert referrals.get_case(case.case_id).person["eligible_category"] == "UNDETERMINED"


def test_undetermined_category_is_refused_on_a_notification(referrals):
    case = CaseScript()
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(case.notification(category="UNDETERMINED"))
    assert (error.value.code, error.value.field) == ("FIELD_INVALID", "data.eligible_category")
    assert "PROCEDURAL_CONTACT" in error.value.message_vi


def test_undetermined_category_is_refused_when_the_category_is_already_known(referrals):
    case = CaseScript()
    referrals.record_event(case.contact(category="POOR_HOUSEHOLD"))
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(case.contact(role="SUSPECT", category="UNDETERMINED"))
    assert (error.value.code, error.value.field) == ("FIELD_INVALID", "data.eligible_category")
    assert "POOR_HOUSEHOLD" in error.value.message_vi


def test_undetermined_category_is_settled_by_the_next_event_carrying_one(referrals):
    case = CaseScript()
    referrals.record_event(case.contact(category="UNDETERMINED"))
    referrals.record_event(case.notification(category="ETHNIC_MINORITY_HARDSHIP_AREA"))
    assert (
        referrals.get_case(case.case_id).person["eligible_category"]
        == "ETHNIC_MINORITY_HARDSHIP_AREA"
    )


def test_not_eligible_determination_needs_a_reason_from_the_list(referrals):
    case = CaseScript()
    referrals.record_event(case.contact(category="UNDETERMINED"))
    wire = case.event(
        "NOT_ELIGIBLE_DETERMINED", data={"reason": "RICH", "article": "Luật TGPL 2017 Điều 7"}
    )
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(wire)
    assert (error.value.code, error.value.field) == ("VALUE_NOT_IN_REFERENCE", "data.reason")


def test_not_eligible_determination_is_refused_when_it_carries_a_category(referrals):
    case = CaseScript()
    referrals.record_event(case.contact(category="UNDETERMINED"))
    wire = case.event(
        "NOT_ELIGIBLE_DETERMINED",
        data={
            "reason": "NO_CATEGORY",
            "article": "Luật TGPL 2017 Điều 7",
            "eligible_category": "POOR_HOUSEHOLD",
        },
    )
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(wire)
    assert (error.value.code, error.value.field) == ("FIELD_INVALID", "data.eligible_category")


def test_not_eligible_determination_clears_the_category_recorded_so_far(referrals):
    case = CaseScript()
    referrals.record_event(case.contact(category="POOR_HOUSEHOLD"))
    referrals.record_event(case.not_eligible(reason="PROOF_NOT_PROVIDED"))
    assert "eligible_category" not in referrals.get_case(case.case_id).person


# --- rule C2 -----------------------------------------------------------------------------


def test_contact_never_followed_by_a_notification_is_missed_after_the_limit(referrals, clock):
    now = datetime.now(UTC)
    clock.now = now + timedelta(minutes=5)
    case = CaseScript(start=now - timedelta(hours=23))
    referrals.record_event(case.contact())
    running = c2(referrals, case, clock.now)
    assert [(v.status, v.outstanding) for v in running] == [("running", False)]
    missed = c2(referrals, case, now + timedelta(hours=2))
    assert [(v.status, v.outstanding) for v in missed] == [("missed", True)]
    assert missed[0].deadline == case.at + timedelta(hours=24)
    assert missed[0].responsible_agency_id == POLICE
    assert "Điều 7" in missed[0].legal_basis


def test_notification_within_the_limit_meets_c2(referrals):
    case = CaseScript()
    referrals.record_event(case.contact())
    referrals.record_event(
        case.event("NOTIFICATION_ISSUED", after=timedelta(hours=2), data={"form": "MAU_01"})
    )
    [verdict] = c2(referrals, case)
    assert (verdict.status, verdict.target_version) == ("met", 2)


def test_late_notification_is_late_not_outstanding(referrals):
    case = CaseScript()
    referrals.record_event(case.contact())
    referrals.record_event(
        case.event("NOTIFICATION_ISSUED", after=timedelta(hours=30), data={"form": "MAU_01"})
    )
    [verdict] = c2(referrals, case)
    assert (verdict.status, verdict.outstanding, verdict.target_version) == ("missed", False, 2)


def test_not_eligible_determination_makes_c2_not_applicable_even_after_the_limit(referrals):
    case = CaseScript()
    referrals.record_event(case.contact())
    referrals.record_event(case.not_eligible(after=timedelta(days=3)))
    [verdict] = c2(referrals, case)
    assert (verdict.status, verdict.outstanding) == ("cancelled", False)


def test_undetermined_contact_is_not_judged_while_the_category_is_unknown(referrals):
    case = CaseScript()
    referrals.record_event(case.contact(category="UNDETERMINED"))
    assert c2(referrals, case) == []


def test_undetermined_contact_is_judged_from_the_contact_once_the_category_is_known(referrals):
    case = CaseScript()
    referrals.record_event(case.contact(category="UNDETERMINED"))
    contact_at = case.at
    # the category comes with the notification, 30 hours after the arrest: late
    case.at += timedelta(hours=29)
    referrals.record_event(case.notification())
    [verdict] = c2(referrals, case)
    assert verdict.trigger_at == contact_at
    assert (verdict.status, verdict.outstanding) == ("missed", False)


def test_undetermined_contact_then_not_eligible_is_not_applicable(referrals):
    case = CaseScript()
    referrals.record_event(case.contact(category="UNDETERMINED"))
    referrals.record_event(case.not_eligible(after=timedelta(days=2)))
    [verdict] = c2(referrals, case)
    assert verdict.status == "cancelled"


def test_witness_contact_does_not_take_the_notification_owed_for_the_arrest(referrals):
    case = CaseScript()
    referrals.record_event(case.contact(role="WITNESS", category="POOR_HOUSEHOLD"))
    referrals.record_event(case.contact(role="ARRESTED", category=None, after=timedelta(days=1)))
    referrals.record_event(
        case.event("NOTIFICATION_ISSUED", after=timedelta(hours=1), data={"form": "MAU_01"})
    )
    verdicts = c2(referrals, case)
    assert [(v.trigger_version, v.status) for v in verdicts] == [(2, "met")]


def test_each_qualifying_contact_needs_its_own_notification(referrals):
    case = CaseScript()
    referrals.record_event(case.contact(role="ARRESTED"))
    referrals.record_event(case.event("NOTIFICATION_ISSUED", data={"form": "MAU_01"}))
    referrals.record_event(case.contact(role="SUSPECT", category=None, after=timedelta(days=3)))
    verdicts = c2(referrals, case)
    assert [(v.trigger_version, v.status, v.outstanding) for v in verdicts] == [
        (1, "met", False),
        (3, "missed", True),
    ]


# --- the rules table -----------------------------------------------------------------------


def test_c2_lives_in_the_table_with_its_articles_roles_and_unverified_number():
    assert C2_RECORD["trigger_types"] == ["PROCEDURAL_CONTACT"]
    assert C2_RECORD["target_types"] == ["NOTIFICATION_ISSUED"]
    assert C2_RECORD["cancelled_by"] == ["NOT_ELIGIBLE_DETERMINED"]
    assert C2_RECORD["verified"] is False
    assert "TTLT 10/2018 Điều 7" in C2_RECORD["legal_basis"]
    assert "BLTTHS 2015 Điều 71" in C2_RECORD["legal_basis"]
    assert set(C2_RECORD["conditions"]["procedural_role_in"]) == {
        "ARRESTED",
        "TEMPORARILY_DETAINED",
        "SUSPECT",
        "DEFENDANT",
        "VICTIM",
        "LITIGANT",
    }


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("conditions", {"eligible_category_known": "yes"}, "conditions.eligible_category_known"),
        ("cancels_any_time", "yes", "cancels_any_time"),
    ],
)
def test_rule_is_refused_naming_the_field_when_a_c2_key_is_malformed(field, value, message):
    bad = copy.deepcopy(C2_RECORD)
    bad[field] = value
    with pytest.raises(ValueError, match=message):
        rules_from_records([bad], known_types=EVENT_TYPES)


def test_rule_is_refused_when_it_cancels_any_time_without_cancelling_types():
    bad = copy.deepcopy(C2_RECORD)
    bad["cancelled_by"] = []
    with pytest.raises(ValueError, match="cancels_any_time"):
        rules_from_records([bad], known_types=EVENT_TYPES)
