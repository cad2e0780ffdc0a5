"""Issue 14: reference data as recorded, versioned, signed facts — the shipped files become
version 1 at first start; a calendar correction published through the CLI and an agency-register
change through the API move exactly the verdicts they touch; bundles carry the versions their
verdicts used and verify offline with them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from infra.bootstrap import Container, build_container
from infra.cli.reference import register as register_reference
from infra.cli.transparency import register as register_transparency
from infra.http.app import create_app
from infra.reference_data import SHIPPED
from infra.settings import Settings
from infra.transparency.service import transparency_log
from tests.conftest import make_pg_settings
from tests.integration.test_audit_trail import cli_env
from tests.integration.test_projections import ev, person, vn
from tests.integration.test_transparency_bundle import _offline

SOURCE_22_8 = (
    "Government Office notice on the 2026 National Day holiday: Monday 31/8/2026 "
    "swapped for Saturday 22/8/2026 (worked), as reported on 13/10/2025"
)


def _cli() -> typer.Typer:
    cli = typer.Typer()
    register_reference(cli)
    register_transparency(cli)
    return cli


@pytest.fixture
def previous_files(tmp_path: Path) -> Path:
    """The shipped files as they were before issue 20: 2026 without the make-up Saturday."""
    folder = tmp_path / "reference"
    shutil.copytree(SHIPPED, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    holidays = json.loads((folder / "holidays.json").read_text(encoding="utf-8"))
    holidays["years"]["2026"]["extra_working_days"].remove("2026-08-22")
    (folder / "holidays.json").write_text(
        json.dumps(holidays, ensure_ascii=False), encoding="utf-8"
    )
    return folder


@pytest.fixture
def settings(pg_database: str, pg_schema: str, tmp_path: Path, previous_files: Path) -> Settings:
    return make_pg_settings(
        pg_database,
        pg_schema,
        tmp_path,
        reference_data_dir=previous_files,
        reference_poll_seconds=0,
    )


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Container]:
    container = build_container(settings)
    yield container
    container.close()


def _env(settings: Settings) -> dict[str, str]:
    return {**cli_env(settings), "REFERRALS_REFERENCE_DATA_DIR": str(settings.reference_data_dir)}


# The held-out history of issue 14: notice Fri 21/8/2026 20:41, assignment Wed 26/8/2026 20:01.
CASE_AUG = [
    ev(
        "AUG",
        1,
        "NOTIFICATION_ISSUED",
        "lsn-police",
        "2026-08-21 08:00",
        {**person("A", "WITNESS"), "trigger": "STATEMENT"},
    ),
    ev("AUG", 2, "AID_REQUESTED", "lsn-police", "2026-08-21 09:00", {"request_form": "written"}),
    ev(
        "AUG",
        3,
        "REQUEST_TRANSFERRED",
        "lsn-police",
        "2026-08-21 20:41",
        {"centre_id": "lsn-centre"},
    ),
    ev("AUG", 4, "REQUEST_ACCEPTED", "lsn-centre", "2026-08-24 09:00", {"immediate": False}),
    ev(
        "AUG",
        5,
        "AID_ASSIGNED",
        "lsn-centre",
        "2026-08-26 20:01",
        {"provider_id": "tgv-lsn-001", "provider_type": "LEGAL_AID_OFFICER", "aid_form": "DEFENCE"},
    ),
]
# A control case of the same year whose C3 spans no corrected day: judged with 2026, unmoved.
CASE_MAR = [
    ev(
        "MAR",
        1,
        "NOTIFICATION_ISSUED",
        "lsn-police",
        "2026-03-02 08:00",
        {**person("B", "WITNESS"), "trigger": "STATEMENT"},
    ),
    ev("MAR", 2, "AID_REQUESTED", "lsn-police", "2026-03-02 09:00", {"request_form": "written"}),
    ev(
        "MAR",
        3,
        "REQUEST_TRANSFERRED",
        "lsn-police",
        "2026-03-02 10:00",
        {"centre_id": "lsn-centre"},
    ),
    ev("MAR", 4, "REQUEST_ACCEPTED", "lsn-centre", "2026-03-03 09:00", {"immediate": False}),
    ev(
        "MAR",
        5,
        "AID_ASSIGNED",
        "lsn-centre",
        "2026-03-05 10:00",
        {"provider_id": "tgv-lsn-001", "provider_type": "LEGAL_AID_OFFICER", "aid_form": "DEFENCE"},
    ),
]
# A 2025 case: its verdicts read the 2025 calendar only, never touched by a 2026 correction.
CASE_2025 = [
    ev(
        "Y25",
        1,
        "NOTIFICATION_ISSUED",
        "lsn-police",
        "2025-11-03 09:00",
        {**person("C", "WITNESS"), "trigger": "STATEMENT"},
    ),
    ev("Y25", 2, "AID_REQUESTED", "lsn-police", "2025-11-03 10:00", {}),
    ev(
        "Y25",
        3,
        "REQUEST_TRANSFERRED",
        "lsn-police",
        "2025-11-03 20:00",
        {"centre_id": "lsn-centre"},
    ),
    ev("Y25", 4, "REQUEST_ACCEPTED", "lsn-centre", "2025-11-04 09:00", {}),
    ev(
        "Y25",
        5,
        "AID_ASSIGNED",
        "lsn-centre",
        "2025-11-07 10:00",
        {
            "provider_id": "tgv-lsn-002",
            "provider_type": "CONTRACTED_LAWYER",
            "aid_form": "PROTECTION",
        },
    ),
]


def _record(container: Container, *cases: list[dict[str, Any]]) -> None:
    for events in cases:
        for event in events:
            container.referrals.record_event(event)
    container.projections.process_pending()


def _verdicts(container: Container, case_id: str) -> dict[str, dict[str, Any]]:
    return {v["rule_id"]: v for v in container.projections.compliance.verdicts(case_id)}


def _events_in_case_log(container: Container) -> int:
    return container.referrals.recorder.max_notification_id() or 0


@pytest.mark.postgres
def test_shipped_files_become_version_1_once_and_stay_out_of_the_case_log(
    settings: Settings,
) -> None:
    first = build_container(settings)
    second = build_container(settings)  # a second process starting on the same store
    try:
        refs = second.reference_state.refs
        assert len(refs.records) == len(refs.refs())  # one version each, recorded once
        assert {r.version for r in refs.records} == {1}
        assert "holidays/2026" in refs.refs() and "agencies" in refs.refs()
        record = refs.latest("holidays/2026")
        assert record.published_by == "system:shipped-files"
        assert "2026-08-22" not in record.content["extra_working_days"]
        assert record.signed_note.startswith("legal-aid-ledger reference/v1\nref holidays/2026")
        assert _events_in_case_log(first) == 0  # reference versions are not case events
        # and the case log's own inserts still land in the case table (one and several events)
        first.referrals.record_event(CASE_AUG[0])
        first.referrals.record_batch(CASE_AUG[1:3])
        assert _events_in_case_log(first) == 3
        assert {r.version for r in first.reference_state.app.load().records} == {1}
    finally:
        second.close()
        first.close()


@pytest.mark.postgres
def test_a_calendar_correction_and_a_register_change_move_only_the_verdicts_they_touch(
    ledger: Container,
    settings: Settings,
    tmp_path: Path,
) -> None:
    _record(ledger, CASE_AUG, CASE_MAR, CASE_2025)
    case_events = _events_in_case_log(ledger)
    aug, mar, y25 = "LSN-T-AUG", "LSN-T-MAR", "LSN-T-Y25"
    before = {c: _verdicts(ledger, c) for c in (aug, mar, y25)}
    c3 = before[aug]["C3"]
    assert (c3["status"], c3["deadline"]) == ("met", vn("2026-08-27 00:00"))
    assert c3["basis"] == ["time_limits@1", "holidays/2026@1"]
    assert before[y25]["C3"]["basis"] == ["time_limits@1", "holidays/2025@1"]
    admin_token, admin = ledger.tokens.create("admin", "Quản trị Sở Tư pháp")
    runner = CliRunner()

    # a bundle exported BEFORE the correction: judged with version 1 (C3 met)
    old_bundle = tmp_path / "aug-v1.json"
    exported = runner.invoke(
        _cli(), ["export-bundle", aug, "-o", str(old_bundle)], env=_env(settings)
    )
    assert exported.exit_code == 0, exported.output

    # 1. the calendar correction, through the CLI, by an admin principal
    corrected = dict(ledger.reference_state.refs.latest("holidays/2026").content)
    corrected["extra_working_days"] = ["2026-01-10", "2026-08-22"]
    publication = tmp_path / "holidays-2026.json"
    publication.write_text(
        json.dumps(
            {"ref": "holidays/2026", "content": corrected, "source": SOURCE_22_8},
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    refused = runner.invoke(
        _cli(),
        ["reference", "publish", str(publication), "--by", "agency:someone"],
        env=_env(settings),
    )
    assert refused.exit_code == 1 and "NOT_AUTHORISED" in refused.output
    published = runner.invoke(
        _cli(),
        ["reference", "publish", str(publication), "--by", admin.principal.principal_id],
        env=_env(settings),
    )
    assert published.exit_code == 0, published.output
    answer = json.loads(published.stdout)
    assert answer["published"]["ref"] == "holidays/2026"
    assert answer["published"]["version"] == 2
    assert [
        (m["case_id"], m["rule_id"], m["status_before"], m["status_after"]) for m in answer["moved"]
    ] == [(aug, "C3", "met", "missed")]

    # this process picks the new version up without a restart
    after = {c: _verdicts(ledger, c) for c in (aug, mar, y25)}
    assert after[aug]["C3"]["status"] == "missed"
    assert after[aug]["C3"]["deadline"] == vn("2026-08-26 00:00")
    assert after[aug]["C3"]["basis"] == ["time_limits@1", "holidays/2026@2"]
    for case in (mar, y25):  # the right verdicts moved, and only those
        assert {r: (v["status"], v["deadline"]) for r, v in after[case].items()} == {
            r: (v["status"], v["deadline"]) for r, v in before[case].items()
        }
    assert after[y25]["C3"]["basis"] == ["time_limits@1", "holidays/2025@1"]

    # the move is recorded per report period, with why
    moved = ledger.projections.compliance.moved("LSN", 2026)
    assert [
        (m["case_id"], m["rule_id"], m["periods"], m["published"], m["reason"]) for m in moved
    ] == [(aug, "C3", ["jan-oct", "full-year"], "holidays/2026@2", SOURCE_22_8)]
    assert ledger.projections.compliance.moved("LSN", 2025) == []
    from projections.reports import build_report

    named = build_report(ledger, "LSN", date(2026, 1, 1), date(2026, 12, 31)).reference_versions
    v2_sha = ledger.reference_state.refs.latest("holidays/2026").sha256
    assert named["holidays/2026"] == f"v2 sha256:{v2_sha[:16]}"

    # the case time-limits API names the versions (with their hashes)
    client = TestClient(create_app(ledger))
    headers = {"Authorization": f"Bearer {admin_token}"}
    inspector_token, _ = ledger.tokens.create("inspector", "Thanh tra", provinces=["LSN"])
    answer = client.get(
        f"/v1/cases/{aug}/time-limits", headers={"Authorization": f"Bearer {inspector_token}"}
    ).json()
    c3_api = next(v for v in answer["time_limits"] if v["rule_id"] == "C3")
    v2 = ledger.reference_state.refs.latest("holidays/2026")
    assert c3_api["status"] == "missed"
    assert {"ref": "holidays/2026", "version": 2, "sha256": v2.sha256} in c3_api["basis"]

    # 2. an agency-register change through the API (admin only): a new police unit from 1/12
    register = dict(ledger.reference_state.refs.latest("agencies").content)
    register["items"] = [
        *register["items"],
        {
            "agency_id": "lsn-police-commune-9",
            "name_vi": "Công an xã Tân Thanh, tỉnh Lạng Sơn",
            "kind": "police",
            "level": "commune",
            "province": "LSN",
            "valid_from": "2026-12-01",
        },
    ]
    body = {
        "ref": "agencies",
        "content": register,
        "source": "Quyết định thành lập Công an xã Tân Thanh (test fixture)",
    }
    denied = client.post(
        "/v1/reference/publish", json=body, headers={"Authorization": f"Bearer {inspector_token}"}
    )
    assert denied.status_code == 403 and denied.json()["code"] == "NOT_AUTHORISED"
    # an agency still holding an open case may not be removed
    removing = {
        **body,
        "content": {
            **register,
            "items": [a for a in register["items"] if a["agency_id"] != "lsn-centre"],
        },
    }
    held = client.post("/v1/reference/publish", json=removing, headers=headers)
    assert held.status_code == 422, held.text
    assert (held.json()["code"], held.json()["field"]) == ("REFERENCE_AGENCY_STILL_HELD", "items")
    ok = client.post("/v1/reference/publish", json=body, headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["published"]["version"] == 2 and ok.json()["moved"] == []
    again = client.post("/v1/reference/publish", json=body, headers=headers)
    assert again.json()["code"] == "REFERENCE_UNCHANGED"
    # the new agency is known at once: an event naming it is accepted, no restart
    ledger.referrals.record_event(
        ev(
            "NEW",
            1,
            "NOTIFICATION_ISSUED",
            "lsn-police-commune-9",
            "2026-12-01 08:00",
            {**person("D", "WITNESS"), "trigger": "STATEMENT"},
        )
    )
    listing = client.get("/v1/reference/versions", headers=headers).json()
    assert {d["ref"]: d["version"] for d in listing["documents"]}["agencies"] == 2
    history = client.get(
        "/v1/reference/versions/history", params={"ref": "holidays/2026"}, headers=headers
    ).json()["versions"]
    assert [(v["version"], v["source"]) for v in history][1] == (2, SOURCE_22_8)
    assert _events_in_case_log(ledger) == case_events + 1  # only the new case event

    # 3. bundles carry the versions; an inspector re-judges offline with them
    key = transparency_log(ledger).public_key
    new_bundle = tmp_path / "aug-v2.json"
    exported = runner.invoke(
        _cli(), ["export-bundle", aug, "-o", str(new_bundle)], env=_env(settings)
    )
    assert exported.exit_code == 0, exported.output
    bundle = json.loads(new_bundle.read_text(encoding="utf-8"))
    assert {(d["ref"], d["version"]) for d in bundle["reference"]} == {
        ("time_limits", 1),
        ("holidays/2026", 2),
    }
    checked = _offline(tmp_path, "verify-bundle", str(new_bundle), "--log-key", key)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "C3 (v3): missed" in checked.stdout and "holidays/2026@2" in checked.stdout
    # the old bundle still verifies with ITS version (the installed files say 22/8 is worked)
    checked = _offline(tmp_path, "verify-bundle", str(old_bundle), "--log-key", key)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "C3 (v3): met" in checked.stdout and "holidays/2026@1" in checked.stdout
    # a document altered in the bundle is caught
    bundle["reference"][0]["content"]["extra_working_days"] = ["2026-01-10"]
    new_bundle.write_text(json.dumps(bundle), encoding="utf-8")
    checked = _offline(tmp_path, "verify-bundle", str(new_bundle), "--log-key", key)
    assert checked.returncode == 1
    assert "reference versions do not verify" in checked.stdout


@pytest.mark.postgres
def test_a_publication_is_refused_with_a_stable_code_when_it_breaks_a_rule(
    ledger: Container,
) -> None:
    from domain.errors import DomainError

    state = ledger.reference_state
    categories = state.refs.latest("categories").content
    cases = [
        ("holidays/26", {"holidays": []}, "REFERENCE_KEY_INVALID", "key"),
        ("calendars", {}, "REFERENCE_KIND_UNKNOWN", "kind"),
        (
            "holidays/2027",
            {"holidays": ["2026-01-01"], "verified": False},
            "REFERENCE_CONTENT_INVALID",
            "content",
        ),
        (
            "categories",
            {**categories, "items": categories["items"][1:]},
            "REFERENCE_CATEGORY_REMOVED",
            "items",
        ),
        (
            "categories",
            {
                **categories,
                "items": [
                    {**categories["items"][0], "valid_to": "2020-01-01"},
                    *categories["items"][1:],
                ],
            },
            "REFERENCE_CATEGORY_RETROACTIVE",
            "valid_to",
        ),
    ]
    for ref, content, code, field in cases:
        with pytest.raises(DomainError) as raised:
            state.publish(
                ref,
                content,
                effective_from=None,
                effective_to=None,
                source="x",
                published_by="admin:test",
            )
        assert (raised.value.code, raised.value.field) == (code, field), ref
        assert raised.value.message_vi and raised.value.message_en
    with pytest.raises(DomainError) as raised:
        state.publish(
            "holidays/2026",
            {},
            effective_from=None,
            effective_to=None,
            source=" ",
            published_by="admin:test",
        )
    assert raised.value.code == "REFERENCE_SOURCE_REQUIRED"
    assert len(state.refs.records) == len(state.refs.refs())  # nothing was recorded


@pytest.mark.postgres
def test_the_web_page_and_the_cli_list_every_version_with_its_source(
    ledger: Container,
    settings: Settings,
) -> None:
    from infra.web.deps import SESSION_COOKIE

    state = ledger.reference_state
    corrected = dict(state.refs.latest("holidays/2026").content)
    corrected["extra_working_days"] = ["2026-01-10", "2026-08-22"]
    state.publish(
        "holidays/2026",
        corrected,
        effective_from=None,
        effective_to=None,
        source=SOURCE_22_8,
        published_by="admin:doj",
    )
    app = create_app(ledger)
    client = TestClient(app)
    store = app.state.web_accounts
    account = store.create_account(
        "thanhtra.lsn", "mat-khau-dai-du-12", "inspector", "Thanh tra", provinces=["LSN"]
    )
    session_id, _ = store.open_session(account)
    client.cookies.set(SESSION_COOKIE, session_id)
    page = client.get("/web/reference", params={"ref": "holidays/2026"})
    assert page.status_code == 200, page.text
    assert SOURCE_22_8 in page.text and "admin:doj" in page.text
    assert page.text.count("<tr>") == 3  # the header and the two versions
    runner = CliRunner()
    diff = runner.invoke(_cli(), ["reference", "diff", "holidays/2026"], env=_env(settings))
    assert diff.exit_code == 0, diff.output
    assert '+    "2026-08-22"' in diff.stdout and "holidays/2026@1" in diff.stdout
    history = runner.invoke(_cli(), ["reference", "history", "holidays/2026"], env=_env(settings))
    assert history.exit_code == 0, history.output
    assert "holidays/2026@2" in history.stdout and SOURCE_22_8 in history.stdout
    shown = runner.invoke(
        _cli(), ["reference", "show", "--as-of", "2026-08-21"], env=_env(settings)
    )
    assert shown.exit_code == 0, shown.output
    assert "holidays/2026" in shown.stdout and "v2" in shown.stdout


def test_reference_versions_stay_out_of_the_case_log_on_sqlite(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    container = build_container(settings)
    try:
        assert container.reference_state.refs.latest("holidays/2026").version == 1
        assert _events_in_case_log(container) == 0
        assert (tmp_path / "reference-versions.sqlite").exists()
    finally:
        container.close()
    again = build_container(settings)  # a restart records nothing twice
    try:
        assert {r.version for r in again.reference_state.refs.records} == {1}
    finally:
        again.close()
