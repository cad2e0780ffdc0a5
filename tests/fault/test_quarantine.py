"""Issue 12 (b, c): a projection never dies on one event it cannot apply.

An event the views cannot hold is written through the application (bypassing the wire
validator, as events stored before it was fixed are), followed by valid events of other cases
and of the same case. The views go on: the event is quarantined with its reason (and, for the
views that fold per case, its case's later events are held), status, CLI, API and dashboard
show it; after the fix, `retry-quarantined` re-applies it and the views equal a clean rebuild.

"The release before the fix" is reproduced by a switch in the test: a case index whose fold
refuses an instant PostgreSQL's timestamptz cannot hold (offset beyond ±15:59), with the
error PostgreSQL gives; undoing the switch is the new release, which normalises to UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import projections.case_index as case_index_module
from domain.referral import EVENT_CLASSES, Referral, referral_id
from infra.bootstrap import Container, build_container
from tests.factories import T0, CaseScript

PLUS_16 = timezone(timedelta(hours=16))
_fold_case = case_index_module.fold_case


def _old_release_fold(row: Any, event: Any, reference: Any) -> Any:
    """The case index before the fix: an instant timestamptz cannot hold stops the fold."""
    offset = event.occurred_at.utcoffset() or timedelta(0)
    if abs(offset) > timedelta(hours=15, minutes=59):
        raise ValueError(f'time zone displacement out of range: "{event.occurred_at}"')
    return _fold_case(row, event, reference)


@pytest.fixture
def old_release(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(case_index_module, "fold_case", _old_release_fold)
    return monkeypatch


def record(container: Container, wires: list[dict[str, Any]]) -> None:
    for wire in wires:
        container.referrals.record_event(wire)


def store_unvalidated(container: Container, case_id: str, wire_type: str, event_id: str,
                      agency_id: str, occurred_at: datetime, data: dict[str, Any]) -> int:
    """Saves one more event of a case through the eventsourcing Application, without the
    wire validator (as an event stored before the validator refused it); its position."""
    app = container.referrals
    referral: Referral = app.repository.get(referral_id(case_id))
    referral.trigger_event(EVENT_CLASSES[wire_type], case_id=case_id, event_id=event_id,
                           agency_id=agency_id, occurred_at=occurred_at, data=data,
                           content_digest="0" * 64, identity_ciphertext=None)
    recordings = app.save(referral)
    return recordings[-1].notification.id


@pytest.fixture
def container(any_settings: Any) -> Any:
    settings = any_settings.model_copy(update={"projections_in_process": False})
    built = build_container(settings)
    yield built
    built.close()


def scenario(container: Container) -> dict[str, Any]:
    """Case A: a valid opening, the +16:00 event, then valid events; case B: valid events
    before and after."""
    a, b = CaseScript(start=T0), CaseScript(start=T0)
    record(container, [a.notification(), b.notification()])
    a.count += 1
    a.at += timedelta(hours=1)
    bad = store_unvalidated(container, a.case_id, "AID_REQUESTED", f"{a.case_id}-002",
                            a.holder, a.at.astimezone(PLUS_16), {"request_form": "written"})
    bad_at = a.at
    record(container, [b.request(), a.transfer(), b.transfer(), a.accept()])
    return {"a": a, "b": b, "bad": bad, "bad_at": bad_at}


def test_a_plus_16_offset_event_is_projected_by_every_view(container: Container) -> None:
    """The issue's event itself: the views normalise instants to UTC and apply it."""
    s = scenario(container)
    container.projections.process_pending(timeout=60)
    status = {x.name: x for x in container.projections.status()}
    assert all(x.lag == 0 and x.error is None and x.quarantined == 0 for x in status.values())
    row = container.projections.case_index.get(s["a"].case_id)
    assert row["version"] == 4 and row["status"] == "ACCEPTED"
    if "audit_trail" in container.projections:
        entry = container.projections.view("audit_trail").entry(s["a"].case_id, 2)
        assert entry["occurred_at"] == s["bad_at"]


def test_an_event_a_view_cannot_apply_is_quarantined_and_re_applied_after_the_fix(
        container: Container, old_release: pytest.MonkeyPatch) -> None:
    s = scenario(container)
    a, b, bad = s["a"], s["b"], s["bad"]
    projections = container.projections
    projections.process_pending(timeout=60)  # does not raise: the view goes on

    status = {x.name: x for x in projections.status()}
    head = projections.max_notification_id()
    assert all(x.position == head and x.lag == 0 for x in status.values()), status
    assert status["case_index"].quarantined == 1 and status["case_index"].held == 2
    assert status["case_index"].as_dict()["excluded_events"] == 3
    assert all(status[n].quarantined == 0 for n in status if n != "case_index")
    # the other case is projected in full; the bad event's case stops before it
    assert projections.case_index.get(b.case_id)["version"] == 3
    assert projections.case_index.get(a.case_id)["version"] == 1
    rows = projections.quarantine()
    assert [(r["position"], r["reason"]) for r in rows] == [
        (bad, "failed"), (bad + 2, "held"), (bad + 4, "held")]
    failed = rows[0]
    assert failed["view_name"] == "case_index" and failed["case_id"] == a.case_id
    assert failed["event_type"] == "AID_REQUESTED" and failed["attempts"] == 1
    assert "displacement" in failed["message"] and failed["first_seen"] is not None

    # more events of the same case keep being held, in order, while it is quarantined
    record(container, [a.assign()])
    projections.process_pending(timeout=60)
    assert [r["reason"] for r in projections.quarantine()] == ["failed", "held", "held", "held"]

    # a retry before the fix: still failing, one more attempt, nothing applied
    result = projections.retry_quarantined(["case_index"])
    assert result["case_index"] == {"resolved": 0, "open": 4}
    assert projections.quarantine()[0]["attempts"] == 2

    # the fix (the new release normalises to UTC), then the retry re-applies in order
    old_release.undo()
    result = projections.retry_quarantined()
    assert result["case_index"] == {"resolved": 4, "open": 0}
    assert projections.quarantine() == []
    history = projections.quarantine(include_resolved=True)
    assert len(history) == 4 and all(r["resolved_at"] is not None for r in history)
    assert {x.name: x.quarantined + x.held for x in projections.status()}["case_index"] == 0
    incremental = projections.case_index.dump()
    assert projections.case_index.get(a.case_id)["version"] == 5
    projections.rebuild(names=["case_index"])
    assert projections.case_index.dump() == incremental  # as if applied in order first time
