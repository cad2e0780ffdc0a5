"""The read-model routes (infra/http/routes/reports.py) over the hand-built cases of
test_projections.py: council and inspector scope, report formats, statistics, status."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from infra.bootstrap import Container
from tests.integration.test_projections import interleaved, record

pytestmark = pytest.mark.postgres


@pytest.fixture
def client(pg_container: Container) -> Iterator[tuple[TestClient, dict[str, str]]]:
    from infra.http.app import create_app
    from infra.http.routes.reports import router

    record(pg_container, interleaved())
    pg_container.projections.process_pending()
    app = create_app(pg_container)
    if not any(getattr(r, "path", "") == "/v1/projections/status" for r in app.routes):
        app.include_router(router)
    tokens = {
        "council": pg_container.tokens.create("council", "Hội đồng LSN", provinces=["LSN"])[0],
        "other": pg_container.tokens.create("council", "Hội đồng VLG", provinces=["VLG"])[0],
        "agency": pg_container.tokens.create("agency", "Công an", agency_id="lsn-police")[0],
        "admin": pg_container.tokens.create("admin", "Quản trị")[0],
    }
    with TestClient(app) as test_client:
        yield test_client, {k: f"Bearer {v}" for k, v in tokens.items()}


def test_council_reads_its_province_report_as_xlsx_csv_png_and_json(client) -> None:  # type: ignore[no-untyped-def]
    from openpyxl import load_workbook

    http, auth = client
    headers = {"Authorization": auth["council"]}
    xlsx = http.get("/v1/reports/LSN?year=2026&period=full-year", headers=headers)
    assert xlsx.status_code == 200, xlsx.text
    assert "Theo cơ quan" in load_workbook(io.BytesIO(xlsx.content)).sheetnames
    csv = http.get(
        "/v1/reports/LSN?from=2025-01-01&to=2025-12-31&format=csv&table=compliance", headers=headers
    )
    assert csv.status_code == 200
    assert "C3_IMMEDIATE,Cử ngay người thực hiện" in csv.content.decode("utf-8-sig")
    png = http.get("/v1/reports/LSN?year=2026&format=png&kind=legal_aid_centre", headers=headers)
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    body = http.get("/v1/reports/LSN?year=2026&period=jan-oct&format=json", headers=headers)
    police = next(r for r in body.json()["tables"]["agencies"]["rows"] if r[0] == "lsn-police")
    assert police[-1] == 7


def test_statistics_routes_answer_for_the_principal_province(client) -> None:  # type: ignore[no-untyped-def]
    http, auth = client
    headers = {"Authorization": auth["council"]}
    counts = http.get(
        "/v1/stats/agency-counts?from=2026-01-01&to=2026-12-31&group_by=event_type", headers=headers
    ).json()
    assert counts["province"] == "LSN"
    assert {r["event_type"]: r["n"] for r in counts["rows"]}["REQUEST_TRANSFERRED"] == 3
    compliance = http.get(
        "/v1/stats/compliance?from=2025-01-01&to=2025-12-31", headers=headers
    ).json()
    assert [(r["rule_id"], r["met"], r["missed"]) for r in compliance["rows"]] == [
        ("C1_24H", 1, 0),
        ("C3_IMMEDIATE", 0, 1),
    ]  # a victim's notice: LAL Art. 31(3)
    overdue = http.get("/v1/stats/overdue", headers=headers).json()
    assert {r["case_id"] for r in overdue["rows"]} == {"LSN-T-B", "LSN-T-D"}
    status = http.get("/v1/projections/status", headers={"Authorization": auth["admin"]})
    assert status.status_code == 200
    assert {p["name"]: p["lag"] for p in status.json()["projections"]}["case_index"] == 0


def test_other_provinces_agencies_and_anonymous_callers_are_refused(client) -> None:  # type: ignore[no-untyped-def]
    http, auth = client
    assert (
        http.get("/v1/reports/LSN?year=2026", headers={"Authorization": auth["other"]}).status_code
        == 403
    )
    assert (
        http.get("/v1/stats/compliance", headers={"Authorization": auth["agency"]}).status_code
        == 403
    )
    assert http.get("/v1/stats/overdue").status_code == 401
    bad = http.get(
        "/v1/stats/agency-counts?group_by=person_id", headers={"Authorization": auth["council"]}
    )
    assert bad.status_code == 422
