"""Issue 13 item 3 through `referrals load` and the offline verifier: corrections and
withdrawals are recorded (or refused, with their line and code) like any event, exactly once,
and a case bundle with them verifies and recomputes the corrected figures."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.cli.core import load_events, read_jsonl
from infra.reference_data import load_calendar, load_reference, load_time_limits
from infra.transparency.service import transparency_log
from services.transparency.bundle import verify_bundle
from tests.factories import CENTRE, CaseScript
from tests.integration.test_audit_trail import record_cases

pytestmark = pytest.mark.postgres


def _amend(
    case: CaseScript, wire_type: str, target: dict[str, Any], agency: str | None = None, **data: Any
) -> dict[str, Any]:
    return case.event(
        wire_type,
        agency=agency or target["agency_id"],
        after=timedelta(minutes=1),
        data={"target_event_id": target["event_id"], **data},
    )


def test_load_records_corrections_once_and_reports_a_refused_one(
    pg_container: Any, tmp_path: Path
) -> None:
    case = CaseScript()
    wires = [case.notification(), case.request(), case.transfer(), case.accept()]
    wires += [
        _amend(
            case,
            "EVENT_CORRECTED",
            wires[0],
            changes={"data.stage": "INDICTMENT"},
            reason_code="WRONG_STAGE",
        ),
        _amend(
            case,
            "EVENT_CORRECTED",
            wires[1],
            agency=CENTRE,  # not the Centre's event
            changes={"occurred_at": wires[1]["occurred_at"]},
            reason_code="WRONG_OCCURRED_AT",
        ),
        _amend(case, "EVENT_WITHDRAWN", wires[3], reason_code="ENTERED_TWICE"),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text(
        "".join(json.dumps(w, ensure_ascii=False) + "\n" for w in wires), encoding="utf-8"
    )
    report = load_events(pg_container, read_jsonl(path), total=None)
    assert (report.recorded, report.duplicates) == (6, 0)
    assert [(line, error["code"], error["field"]) for line, _, error in report.rejected] == [
        (6, "AMENDMENT_NOT_PERMITTED", "agency_id")
    ]
    app = pg_container.referrals
    referral = app.get_case(case.case_id)
    assert (referral.status, referral.person["stage"]) == ("AT_CENTRE", "INDICTMENT")
    again = load_events(pg_container, read_jsonl(path), total=None)
    assert (again.recorded, again.duplicates, len(again.rejected)) == (0, 6, 1)


def test_a_bundle_with_a_withdrawal_verifies_and_recomputes_the_corrected_figures(
    pg_container: Any,
) -> None:
    app = pg_container.referrals
    [case] = record_cases(app, 1)
    closed = app.case_history(case.case_id)[-1]
    app.record_event(
        case.event(
            "EVENT_WITHDRAWN",
            agency=closed.agency_id,
            after=timedelta(minutes=1),
            data={"target_event_id": closed.event_id, "reason_code": "WRONG_CASE"},
        )
    )
    log = transparency_log(pg_container)
    report = verify_bundle(
        log.case_bundle(case.case_id),
        log.public_key,
        rules=load_time_limits(),
        calendar=load_calendar(),
        reference=load_reference(),
    )
    assert report.ok, report.problems
    assert report.figures["status"] == "REGISTERED" and report.figures["events"] == 8
