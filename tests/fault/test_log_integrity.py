"""A tampered event store is named, not served silently: `referrals verify` accounts for every
row of the events table (a forged row outside the log's ids fails it), the case bundle answers
a stable LOG_INTEGRITY_FAILED code, history flags the case, and the CLIs that read files answer
bad input with one line and exit code 2."""

from __future__ import annotations

from typing import Any

import pytest

from infra.settings import Settings
from infra.transparency.service import transparency_log
from services.transparency.verify import verify_log
from tests.integration.test_audit_trail import record_cases, sql

pytestmark = [pytest.mark.fault, pytest.mark.postgres, pytest.mark.slow]


def _verify(container: Any) -> Any:
    log = transparency_log(container)
    log.catch_up()
    return verify_log(container.referrals, log.view, log.signer.verifier())


def _forge_next_version(settings: Settings, case_id: str, notification_id: int) -> None:
    """Copies the case's last event as its next version under the given notification id."""
    sql(
        settings,
        "INSERT INTO referrals_events (originator_id, originator_version, topic, "
        "state, notification_id) SELECT originator_id, originator_version + 1, topic, "
        "state, %s FROM referrals_events WHERE convert_from(state, 'UTF8') LIKE %s "
        "ORDER BY originator_version DESC LIMIT 1",
        (notification_id, f'%"case_id":"{case_id}"%'),
    )


def _prepared(container: Any) -> list[Any]:
    cases = record_cases(container.referrals, 2)
    log = transparency_log(container)
    log.catch_up()
    log.publish_checkpoint()
    assert _verify(container).ok
    return cases


def test_a_forged_row_with_notification_id_zero_fails_verify(pg_container, pg_settings):
    cases = _prepared(pg_container)
    _forge_next_version(pg_settings, cases[0].case_id, 0)
    report = _verify(pg_container)
    assert not report.ok, "a row at notification id 0 passed verify"
    finding = report.finding
    assert finding.kind == "INSERTED" and finding.position == 0
    assert finding.case_id == cases[0].case_id and finding.version == 8
    assert "0" in finding.message_en and cases[0].case_id in finding.message_vi


def test_a_forged_row_beyond_the_id_sequence_fails_verify(pg_container, pg_settings):
    cases = _prepared(pg_container)
    [(top,)] = sql(pg_settings, "SELECT max(notification_id) FROM referrals_events")
    _forge_next_version(pg_settings, cases[1].case_id, top + 1000)
    report = _verify(pg_container)  # the audit trail takes it in: only the ids can tell
    assert not report.ok, "a row beyond the id sequence passed verify"
    finding = report.finding
    assert finding.kind == "INSERTED" and finding.position == top + 1000
    assert finding.case_id == cases[1].case_id


def test_a_case_with_a_gap_in_its_versions_fails_verify(pg_container, pg_settings):
    cases = _prepared(pg_container)
    sql(
        pg_settings,
        "INSERT INTO referrals_events (originator_id, originator_version, topic, "
        "state) SELECT originator_id, 40, topic, state FROM referrals_events "
        "WHERE convert_from(state, 'UTF8') LIKE %s ORDER BY originator_version "
        "DESC LIMIT 1",
        (f'%"case_id":"{cases[0].case_id}"%',),
    )
    report = _verify(pg_container)
    assert not report.ok
    assert report.finding.case_id == cases[0].case_id and report.finding.version == 40


# ------------------------------------------------------- a tampered store, over HTTP and the CLI
def _tamper(settings: Settings, case_id: str) -> None:
    """Rewrites the case's second event in place (as someone with database access could)."""
    changed = sql(
        settings,
        "UPDATE referrals_events SET state = convert_to(replace(convert_from("
        "state, 'UTF8'), 'lsn-police-investigation', 'lsn-procuracy'), 'UTF8') "
        "WHERE convert_from(state, 'UTF8') LIKE %s RETURNING notification_id",
        (f'%"event_id":"{case_id}-002"%',),
    )
    assert len(changed) == 1


@pytest.fixture
def tampered(pg_database: str, pg_schema: str, tmp_path: Any) -> Any:
    from fastapi.testclient import TestClient

    from infra.bootstrap import build_container
    from tests.conftest import make_pg_settings
    from tests.integration.test_transparency_witness import transparency_app

    settings = make_pg_settings(pg_database, pg_schema, tmp_path)
    container = build_container(settings)
    cases = _prepared(container)
    _tamper(settings, cases[0].case_id)
    secret, _ = container.tokens.create("admin", "admin", reference=container.reference)
    with TestClient(transparency_app(container), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {secret}"
        inspector, _ = container.tokens.create(
            "inspector", "inspector", provinces=["LSN"], reference=container.reference
        )
        client.inspector = {"Authorization": f"Bearer {inspector}"}  # type: ignore[attr-defined]
        yield settings, container, client, cases
    container.close()


def test_bundle_of_a_tampered_case_answers_log_integrity_failed(tampered):
    _, _, client, cases = tampered
    answer = client.get(f"/v1/cases/{cases[0].case_id}/bundle")
    assert answer.status_code == 409, answer.text
    body = answer.json()
    assert body["code"] == "LOG_INTEGRITY_FAILED"
    assert cases[0].case_id in body["message"] and cases[0].case_id in body["message_en"]
    assert "phiên bản 2" in body["message"] and "version 2" in body["message_en"]
    # an untouched case of the same store is still served
    assert client.get(f"/v1/cases/{cases[1].case_id}/bundle").status_code == 200


def test_history_of_a_tampered_case_is_flagged(tampered):
    _, _, client, cases = tampered
    answer = client.get(f"/v1/cases/{cases[0].case_id}/history", headers=client.inspector)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["integrity"]["status"] == "broken"
    assert body["integrity"]["broken_version"] == 2
    assert body["integrity"]["code"] == "LOG_INTEGRITY_FAILED"
    assert answer.headers["X-Log-Integrity"] == "broken"
    clean = client.get(f"/v1/cases/{cases[1].case_id}/history", headers=client.inspector)
    assert clean.json()["integrity"]["status"] == "verified"
    assert clean.headers["X-Log-Integrity"] == "verified"


def _no_traceback(done: Any) -> str:
    err = done.stderr.decode(errors="replace")
    assert "Traceback" not in err and "Traceback" not in done.stdout.decode(errors="replace"), err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_export_bundle_of_a_tampered_case_or_an_unknown_one_is_one_line(tampered, tmp_path):
    from tests.fault.support import cli

    settings, _, _, cases = tampered
    done = cli(settings, "export-bundle", cases[0].case_id, "-o", str(tmp_path / "b.json"))
    assert done.returncode == 1, done.stderr
    assert "LOG_INTEGRITY_FAILED" in _no_traceback(done)
    done = cli(settings, "export-bundle", "NO-SUCH-CASE", "-o", str(tmp_path / "c.json"))
    assert done.returncode == 2, done.stderr
    assert "CASE_NOT_FOUND" in _no_traceback(done)


@pytest.mark.parametrize(
    "bad",
    [
        "log_key",
        "receipt_not_a_note",
        "receipt_binary",
        "proof_not_json",
        "proof_not_an_object",
        "checkpoint_garbage",
    ],
)
def test_verify_receipt_on_bad_input_is_one_line_and_exit_2(
    pg_container, pg_settings, tmp_path, bad
):
    import json as _json

    from infra.transparency.service import receipt_for
    from tests.factories import CaseScript
    from tests.fault.support import cli

    case = CaseScript()
    recorded = pg_container.referrals.record_event(case.notification())
    log = transparency_log(pg_container)
    log.catch_up()
    log.publish_checkpoint()
    receipt = receipt_for(pg_container, recorded)
    proof = log.inclusion(case.case_id, 1, None)
    key = log.public_key
    receipt_file, proof_file = tmp_path / "r.txt", tmp_path / "p.json"
    receipt_file.write_text(receipt, encoding="utf-8")
    proof_file.write_text(_json.dumps(proof), encoding="utf-8")
    if bad == "log_key":
        key = "not-a-key"
    elif bad == "receipt_not_a_note":
        receipt_file.write_text("hello\n", encoding="utf-8")
    elif bad == "receipt_binary":
        receipt_file.write_bytes(b"\xff\xfe\x00garbage")
    elif bad == "proof_not_json":
        proof_file.write_text("{not json", encoding="utf-8")
    elif bad == "proof_not_an_object":
        proof_file.write_text("[1, 2]", encoding="utf-8")
    elif bad == "checkpoint_garbage":
        proof_file.write_text(_json.dumps(dict(proof, checkpoint="garbage")), encoding="utf-8")
    done = cli(
        pg_settings,
        "verify-receipt",
        str(receipt_file),
        "--proof",
        str(proof_file),
        "--log-key",
        key,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    _no_traceback(done)

    # the untouched files verify (the probe's inputs are otherwise sound)
    if bad == "log_key":
        good = cli(
            pg_settings,
            "verify-receipt",
            str(receipt_file),
            "--proof",
            str(proof_file),
            "--log-key",
            log.public_key,
        )
        assert good.returncode == 0, good.stderr


@pytest.mark.parametrize("content", [b"[1, 2]", b"\xff\xfe", b"{not json", b'"a string"'])
def test_verify_bundle_on_a_file_that_is_not_a_bundle_is_one_line_and_exit_2(
    pg_settings, tmp_path, content
):
    from tests.fault.support import cli

    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(content)
    done = cli(
        pg_settings,
        "verify-bundle",
        str(bundle),
        "--log-key",
        "legal-aid-ledger.example/log+c511baeb+Admqrkji8giNKdlGIM98yolq7jNAc9lTxWtGiVimRrsR",
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    _no_traceback(done)
