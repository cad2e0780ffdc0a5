"""Corrections and withdrawals (issue 13 item 3, ADR 0008 addendum): events about an event of
the same case; the original stays in the log and in every replay as known before them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from domain.errors import DomainError
from services.referrals import Referrals, effective_history
from tests.factories import CENTRE, VLG_POLICE, CaseScript


def _correct(
    script: CaseScript,
    target: dict[str, Any],
    changes: dict[str, Any],
    reason: str = "WRONG_OCCURRED_AT",
    agency: str | None = None,
) -> dict[str, Any]:
    return script.event(
        "EVENT_CORRECTED",
        agency=agency or target["agency_id"],
        after=timedelta(minutes=1),
        data={
            "target_event_id": target["event_id"],
            "changes": changes,
            "reason_code": reason,
            "reason": "CV-12/2026",
        },
    )


def _withdraw(
    script: CaseScript,
    target: dict[str, Any],
    reason: str = "ENTERED_TWICE",
    agency: str | None = None,
) -> dict[str, Any]:
    return script.event(
        "EVENT_WITHDRAWN",
        agency=agency or target["agency_id"],
        after=timedelta(minutes=1),
        data={"target_event_id": target["event_id"], "reason_code": reason},
    )


def _verdict(referrals: Referrals, case_id: str, rule: str) -> str:
    now = datetime.now(timezone.utc)  # the events' recording clock (the fixture's is earlier)
    return next(v.status for v in referrals.time_limits(case_id, at=now) if v.rule_id == rule)


def test_corrected_occurred_at_moves_the_verdict_and_replay_as_known_keeps_the_original(
    referrals: Referrals,
) -> None:
    script = CaseScript()
    notification, request, transfer = script.notification(), script.request(), script.transfer()
    for wire in (notification, request, transfer):
        referrals.record_event(wire)
    assert _verdict(referrals, script.case_id, "C1_12H") == "met"
    before = datetime.now(timezone.utc)
    wrong_at = datetime.fromisoformat(request["occurred_at"]) + timedelta(days=3)
    correction = _correct(script, transfer, {"occurred_at": wrong_at.isoformat()})
    outcome = referrals.record_event(correction)
    assert not outcome.held and outcome.version == 4
    # the figures follow the corrected fact: the transfer came 3 days after the request
    assert _verdict(referrals, script.case_id, "C1_12H") == "missed"
    case = referrals.get_case(script.case_id)
    assert case.last_occurred_at == wrong_at
    # as known before the correction: the original, exactly
    known, history = referrals.case_as_of(script.case_id, before)
    assert known is not None and known.version == 3
    assert [e.WIRE_TYPE for e in history][-1] == "REQUEST_TRANSFERRED"
    assert known.last_occurred_at == datetime.fromisoformat(transfer["occurred_at"])
    assert [
        v.status for v in referrals.time_limits(script.case_id, at=before) if v.rule_id == "C1_12H"
    ] == ["met"]
    # the log keeps both: the original event unchanged, the correction after it
    stored = referrals.case_history(script.case_id)
    assert stored[2].occurred_at == datetime.fromisoformat(transfer["occurred_at"])
    assert stored[3].data["target_version"] == 3
    # a retry is recognised as any retry
    assert referrals.record_event(correction).duplicate


def test_withdrawn_event_leaves_the_state(referrals: Referrals) -> None:
    script = CaseScript()
    history = [script.notification(), script.request(), script.transfer(), script.accept()]
    for wire in history:
        referrals.record_event(wire)
    assert referrals.get_case(script.case_id).status == "ACCEPTED"
    referrals.record_event(_withdraw(script, history[3]))
    case = referrals.get_case(script.case_id)
    assert case.status == "AT_CENTRE"
    effective = effective_history(referrals.case_history(script.case_id))
    assert [e.WIRE_TYPE for e in effective] == [
        "NOTIFICATION_ISSUED",
        "AID_REQUESTED",
        "REQUEST_TRANSFERRED",
    ]
    with pytest.raises(DomainError) as error:  # withdrawn once: not again
        referrals.record_event(_withdraw(script, history[3]))
    assert error.value.code == "AMENDMENT_TARGET_INVALID"
    # the accept arrives again, rightly: it is in effect
    referrals.record_event(script.accept())
    assert referrals.get_case(script.case_id).status == "ACCEPTED"


def test_corrected_category_and_role_are_the_case_s(referrals: Referrals) -> None:
    script = CaseScript()
    notification = script.notification()
    referrals.record_event(notification)
    referrals.record_event(
        _correct(script, notification, {"data.eligible_category": "CHILD"}, reason="WRONG_CATEGORY")
    )
    assert referrals.get_case(script.case_id).person["eligible_category"] == "CHILD"


def test_only_the_poster_may_correct_with_a_stable_code(referrals: Referrals) -> None:
    script = CaseScript()
    history = [script.notification(), script.request(), script.transfer()]
    for wire in history:
        referrals.record_event(wire)
    with pytest.raises(DomainError) as error:  # the Centre, in the case, not the poster
        referrals.record_event(
            _correct(script, history[1], {"occurred_at": history[1]["occurred_at"]}, agency=CENTRE)
        )
    assert error.value.code == "AMENDMENT_NOT_PERMITTED"
    assert error.value.field == "agency_id"
    assert "chỉ cơ quan đã ghi" in error.value.message_vi
    with pytest.raises(DomainError) as error:  # another province: the scope answer, no more
        referrals.record_event(_withdraw(script, history[1], agency=VLG_POLICE))
    assert error.value.code in ("AGENCY_NOT_HOLDER", "AGENCY_OTHER_PROVINCE")
    assert referrals.get_case(script.case_id).version == 3


def test_refusals_name_the_field_and_rule(referrals: Referrals) -> None:
    script = CaseScript()
    history = script.full_history()
    for wire in history:
        referrals.record_event(wire)
    closed_at = datetime.fromisoformat(history[-1]["occurred_at"])
    cases = [
        # a registration moved after the closure would be lawless for good
        (
            _correct(
                script, history[5], {"occurred_at": (closed_at + timedelta(hours=1)).isoformat()}
            ),
            "AMENDMENT_CONFLICT",
            "data.changes",
        ),
        (
            {
                **_withdraw(script, history[0]),
                "data": {"target_event_id": "nope-1", "reason_code": "WRONG_CASE"},
            },
            "AMENDMENT_TARGET_UNKNOWN",
            "data.target_event_id",
        ),
        (
            _correct(script, history[1], {"data.provider_id": "tgv-9"}, reason="WRONG_PROVIDER"),
            "CORRECTION_FIELD_NOT_CARRIED",
            "data.changes.data.provider_id",
        ),
        (
            _correct(script, history[1], {"data.name": "x"}),
            "FIELD_INVALID",
            "data.changes.data.name",
        ),
        (
            _withdraw(script, history[1], reason="WRONG_OCCURRED_AT"),
            "FIELD_INVALID",
            "data.reason_code",
        ),
    ]
    for wire, code, field in cases:
        with pytest.raises(DomainError) as error:
            referrals.record_event(wire)
        assert (error.value.code, error.value.field) == (code, field), wire
    assert referrals.get_case(script.case_id).version == len(history)


def test_an_amendment_on_a_case_with_nothing_recorded_names_the_target(
    referrals: Referrals,
) -> None:
    script = CaseScript()
    with pytest.raises(DomainError) as error:
        referrals.record_event(
            script.event(
                "EVENT_WITHDRAWN", data={"target_event_id": "x-1", "reason_code": "WRONG_CASE"}
            )
        )
    assert (error.value.code, error.value.field) == (
        "AMENDMENT_TARGET_UNKNOWN",
        "data.target_event_id",
    )


def test_as_it_happened_selects_by_the_corrected_instant(referrals: Referrals) -> None:
    script = CaseScript()
    history = [script.notification(), script.request(), script.transfer()]
    for wire in history:
        referrals.record_event(wire)
    transferred = datetime.fromisoformat(history[2]["occurred_at"])
    referrals.record_event(
        _correct(script, history[2], {"occurred_at": (transferred + timedelta(days=1)).isoformat()})
    )
    case, events = referrals.case_as_happened(script.case_id, transferred + timedelta(hours=1))
    assert case is not None and case.status == "REQUESTED"  # the transfer came a day later
    assert [e.WIRE_TYPE for e in events] == ["NOTIFICATION_ISSUED", "AID_REQUESTED"]
    case, events = referrals.case_as_happened(script.case_id, transferred + timedelta(days=2))
    assert case is not None and case.status == "AT_CENTRE" and len(events) == 4
