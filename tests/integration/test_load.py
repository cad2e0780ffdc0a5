"""`referrals load`: a file of wire events is recorded exactly once, bad lines are reported with
their line number and reason, and nothing is half-recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from infra.cli.core import load_events, read_jsonl
from infra.sample_data import generate_events

pytestmark = pytest.mark.postgres


def _write_file(path: Path, reference, cases: int, seed: int = 7) -> tuple[int, dict[int, str]]:  # type: ignore[no-untyped-def]
    """Writes generated events plus known-bad lines; returns (valid count, {line: code})."""
    now = datetime.now(timezone.utc)
    events = list(
        generate_events(seed, cases, reference, now - timedelta(days=800), now - timedelta(hours=1))
    )
    bad: dict[int, str] = {}
    lines: list[str] = []
    for index, event in enumerate(events):
        lines.append(json.dumps(event, ensure_ascii=False))
        if index % 997 == 5:
            lines.append('{"event_id": "broken-json", ')
            bad[len(lines)] = "FIELD_INVALID"
        if index % 1499 == 7:
            wrong = dict(event, event_id=f"bad-type-{index}", type="AID_TELEPORTED")
            lines.append(json.dumps(wrong, ensure_ascii=False))
            bad[len(lines)] = "EVENT_TYPE_UNKNOWN"
        if index % 1999 == 11:
            naive = dict(event, event_id=f"naive-{index}", occurred_at=event["occurred_at"][:19])
            lines.append(json.dumps(naive, ensure_ascii=False))
            bad[len(lines)] = "TIMESTAMP_WITHOUT_OFFSET"
    lines.append(
        json.dumps(
            {
                "event_id": "orphan-1",
                "case_id": "NO-SUCH-CASE",
                "type": "AID_ASSIGNED",
                "agency_id": "lsn-centre",
                "occurred_at": "2026-01-05T10:00:00+07:00",
                "data": {
                    "provider_id": "x-1",
                    "provider_type": "LEGAL_AID_OFFICER",
                    "aid_form": "DEFENCE",
                },
            }
        )
    )
    # ADR 0008: a first arriving event that is not an opening is held, not refused; this one
    # is refused because its case id is not of the poster's province (it may not park facts
    # under another numbering; was FIRST_EVENT_NOT_OPENING)
    bad[len(lines)] = "CASE_ID_OTHER_PROVINCE"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(events), bad


def test_ten_thousand_events_are_recorded_once_and_bad_lines_reported(pg_container, tmp_path):
    path = tmp_path / "events.jsonl"
    valid, bad = _write_file(path, pg_container.reference, cases=1300)
    assert valid >= 10_000
    report = load_events(pg_container, read_jsonl(path), total=None)
    assert report.recorded == valid
    assert report.duplicates == 0
    assert {line: error["code"] for line, _, error in report.rejected} == bad
    assert all(error["message"] and error["field"] for _, _, error in report.rejected)
    assert pg_container.referrals.recorder.max_notification_id() == valid

    again = load_events(pg_container, read_jsonl(path), total=None)
    assert (again.recorded, again.duplicates, len(again.rejected)) == (0, valid, len(bad))
    assert pg_container.referrals.recorder.max_notification_id() == valid


def test_load_command_reports_line_and_reason_when_run_as_a_process(pg_settings, tmp_path):
    from infra.reference_data import load_reference

    path = tmp_path / "small.jsonl"
    valid, bad = _write_file(path, load_reference(), cases=60, seed=3)
    env = {
        **os.environ,
        "REFERRALS_STORE": "postgres",
        "REFERRALS_PG_HOST": pg_settings.pg_host,
        "REFERRALS_PG_PORT": str(pg_settings.pg_port),
        "REFERRALS_PG_USER": pg_settings.pg_user,
        "REFERRALS_PG_DBNAME": pg_settings.pg_dbname,
        "REFERRALS_PG_SCHEMA": pg_settings.pg_schema,
        "REFERRALS_DATA_DIR": str(tmp_path / "var"),
    }
    command = [
        sys.executable,
        "-c",
        "from infra.cli import main; main()",
        "load",
        str(path),
        "--report-file",
        str(tmp_path / "rejected.jsonl"),
    ]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert first.returncode == 1, first.stderr  # some lines were rejected
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary == {"recorded": valid, "duplicates": 0, "rejected": len(bad)}
    for line_number in bad:
        assert f"dòng {line_number} " in first.stdout
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert {r["line"]: r["code"] for r in rejected} == bad

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary == {"recorded": 0, "duplicates": valid, "rejected": len(bad)}
