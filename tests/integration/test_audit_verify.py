"""`referrals verify` against a real PostgreSQL store that someone with database access edited:
it names the first event altered, removed or inserted, and passes on an untouched store."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from infra.cli.transparency import register
from infra.settings import Settings
from infra.transparency.service import transparency_log
from services.transparency.verify import verify_log
from tests.integration.test_audit_trail import (
    burn_notification_ids,
    cli_env,
    record_cases,
    sql,
)

pytestmark = pytest.mark.postgres


def _verify(container: Any) -> Any:
    log = transparency_log(container)
    log.catch_up()
    return verify_log(container.referrals, log.view, log.signer.verifier())


def _prepared(container: Any, cases: int = 3) -> tuple[Any, list[Any]]:
    """Records cases, applies them to the audit trail and signs a checkpoint of the whole log."""
    scripts = record_cases(container.referrals, cases)
    log = transparency_log(container)
    log.catch_up()
    log.publish_checkpoint()
    return log, scripts


def _position(settings: Settings, case_id: str, event_no: int) -> int:
    [(position,)] = sql(
        settings,
        "SELECT notification_id FROM referrals_events WHERE convert_from(state, 'UTF8') LIKE %s",
        (f'%"event_id":"{case_id}-{event_no:03d}"%',),
    )
    return int(position)


def test_verify_passes_on_an_untouched_store_and_after_a_persons_erasure(
    pg_container: Any,
) -> None:
    app = pg_container.referrals
    [case] = record_cases(app, 1, identity=True)
    record_cases(app, 1)
    report = _verify(pg_container)
    assert report.ok and report.events_checked == 14
    transparency_log(pg_container).publish_checkpoint()
    assert app.erase_person(case.person_id, "REQUEST_OF_PERSON", "PDPL 2025 Điều 14", "admin")
    assert app.reveal_identity(case.case_id)["erased"] is True
    report = _verify(pg_container)
    assert report.ok, report.finding
    assert report.events_checked == 16 and report.checkpoints_checked == 1


@pytest.mark.parametrize("edit", ["value", "byte"])
def test_verify_names_the_altered_event_when_one_stored_event_is_edited(
    pg_container: Any, pg_settings: Settings, edit: str
) -> None:
    _, cases = _prepared(pg_container)
    position = _position(pg_settings, cases[1].case_id, 1)
    if edit == "value":
        sql(
            pg_settings,
            "UPDATE referrals_events SET state = convert_to(replace(convert_from("
            "state, 'UTF8'), '\"POOR_HOUSEHOLD\"', '\"HIV\"'), 'UTF8') "
            "WHERE notification_id = %s",
            (position,),
        )
    else:
        sql(
            pg_settings,
            "UPDATE referrals_events SET state = set_byte(state, 0, 91) WHERE notification_id = %s",
            (position,),
        )
    report = _verify(pg_container)
    finding = report.finding
    assert finding is not None and finding.kind == "ALTERED"
    assert (finding.position, finding.case_id, finding.event_id) == (
        position,
        cases[1].case_id,
        f"{cases[1].case_id}-001",
    )
    assert report.events_checked == 7  # the first case is fine; the second's first event is not
    for text in (str(position), cases[1].case_id, f"{cases[1].case_id}-001"):
        assert text in finding.message_vi and text in finding.message_en
    assert finding.message_vi.startswith("BỊ SỬA") and finding.message_en.startswith("ALTERED")


def test_verify_names_the_removed_event_when_the_newest_events_are_deleted(
    pg_container: Any, pg_settings: Settings
) -> None:
    _, cases = _prepared(pg_container)
    last = cases[-1]
    first_removed = _position(pg_settings, last.case_id, 6)
    sql(pg_settings, "DELETE FROM referrals_events WHERE notification_id >= %s", (first_removed,))

    finding = _verify(pg_container).finding
    assert finding is not None and finding.kind == "REMOVED"
    assert (finding.position, finding.case_id, finding.version) == (first_removed, last.case_id, 6)

    # the operator also rebuilds the audit trail from the shortened store: the signed
    # checkpoint still says the log was longer
    pg_container.projections.rebuild(names=["audit_trail"])
    finding = _verify(pg_container).finding
    assert finding is not None and finding.kind == "REMOVED"
    assert finding.leaf_index == 19 and "21" in finding.message_en


def test_verify_names_the_inserted_event_when_a_row_is_slipped_into_a_gap(
    pg_container: Any, pg_settings: Settings
) -> None:
    _, cases = _prepared(pg_container, cases=1)
    burn_notification_ids(pg_settings, 3)
    record_cases(pg_container.referrals, 1)
    transparency_log(pg_container).catch_up()
    [(top,)] = sql(pg_settings, "SELECT max(notification_id) FROM referrals_events")
    gap = 9  # ids 8..10 were burnt; the second case starts at 11
    assert not sql(pg_settings, "SELECT 1 FROM referrals_events WHERE notification_id = %s", (gap,))
    copied = _position(pg_settings, cases[0].case_id, 7)
    sql(
        pg_settings,
        "INSERT INTO referrals_events (originator_id, originator_version, topic, "
        "state, notification_id) SELECT originator_id, 8, topic, state, %s "
        "FROM referrals_events WHERE notification_id = %s",
        (gap, copied),
    )
    report = _verify(pg_container)
    finding = report.finding
    assert top > gap and finding is not None and finding.kind == "INSERTED"
    assert (finding.position, finding.case_id, finding.version) == (gap, cases[0].case_id, 8)
    assert finding.message_vi.startswith("BỊ CHÈN") and str(gap) in finding.message_en


def test_verify_catches_a_rewrite_after_the_audit_trail_is_rebuilt_from_the_altered_store(
    pg_container: Any, pg_settings: Settings
) -> None:
    _, cases = _prepared(pg_container)
    position = _position(pg_settings, cases[2].case_id, 3)
    sql(
        pg_settings,
        "UPDATE referrals_events SET state = convert_to(replace(convert_from("
        "state, 'UTF8'), 'lsn-centre', 'vlg-centre'), 'UTF8') "
        "WHERE notification_id = %s",
        (position,),
    )
    pg_container.projections.rebuild(names=["audit_trail"])
    finding = _verify(pg_container).finding
    assert finding is not None and finding.kind == "CHECKPOINT"
    assert "[0, 21)" in finding.message_en


def test_verify_fails_with_a_bilingual_message_when_run_as_a_cli_process(
    pg_container: Any, pg_settings: Settings
) -> None:
    _, cases = _prepared(pg_container, cases=2)
    cli = typer.Typer()
    register(cli)
    passed = CliRunner().invoke(cli, ["verify"], env=cli_env(pg_settings))
    assert passed.exit_code == 0, passed.output
    assert "HỢP LỆ: 14 sự kiện" in passed.stdout and "OK: 14 events" in passed.stdout

    position = _position(pg_settings, cases[0].case_id, 2)
    sql(
        pg_settings,
        "UPDATE referrals_events SET state = convert_to(replace(convert_from("
        "state, 'UTF8'), 'lsn-police-investigation', 'lsn-procuracy'), 'UTF8') "
        "WHERE notification_id = %s",
        (position,),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFERRALS_")}
    env.update(cli_env(pg_settings))
    done = subprocess.run(
        [sys.executable, "-m", "infra.cli", "verify"],
        env=env,
        cwd=pg_settings.data_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    vi, en = done.stdout.strip().splitlines()[-2:]
    expected = (
        f"vị trí {position}, vụ việc {cases[0].case_id}, phiên bản 2, "
        f"mã sự kiện {cases[0].case_id}-002"
    )
    assert vi.startswith("BỊ SỬA: " + expected)
    assert en.startswith(
        f"ALTERED: position {position}, case {cases[0].case_id}, version 2, "
        f"event id {cases[0].case_id}-002"
    )
