"""Least exposure across the whole system: clear identity never reaches the events table, any
projection table or a report file; erasing a person changes no figure and breaks no hash; every
report names the signed checkpoint it was computed from."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timedelta, timezone

import psycopg
import pytest

from infra.sample_data import generate_events
from infra.transparency.service import transparency_log
from projections.reports import (
    build_report,
    report_chart_png,
    report_csv_bytes,
    report_xlsx_bytes,
)
from services.transparency.checkpoint import open_checkpoint
from services.transparency.note import verifier_from_key_text
from services.transparency.verify import verify_log as _verify_log
from tests.factories import CaseScript

pytestmark = pytest.mark.postgres

NAME = "Hoàng Thị Thu Trang"
ID_NUMBER = "001199012345"
NEEDLES = (NAME, ID_NUMBER, "0987654321", "Bản Mạch, xã Đồng Đăng")


def _variants(text: str) -> list[bytes]:
    return [
        text.encode(),
        json.dumps(text).encode(),
        text.encode("utf-16-le"),
        text.encode("unicode_escape"),
    ]


def _all_table_bytes(settings, exclude: tuple[str, ...]) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """Every table of the test schema, dumped as text, except those named."""
    out = {}
    with psycopg.connect(settings.pg_conninfo()) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (settings.pg_schema,),
            ).fetchall()
        ]
        for table in tables:
            if table in exclude:
                continue
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            out[table] = repr(rows).encode() + b"".join(
                bytes(v) for r in rows for v in r if isinstance(v, (bytes, memoryview))
            )
    return out


def verify_log(container):  # type: ignore[no-untyped-def]
    log = transparency_log(container)
    log.catch_up()
    return _verify_log(container.referrals, log.view, log.signer.verifier())


def _figures(container) -> tuple:  # type: ignore[no-untyped-def]
    report = build_report(
        container,
        "LSN",
        date(2024, 1, 1),
        date(2026, 12, 31),
        now=datetime(2026, 11, 1, tzinfo=timezone.utc),
    )
    agencies = [(a.agency_id, sorted(a.counts.items())) for a in report.agencies]
    compliance = [
        (c.rule_id, c.agency_id, c.met, c.missed, c.running, c.cancelled) for c in report.compliance
    ]
    return agencies, compliance


def test_identity_stays_out_of_views_and_reports_and_erasure_changes_no_figure(
    pg_container, pg_settings
):
    app = pg_container.referrals
    now = datetime.now(timezone.utc)
    events = list(
        generate_events(
            11,
            60,
            pg_container.reference,
            now - timedelta(days=600),
            now - timedelta(days=1),
            provinces=["LSN"],
            identity_ratio=1.0,
        )
    )
    results = app.record_batch(events)
    assert all(getattr(r, "duplicate", None) is False for r in results)
    case = CaseScript()
    app.record_event(
        case.notification()
        | {
            "identity": {
                "full_name": NAME,
                "id_number": ID_NUMBER,
                "phone": "0987654321",
                "address": "Bản Mạch, xã Đồng Đăng",
                "date_of_birth": "1990-01-12",
            }
        }
    )
    for wire in case.full_history()[1:]:
        app.record_event(wire)
    # issue 17: a custody register's contact names the person; never told of the right
    held = CaseScript(holder="lsn-holding-1")
    app.record_event(
        held.contact(role="TEMPORARILY_DETAINED", category="UNDETERMINED")
        | {
            "identity": {
                "full_name": NAME,
                "id_number": ID_NUMBER,
                "phone": "0987654321",
                "address": "Bản Mạch, xã Đồng Đăng",
            }
        }
    )
    held.at += timedelta(hours=2)
    app.record_event(held.notification(role="TEMPORARILY_DETAINED"))
    pg_container.projections.process_pending()
    pg_container.projections.catch_up(timeout=30)

    tables = _all_table_bytes(pg_settings, exclude=("person_data_keys",))
    assert {"referrals_events", "case_index", "agency_counts", "audit_trail"} <= set(tables)
    report = build_report(pg_container, "LSN", date(2024, 1, 1), date(2026, 12, 31))
    files = {
        "xlsx": report_xlsx_bytes(report),
        "csv-agencies": report_csv_bytes(report, "agencies"),
        "csv-compliance": report_csv_bytes(report, "compliance"),
        "png": report_chart_png(report, "police"),
        "csv-contacts": report_csv_bytes(report, "contacts"),
        "csv-never-notified": report_csv_bytes(report, "never_notified"),
        "png-notified": report_chart_png(report, "notified"),
    }
    assert any(c.contacts for c in report.contacts)  # the contacts are in the figures
    for needle in NEEDLES:
        for variant in _variants(needle):
            for name, raw in {**tables, **files}.items():
                assert variant not in raw, f"{needle!r} found in {name}"

    before = _figures(pg_container)
    assert verify_log(pg_container).ok
    app.erase_person(case.person_id, "REQUEST_OF_PERSON", "PDPL 2025", "admin-1")
    for event in events[:200]:
        pid = event["data"].get("person_id")
        if pid and event.get("identity"):
            app.erase_person(pid, "RETENTION_EXPIRED", "test", "retention-job")
    pg_container.projections.process_pending()
    pg_container.projections.catch_up(timeout=30)
    assert _figures(pg_container) == before  # statistics never used identifying data
    assert app.reveal_identity(case.case_id)["erased"] is True
    assert verify_log(pg_container).ok  # hashes cover the ciphertext, which is untouched


def test_report_is_bound_to_a_signed_checkpoint_that_verifies(pg_container):
    app = pg_container.referrals
    for wire in CaseScript().full_history():
        app.record_event(wire)
    pg_container.projections.process_pending()
    pg_container.projections.catch_up(timeout=30)
    report = build_report(pg_container, "LSN", date(2026, 1, 1), date(2026, 10, 31))
    checkpoint = report.checkpoint
    assert checkpoint is not None and checkpoint["size"] == 7
    log = transparency_log(pg_container)
    opened = open_checkpoint(checkpoint["note"], verifier_from_key_text(log.public_key))
    assert opened.size == 7
    assert base64.b64encode(opened.root_hash).decode() == checkpoint["root"]
    assert report.checkpoint_vi in report_csv_bytes(report).decode("utf-8-sig")
