"""Exported bundles verified OFFLINE (package + public keys, no database): a case's leaves and
proofs, its recomputed time-limit verdicts, growth from a trusted checkpoint, province counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from infra.cli.transparency import register
from infra.reference_data import load_calendar, load_reference, load_time_limits
from infra.transparency.service import transparency_log
from services.transparency.bundle import _verdict, verify_bundle
from services.transparency.canonical import canonical_json
from services.transparency.checkpoint import Checkpoint
from services.transparency.leaves import parse_rfc3339
from services.transparency.note import sign_note
from tests.factories import T0, VLG_POLICE, CaseScript
from tests.integration.test_audit_trail import cli_env, record_cases

pytestmark = pytest.mark.postgres

# a case bundle is recomputed with the shipped rules and calendar (as `verify-bundle` does)
SHIPPED_TABLES = {
    "rules": load_time_limits(),
    "calendar": load_calendar(),
    "reference": load_reference(),
}


def _cli() -> typer.Typer:
    cli = typer.Typer()
    register(cli)
    return cli


def _offline(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`referrals ...` in a process whose settings point at no reachable database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REFERRALS_", "PG"))}
    env.update(
        {
            "REFERRALS_STORE": "postgres",
            "REFERRALS_PG_HOST": "db.invalid",
            "REFERRALS_PG_PORT": "1",
            "REFERRALS_DATA_DIR": str(tmp_path / "nowhere"),
        }
    )
    workdir = tmp_path / "inspector"
    workdir.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *arguments],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_verify_bundle_passes_offline_and_fails_when_a_leaf_is_edited(
    pg_container: Any, pg_settings: Any, tmp_path: Path
) -> None:
    app = pg_container.referrals
    record_cases(app, 1, identity=True)
    case = CaseScript()
    for wire in (
        case.notification() | {"identity": {"full_name": "Lò Văn Páo"}},
        case.request(),
        case.transfer(),
    ):
        app.record_event(wire)
    out = tmp_path / "bundle.json"
    exported = CliRunner().invoke(
        _cli(), ["export-bundle", case.case_id, "-o", str(out)], env=cli_env(pg_settings)
    )
    assert exported.exit_code == 0, exported.output
    key = transparency_log(pg_container).public_key
    bundle = json.loads(out.read_text(encoding="utf-8"))
    assert [json.loads(e["leaf"])["version"] for e in bundle["leaves"]] == [1, 2, 3]
    assert json.loads(bundle["leaves"][0]["leaf"])["identity_ciphertext"].startswith("aesgcm")

    at = parse_rfc3339(bundle["as_of"])
    assert bundle["figures"]["time_limits"] == [  # issue 14: each verdict names its basis
        {**_verdict(v), "basis": list(basis)}
        for v, basis in app.time_limits_with_basis(case.case_id, at)
    ]
    assert any(v["outstanding"] for v in bundle["figures"]["time_limits"])

    passed = _offline(tmp_path, "verify-bundle", str(out), "--log-key", key)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "KẾT QUẢ: HỢP LỆ / RESULT: VALID" in passed.stdout
    assert "leaves verified: 3/3" in passed.stdout
    assert "QUÁ HẠN / OVERDUE" in passed.stdout  # the Centre never accepted: a missed limit

    leaf = json.loads(bundle["leaves"][1]["leaf"])
    leaf["occurred_at"] = leaf["occurred_at"].replace("T03", "T01")  # backdate the request
    bundle["leaves"][1]["leaf"] = canonical_json(leaf).decode("utf-8")
    out.write_text(json.dumps(bundle), encoding="utf-8")
    failed = _offline(tmp_path, "verify-bundle", str(out), "--log-key", key)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert (
        f"the event at position {leaf['position']} (case {case.case_id}, event "
        f"{case.case_id}-002, leaf index 8) is NOT in the tree"
    ) in failed.stdout
    assert "KẾT QUẢ: KHÔNG HỢP LỆ / RESULT: INVALID" in failed.stdout


def test_verify_bundle_checks_growth_from_the_checkpoint_the_inspector_trusted(
    pg_container: Any, tmp_path: Path
) -> None:
    app = pg_container.referrals
    [case] = record_cases(app, 1)
    log = transparency_log(pg_container)
    first = log.case_bundle(case.case_id)
    trusted = tmp_path / "trusted-checkpoint.txt"
    runner, cli = CliRunner(), _cli()
    saved = runner.invoke(
        cli,
        [
            "verify-bundle",
            str(_dump(tmp_path / "a.json", first)),
            "--log-key",
            log.public_key,
            "--trusted-checkpoint",
            str(trusted),
            "--save-trusted",
        ],
    )
    assert saved.exit_code == 0, saved.output
    assert trusted.read_text().split("\n")[1] == "7"

    record_cases(app, 2)
    later = _dump(tmp_path / "b.json", log.case_bundle(case.case_id))
    grown = runner.invoke(
        cli,
        [
            "verify-bundle",
            str(later),
            "--log-key",
            log.public_key,
            "--trusted-checkpoint",
            str(trusted),
        ],
    )
    assert grown.exit_code == 0, grown.output
    assert "consistent with the trusted checkpoint of size 7" in grown.stdout

    forged = Checkpoint(log.origin, 7, bytes(32), ("chain-head " + "A" * 43 + "=",))
    trusted.write_text(sign_note(forged.body(), log.signer))  # a rewritten history, same key
    refused = runner.invoke(
        cli,
        [
            "verify-bundle",
            str(later),
            "--log-key",
            log.public_key,
            "--trusted-checkpoint",
            str(trusted),
        ],
    )
    assert refused.exit_code == 1 and "NOT consistent with the trusted checkpoint" in refused.stdout

    bundle = json.loads(later.read_text())
    bundle["consistency"] = []
    report = verify_bundle(
        bundle, log.public_key, trusted_checkpoint=first["checkpoint"], **SHIPPED_TABLES
    )
    assert not report.ok and "--since 7" in report.problems[0][1]


def test_province_bundle_lets_anyone_recompute_the_per_agency_counts(
    pg_container: Any, pg_settings: Any, tmp_path: Path
) -> None:
    app = pg_container.referrals
    lsn = record_cases(app, 2)
    later = CaseScript(start=T0 + timedelta(days=10))
    for wire in later.full_history():
        app.record_event(wire)
    vlg = CaseScript(holder=VLG_POLICE)
    app.record_event(vlg.notification())
    app.record_event(vlg.request())

    out = tmp_path / "province.json"
    exported = CliRunner().invoke(
        _cli(),
        [
            "export-bundle",
            "--province",
            "LSN",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-05",
            "-o",
            str(out),
        ],
        env=cli_env(pg_settings),
    )
    assert exported.exit_code == 0, exported.output
    bundle = json.loads(out.read_text(encoding="utf-8"))
    expected: dict[tuple[str, str], int] = {}
    for script in lsn:
        for event in app.case_history(script.case_id):
            key = (event.agency_id, event.WIRE_TYPE)
            expected[key] = expected.get(key, 0) + 1
    figures = bundle["figures"]
    assert {(i["agency_id"], i["type"]): i["events"] for i in figures["by_agency_and_type"]} == (
        expected
    )
    assert (figures["events"], figures["cases"]) == (14, 2)

    key = transparency_log(pg_container).public_key
    report = verify_bundle(bundle, key, **SHIPPED_TABLES)
    assert report.ok, report.problems
    assert report.figures == figures
    bundle["figures"]["by_agency"][0]["events"] += 1  # a report that does not add up
    report = verify_bundle(bundle, key, **SHIPPED_TABLES)
    assert not report.ok and "DIFFER" in report.problems[0][1]


def _dump(path: Path, bundle: dict[str, Any]) -> Path:
    path.write_text(json.dumps(bundle), encoding="utf-8")
    return path


def test_verify_bundle_reports_a_registration_forged_after_closure(
    pg_container: Any, tmp_path: Path
) -> None:
    # issue 13 item 7: an event written past the rules (straight into the store) is in the
    # signed log, so every proof checks; the verifier must still name it
    from domain.referral import EVENT_CLASSES

    app = pg_container.referrals
    [case] = record_cases(app, 1)
    referral = app.get_case(case.case_id)
    later = case.at + timedelta(hours=2)
    referral.trigger_event(
        EVENT_CLASSES["COUNSEL_REGISTERED"],
        case_id=case.case_id,
        event_id=f"{case.case_id}-forged",
        agency_id=case.holder,
        occurred_at=later,
        data={"documents_complete_at": later.isoformat()},
        content_digest="0" * 64,
        identity_ciphertext=None,
    )
    app.save(referral)
    log = transparency_log(pg_container)
    bundle = log.case_bundle(case.case_id)
    forged = json.loads(bundle["leaves"][-1]["leaf"])
    assert forged["event_id"] == f"{case.case_id}-forged"

    report = verify_bundle(bundle, log.public_key, **SHIPPED_TABLES)
    assert report.leaves_checked == 8  # every proof is fine ...
    assert not report.ok  # ... but the ledger's rules would have refused the last event
    assert report.figures["status"] == "CLOSED" and report.figures["events"] == 8
    [problem] = report.problems
    assert (
        f"the event at position {forged['position']} (case {case.case_id}, event "
        f"{case.case_id}-forged, version 8, COUNSEL_REGISTERED) would have been refused "
        "by the ledger's own rules: CASE_CLOSED"
    ) in problem[1]
    assert "lẽ ra bị sổ từ chối" in problem[0]
    on_law_clock = verify_bundle(bundle, log.public_key, clock="occurred", **SHIPPED_TABLES)
    assert not on_law_clock.ok and on_law_clock.problems == report.problems
    assert on_law_clock.figures["status"] == "CLOSED"

    out = _offline(
        tmp_path,
        "verify-bundle",
        str(_dump(tmp_path / "f.json", bundle)),
        "--log-key",
        log.public_key,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "trạng thái / status CLOSED" in out.stdout
    assert "KẾT QUẢ: KHÔNG HỢP LỆ / RESULT: INVALID" in out.stdout


def test_verify_bundle_recomputes_the_case_as_it_happened_at_an_instant(
    pg_container: Any, tmp_path: Path
) -> None:
    # issue 13 item 1: `--clock occurred` recomputes the case as it happened by `--at` (every
    # fact in the bundle that occurred by then), not as the ledger knew it then (recorded by
    # then: here nothing, the whole history was entered months after it happened)
    app = pg_container.referrals
    [case] = record_cases(app, 1)  # occurred from T0, an hour apart; recorded now
    log = transparency_log(pg_container)
    bundle = log.case_bundle(case.case_id)
    at = T0 + timedelta(minutes=90)  # after the request, before the transfer

    happened = verify_bundle(bundle, log.public_key, at=at, clock="occurred", **SHIPPED_TABLES)
    assert happened.ok, happened.problems
    assert happened.figures["status"] == "REQUESTED" and happened.figures["events"] == 2
    assert happened.figures["clock"] == "occurred"
    transfer = [v for v in happened.figures["time_limits"] if v["rule_id"].startswith("C1_")]
    assert transfer and all(v["status"] == "running" for v in transfer)

    known = verify_bundle(bundle, log.public_key, at=at, **SHIPPED_TABLES)
    assert known.ok and known.figures["status"] is None and known.figures["events"] == 0
    assert "clock" not in known.figures  # as known: the figures the ledger exports, unchanged

    # the default instant is the bundle's as_of: every fact, the case as it ended
    whole = verify_bundle(bundle, log.public_key, clock="occurred", **SHIPPED_TABLES)
    assert whole.ok and whole.figures["status"] == "CLOSED" and whole.figures["events"] == 7

    path = _dump(tmp_path / "c.json", bundle)
    out = _offline(
        tmp_path,
        "verify-bundle",
        str(path),
        "--log-key",
        log.public_key,
        "--at",
        at.isoformat(),
        "--clock",
        "occurred",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 sự kiện / events, trạng thái / status REQUESTED" in out.stdout
    assert "như đã xảy ra / as it happened" in out.stdout
    bad = _offline(
        tmp_path, "verify-bundle", str(path), "--log-key", log.public_key, "--clock", "tomorrow"
    )
    assert bad.returncode == 2, bad.stdout + bad.stderr
