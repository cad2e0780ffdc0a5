"""The referral aggregate: lifecycle order, who may act, dates, categories, idempotency."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.calendar import VIETNAM_TZ
from domain.errors import ConflictError, DomainError, InvalidEventError, RuleViolationError
from domain.referral import TRANSITIONS, Status
from services.referrals import effective_history
from tests.factories import (
    CENTRE,
    COURT,
    DETENTION,
    DOJ,
    OTHER_CENTRE,
    POLICE,
    POLICE_2,
    PROCURACY,
    T0,
    VLG_POLICE,
    CaseScript,
    lawful_history,
)


def codes_of(error: pytest.ExceptionInfo[DomainError]) -> tuple[str, str | None]:
    return error.value.code, error.value.field


def test_full_lifecycle_is_recorded_in_order_when_every_step_is_lawful(referrals):
    case = CaseScript()
    versions = [referrals.record_event(e).version for e in case.full_history()]
    assert versions == [1, 2, 3, 4, 5, 6, 7]
    state = referrals.get_case(case.case_id)
    assert state.status == Status.CLOSED
    assert state.centre_id == CENTRE
    assert state.provider_id == "tgv-001"
    assert [e.WIRE_TYPE for e in referrals.case_history(case.case_id)] == [
        "NOTIFICATION_ISSUED",
        "AID_REQUESTED",
        "REQUEST_TRANSFERRED",
        "REQUEST_ACCEPTED",
        "AID_ASSIGNED",
        "COUNSEL_REGISTERED",
        "CASE_CLOSED",
    ]


def test_first_event_is_held_when_it_is_not_an_opening_event(referrals):
    # issue 13 / ADR 0008 (was refused): the opening may arrive later, from another agency
    case = CaseScript()
    opening, request, transfer = case.notification(), case.request(), case.transfer()
    held = referrals.record_event(transfer)
    assert held.held and held.awaiting["reason"] == "FIRST_EVENT_NOT_OPENING"
    assert held.awaiting["awaiting"] == [
        "NOTIFICATION_ISSUED",
        "AID_REQUESTED",
        "APPOINTMENT_REQUESTED",
        "PROCEDURAL_CONTACT",
    ]
    assert "sự kiện đầu tiên" in held.awaiting["message"]
    assert referrals.get_case(case.case_id).status is None
    assert not referrals.record_event(opening).held
    state = referrals.get_case(case.case_id)
    assert state.held[transfer["event_id"]]["awaiting"] == ["AID_REQUESTED"]
    assert not referrals.record_event(request).held
    state = referrals.get_case(case.case_id)
    assert (state.status, state.held, state.centre_id) == (Status.AT_CENTRE, {}, CENTRE)
    again = referrals.record_event(transfer)  # a retry answers its standing now
    assert again.duplicate and not again.held


def test_assignment_is_refused_when_the_centre_does_not_have_the_request(referrals):
    case = CaseScript()
    referrals.record_event(case.notification())
    referrals.record_event(case.request())
    held = referrals.record_event(case.assign())  # ADR 0008: held (was refused)
    # the Centre has no part in the case yet: told only that (scope first), not its state
    assert held.awaiting["reason"] == "AGENCY_NOT_ADDRESSED_CENTRE"
    assert "REQUEST_TRANSFERRED" in held.awaiting["awaiting"]
    state = referrals.get_case(case.case_id)
    assert (state.version, state.status, state.provider_id) == (3, "REQUESTED", None)


def test_centre_event_is_refused_when_posted_by_a_centre_the_request_was_not_sent_to(referrals):
    case = CaseScript()
    for wire in (case.notification(), case.request(), case.transfer()):
        referrals.record_event(wire)
    with pytest.raises(RuleViolationError) as error:
        referrals.record_event(case.accept(centre=OTHER_CENTRE))
    assert codes_of(error) == ("AGENCY_NOT_ADDRESSED_CENTRE", "agency_id")


def test_agency_event_is_refused_when_the_agency_does_not_hold_the_case(referrals):
    case = CaseScript()
    referrals.record_event(case.notification())
    # ADR 0008: an agency of the case's province is held (a transfer to it may be late) ...
    held = referrals.record_event(case.event("AID_REQUESTED", agency=POLICE_2))
    assert held.awaiting["reason"] == "AGENCY_NOT_HOLDER"
    assert held.awaiting["awaiting"] == ["CASE_TRANSFERRED", "REQUEST_FORWARDED"]
    # ... one of another province is refused
    with pytest.raises(RuleViolationError) as error:
        referrals.record_event(case.event("AID_REQUESTED", agency=VLG_POLICE))
    assert codes_of(error) == ("AGENCY_NOT_HOLDER", "agency_id")


def test_new_holder_may_act_when_the_case_was_transferred_to_it(referrals):
    case = CaseScript()
    referrals.record_event(case.notification())
    referrals.record_event(
        case.event("CASE_TRANSFERRED", data={"to_agency_id": PROCURACY, "to_stage": "INDICTMENT"})
    )
    referrals.record_event(case.event("AID_REQUESTED", agency=PROCURACY))
    held = referrals.record_event(
        case.event("REQUEST_TRANSFERRED", agency=POLICE, data={"centre_id": CENTRE})
    )
    assert held.awaiting["reason"] == "AGENCY_NOT_HOLDER"  # ADR 0008: held, not in effect
    state = referrals.get_case(case.case_id)
    assert state.holder_agency_id == PROCURACY
    assert state.person["stage"] == "INDICTMENT"


def test_only_quality_assessment_is_accepted_when_the_case_is_closed(referrals):
    case = CaseScript()
    for wire in case.full_history():
        referrals.record_event(wire)
    with pytest.raises(RuleViolationError) as error:
        referrals.record_event(case.notification())
    assert error.value.code == "CASE_CLOSED"
    referrals.record_event(case.event("QUALITY_ASSESSED", agency=DOJ, data={"result": "GOOD"}))
    with pytest.raises(RuleViolationError) as again:
        referrals.record_event(
            case.event("QUALITY_ASSESSED", agency=DOJ, data={"result": "ACHIEVED"})
        )
    assert again.value.code == "QUALITY_ALREADY_ASSESSED"


def test_quality_assessment_is_refused_when_posted_by_a_procedural_agency(referrals):
    case = CaseScript()
    for wire in case.full_history():
        referrals.record_event(wire)
    with pytest.raises(RuleViolationError) as error:
        referrals.record_event(
            case.event("QUALITY_ASSESSED", agency=COURT, data={"result": "GOOD"})
        )
    assert codes_of(error) == ("AGENCY_WRONG_KIND", "agency_id")


def test_late_acceptance_is_in_effect_when_it_occurred_before_the_assignment(referrals):
    # issue 13: the centre's REQUEST_ACCEPTED posted after its own AID_ASSIGNED (was 422
    # OCCURRED_BEFORE_PREVIOUS for good)
    case = CaseScript()
    for wire in (case.notification(), case.request(), case.transfer()):
        referrals.record_event(wire)
    accept = case.accept()
    referrals.record_event(case.assign())
    late = referrals.record_event(accept)
    assert (late.version, late.held) == (5, False)
    state = referrals.get_case(case.case_id)
    assert (state.status, state.held) == (Status.ASSIGNED, {})
    assert state.last_occurred_at.isoformat() == case.at.isoformat()
    now = referrals.case_history(case.case_id)[-1].timestamp
    c3 = [v for v in referrals.time_limits(case.case_id, now) if v.rule_id.startswith("C3")]
    assert c3 and all(v.status == "met" for v in c3)


def test_late_event_is_refused_when_it_would_make_a_later_fact_lawless_for_good(referrals):
    case = CaseScript()
    history = case.full_history()
    for wire in history[:6]:
        referrals.record_event(wire)
    closing = dict(history[6], occurred_at=history[4]["occurred_at"], event_id="early-close")
    closing["occurred_at"] = (
        datetime.fromisoformat(history[4]["occurred_at"]) + timedelta(minutes=1)
    ).isoformat()
    with pytest.raises(RuleViolationError) as error:
        referrals.record_event(closing)
    assert codes_of(error) == ("OCCURRED_ORDER_CONFLICT", "occurred_at")
    assert "COUNSEL_REGISTERED" in error.value.message_en


def test_event_is_refused_when_it_occurred_in_the_future(referrals, clock):
    case = CaseScript(start=clock.now + timedelta(hours=1))
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(case.notification())
    assert codes_of(error) == ("OCCURRED_IN_FUTURE", "occurred_at")


def test_timestamp_is_refused_when_it_has_no_offset(referrals):
    wire = CaseScript().notification()
    wire["occurred_at"] = "2026-03-03T09:00:00"
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(wire)
    assert codes_of(error) == ("TIMESTAMP_WITHOUT_OFFSET", "occurred_at")


def test_category_is_refused_when_it_was_repealed_before_the_event_date(referrals):
    case = CaseScript(start=datetime(2026, 1, 5, 9, tzinfo=VIETNAM_TZ))
    wire = case.notification(
        role="VICTIM", category="VICTIM_16_18", financial_hardship=True, age_band="16_TO_UNDER_18"
    )
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(wire)
    assert codes_of(error) == ("CATEGORY_NOT_VALID_ON_DATE", "data.eligible_category")
    assert "01/01/2026" in error.value.message_vi


def test_category_is_accepted_when_it_was_in_force_on_the_event_date(referrals):
    case = CaseScript(start=datetime(2025, 12, 30, 9, tzinfo=VIETNAM_TZ))
    referrals.record_event(
        case.notification(
            role="VICTIM",
            category="VICTIM_16_18",
            financial_hardship=True,
            age_band="16_TO_UNDER_18",
        )
    )
    assert referrals.get_case(case.case_id).person["eligible_category"] == "VICTIM_16_18"


def test_new_juvenile_category_is_refused_when_the_event_is_before_2026(referrals):
    case = CaseScript(start=datetime(2025, 12, 31, 23, 30, tzinfo=VIETNAM_TZ))
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(
            case.notification(
                role="WITNESS", category="MINOR_16_18_IN_PROCEEDINGS", age_band="16_TO_UNDER_18"
            )
        )
    assert error.value.code == "CATEGORY_NOT_VALID_ON_DATE"


def test_validity_is_judged_in_vietnam_time_when_the_instant_is_given_in_utc(referrals):
    # 2025-12-31T17:30Z is already 2026-01-01 00:30 in Vietnam: the new category applies.
    case = CaseScript(start=datetime.fromisoformat("2025-12-31T17:30:00+00:00"))
    referrals.record_event(
        case.notification(
            role="WITNESS", category="MINOR_16_18_IN_PROCEEDINGS", age_band="16_TO_UNDER_18"
        )
    )


def test_hardship_category_is_refused_when_financial_hardship_is_not_declared(referrals):
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(CaseScript().notification(category="ELDERLY"))
    assert codes_of(error) == ("CATEGORY_REQUIRES_FINANCIAL_HARDSHIP", "data.financial_hardship")


def test_category_is_refused_when_the_procedural_role_does_not_fit(referrals):
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(
            CaseScript().notification(role="VICTIM", category="ACCUSED_NEAR_POOR")
        )
    assert error.value.code == "CATEGORY_ROLE_MISMATCH"


def test_assignment_is_refused_when_the_provider_cannot_act_in_proceedings(referrals):
    case = CaseScript()
    for wire in (case.notification(), case.request(), case.transfer(), case.accept()):
        referrals.record_event(wire)
    wire = case.assign()
    wire["data"]["provider_type"] = "COLLABORATOR"
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(wire)
    assert codes_of(error) == ("PROVIDER_NOT_IN_PROCEEDINGS", "data.provider_type")


def test_unknown_data_field_is_refused_and_named(referrals):
    wire = CaseScript().notification()
    wire["data"]["full_name"] = "Nguyễn Văn A"
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(wire)
    assert codes_of(error) == ("FIELD_UNKNOWN", "data.full_name")


def test_unknown_agency_is_refused_and_named(referrals):
    wire = CaseScript().notification()
    wire["agency_id"] = "no-such-agency"
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(wire)
    assert codes_of(error) == ("AGENCY_UNKNOWN", "agency_id")


def test_district_court_is_refused_when_the_event_is_after_it_closed(referrals):
    case = CaseScript(start=datetime(2025, 7, 2, 9, tzinfo=VIETNAM_TZ))
    referrals.record_event(case.notification())
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(
            case.event(
                "CASE_TRANSFERRED",
                data={"to_agency_id": "lsn-court-district-1", "to_stage": "TRIAL"},
            )
        )
    assert codes_of(error) == ("AGENCY_INACTIVE", "data.to_agency_id")


def test_retry_is_recognised_when_the_same_event_id_and_content_are_posted_again(referrals):
    case = CaseScript()
    wire = case.notification()
    first = referrals.record_event(wire)
    again = referrals.record_event(dict(wire))
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.version == first.version and again.recorded_at == first.recorded_at
    assert len(referrals.case_history(case.case_id)) == 1


def test_retry_is_recognised_when_the_json_differs_only_in_layout(referrals):
    case = CaseScript()
    wire = case.notification()
    referrals.record_event(wire)
    reordered = {k: wire[k] for k in reversed(list(wire))}
    reordered["data"] = {k: wire["data"][k] for k in reversed(list(wire["data"]))}
    reordered["occurred_at"] = (
        datetime.fromisoformat(wire["occurred_at"])
        .astimezone(VIETNAM_TZ)
        .astimezone(datetime.now().astimezone().tzinfo)
        .isoformat()
    )
    assert referrals.record_event(reordered).duplicate is True


def test_reused_event_id_is_a_conflict_when_the_content_differs(referrals):
    case = CaseScript()
    wire = case.notification()
    referrals.record_event(wire)
    changed = dict(wire, data=dict(wire["data"], procedural_role="SUSPECT"))
    with pytest.raises(ConflictError) as error:
        referrals.record_event(changed)
    assert codes_of(error) == ("EVENT_ID_CONFLICT", "event_id")
    assert error.value.http_status == 409


def test_stale_expected_version_is_a_conflict_and_records_nothing(referrals):
    case = CaseScript()
    referrals.record_event(case.notification())
    referrals.record_event(case.request())
    with pytest.raises(ConflictError) as error:
        referrals.record_event(case.transfer(expected_version=1))
    assert codes_of(error) == ("VERSION_CONFLICT", "expected_version")
    assert referrals.get_case(case.case_id).version == 2


def test_batch_judges_each_item_on_its_own(referrals):
    case = CaseScript()
    note, request, transfer = case.notification(), case.request(), case.transfer()
    bad = dict(transfer, event_id="x-1", data={"centre_id": "nowhere"})
    results = referrals.record_batch([note, bad, request, request, transfer, "not json"])
    kinds = [type(r).__name__ + (":dup" if getattr(r, "duplicate", False) else "") for r in results]
    assert kinds == ["Recorded", "Rejected", "Recorded", "Recorded:dup", "Recorded", "Rejected"]
    assert results[1].error.code == "AGENCY_UNKNOWN"
    assert referrals.get_case(case.case_id).version == 3


def test_replay_as_of_shows_the_state_the_ledger_knew_then(referrals):
    case = CaseScript()
    referrals.record_event(case.notification())
    referrals.record_event(case.request())
    first, second = referrals.case_history(case.case_id)
    between = first.timestamp + (second.timestamp - first.timestamp) / 2
    state, events = referrals.case_as_of(case.case_id, between)
    assert (state.version, state.status, len(events)) == (1, Status.OPEN, 1)
    before, none = referrals.case_as_of(case.case_id, first.timestamp - timedelta(seconds=1))
    assert before is None and none == []


# --------------------------------------------------------------------- property-based
WIRE_TYPES = sorted(TRANSITIONS)
AGENCIES = [POLICE, POLICE_2, PROCURACY, COURT, CENTRE, OTHER_CENTRE, DOJ, DETENTION]


def _data_for(wire_type: str, case: CaseScript, pick: int) -> dict:
    data = {
        "REQUEST_TRANSFERRED": {"centre_id": [CENTRE, OTHER_CENTRE][pick % 2]},
        "APPOINTMENT_REQUESTED": {"centre_id": CENTRE, "ground": "UNDER_18"},
        "CASE_TRANSFERRED": {"to_agency_id": [PROCURACY, COURT, POLICE][pick % 3]},
        "REQUEST_ACCEPTED": {},
        "REQUEST_REFUSED": {"reason": "NOT_ELIGIBLE", "written": True},
        "AID_ASSIGNED": {
            "provider_id": f"p{pick}",
            "provider_type": "LEGAL_AID_OFFICER",
            "aid_form": "DEFENCE",
        },
        "COUNSEL_REGISTERED": {"documents_complete_at": case.at.isoformat()},
        "AID_DECLINED": {"three_party_record": True},
        "REQUEST_FORWARDED": {"to_agency_id": [PROCURACY, COURT, POLICE][pick % 3]},
        "INTERPRETER_REQUESTED": {"language": ["km", "hmn", "en"][pick % 3]},
        "PROVIDER_CHANGED": {
            "provider_id": f"q{pick}",
            "provider_type": "CONTRACTED_LAWYER",
            "requested_at": case.at.isoformat(),
            "grounds": "PERSON_REQUEST",
        },
        "AID_DISCONTINUED": {"grounds": "PERSON_WITHDREW"},
        "CASE_CLOSED": {"close_reason": "OTHER"},
        "QUALITY_ASSESSED": {"result": "GOOD"},
    }
    return data.get(wire_type, {})


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.sampled_from(WIRE_TYPES), st.sampled_from(AGENCIES), st.integers(0, 5)),
        min_size=1,
        max_size=25,
    )
)
def test_any_sequence_keeps_the_lifecycle_invariants(referrals, steps):
    case = CaseScript()
    referrals.record_event(case.notification())
    accepted = ["NOTIFICATION_ISSUED"]
    for wire_type, agency, pick in steps:
        case.at += timedelta(minutes=30)
        wire = case.event(
            wire_type, agency=agency, after=timedelta(0), data=_data_for(wire_type, case, pick)
        )
        before = referrals.get_case(case.case_id).version
        try:
            referrals.record_event(wire)
            accepted.append(wire_type)  # in effect or held (ADR 0008)
        except DomainError as error:
            assert error.code and error.message_vi and error.message_en
            assert referrals.get_case(case.case_id).version == before  # nothing half-recorded
    assert [e.WIRE_TYPE for e in referrals.case_history(case.case_id)] == accepted
    # the invariants hold for the facts in effect, in occurred order
    history = [e.WIRE_TYPE for e in effective_history(referrals.case_history(case.case_id))]
    if "CASE_CLOSED" in history:
        assert set(history[history.index("CASE_CLOSED") + 1 :]) <= {"QUALITY_ASSESSED"}
    assert history.count("QUALITY_ASSESSED") <= 1
    for i, wire_type in enumerate(history):
        if wire_type in ("AID_ASSIGNED", "REQUEST_ACCEPTED", "REQUEST_REFUSED"):
            assert {"REQUEST_TRANSFERRED", "APPOINTMENT_REQUESTED"} & set(history[:i])
        if wire_type == "COUNSEL_REGISTERED":
            assert "AID_ASSIGNED" in history[:i]
    replayed = None
    for event in referrals.case_history(case.case_id):
        replayed = event.mutate(replayed)
    assert replayed.version == len(accepted)
    assert replayed.snapshot_view() == referrals.get_case(case.case_id).snapshot_view()


def test_replayed_state_equals_the_state_built_while_recording(referrals):
    case = CaseScript()
    for wire in case.full_history()[:5]:
        referrals.record_event(wire)
    live = referrals.get_case(case.case_id).snapshot_view()
    history = referrals.case_history(case.case_id)
    rebuilt = None
    for event in history:
        rebuilt = event.mutate(rebuilt)
    assert rebuilt.snapshot_view() == live
    assert rebuilt.opened_at == T0


def test_non_holder_learns_nothing_of_the_case_state_when_it_posts(referrals):
    case = CaseScript()
    referrals.record_event(case.notification())
    # out of order AND from a non-holder: held (ADR 0008), the answer naming no one
    held = referrals.record_event(
        case.event(
            "COUNSEL_REGISTERED",
            agency=PROCURACY,
            data={"documents_complete_at": case.at.isoformat()},
        )
    )
    assert held.awaiting["reason"] == "AGENCY_NOT_HOLDER"
    assert POLICE not in str(held.awaiting)


def test_quality_assessment_is_refused_when_the_assessor_is_of_another_province(referrals):
    case = CaseScript()
    for wire in case.full_history():
        referrals.record_event(wire)
    with pytest.raises(RuleViolationError) as error:
        referrals.record_event(
            case.event("QUALITY_ASSESSED", agency="vlg-doj", data={"result": "GOOD"})
        )
    assert codes_of(error) == ("AGENCY_OTHER_PROVINCE", "agency_id")


def test_refused_event_leaves_no_data_key_behind(referrals, vault):
    case = CaseScript()
    wire = case.notification(category="ELDERLY")  # refused: no financial hardship declared
    wire["identity"] = {"full_name": "Phạm Văn Đức"}
    with pytest.raises(InvalidEventError):
        referrals.record_event(wire)
    assert vault.store.get(case.person_id) is None


# --------------------------------------------------------------- issue 20: who may act
def _detention_case(referrals) -> CaseScript:
    """A case a detention facility opened: the person asked for aid there."""
    case = CaseScript(holder=DETENTION)
    referrals.record_event(case.notification())
    referrals.record_event(case.request())
    return case


def test_detention_facility_is_refused_when_it_requests_an_appointment(referrals):
    # CPC 2015 Art. 76: only a proceedings agency asks the Centre to appoint counsel.
    case = CaseScript(holder=DETENTION)
    wire = case.event(
        "APPOINTMENT_REQUESTED",
        data={
            "person_id": case.person_id,
            "proceedings_kind": "criminal",
            "procedural_role": "SUSPECT",
            "stage": "INVESTIGATION",
            "centre_id": CENTRE,
            "ground": "UNDER_18",
        },
    )
    with pytest.raises(RuleViolationError) as error:
        referrals.record_event(wire)  # as the opening event
    assert codes_of(error) == ("AGENCY_KIND_NOT_PERMITTED", "agency_id")
    assert "BLTTHS Điều 76" in error.value.message_vi
    assert "cơ sở giam giữ" in error.value.message_vi.lower()
    detained = _detention_case(referrals)
    with pytest.raises(RuleViolationError) as error:
        referrals.record_event(
            detained.event(
                "APPOINTMENT_REQUESTED", data={"centre_id": CENTRE, "ground": "UNDER_18"}
            )
        )
    assert codes_of(error) == ("AGENCY_KIND_NOT_PERMITTED", "agency_id")


def test_detention_facility_is_refused_when_it_registers_counsel(referrals):
    # CPC 2015 Art. 78(4): the proceedings agency registers, then tells the facility.
    case = _detention_case(referrals)
    referrals.record_event(case.event("REQUEST_FORWARDED", data={"to_agency_id": POLICE}))
    for wire in (case.transfer(agency=POLICE), case.accept(), case.assign()):
        referrals.record_event(wire)
    referrals.record_event(
        case.event("CASE_TRANSFERRED", agency=POLICE, data={"to_agency_id": DETENTION})
    )
    with pytest.raises(RuleViolationError) as error:
        referrals.record_event(case.register(agency=DETENTION))
    assert codes_of(error) == ("AGENCY_KIND_NOT_PERMITTED", "agency_id")
    assert "BLTTHS Điều 78 khoản 4" in error.value.message_vi
    assert "CPC" not in error.value.message_vi and "Art" not in error.value.message_vi
    assert "BLTTHS Điều 78 khoản 4" in error.value.message_en
    assert referrals.get_case(case.case_id).status == Status.ASSIGNED


def test_detention_facility_passes_the_request_on_and_the_agency_notifies_the_centre(referrals):
    case = _detention_case(referrals)
    with pytest.raises(RuleViolationError) as error:
        referrals.record_event(case.transfer(agency=DETENTION))
    assert codes_of(error) == ("AGENCY_KIND_NOT_PERMITTED", "agency_id")
    assert "Luật TGPL Điều 31 khoản 3" in error.value.message_vi
    forwarded = referrals.record_event(
        case.event("REQUEST_FORWARDED", data={"to_agency_id": POLICE})
    )
    state = referrals.get_case(case.case_id)
    assert (forwarded.version, state.holder_agency_id, state.status) == (
        3,
        POLICE,
        Status.REQUESTED,
    )
    with pytest.raises(RuleViolationError) as error:  # no longer the holder
        referrals.record_event(case.transfer(agency=DETENTION))
    assert error.value.code in ("AGENCY_KIND_NOT_PERMITTED", "AGENCY_NOT_HOLDER")
    assert referrals.record_event(case.transfer(agency=POLICE)).version == 4
    now = referrals.case_history(case.case_id)[-1].timestamp
    c1 = [v for v in referrals.time_limits(case.case_id, now) if v.rule_id == "C1_12H"]
    assert [(v.status, v.responsible_agency_id) for v in c1] == [("met", POLICE)]
    assert (
        c1[0].trigger_at.isoformat()
        == referrals.case_history(case.case_id)[2].occurred_at.isoformat()
    )  # the clock starts when the agency received the request


def test_forwarding_is_refused_when_recorded_by_a_proceedings_agency_or_to_a_centre(referrals):
    case = CaseScript()
    referrals.record_event(case.notification())
    referrals.record_event(case.request())
    with pytest.raises(RuleViolationError) as error:
        referrals.record_event(case.event("REQUEST_FORWARDED", data={"to_agency_id": COURT}))
    assert codes_of(error) == ("AGENCY_KIND_NOT_PERMITTED", "agency_id")
    detained = _detention_case(referrals)
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(detained.event("REQUEST_FORWARDED", data={"to_agency_id": CENTRE}))
    assert codes_of(error) == ("AGENCY_WRONG_KIND", "data.to_agency_id")


def test_centre_records_the_receipt_of_the_notice_on_its_acceptance(referrals):
    case = CaseScript()
    for wire in (case.notification(), case.request(), case.transfer()):
        referrals.record_event(wire)
    sent = case.at
    too_early = (sent - timedelta(minutes=1)).isoformat()
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(
            case.event("REQUEST_ACCEPTED", agency=CENTRE, data={"notice_received_at": too_early})
        )
    assert codes_of(error) == ("FIELD_INVALID", "data.notice_received_at")
    case.count -= 1
    later = (case.at + timedelta(hours=2)).isoformat()
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(
            case.event(
                "REQUEST_ACCEPTED",
                agency=CENTRE,
                after=timedelta(0),
                data={"notice_received_at": later},
            )
        )
    assert codes_of(error) == ("FIELD_INVALID", "data.notice_received_at")
    case.count -= 1
    received = (sent + timedelta(minutes=20)).isoformat()
    recorded = referrals.record_event(
        case.event(
            "REQUEST_ACCEPTED",
            agency=CENTRE,
            after=timedelta(0),
            data={"notice_received_at": received},
        )
    )
    assert recorded.version == 4
    history = referrals.case_history(case.case_id)
    assert history[-1].data["notice_received_at"] == received


def test_centre_asks_the_agency_for_an_interpreter_when_the_case_is_at_the_centre(referrals):
    case = CaseScript()
    for wire in (case.notification(), case.request(), case.transfer()):
        referrals.record_event(wire)
    with pytest.raises(RuleViolationError) as error:
        referrals.record_event(case.event("INTERPRETER_REQUESTED", data={"language": "km"}))
    assert error.value.code in ("AGENCY_NOT_ADDRESSED_CENTRE", "AGENCY_KIND_NOT_PERMITTED")
    case.count -= 1
    with pytest.raises(InvalidEventError) as error:
        referrals.record_event(
            case.event("INTERPRETER_REQUESTED", agency=CENTRE, data={"language": "Khmer"})
        )
    assert codes_of(error) == ("FIELD_INVALID", "data.language")
    case.count -= 1
    done = referrals.record_event(
        case.event("INTERPRETER_REQUESTED", agency=CENTRE, data={"language": "km"})
    )
    assert done.version == 4
    assert referrals.get_case(case.case_id).status == Status.AT_CENTRE
    assert referrals.case_history(case.case_id)[-1].TOPIC == "referral.InterpreterRequested.v1"


# ----------------------------------------------- issue 13 item 6: documents after assignment
def _assigned_case(referrals):
    case = CaseScript()
    for wire in (
        case.notification(),
        case.request(),
        case.transfer(),
        case.accept(),
        case.assign(),
    ):
        referrals.record_event(wire)
    return case


def test_registration_is_refused_when_its_documents_precede_the_assignment(referrals):
    # the documents include the Centre's assignment letter (CPC 2015 Art. 78(1); JC 10/2018
    # Art. 12): they cannot be complete before the assignment they answer
    case = _assigned_case(referrals)
    assigned_at = case.at
    early = (assigned_at - timedelta(days=2)).isoformat()
    with pytest.raises(RuleViolationError) as error:
        referrals.record_event(
            case.event("COUNSEL_REGISTERED", data={"documents_complete_at": early})
        )
    assert codes_of(error) == ("DOCUMENTS_BEFORE_ASSIGNMENT", "data.documents_complete_at")
    assert "BLTTHS Điều 78" in error.value.message_vi
    assert "documents_complete_at" in error.value.message_en
    assert assigned_at.isoformat() in error.value.message_en
    assert referrals.get_case(case.case_id).status == Status.ASSIGNED
    case.count -= 1
    done = referrals.record_event(
        case.event(
            "COUNSEL_REGISTERED",
            after=timedelta(0),
            data={"documents_complete_at": assigned_at.isoformat()},
        )
    )  # the same instant: lawful
    assert done.version == 6


def test_re_registration_is_refused_when_its_documents_precede_the_provider_change(referrals):
    case = _assigned_case(referrals)
    referrals.record_event(case.register())
    referrals.record_event(
        case.event(
            "PROVIDER_CHANGED",
            agency=CENTRE,
            data={
                "provider_id": "ls-002",
                "provider_type": "CONTRACTED_LAWYER",
                "requested_at": case.at.isoformat(),
                "grounds": "PERSON_REQUEST",
            },
        )
    )
    changed_at = case.at
    stale = (changed_at - timedelta(minutes=1)).isoformat()
    with pytest.raises(RuleViolationError) as error:
        referrals.record_event(
            case.event("COUNSEL_REGISTERED", data={"documents_complete_at": stale})
        )
    assert codes_of(error) == ("DOCUMENTS_BEFORE_ASSIGNMENT", "data.documents_complete_at")
    case.count -= 1
    assert (
        referrals.record_event(
            case.event(
                "COUNSEL_REGISTERED",
                after=timedelta(0),
                data={"documents_complete_at": (changed_at + timedelta(minutes=5)).isoformat()},
            )
        ).version
        == 8
    )


# ------------------------------------- issue 13 item 7: the ledger's rules, re-applied later
def _forge(
    referrals, case_id: str, wire_type: str, agency: str, occurred_at, data, n: int = 1
) -> None:
    """Appends an event past the rules, as an insider with write access to the store would."""
    from domain.referral import EVENT_CLASSES

    referral = referrals.get_case(case_id)
    referral.trigger_event(
        EVENT_CLASSES[wire_type],
        case_id=case_id,
        event_id=f"{case_id}-forged-{n}",
        agency_id=agency,
        occurred_at=occurred_at,
        data=data,
        content_digest="0" * 64,
        identity_ciphertext=None,
    )
    referrals.save(referral)


def test_replaying_the_rules_names_a_registration_appended_after_closure(referrals, reference):
    from domain.referral import judge_history

    case = CaseScript()
    for wire in case.full_history():
        referrals.record_event(wire)
    lawful, refusals = judge_history(case.case_id, referrals.case_history(case.case_id), reference)
    assert refusals == [] and lawful.status == Status.CLOSED
    later = case.at + timedelta(hours=1)
    _forge(
        referrals,
        case.case_id,
        "COUNSEL_REGISTERED",
        POLICE,
        later,
        {"documents_complete_at": later.isoformat()},
    )
    forged = referrals.get_case(case.case_id)  # the store took it; the derivation holds it
    assert (
        forged.status == Status.CLOSED
        and forged.held[f"{case.case_id}-forged-1"]["reason"] == "CASE_CLOSED"
    )
    lawful, refusals = judge_history(case.case_id, referrals.case_history(case.case_id), reference)
    assert [(r.version, r.wire_type, r.error.code, r.in_force) for r in refusals] == [
        (8, "COUNSEL_REGISTERED", "CASE_CLOSED", True)
    ]
    assert lawful.status == Status.CLOSED and lawful.version == 7


def test_replaying_the_rules_names_early_documents_and_an_unknown_agency(referrals, reference):
    from domain.referral import judge_history

    case = CaseScript()
    for wire in (
        case.notification(),
        case.request(),
        case.transfer(),
        case.accept(),
        case.assign(),
    ):
        referrals.record_event(wire)
    _forge(
        referrals,
        case.case_id,
        "COUNSEL_REGISTERED",
        POLICE,
        case.at + timedelta(hours=1),
        {"documents_complete_at": (case.at - timedelta(days=3)).isoformat()},
    )
    _forge(
        referrals,
        case.case_id,
        "INTERPRETER_REQUESTED",
        "no-such-centre",
        case.at + timedelta(hours=2),
        {"language": "km"},
        n=2,
    )
    _, refusals = judge_history(case.case_id, referrals.case_history(case.case_id), reference)
    assert [(r.version, r.error.code, r.error.field) for r in refusals] == [
        (6, "DOCUMENTS_BEFORE_ASSIGNMENT", "data.documents_complete_at"),
        (7, "AGENCY_UNKNOWN", "agency_id"),
    ]


# ------------------------------- issue 13: arrival order does not change what the facts say
def _outcome(referrals, case_id: str) -> tuple:
    state = referrals.get_case(case_id).snapshot_view()
    state.pop("case_id"), state.pop("version")
    now = referrals.case_history(case_id)[-1].timestamp
    verdicts = sorted(
        (v.rule_id, v.trigger_at, v.deadline, v.status, v.met_at, v.responsible_agency_id)
        for v in referrals.time_limits(case_id, now)
    )
    return state, verdicts


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.integers(0, 3),
    st.lists(st.integers(31, 600), min_size=12, max_size=12),
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_every_arrival_order_ends_as_in_order_arrival_when_the_history_is_lawful(
    referrals, template, gaps, rng, as_batch
):
    person = CaseScript().person_id
    in_order = CaseScript(person_id=person)
    shuffled = CaseScript(person_id=person)
    first = lawful_history(in_order, template, gaps)
    second = lawful_history(shuffled, template, gaps)
    for wire in first:
        assert not referrals.record_event(wire).held
    rng.shuffle(second)
    if as_batch:
        results = referrals.record_batch(second)
        assert all(not hasattr(r, "error") for r in results), results  # nothing refused
    else:
        for wire in second:
            referrals.record_event(wire)  # held or in effect, never refused
    assert referrals.get_case(shuffled.case_id).held == {}
    assert _outcome(referrals, shuffled.case_id) == _outcome(referrals, in_order.case_id)
