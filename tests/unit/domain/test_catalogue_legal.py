"""Issue 20: what the catalogue cites, and who may record what (points 2, 5 and 6)."""

from __future__ import annotations

from domain.catalogue import AMENDMENT_TYPES, EVENT_TYPES, PROCEEDINGS_AGENCY_KINDS
from domain.referral import EVENT_CLASSES, TRANSITIONS


def test_form_03_is_cited_on_the_notice_to_the_centre_not_on_the_explanation_to_the_person():
    notification = EVENT_TYPES["NOTIFICATION_ISSUED"]
    transfer = EVENT_TYPES["REQUEST_TRANSFERRED"]
    assert "Mẫu 03" not in notification.title_vi and "Form 03" not in notification.title_en
    assert "Mẫu 03" not in notification.legal_basis
    assert "Mẫu 03" in transfer.legal_basis and "Điều 31 khoản 3" in transfer.legal_basis
    form = {f.name: f for f in notification.fields}["form"]
    assert "MAU_03" in form.choices  # events recorded before the correction stay valid


def test_jc_29_2025_is_cited_as_in_force_and_its_interpreter_request_is_an_event():
    declined = EVENT_TYPES["AID_DECLINED"]
    assert "dự thảo" not in declined.legal_basis and "31/12/2025" in declined.legal_basis
    interpreter = EVENT_TYPES["INTERPRETER_REQUESTED"]
    assert interpreter.emitter == "centre" and "TTLT 29/2025" in interpreter.legal_basis
    assert [f.name for f in interpreter.fields if f.required] == ["language"]
    assert EVENT_CLASSES["INTERPRETER_REQUESTED"].TOPIC == "referral.InterpreterRequested.v1"


def test_only_proceedings_agencies_may_notify_appoint_or_register_with_the_article_cited():
    assert PROCEEDINGS_AGENCY_KINDS == ("police", "procuracy", "court")
    for wire_type, article in (
        ("APPOINTMENT_REQUESTED", "BLTTHS Điều 76"),
        ("COUNSEL_REGISTERED", "BLTTHS Điều 78 khoản 4"),
        ("REQUEST_TRANSFERRED", "Luật TGPL Điều 31 khoản 3"),
    ):
        spec = EVENT_TYPES[wire_type]
        assert spec.actor_kinds == PROCEEDINGS_AGENCY_KINDS
        assert spec.actor_basis == article and article in spec.legal_basis
    forwarded = EVENT_TYPES["REQUEST_FORWARDED"]
    assert forwarded.actor_kinds == ("detention_facility",)
    assert "Điều 10 khoản 1 điểm a" in forwarded.legal_basis
    assert EVENT_CLASSES["REQUEST_FORWARDED"].TOPIC == "referral.RequestForwarded.v1"
    # corrections and withdrawals are events about events: no lifecycle transition (ADR 0008)
    assert set(TRANSITIONS) | set(AMENDMENT_TYPES) == set(EVENT_TYPES) == set(EVENT_CLASSES)
