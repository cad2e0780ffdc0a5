"""Issue 16: a store written by the code before it still verifies with today's code.

The archive `tests/fixtures/store-before-issue-16.tar.gz` was written by commit a3a35e6 (the
code before issue 16's branch was merged: one Ed25519 signature per receipt, the views decoded
per view, the openpyxl workbook); `tests/fixtures/make_store_before_issue_16.py` says how. Today's
code must leave its stored bytes as they are, verify the log and both bundles exported then
(printing what that code printed), keep every receipt it gave verifiable offline, and add new
events (with one-signature batch receipts) that verify beside the old ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from infra.bootstrap import build_container
from infra.cli.transparency import register
from infra.settings import Settings
from infra.transparency.service import receipts_for, transparency_log
from services.transparency.receipt import BATCH_RECEIPT_HEADER, RECEIPT_HEADER
from tests.factories import CaseScript

ROOT = Path(__file__).resolve().parents[2]
ARCHIVE = ROOT / "tests" / "fixtures" / "store-before-issue-16.tar.gz"
EVENTS_THEN = 219


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    with tarfile.open(ARCHIVE) as archive:
        archive.extractall(tmp_path, filter="data")
    os.chmod(tmp_path / "data", 0o700)
    return tmp_path


def _cli(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFERRALS_")}
    env.update(REFERRALS_DATA_DIR=str(store / "data"), PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _stored_rows_digest(store: Path, up_to: int = EVENTS_THEN) -> str:
    """SHA-256 over every stored event row the old code wrote (ids, topics, state bytes)."""
    connection = sqlite3.connect(store / "data" / "ledger.sqlite")
    try:
        rows = connection.execute(
            "SELECT rowid, originator_id, originator_version, topic, state "
            "FROM stored_events WHERE rowid <= ? ORDER BY rowid",
            (up_to,),
        ).fetchall()
    finally:
        connection.close()
    assert len(rows) == up_to
    digest = hashlib.sha256()
    for row in rows:
        digest.update(repr(row).encode())
    return digest.hexdigest()


def _receipts(store: Path) -> list[dict[str, Any]]:
    """Every (case, version, receipt) the old code answered over HTTP, single and batch."""
    answers = json.loads((store / "receipts.json").read_text(encoding="utf-8"))
    items = [i for a in answers for i in (a["items"] if "items" in a else [a])]
    assert len(items) == 20 and all(i["receipt"] for i in items)
    return items


def _verify_receipt(tmp: Path, receipt: str, answer: dict[str, Any], key: str) -> Any:
    (tmp / "receipt.txt").write_text(receipt, encoding="utf-8")
    (tmp / "inclusion.json").write_text(json.dumps(answer), encoding="utf-8")
    cli = typer.Typer()
    register(cli)
    return CliRunner().invoke(
        cli,
        [
            "verify-receipt",
            str(tmp / "receipt.txt"),
            "--log-key",
            key,
            "--proof",
            str(tmp / "inclusion.json"),
        ],
    )


def test_the_old_store_and_its_bundles_verify_as_they_did_and_no_stored_byte_changes(
    old_store: Path,
) -> None:
    before = _stored_rows_digest(old_store)
    verified = _cli(old_store, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"OK: {EVENTS_THEN} events and 1 signed checkpoints match" in verified.stdout
    key = (old_store / "log-public-key.txt").read_text().strip()
    for name in ("case-bundle", "province-bundle"):
        today = _cli(old_store, "verify-bundle", str(old_store / f"{name}.json"), "--log-key", key)
        assert today.returncode == 0, today.stdout + today.stderr
        assert "RESULT: VALID" in today.stdout
        # the offline verifier of today prints what the verifier of then printed
        assert today.stdout == (old_store / f"{name}.verified.txt").read_text(), name
    rebuilt = _cli(old_store, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert _stored_rows_digest(old_store) == before


def test_every_old_receipt_still_verifies_and_new_batch_receipts_verify_beside_them(
    old_store: Path, tmp_path: Path
) -> None:
    before = _stored_rows_digest(old_store)
    old = _receipts(old_store)
    assert all(i["receipt"].startswith(RECEIPT_HEADER + "\n") for i in old)  # one signature each
    container = build_container(
        Settings(_env_file=None, data_dir=old_store / "data")  # type: ignore[call-arg]
    )
    try:
        cases = [CaseScript() for _ in range(3)]
        new = receipts_for(
            container, container.referrals.record_batch([c.notification() for c in cases])
        )
        assert all(r.startswith(BATCH_RECEIPT_HEADER + "\n") for r in new)
        log = transparency_log(container)
        log.catch_up()
        log.fresh_checkpoint()
        key = log.public_key
        assert key == (old_store / "log-public-key.txt").read_text().strip()
        checks = [(i["case_id"], i["version"], i["receipt"]) for i in old]
        checks += [(c.case_id, 1, r) for c, r in zip(cases, new, strict=True)]
        for case_id, version, receipt in checks:
            answer = log.inclusion(case_id, version)
            checked = _verify_receipt(tmp_path, receipt, answer, key)
            assert checked.exit_code == 0 and "VALID: event" in checked.stdout, checked.output
        # a receipt opened against another event's place in the log does not verify
        wrong = dict(log.inclusion(old[1]["case_id"], old[1]["version"]))
        checked = _verify_receipt(tmp_path, old[0]["receipt"], wrong, key)
        assert checked.exit_code != 0 and "INVALID" in checked.stdout, checked.output
    finally:
        container.close()
    verified = _cli(old_store, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"OK: {EVENTS_THEN + 3} events and 2 signed checkpoints match" in verified.stdout
    assert _stored_rows_digest(old_store) == before
