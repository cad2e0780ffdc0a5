"""A tampered event store is named, not served silently: `referrals verify` accounts for every
row of the events table (a forged row outside the log's ids fails it), the case bundle answers
a stable LOG_INTEGRITY_FAILED code, history flags the case, and the CLIs that read files answer
bad input with one line and exit code 2."""

from __future__ import annotations

from typing import Any

import pytest

from infra.settings import Settings
from infra.transparency.service import transparency_log
from infra.transparency.verify import verify_log
from tests.integration.test_audit_trail import record_cases, sql

pytestmark = pytest.mark.postgres


def _verify(container: Any) -> Any:
    log = transparency_log(container)
    log.catch_up()
    return verify_log(container.referrals, log.view, log.signer.verifier())


def _forge_next_version(settings: Settings, case_id: str, notification_id: int) -> None:
    """Copies the case's last event as its next version under the given notification id."""
    sql(settings, "INSERT INTO referrals_events (originator_id, originator_version, topic, "
                  "state, notification_id) SELECT originator_id, originator_version + 1, topic, "
                  "state, %s FROM referrals_events WHERE convert_from(state, 'UTF8') LIKE %s "
                  "ORDER BY originator_version DESC LIMIT 1",
        (notification_id, f'%"case_id":"{case_id}"%'))


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
    sql(pg_settings, "INSERT INTO referrals_events (originator_id, originator_version, topic, "
                     "state) SELECT originator_id, 40, topic, state FROM referrals_events "
                     "WHERE convert_from(state, 'UTF8') LIKE %s ORDER BY originator_version "
                     "DESC LIMIT 1", (f'%"case_id":"{cases[0].case_id}"%',))
    report = _verify(pg_container)
    assert not report.ok
    assert report.finding.case_id == cases[0].case_id and report.finding.version == 40
