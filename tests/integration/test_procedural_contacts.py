"""Procedural contacts and rule C2 over a real PostgreSQL (issue 17): the case's time limits,
the overdue list, the council's report (XLSX, CSV, PNG, JSON), the inspection pack, and the
ways contacts arrive (HTTP, `referrals load` of a custody register).

The cases (province LSN; Vietnam time). Rule C2: 24 h from the contact (assumption A21).
K1 police arrest, Mon 2/3/2026 08:00, POOR_HOUSEHOLD; never told: missed from Tue 3/3 08:00.
K2 police arrest 08:00; told Tue 3/3 14:00 (30 h): late.
K3 police arrest 08:00, category UNDETERMINED; not eligible Wed 4/3 09:00: not applicable.
K4 police arrest 08:00; told 10:00: in time.
K5 temporary holding in the detention facility lsn-holding-1, 09:00, DISABLED with financial
   hardship; never told: missed, charged to the facility.
"""

from __future__ import annotations

import io
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from domain.calendar import VIETNAM_TZ
from infra.bootstrap import Container
from infra.cli.core import load_events, read_jsonl
from infra.web.inspection import build_pack
from projections.reports import (
    build_report,
    report_chart_png,
    report_csv_bytes,
    report_xlsx_bytes,
)
from tests.integration.kafka_support import (
    FILTER_KAFKA_WARNINGS,
    count_events,
    produce,
    wait_for,
)
from tests.integration.test_kafka_ingest import (  # noqa: F401 - fixtures
    RunningWorker,
    container,
    ingest_settings,
    message,
    worker,
)

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=VIETNAM_TZ)
PERIOD = (date(2026, 3, 1), date(2026, 3, 31))


def at(text: str) -> str:
    return datetime.fromisoformat(text).replace(tzinfo=VIETNAM_TZ).isoformat()


def person(n: int) -> str:
    return f"{n:08d}-0000-4000-8000-00000000c0de"


def contact(
    case: str,
    agency: str,
    when: str,
    role: str = "ARRESTED",
    category: str = "POOR_HOUSEHOLD",
    **more: Any,
) -> dict[str, Any]:
    return {
        "event_id": f"LSN-T-{case}-01",
        "case_id": f"LSN-T-{case}",
        "type": "PROCEDURAL_CONTACT",
        "agency_id": agency,
        "occurred_at": at(when),
        "data": {
            "person_id": person(int(case[1:])),
            "proceedings_kind": "criminal",
            "procedural_role": role,
            "stage": "INVESTIGATION",
            "eligible_category": category,
            **more,
        },
    }


def then(
    case: str, n: int, wire_type: str, agency: str, when: str, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_id": f"LSN-T-{case}-{n:02d}",
        "case_id": f"LSN-T-{case}",
        "type": wire_type,
        "agency_id": agency,
        "occurred_at": at(when),
        "data": data,
    }


EVENTS = [
    contact("K1", "lsn-police", "2026-03-02 08:00"),
    contact("K2", "lsn-police", "2026-03-02 08:00"),
    then("K2", 2, "NOTIFICATION_ISSUED", "lsn-police", "2026-03-03 14:00", {"form": "MAU_01"}),
    contact("K3", "lsn-police", "2026-03-02 08:00", category="UNDETERMINED"),
    then(
        "K3",
        2,
        "NOT_ELIGIBLE_DETERMINED",
        "lsn-police",
        "2026-03-04 09:00",
        {"reason": "NO_CATEGORY", "article": "Luật TGPL 2017 Điều 7"},
    ),
    contact("K4", "lsn-police", "2026-03-02 08:00"),
    then("K4", 2, "NOTIFICATION_ISSUED", "lsn-police", "2026-03-02 10:00", {"form": "MAU_01"}),
    contact(
        "K5",
        "lsn-holding-1",
        "2026-03-02 09:00",
        role="TEMPORARILY_DETAINED",
        category="DISABLED",
        financial_hardship=True,
        register_ref="STG/41",
    ),
]


@pytest.fixture
def ledger(pg_container: Container) -> Container:
    for event in EVENTS:
        pg_container.referrals.record_event(event)
    pg_container.projections.process_pending()
    return pg_container


def _c2(ledger: Container, case_id: str) -> dict[str, Any]:
    [verdict] = [
        v for v in ledger.projections.compliance.verdicts(case_id, now=NOW) if v["rule_id"] == "C2"
    ]
    return verdict


def test_never_notified_contact_is_missed_in_the_case_time_limits_and_the_overdue_list(
    ledger: Container,
) -> None:
    [verdict] = [
        v
        for v in ledger.referrals.time_limits("LSN-T-K1", at=datetime.now(VIETNAM_TZ))
        if v.rule_id == "C2"
    ]
    assert (verdict.status, verdict.outstanding) == ("missed", True)
    assert verdict.deadline == datetime(2026, 3, 3, 8, 0, tzinfo=VIETNAM_TZ)
    assert _c2(ledger, "LSN-T-K1")["status"] == "missed"
    overdue = [
        (r["case_id"], r["responsible_agency_id"])
        for r in ledger.projections.compliance.overdue("LSN", now=NOW)
        if r["rule_id"] == "C2"
    ]
    assert overdue == [("LSN-T-K1", "lsn-police"), ("LSN-T-K5", "lsn-holding-1")]


def test_case_index_shows_contact_cases_as_the_aggregate_does(ledger: Container) -> None:
    index = ledger.projections.case_index
    for case_id in ("LSN-T-K1", "LSN-T-K2", "LSN-T-K3"):
        row = index.get(case_id)
        state = ledger.referrals.get_case(case_id)
        assert row["status"] == state.status
        assert row["eligible_category"] == state.person.get("eligible_category")
    assert index.get("LSN-T-K1")["status"] == "CONTACT"
    assert index.get("LSN-T-K3")["eligible_category"] is None  # found not eligible


def test_late_notification_is_late_and_not_eligible_is_not_applicable(ledger: Container) -> None:
    assert (_c2(ledger, "LSN-T-K2")["status"], _c2(ledger, "LSN-T-K2")["target_version"]) == (
        "missed",
        2,
    )
    assert _c2(ledger, "LSN-T-K3")["status"] == "cancelled"
    assert _c2(ledger, "LSN-T-K4")["status"] == "met"


def test_report_counts_contacts_per_agency_in_every_format(ledger: Container) -> None:
    report = build_report(ledger, "LSN", *PERIOD, now=NOW)
    rows = {c.agency_id: c for c in report.contacts}
    police = rows["lsn-police"]
    assert (
        police.contacts,
        police.eligible,
        police.met,
        police.late,
        police.running,
        police.never,
        police.cancelled,
    ) == (4, 3, 1, 1, 0, 1, 1)
    assert police.cases["never"] == ["LSN-T-K1"] and police.cases["late"] == ["LSN-T-K2"]
    assert police.cases["cancelled"] == ["LSN-T-K3"] and police.cases["met"] == ["LSN-T-K4"]
    facility = rows["lsn-holding-1"]
    assert (facility.contacts, facility.eligible, facility.never) == (1, 1, 1)

    csv = report_csv_bytes(report, "contacts").decode("utf-8-sig")
    assert "Chưa bao giờ được thông báo, đã quá hạn" in csv
    assert "lsn-police," in csv and ",4,3,1,1,0,1,1," in csv
    never = report_csv_bytes(report, "never_notified").decode("utf-8-sig")
    assert "LSN-T-K1" in never and "LSN-T-K5" in never and "LSN-T-K2" not in never

    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(report_xlsx_bytes(report)))
    assert {"Thông báo quyền (C2)", "Chưa được thông báo (C2)"} <= set(book.sheetnames)
    assert report_chart_png(report, "notified")[:4] == b"\x89PNG"


def test_report_json_over_http_gives_the_figures_and_their_cases(ledger: Container) -> None:
    from infra.http.app import create_app
    from infra.http.routes.reports import router

    app = create_app(ledger)
    if not any(getattr(r, "path", "") == "/v1/projections/status" for r in app.routes):
        app.include_router(router)
    token = ledger.tokens.create("council", "Hội đồng LSN", provinces=["LSN"])[0]
    with TestClient(app) as http:
        body = http.get(
            "/v1/reports/LSN?from=2026-03-01&to=2026-03-31&format=json",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        csv = http.get(
            "/v1/reports/LSN?from=2026-03-01&to=2026-03-31&format=csv&table=never_notified",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert csv.status_code == 200 and "LSN-T-K1" in csv.content.decode("utf-8-sig")
    police = next(r for r in body["notification_of_rights"] if r["agency_id"] == "lsn-police")
    assert police["contacts"] == 4 and police["eligible"] == 3
    assert police["cases"]["never_notified_missed"] == ["LSN-T-K1"]
    assert police["cases"]["notified_late"] == ["LSN-T-K2"]
    assert police["cases"]["not_applicable"] == ["LSN-T-K3"]
    assert "contacts" in body["tables"] and "never_notified" in body["tables"]


def test_inspection_pack_lists_the_persons_never_notified_per_agency(ledger: Container) -> None:
    provinces = frozenset({"LSN"})
    police = build_pack(ledger, ledger.reference.agencies["lsn-police"], *PERIOD, NOW, provinces)
    item = next(i for i in police.items if i.key == "NOTIFIED")
    assert (item.checked, item.status) == (3, "fail")
    assert sorted(f.case_id for f in item.failing) == ["LSN-T-K1", "LSN-T-K2"]
    assert [f.case_id for f in police.never_notified] == ["LSN-T-K1"]
    facility = build_pack(
        ledger, ledger.reference.agencies["lsn-holding-1"], *PERIOD, NOW, provinces
    )
    assert [f.case_id for f in facility.never_notified] == ["LSN-T-K5"]
    centre = build_pack(ledger, ledger.reference.agencies["lsn-centre"], *PERIOD, NOW, provinces)
    assert next(i for i in centre.items if i.key == "NOTIFIED").status == "na"


def test_contact_posted_over_http_opens_a_case_at_contact(pg_container: Container) -> None:
    from infra.http.app import create_app

    token = pg_container.tokens.create(
        "agency", "Công an", agency_id="lsn-police", reference=pg_container.reference
    )[0]
    headers = {"Authorization": f"Bearer {token}"}
    wire = contact("K9", "lsn-police", "2026-03-02 08:00")
    wire["identity"] = {"full_name": "Lý Văn Phúc", "date_of_birth": "1991-02-03"}
    with TestClient(create_app(pg_container)) as http:
        posted = http.post("/v1/events", json=wire, headers=headers)
        assert posted.status_code == 201, posted.text
        case = http.get("/v1/cases/LSN-T-K9", headers=headers).json()
        limits = http.get("/v1/cases/LSN-T-K9/time-limits", headers=headers).json()
        refused = http.post(
            "/v1/events",
            headers=headers,
            json=then(
                "K9",
                2,
                "NOT_ELIGIBLE_DETERMINED",
                "lsn-police",
                "2026-03-02 09:00",
                {"reason": "NO_CATEGORY"},
            ),
        )
    assert case["status"] == "CONTACT"
    [c2] = [v for v in limits["time_limits"] if v["rule_id"] == "C2"]
    assert (c2["status"], c2["outstanding"], c2["verified"]) == ("missed", True, False)
    assert refused.status_code == 422
    assert (refused.json()["code"], refused.json()["field"]) == ("FIELD_REQUIRED", "data.article")


def test_custody_register_file_from_the_readme_loads_as_wire_events(
    pg_container: Container,
) -> None:
    path = ROOT / "docs" / "examples" / "custody-register.jsonl"
    report = load_events(pg_container, read_jsonl(path), total=None)
    assert (report.recorded, report.duplicates, report.rejected) == (5, 0, [])
    again = load_events(pg_container, read_jsonl(path), total=None)
    assert (again.recorded, again.duplicates) == (0, 5)
    referrals = pg_container.referrals
    assert referrals.get_case("LSN-2026-TG-0118").status == "OPEN"
    assert referrals.get_case("LSN-2026-TG-0119").status == "CONTACT"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first["event_id"] in readme  # the README shows this very file


# ------------------------------------------------------------------------------------ Kafka


@pytest.mark.kafka
@pytest.mark.filterwarnings(*FILTER_KAFKA_WARNINGS)
def test_contacts_streamed_on_the_agency_topic_are_recorded_once(
    ingest_settings: Any,
    container: Container,
    worker: RunningWorker,  # noqa: F811 - fixtures
) -> None:
    first = [e for e in EVENTS if e["event_id"].endswith("-01")]
    rest = [e for e in EVENTS if not e["event_id"].endswith("-01")]
    produce(ingest_settings.kafka_bootstrap_servers, [message(ingest_settings, e) for e in first])
    wait_for(lambda: count_events(ingest_settings) >= len(first), 60, message="contacts")
    produce(ingest_settings.kafka_bootstrap_servers, [message(ingest_settings, e) for e in rest])
    wait_for(lambda: count_events(ingest_settings) >= len(EVENTS), 60, message="the rest")
    produce(
        ingest_settings.kafka_bootstrap_servers, [message(ingest_settings, e) for e in EVENTS]
    )  # redelivery
    wait_for(lambda: worker.worker.stats.duplicates >= len(EVENTS), 60, message="duplicates")
    assert count_events(ingest_settings) == len(EVENTS)
    assert worker.worker.stats.dead_lettered == 0
    referrals = container.referrals
    assert referrals.get_case("LSN-T-K1").status == "CONTACT"
    assert [e.WIRE_TYPE for e in referrals.case_history("LSN-T-K3")] == [
        "PROCEDURAL_CONTACT",
        "NOT_ELIGIBLE_DETERMINED",
    ]


def test_a_legal_citation_with_spaces_is_accepted_over_http_as_by_the_domain(
    pg_container: Container,
) -> None:
    """`data.article` is a citation ("Luật TGPL 2017 Điều 7"), not a reference number: HTTP
    refused what `load` and Kafka accept (the bench's batches lost every such event)."""
    from infra.http.app import create_app

    token = pg_container.tokens.create(
        "agency", "Công an", agency_id="lsn-police", reference=pg_container.reference
    )[0]
    headers = {"Authorization": f"Bearer {token}"}

    def not_eligible(case: str, article: str) -> dict[str, Any]:
        return then(
            case,
            2,
            "NOT_ELIGIBLE_DETERMINED",
            "lsn-police",
            "2026-03-02 09:00",
            {"reason": "NO_CATEGORY", "article": article},
        )

    with TestClient(create_app(pg_container)) as http:
        for case in ("C1", "C2"):
            opened = http.post(
                "/v1/events", json=contact(case, "lsn-police", "2026-03-02 08:00"), headers=headers
            )
            assert opened.status_code == 201, opened.text
        accepted = http.post(
            "/v1/events", json=not_eligible("C1", "Luật TGPL 2017 Điều 7"), headers=headers
        )
        named = http.post("/v1/events", json=not_eligible("C2", "Nguyễn Văn An"), headers=headers)
        schema = http.get("/openapi.json").json()
    assert accepted.status_code == 201, accepted.text
    assert named.status_code == 422
    assert (named.json()["code"], named.json()["field"]) == ("FIELD_INVALID", "data.article")
    assert "Điều 7" in named.json()["message"]
    # the OpenAPI document says the same: data.article has a citation's pattern
    assert "[Đđ][Ii][Ềề][Uu]" in json.dumps(schema, ensure_ascii=False)
