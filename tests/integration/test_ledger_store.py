"""Recording and reading cases on the real event stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from domain.errors import ConflictError, DomainError
from infra.bootstrap import build_container
from tests.factories import CaseScript


def test_case_is_read_back_in_order_when_recorded_event_by_event(any_container):
    app = any_container.referrals
    case = CaseScript()
    for wire in case.full_history():
        app.record_event(wire)
    history = app.case_history(case.case_id)
    assert [e.originator_version for e in history] == list(range(1, 8))
    assert [e.event_id for e in history] == [f"{case.case_id}-{i:03d}" for i in range(1, 8)]
    assert history[0].occurred_at.utcoffset() == timedelta(hours=7)  # offset kept
    assert all(a.timestamp <= b.timestamp for a, b in zip(history, history[1:], strict=False))
    assert app.get_case(case.case_id).status == "CLOSED"


def test_state_survives_a_restart_when_the_container_is_rebuilt(any_settings):
    wires = CaseScript().full_history()
    first = build_container(any_settings)
    try:
        for wire in wires[:4]:
            first.referrals.record_event(wire)
    finally:
        first.close()
    second = build_container(any_settings)
    try:
        state = second.referrals.get_case(wires[0]["case_id"])
        assert (state.version, state.status) == (4, "ACCEPTED")
        assert second.referrals.record_event(wires[0]).duplicate is True
        assert second.referrals.record_event(wires[4]).version == 5
    finally:
        second.close()


def test_repost_records_nothing_new_when_the_same_event_is_sent_again(any_container):
    app = any_container.referrals
    case = CaseScript()
    wires = case.full_history()[:3]
    for wire in wires:
        app.record_event(wire)
    before = app.recorder.max_notification_id()
    again = [app.record_event(dict(w)) for w in wires]
    assert [r.duplicate for r in again] == [True, True, True]
    assert [r.version for r in again] == [1, 2, 3]
    assert app.recorder.max_notification_id() == before


def test_reused_event_id_with_other_content_is_a_conflict_on_the_store(any_container):
    app = any_container.referrals
    case = CaseScript()
    wire = case.notification()
    app.record_event(wire)
    with pytest.raises(ConflictError):
        app.record_event(dict(wire, occurred_at="2026-03-03T10:00:00+07:00"))


def test_exactly_one_of_two_concurrent_conflicting_writes_wins(any_container):
    app = any_container.referrals
    case = CaseScript()
    app.record_event(case.notification())
    app.record_event(case.request())
    transfer = case.transfer()
    declined = dict(
        case.event("AID_DECLINED", data={"three_party_record": True}),
        occurred_at=transfer["occurred_at"],
    )
    transfer["expected_version"] = 2
    declined["expected_version"] = 2
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def post(wire: dict) -> None:
        barrier.wait()
        try:
            outcomes.append(app.record_event(wire))
        except DomainError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=post, args=(w,)) for w in (transfer, declined)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    errors = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(outcomes) == 2 and len(errors) == 1
    assert errors[0].http_status == 409
    assert errors[0].code in ("VERSION_CONFLICT", "CONCURRENT_WRITE")
    assert app.get_case(case.case_id).version == 3


def test_unversioned_concurrent_writes_never_overwrite_each_other(any_container):
    """Without expected_version both may be judged on version 2; the store still lets only one
    in, and the loser is told to retry (409), never silently overwritten."""
    app = any_container.referrals
    case = CaseScript()
    app.record_event(case.notification())
    app.record_event(case.request())
    first = case.transfer()
    second = dict(case.event("AID_DECLINED", data={"three_party_record": True}))
    barrier = threading.Barrier(2)
    results: list[object] = []

    def post(wire: dict) -> None:
        barrier.wait()
        try:
            results.append(app.record_event(wire))
        except DomainError as error:
            results.append(error)

    threads = [threading.Thread(target=post, args=(w,)) for w in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    history = app.case_history(case.case_id)
    recorded = [r for r in results if not isinstance(r, DomainError)]
    assert len(history) == 2 + len(recorded)
    assert {e.event_id for e in history[2:]} == {r.event_id for r in recorded}
