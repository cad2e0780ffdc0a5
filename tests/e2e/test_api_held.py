"""Issue 13 / ADR 0008: held events listed per agency and per province, with their age and
the anomaly flag after the configured time (GET /v1/held-events; `referrals held`)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import typer
from typer.testing import CliRunner

from infra.cli.transparency import register as register_transparency
from infra.transparency.service import transparency_log
from services.transparency.bundle import unb64
from services.transparency.canonical import canonical_json
from services.transparency.leaves import leaf_record
from services.transparency.merkle import leaf_hash
from services.transparency.receipt import check_receipt_against_checkpoint, open_receipt
from tests.conftest import PG_HOST, PG_PORT, PG_USER
from tests.e2e.conftest import Api, assert_error_shape, auth
from tests.factories import CENTRE, POLICE, PROCURACY, CaseScript


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


def _leaf_hashes_for_any_version(api: Api, case_id: str, event_id: str, position: int) -> set[str]:
    """What a poster could compute from its own fact and its answer: the leaf hash for each
    candidate case version (everything else in the leaf is its own, or in the answer)."""
    event = next(e for e in api.container.referrals.case_history(case_id) if e.event_id == event_id)
    record = leaf_record(position, event)
    return {
        base64.b64encode(leaf_hash(canonical_json({**record, "version": v}))).decode()
        for v in range(1, 60)
    }


def test_a_poster_with_no_part_learns_nothing_of_the_case_from_its_held_answer(
    api: Api, tmp_path: Path
) -> None:
    # ADR 0008 addendum: the procuracy has no part in the case (a late transfer could give it
    # one), so its fact is held without being compared with the case's state; the answer, its
    # retry, a batch answer, its receipt and its held list tell it nothing of the case: not the
    # version (nor, through the receipt's leaf hash, anything it could recover the version from)
    case = CaseScript()
    app = api.container.referrals
    for wire in (case.notification(), case.request(), case.transfer(), case.accept()):
        app.record_event(wire)
    procuracy = auth(api.token("agency", agency_id=PROCURACY))
    wire = case.event("NOTIFICATION_ISSUED", agency=PROCURACY, data={"form": "MAU_03"})
    response = api.client.post("/v1/events", json=wire, headers=procuracy)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "held" and body["awaiting"]["reason"] == "AGENCY_NOT_HOLDER"
    assert body["version"] is None
    guesses = _leaf_hashes_for_any_version(api, case.case_id, wire["event_id"], body["position"])
    assert not any(g in body["receipt"] for g in guesses)
    log = transparency_log(api.container)
    promised = open_receipt(body["receipt"], [log.signer.verifier()])
    assert promised.held and promised.event_id == wire["event_id"]
    assert promised.position == body["position"]

    api.container.projections.process_pending()
    retry = api.client.post("/v1/events", json=wire, headers=procuracy)
    assert retry.status_code == 200 and retry.json()["status"] == "duplicate"
    assert retry.json()["version"] is None and retry.json()["receipt"] == body["receipt"]

    second = case.event("NOTIFICATION_ISSUED", agency=PROCURACY, data={"form": "MAU_03"})
    batch = api.client.post("/v1/events/batch", json={"events": [second]}, headers=procuracy)
    item = batch.json()["items"][0]
    assert item["status"] == "held" and item["version"] is None
    guesses = _leaf_hashes_for_any_version(api, case.case_id, second["event_id"], item["position"])
    assert not any(g in item["receipt"] for g in guesses)

    api.container.projections.process_pending()
    listed = api.client.get("/v1/held-events", headers=procuracy).json()["events"]
    assert {(e["event_id"], e["version"]) for e in listed if e["case_id"] == case.case_id} == {
        (wire["event_id"], None),
        (second["event_id"], None),
    }
    inspector = auth(api.token("inspector", provinces=["LSN"]))
    seen = api.client.get("/v1/held-events", headers=inspector).json()["events"]
    assert {e["version"] for e in seen if e["event_id"] == wire["event_id"]} == {5}

    # the held receipt still verifies offline: against the leaf bytes the inclusion proof
    # answer carries (the poster can fetch it once its fact gives it a part; an inspector now)
    log.catch_up()
    log.publish_checkpoint()
    answer = api.client.get(
        "/v1/log/proofs/inclusion",
        params={"case_id": case.case_id, "event_id": wire["event_id"]},
        headers=inspector,
    ).json()
    proof = [unb64(h) for h in answer["proof"]]
    trusted = [log.signer.verifier()]
    leaf = unb64(answer["leaf"])
    assert check_receipt_against_checkpoint(
        body["receipt"], answer["checkpoint"], answer["leaf_index"], proof, trusted, leaf=leaf
    )
    assert not check_receipt_against_checkpoint(  # a held receipt needs the leaf's bytes
        body["receipt"], answer["checkpoint"], answer["leaf_index"], proof, trusted
    )
    other = api.client.get(  # another event's leaf does not keep this receipt's promise
        "/v1/log/proofs/inclusion",
        params={"case_id": case.case_id, "version": 1},
        headers=inspector,
    ).json()
    assert not check_receipt_against_checkpoint(
        body["receipt"],
        other["checkpoint"],
        other["leaf_index"],
        [unb64(h) for h in other["proof"]],
        trusted,
        leaf=unb64(other["leaf"]),
    )
    receipt_file = tmp_path / "receipt.txt"
    receipt_file.write_text(body["receipt"], encoding="utf-8")
    proof_file = tmp_path / "inclusion.json"
    proof_file.write_text(json.dumps(answer), encoding="utf-8")
    cli = typer.Typer()
    register_transparency(cli)
    args = ["verify-receipt", str(receipt_file), "--log-key", log.public_key]
    checked = CliRunner().invoke(cli, [*args, "--proof", str(proof_file)])
    assert checked.exit_code == 0 and "VALID: event" in checked.stdout, checked.output
    # an answer without the leaf (as before) cannot check a held receipt: bad input, exit 2
    proof_file.write_text(json.dumps({k: v for k, v in answer.items() if k != "leaf"}))
    checked = CliRunner().invoke(cli, [*args, "--proof", str(proof_file)])
    assert checked.exit_code == 2, checked.output
