"""Personal data: encrypted per person in the log, erasable by key destruction, rotatable."""

from __future__ import annotations

import base64
import json
import os

import psycopg
import pytest

from domain.errors import RuleViolationError
from infra.bootstrap import build_container
from tests.conftest import make_pg_settings
from tests.factories import CaseScript

NAME = "Nguyễn Thị Hồng Nhung"
ID_NUMBER = "079301004455"

pytestmark = pytest.mark.postgres


def _raw_event_bytes(settings) -> bytes:  # type: ignore[no-untyped-def]
    with psycopg.connect(settings.pg_conninfo()) as conn:
        rows = conn.execute("SELECT state FROM referrals_events").fetchall()
    return b"".join(bytes(r[0]) for r in rows)


def _record_person(app, case: CaseScript) -> None:  # type: ignore[no-untyped-def]
    app.record_event(
        case.notification()
        | {
            "identity": {
                "full_name": NAME,
                "date_of_birth": "1991-04-30",
                "id_number": ID_NUMBER,
                "address": "Số 5, phường Đông Kinh, Lạng Sơn",
                "phone": "0912345678",
            }
        }
    )
    app.record_event(case.request())
    app.record_event(case.transfer())


def test_clear_identity_never_reaches_the_events_table(pg_container, pg_settings):
    case = CaseScript()
    _record_person(pg_container.referrals, case)
    raw = _raw_event_bytes(pg_settings)
    assert len(raw) > 0
    for needle in (NAME, ID_NUMBER, "0912345678", "1991-04-30", "Đông Kinh"):
        for encoding in (
            needle.encode(),
            json.dumps(needle).encode(),
            needle.encode("unicode_escape"),
        ):
            assert encoding not in raw, needle
    revealed = pg_container.referrals.reveal_identity(case.case_id)
    assert revealed["identity"]["full_name"] == NAME
    state = pg_container.referrals.get_case(case.case_id)
    assert state.person["age_band"] == "18_TO_UNDER_60"  # derived, non-identifying


def test_erasure_makes_identity_unreadable_and_keeps_the_log_intact(pg_container, pg_settings):
    app = pg_container.referrals
    case = CaseScript()
    _record_person(app, case)
    before = _raw_event_bytes(pg_settings)
    history_before = [
        (e.event_id, e.content_digest, e.identity_ciphertext)
        for e in app.case_history(case.case_id)
    ]

    assert (
        app.erase_person(case.person_id, "REQUEST_OF_PERSON", "PDPL 2025 Art. 14", "admin-1")
        is True
    )
    revealed = app.reveal_identity(case.case_id)
    assert revealed == {"person_id": case.person_id, "erased": True, "identity": None}
    history_after = [
        (e.event_id, e.content_digest, e.identity_ciphertext)
        for e in app.case_history(case.case_id)
    ]
    assert history_after == history_before  # the log itself is untouched
    assert _raw_event_bytes(pg_settings).startswith(before)  # only the erasure event appended
    record = app.person_record(case.person_id)
    assert record.erased and record.erasure["reason"] == "REQUEST_OF_PERSON"
    assert NAME.encode() not in _raw_event_bytes(pg_settings)

    # the case goes on without identity; new identity for the erased person is refused
    app.record_event(case.accept())
    with pytest.raises(RuleViolationError) as error:
        app.record_event(
            case.event(
                "AID_ASSIGNED",
                agency="lsn-centre",
                data={
                    "provider_id": "p1",
                    "provider_type": "LEGAL_AID_OFFICER",
                    "aid_form": "DEFENCE",
                },
                identity={"full_name": NAME},
            )
        )
    assert error.value.code == "PERSON_ERASED"
    with psycopg.connect(pg_settings.pg_conninfo()) as conn:
        row = conn.execute(
            "SELECT wrapped_key, erased_at FROM person_data_keys WHERE person_id = %s",
            (case.person_id,),
        ).fetchone()
    assert row[0] is None and row[1] is not None


def test_identity_survives_master_key_rotation(pg_database, pg_schema, tmp_path):
    old = base64.b64encode(os.urandom(32)).decode()
    new = base64.b64encode(os.urandom(32)).decode()
    first = make_pg_settings(
        pg_database,
        pg_schema,
        tmp_path,
        master_keys=json.dumps({"2026-a": old}),
        active_master_key_id="2026-a",
    )
    container = build_container(first)
    case = CaseScript()
    try:
        _record_person(container.referrals, case)
    finally:
        container.close()
    rotated = make_pg_settings(
        pg_database,
        pg_schema,
        tmp_path,
        master_keys=json.dumps({"2026-a": old, "2026-b": new}),
        active_master_key_id="2026-b",
    )
    container = build_container(rotated)
    try:
        assert container.vault.rotate() == 1
        assert container.vault.rotate() == 0
    finally:
        container.close()
    only_new = make_pg_settings(
        pg_database,
        pg_schema,
        tmp_path,
        master_keys=json.dumps({"2026-b": new}),
        active_master_key_id="2026-b",
    )
    container = build_container(only_new)
    try:
        assert container.referrals.reveal_identity(case.case_id)["identity"]["full_name"] == NAME
    finally:
        container.close()


def test_ciphertext_cannot_be_replayed_into_another_event(pg_container):
    app = pg_container.referrals
    case = CaseScript()
    _record_person(app, case)
    first = app.case_history(case.case_id)[0]
    with pytest.raises(ValueError, match="authenticate"):
        app.vault.open(case.person_id, first.identity_ciphertext, case.case_id, "other-event")


def test_access_log_filters_provinces_before_the_limit(pg_container):
    from datetime import datetime, timezone

    from services.personal_data import AccessLogEntry

    store = pg_container.vault.store
    at = datetime.now(timezone.utc)
    store.log_access(
        AccessLogEntry(at, "insp-lsn", "inspector", None, "p-1", "LSN-1", "kiểm tra", "LSN")
    )
    for n in range(3):  # newer reads of another province's cases
        store.log_access(
            AccessLogEntry(
                at, "insp-vlg", "inspector", None, f"p-{n + 2}", f"VLG-{n}", "kiểm tra", "VLG"
            )
        )
    assert [e.case_id for e in store.access_log(limit=1, provinces={"LSN"})] == ["LSN-1"]
    assert store.access_log(limit=10, provinces=set()) == []
    assert len(store.access_log(limit=10)) == 4
