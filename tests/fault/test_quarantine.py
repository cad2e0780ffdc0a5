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

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient

import projections.case_index as case_index_module
from domain.referral import EVENT_CLASSES, Referral, referral_id
from infra.bootstrap import Container, build_container
from tests.factories import T0, CaseScript
from tests.fault.support import cli

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


def store_unvalidated(
    container: Container,
    case_id: str,
    wire_type: str,
    event_id: str,
    agency_id: str,
    occurred_at: datetime,
    data: dict[str, Any],
) -> int:
    """Saves one more event of a case through the eventsourcing Application, without the
    wire validator (as an event stored before the validator refused it); its position."""
    app = container.referrals
    referral: Referral = app.repository.get(referral_id(case_id))
    referral.trigger_event(
        EVENT_CLASSES[wire_type],
        case_id=case_id,
        event_id=event_id,
        agency_id=agency_id,
        occurred_at=occurred_at,
        data=data,
        content_digest="0" * 64,
        identity_ciphertext=None,
    )
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
    bad = store_unvalidated(
        container,
        a.case_id,
        "AID_REQUESTED",
        f"{a.case_id}-002",
        a.holder,
        a.at.astimezone(PLUS_16),
        {"request_form": "written"},
    )
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
    container: Container, old_release: pytest.MonkeyPatch
) -> None:
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
        (bad, "failed"),
        (bad + 2, "held"),
        (bad + 4, "held"),
    ]
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


def test_the_cli_lists_the_quarantined_event_and_retries_it(
    container: Container, old_release: pytest.MonkeyPatch
) -> None:
    s = scenario(container)
    container.projections.process_pending(timeout=60)
    settings = container.settings
    status = cli(settings, "projections", "status", timeout=120)
    assert status.returncode == 0, status.stderr.decode(errors="replace")
    views = {v["name"]: v for v in json.loads(status.stdout)}
    assert views["case_index"]["quarantined"] == 1 and views["case_index"]["held"] == 2
    assert views["case_index"]["log_head"] == views["case_index"]["position"]
    shown = status.stderr.decode()
    assert "quarantined" in shown and "retry-quarantined" in shown
    listed = cli(settings, "projections", "quarantine", timeout=120)
    rows = [json.loads(line) for line in listed.stdout.decode().splitlines()]
    assert [(r["position"], r["reason"]) for r in rows][0] == (s["bad"], "failed")
    assert rows[0]["case_id"] == s["a"].case_id and "displacement" in rows[0]["message"]
    # the subprocess runs the new release (no switch there): its retry re-applies them
    retried = cli(settings, "projections", "retry-quarantined", timeout=120)
    assert retried.returncode == 0, retried.stderr.decode(errors="replace")
    assert json.loads(retried.stdout)["case_index"] == {"resolved": 3, "open": 0}
    assert container.projections.case_index.get(s["a"].case_id)["version"] == 4


YEAR_ONE = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
"""An instant Python holds but not in UTC (year 0): an OverflowError in any view that
converts it — a real failure with no switch, on both stores (issue 12's extreme dates)."""


def _web_client(container: Container) -> tuple[TestClient, dict[str, str]]:
    from infra.http.app import create_app
    from infra.http.routes.reports import router
    from infra.web import install

    app = create_app(container)
    if not any(getattr(r, "path", "") == "/v1/projections/quarantine" for r in app.routes):
        app.include_router(router)
    install(app, container)
    app.state.web_accounts.create_account(
        "tt-lsn",
        "mat-khau-dung-1",
        "inspector",
        "Thanh tra Lạng Sơn",
        provinces=["LSN"],
        reference=container.reference,
    )
    tokens = {
        "council": container.tokens.create("council", "Hội đồng LSN", provinces=["LSN"])[0],
        "other": container.tokens.create("council", "Hội đồng VLG", provinces=["VLG"])[0],
        "agency": container.tokens.create("agency", "Công an", agency_id="lsn-police")[0],
    }
    return TestClient(app, base_url="http://testserver"), {
        k: f"Bearer {v}" for k, v in tokens.items()
    }


def test_an_out_of_range_event_is_quarantined_and_every_reader_says_so(
    container: Container,
) -> None:
    a, b = CaseScript(start=T0), CaseScript(start=T0)
    record(container, [a.notification(), b.notification()])
    a.count += 1
    # ADR 0008: dated before the opening, the request takes effect only as an opening itself
    # (else it is held, and the views never apply it): it carries the opening's fields
    bad = store_unvalidated(
        container,
        a.case_id,
        "AID_REQUESTED",
        f"{a.case_id}-002",
        a.holder,
        YEAR_ONE,
        {
            "request_form": "written",
            "person_id": a.person_id,
            "proceedings_kind": "criminal",
            "procedural_role": "ARRESTED",
            "stage": "INVESTIGATION",
        },
    )
    a.at = T0 + timedelta(hours=2)
    record(container, [b.request(), a.transfer(), b.transfer()])
    projections = container.projections
    projections.process_pending(timeout=60)

    status = {x.name: x for x in projections.status()}
    head = projections.max_notification_id()
    assert all(x.position == head and x.error is None for x in status.values()), status
    # counts convert every event's instant to its Vietnam day; compliance judges the request
    # (the case index only stores a case's last instant of the page: it may not meet it)
    for name in ("agency_counts", "compliance"):
        assert (status[name].quarantined, status[name].held) == (1, 1), status[name]
    if "audit_trail" in status:  # the tree keeps every event, in order
        assert status["audit_trail"].quarantined == 0
        assert projections.view("audit_trail").entry(a.case_id, 2)["occurred_at"] is None
    assert projections.case_index.get(b.case_id)["version"] == 3
    counted = sum(
        r["n"] for r in projections.agency_counts.counts("LSN", None, None, ["agency_id"])
    )
    assert counted == 4  # both openings, b's two events; not the bad one nor a's later one
    if "audit_trail" in status:  # `verify` recomputes the odd leaf and finds the log whole
        from infra.transparency.service import transparency_log
        from services.transparency.verify import verify_log

        log = transparency_log(container)
        log.publish_checkpoint()
        report = verify_log(container.referrals, log.view, log.signer.verifier())
        assert report.ok and report.events_checked == head, report.as_dict()

    client, auth = _web_client(container)
    with client:
        body = client.get("/v1/projections/status", headers={"Authorization": auth["council"]})
        assert body.status_code == 200
        views = {v["name"]: v for v in body.json()["projections"]}
        assert views["agency_counts"]["quarantined"] == 1 and views["agency_counts"]["lag"] == 0
        assert views["agency_counts"]["excluded_events"] == 2
        assert body.json()["quarantine_url"] == "/v1/projections/quarantine"

        listed = client.get(
            "/v1/projections/quarantine", headers={"Authorization": auth["council"]}
        )
        assert listed.status_code == 200
        failed = [r for r in listed.json()["rows"] if r["reason"] == "failed"]
        assert {r["view_name"] for r in failed} >= {"agency_counts", "compliance"}
        assert all(r["position"] == bad and r["error_code"] == "OverflowError" for r in failed)
        assert all(r["case_id"] == a.case_id and r["message"] for r in failed)
        other = client.get("/v1/projections/quarantine", headers={"Authorization": auth["other"]})
        assert other.status_code == 200 and other.json()["rows"] == []  # not its province
        refused = client.get(
            "/v1/projections/quarantine", headers={"Authorization": auth["agency"]}
        )
        assert refused.status_code == 403 and refused.json()["code"] == "NOT_AUTHORISED"

        report = client.get(
            "/v1/reports/LSN?year=2026&format=json", headers={"Authorization": auth["council"]}
        )
        assert report.status_code == 200
        warnings = {w["view"]: w for w in report.json()["warnings"]}
        assert warnings["agency_counts"]["count"] == 2
        assert warnings["agency_counts"]["code"] == "QUARANTINED_EVENTS_EXCLUDED"
        assert "2 sự kiện bị cách ly" in warnings["agency_counts"]["message"]
        csv_report = client.get(
            "/v1/reports/LSN?year=2026&format=csv", headers={"Authorization": auth["council"]}
        )
        assert csv_report.status_code == 200 and "bị cách ly" in csv_report.text

        page = client.get("/web/sign-in")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        signed = client.post(
            "/web/sign-in",
            data={
                "username": "tt-lsn",
                "password": "mat-khau-dung-1",
                "csrf_token": token,
                "next": "/web/dashboard",
            },
            follow_redirects=False,
        )
        assert signed.status_code == 303
        dashboard = client.get("/web/dashboard?province=LSN&from=2026-01-01&to=2026-12-31")
        assert dashboard.status_code == 200
        html = dashboard.text
        assert 'data-testid="projections-table"' in html
        assert 'data-testid="quarantine-table"' in html
        assert f'data-position="{bad}"' in html and "OverflowError" in html
        assert 'data-testid="report-warning"' in html


def test_a_failure_that_is_not_an_events_stops_the_view_and_is_reported(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken view (every page fails the same way: bad SQL) quarantines nothing; its error
    and time are kept where `status` in any process reads them."""
    from eventsourcing.persistence import ProgrammingError

    from projections.framework import ProjectionError  # noqa: F401 - the runner's error type

    record(container, CaseScript(start=T0).full_history()[:3])

    def broken(self: Any, tx: Any, *rows_and_agencies: Any) -> None:
        raise ProgrammingError('relation "case_index" does not exist')

    monkeypatch.setattr(type(container.projections.case_index), "save", broken)
    with pytest.raises(ProgrammingError):
        container.projections.process_pending(timeout=10)
    status = {x.name: x for x in container.projections.status()}
    assert status["case_index"].quarantined == 0 and status["case_index"].lag == 3
    assert "does not exist" in status["case_index"].error and status["case_index"].error_at
    # another process (the CLI) reads the kept error
    shown = cli(container.settings, "projections", "status", timeout=120)
    views = {v["name"]: v for v in json.loads(shown.stdout)}
    assert "does not exist" in views["case_index"]["error"] and views["case_index"]["error_at"]
    monkeypatch.undo()
    container.projections.process_pending(timeout=30)
    assert {x.name: x.error for x in container.projections.status()}["case_index"] is None


def test_the_worker_re_applies_quarantined_events_when_it_starts(
    container: Container, old_release: pytest.MonkeyPatch
) -> None:
    import threading

    s = scenario(container)
    projections = container.projections
    projections.process_pending(timeout=60)
    assert len(projections.quarantine()) == 3
    old_release.undo()  # the new release is deployed; the worker restarts
    projections.run_forever(threading.Event(), until_caught_up=True)
    assert projections.quarantine() == []
    assert projections.case_index.get(s["a"].case_id)["version"] == 4
