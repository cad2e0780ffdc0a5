"""Issue 13 / ADR 0008: held events listed per agency and per province, with their age and
the anomaly flag after the configured time (GET /v1/held-events; `referrals held`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

from tests.conftest import PG_HOST, PG_PORT, PG_USER
from tests.e2e.conftest import Api, assert_error_shape, auth
from tests.factories import CENTRE, POLICE, CaseScript


def _held_case(api: Api) -> tuple[CaseScript, dict, dict]:
    case = CaseScript()
    app = api.container.referrals
    for wire in (case.notification(), case.request(), case.transfer(), case.accept()):
        app.record_event(wire)
    assign = case.assign()  # dated before the registration, posted after it (or never)
    early = case.register()
    assert app.record_event(early).held
    api.container.projections.process_pending()
    return case, assign, early


def test_held_events_are_listed_for_their_agency_and_the_inspectors(api: Api) -> None:
    case, _, early = _held_case(api)
    police = auth(api.token("agency", agency_id=POLICE))
    body = api.client.get("/v1/held-events", headers=police).json()
    mine = [e for e in body["events"] if e["case_id"] == case.case_id]
    assert [(e["event_id"], e["event_type"], e["reason"]) for e in mine] == [
        (early["event_id"], "COUNSEL_REGISTERED", "ORDER_VIOLATION")
    ]
    assert "AID_ASSIGNED" in mine[0]["awaiting"] and mine[0]["anomaly"] is False
    assert mine[0]["age_hours"] is not None and body["anomaly_after_hours"] == 72.0

    centre = auth(api.token("agency", agency_id=CENTRE))  # not its event
    listed = api.client.get("/v1/held-events", headers=centre).json()["events"]
    assert all(e["agency_id"] == CENTRE for e in listed)
    refused = api.client.get(f"/v1/held-events?agency_id={POLICE}", headers=centre)
    assert_error_shape(refused, 403, "NOT_AUTHORISED")

    inspector = auth(api.token("inspector", provinces=["LSN"]))
    ids = {
        e["event_id"] for e in api.client.get("/v1/held-events", headers=inspector).json()["events"]
    }
    assert early["event_id"] in ids
    other = auth(api.token("inspector", provinces=["VLG"]))
    ids = {e["event_id"] for e in api.client.get("/v1/held-events", headers=other).json()["events"]}
    assert early["event_id"] not in ids

    # still held after 72 h: an anomaly
    app = api.container.referrals
    clock = app.clock
    app.clock = lambda: clock() + timedelta(hours=73)
    try:
        body = api.client.get("/v1/held-events", headers=police).json()
    finally:
        app.clock = clock
    late = [e for e in body["events"] if e["event_id"] == early["event_id"]]
    assert late[0]["anomaly"] is True and late[0]["age_hours"] >= 73
    assert body["anomalies"] >= 1


def test_a_held_event_leaves_the_list_once_it_takes_effect(api: Api) -> None:
    _, assign, early = _held_case(api)
    app = api.container.referrals
    assert not app.record_event(assign).held
    api.container.projections.process_pending()
    police = auth(api.token("agency", agency_id=POLICE))
    events = api.client.get("/v1/held-events", headers=police).json()["events"]
    assert early["event_id"] not in {e["event_id"] for e in events}


def test_referrals_held_lists_them_on_the_command_line(api: Api) -> None:
    case, _, early = _held_case(api)
    settings = api.container.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFERRALS_")}
    env.update(
        {
            "REFERRALS_STORE": "postgres",
            "REFERRALS_PG_HOST": PG_HOST,
            "REFERRALS_PG_PORT": str(PG_PORT),
            "REFERRALS_PG_USER": PG_USER,
            "REFERRALS_PG_DBNAME": settings.pg_dbname,
            "REFERRALS_PG_SCHEMA": settings.pg_schema,
            "REFERRALS_DATA_DIR": str(settings.data_dir),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "infra.cli", "held", "--agency", POLICE, "--json"],
        env=env,
        capture_output=True,
        timeout=120,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    rows = [r for r in lines if r.get("case_id") == case.case_id]
    assert [(r["event_id"], r["anomaly"]) for r in rows] == [(early["event_id"], False)]
    assert lines[-1]["held"] >= 1 and lines[-1]["anomalies"] == 0
    env["REFERRALS_HELD_ANOMALY_AFTER_HOURS"] = "0.0001"
    done = subprocess.run(
        [sys.executable, "-m", "infra.cli", "held", "--agency", POLICE],
        env=env,
        capture_output=True,
        timeout=120,
        text=True,
    )
    assert done.returncode == 1 and "ANOMALY" in done.stderr
