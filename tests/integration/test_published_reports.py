"""Issues 13 (item 4) and 14: a published council report regenerates byte for byte from the
checkpoint it names, after late entries and a reference correction; "as corrected now" lists
the figures that moved and the late entries and publications that moved them."""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from infra.bootstrap import Container, build_container
from infra.cli.projections import register as register_projections
from infra.http.app import create_app
from infra.settings import Settings
from projections.reports import build_report, report_xlsx_bytes
from tests.integration import test_reference_versions
from tests.integration.test_audit_trail import cli_env
from tests.integration.test_projections import at, ev, person
from tests.integration.test_reference_versions import CASE_AUG, CASE_MAR, SOURCE_22_8

previous_files = test_reference_versions.previous_files  # the files before the correction

AUG, MAR, LATE = "LSN-T-AUG", "LSN-T-MAR", "LSN-T-LATE"
# recorded after the publication, but occurred in the period (a clerk's late entries)
LATE_CASE = [
    ev(
        "LATE",
        1,
        "NOTIFICATION_ISSUED",
        "lsn-police",
        "2026-04-06 08:00",
        {**person("C", "WITNESS"), "trigger": "STATEMENT"},
    ),
    ev("LATE", 2, "AID_REQUESTED", "lsn-police", "2026-04-06 09:00", {"request_form": "written"}),
]
MAR_REGISTERED = ev(
    "MAR",
    6,
    "COUNSEL_REGISTERED",
    "lsn-police",
    "2026-03-06 10:00",
    {"documents_complete_at": at("2026-03-06 08:00")},
)


def _record(container: Container, events: list[dict[str, Any]]) -> None:
    for event in events:
        container.referrals.record_event(event)
    container.projections.process_pending()


def _correct_calendar(container: Container) -> None:
    """The 2026 make-up Saturday (22/8) published as holidays/2026 v2 (issue 14)."""
    content = dict(container.reference_state.refs.latest("holidays/2026").content)
    content["extra_working_days"] = ["2026-01-10", "2026-08-22"]
    container.reference_state.publish(
        "holidays/2026",
        content,
        effective_from=None,
        effective_to=None,
        source=SOURCE_22_8,
        published_by="admin:test",
    )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _moved(difference: dict[str, Any]) -> dict[tuple[str, ...], dict[str, Any]]:
    return {tuple(m["key"]): m for m in difference["moved"]}


@pytest.fixture
def pg(pg_database: str, pg_schema: str, tmp_path: Path, previous_files: Path) -> Settings:
    from tests.conftest import make_pg_settings

    return make_pg_settings(
        pg_database,
        pg_schema,
        tmp_path / "data",
        reference_data_dir=previous_files,
        reference_poll_seconds=0,
    )


@pytest.fixture
def ledger(pg: Settings) -> Iterator[Container]:
    container = build_container(pg)
    yield container
    container.close()


@pytest.mark.postgres
def test_a_published_report_regenerates_byte_identical_after_late_entries_and_a_correction(
    ledger: Container,
) -> None:
    _record(ledger, [*CASE_AUG, *CASE_MAR])
    client = TestClient(create_app(ledger))
    token, _ = ledger.tokens.create("council", "Hội đồng Lạng Sơn", provinces=["LSN"])
    headers = {"Authorization": f"Bearer {token}"}
    inspector, _ = ledger.tokens.create("inspector", "Thanh tra", provinces=["LSN"])
    refused = client.post(
        "/v1/reports/LSN/published?year=2026", headers={"Authorization": f"Bearer {inspector}"}
    )
    assert refused.status_code == 403 and refused.json()["code"] == "NOT_AUTHORISED"

    answer = client.post("/v1/reports/LSN/published?year=2026&period=full-year", headers=headers)
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert record["checkpoint"]["size"] == len(CASE_AUG) + len(CASE_MAR)
    assert "holidays/2026@1" in record["reference_labels"]
    assert set(record["sha256"]) == {
        "xlsx",
        "json",
        "csv:agencies",
        "csv:compliance",
        "csv:cases",
        "csv:overdue",
        "csv:contacts",
        "csv:never_notified",
        "csv:timeliness",
    }
    url = f"/v1/reports/LSN/published/{record['id']}"
    published_xlsx = client.get(f"{url}?format=xlsx", headers=headers)
    assert published_xlsx.status_code == 200
    assert _sha(published_xlsx.content) == record["sha256"]["xlsx"]
    time.sleep(1.1)  # a second later: every date a writer would stamp has changed

    # late entries in the period, and the calendar correction (C3 of AUG: met -> missed)
    _record(ledger, [*LATE_CASE, MAR_REGISTERED])
    _correct_calendar(ledger)
    live = build_report(ledger, "LSN", date(2026, 1, 1), date(2026, 12, 31))
    assert live.checkpoint["size"] == record["checkpoint"]["size"] + 3

    # as published: byte for byte, every output
    summary = client.get(url, headers=headers).json()
    assert summary["reproduced"] is True, summary["outputs"]
    assert all(o["identical"] for o in summary["outputs"].values())
    again = client.get(f"{url}?format=xlsx", headers=headers)
    assert again.content == published_xlsx.content
    core = zipfile.ZipFile(io.BytesIO(again.content)).read("docProps/core.xml").decode()
    assert record["generated_at"][:19] + "Z" in core  # dated by the report, not the writer
    csv_c3 = client.get(f"{url}?format=csv&table=compliance", headers=headers)
    assert _sha(csv_c3.content) == record["sha256"]["csv:compliance"]
    assert csv_c3.headers["X-Published-SHA256"] == record["sha256"]["csv:compliance"]

    # as corrected now: the figures that moved, and what moved them
    corrected = client.get(f"{url}?as=corrected", headers=headers).json()
    difference = corrected["difference"]
    moved = _moved(difference)
    c3_met = moved[("compliance", "C3", "lsn-centre", "met")]
    c3_missed = moved[("compliance", "C3", "lsn-centre", "missed")]
    assert (c3_met["published"], c3_met["corrected"], c3_met["cases_out"]) == (2, 1, [AUG])
    assert (c3_missed["published"], c3_missed["corrected"], c3_missed["cases_in"]) == (0, 1, [AUG])
    assert moved[("compliance", "C3", "lsn-centre", "late")]["cases_in"] == [AUG]
    assert c3_missed["reference_publications"] == ["holidays/2026@2"]
    assert c3_missed["late_entries"] == []
    late = {(e["case_id"], e["version"]): e for e in difference["late_entries"]}
    assert set(late) == {(LATE, 1), (LATE, 2), (MAR, 6)}
    notified = moved[("agencies", "lsn-police", "NOTIFICATION_ISSUED")]
    assert (notified["published"], notified["corrected"]) == (2, 3)
    assert notified["late_entries"] == [late[(LATE, 1)]["position"]]
    registered = moved[("agencies", "lsn-police", "COUNSEL_REGISTERED")]
    assert (registered["published"], registered["corrected"]) == (0, 1)
    assert registered["late_entries"] == [late[(MAR, 6)]["position"]]
    c4 = moved[("compliance", "C4_CRIMINAL", "lsn-police", "met")]
    assert c4["cases_in"] == [MAR] and c4["late_entries"] == [late[(MAR, 6)]["position"]]
    assert [p["label"] for p in difference["reference_publications"]] == ["holidays/2026@2"]
    assert difference["published_checkpoint"]["size"] == record["checkpoint"]["size"]
    assert difference["corrected_checkpoint"]["size"] == live.checkpoint["size"]
    corrected_xlsx = client.get(f"{url}?as=corrected&format=xlsx", headers=headers)
    assert _sha(corrected_xlsx.content) != record["sha256"]["xlsx"]

    # the publications are listed; an unknown id is a 404 naming it
    listed = client.get("/v1/reports/LSN/published", headers=headers).json()
    assert [r["id"] for r in listed["rows"]] == [record["id"]]
    missing = client.get("/v1/reports/LSN/published/lsn-nothing", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "PUBLISHED_REPORT_NOT_FOUND"


def _cli() -> typer.Typer:
    cli = typer.Typer()
    register_projections(cli)
    return cli


def test_the_cli_publishes_and_regenerates_byte_identical_on_sqlite(
    tmp_path: Path,
    previous_files: Path,
) -> None:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",  # type: ignore[call-arg]
        reference_data_dir=previous_files,
        reference_poll_seconds=0,
    )
    container = build_container(settings)
    try:
        _record(container, [*CASE_AUG, *CASE_MAR])
    finally:
        container.close()
    env = {**cli_env(settings), "REFERRALS_REFERENCE_DATA_DIR": str(previous_files)}
    runner = CliRunner()
    first = runner.invoke(
        _cli(),
        [
            "report",
            "--province",
            "LSN",
            "--year",
            "2026",
            "--format",
            "xlsx,csv",
            "--output",
            str(tmp_path / "first"),
            "--publish",
            "--by",
            "council:lsn",
        ],
        env=env,
    )
    assert first.exit_code == 0, first.output
    record = json.loads(first.stdout.strip().splitlines()[-1])["published"]
    time.sleep(1.1)
    container = build_container(settings)
    try:
        _record(container, LATE_CASE)
        _correct_calendar(container)
    finally:
        container.close()
    again = runner.invoke(
        _cli(),
        [
            "report",
            "regenerate",
            "--province",
            "LSN",
            "--checkpoint",
            str(record["checkpoint"]["size"]),
            "--output",
            str(tmp_path / "again"),
        ],
        env=env,
    )
    assert again.exit_code == 0, again.output
    answer = json.loads(again.stdout.strip().splitlines()[-1])
    assert answer["reproduced"] is True
    originals = sorted((tmp_path / "first").iterdir())
    assert [p.suffix for p in originals].count(".csv") == 7  # issue 13: timeliness
    for original in originals:  # the files written at publication, byte for byte
        assert (tmp_path / "again" / original.name).read_bytes() == original.read_bytes()
    corrected = runner.invoke(
        _cli(),
        [
            "report",
            "regenerate",
            "--province",
            "LSN",
            "--id",
            record["id"],
            "--as",
            "corrected",
            "--output",
            str(tmp_path / "corrected"),
        ],
        env=env,
    )
    assert corrected.exit_code == 0, corrected.output
    moved = _moved(json.loads(corrected.stdout.strip().splitlines()[-1])["difference"])
    assert moved[("compliance", "C3", "lsn-centre", "missed")]["reference_publications"] == [
        "holidays/2026@2"
    ]
    assert moved[("agencies", "lsn-police", "NOTIFICATION_ISSUED")]["corrected"] == 3


def test_the_xlsx_is_dated_by_the_report_not_by_the_writer(sqlite_container: Container) -> None:
    report = build_report(sqlite_container, "LSN", date(2026, 1, 1), date(2026, 12, 31))
    first = report_xlsx_bytes(report)
    time.sleep(2.1)  # zip entry times have a 2-second resolution
    assert report_xlsx_bytes(report) == first
