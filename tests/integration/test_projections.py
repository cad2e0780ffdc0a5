"""Projections over a real PostgreSQL: case index, per-agency counts and time-limit compliance
for a hand-built set of cases whose answers are worked out here, by hand.

The cases (province LSN, Lạng Sơn; all times Vietnam time, UTC+7):

A  weekend + public holiday. A witness (not an LAL Art. 31(3) notice, so C3 and no C1) asks
   Tue 28/4/2026 09:00, transferred Wed 29/4 08:00. C3 (3 working days from the notice)
   skips 30/4, 1/5, 2/5 (Sat), 3/5 (Sun) — all days off in 2026 — and counts Mon 4/5, Tue 5/5, Wed 6/5: deadline 24:00 Wed 6/5. The assignment
   on Wed 6/5 16:00 is on time (a calendar-day count would wrongly say late). Registration Thu
   7/5 10:00, documents complete 08:00: C4 (24 h) met.
B  passed on by a detention facility (issue 20). An arrested person asks the detention facility
   at 08:00 Tue 10/3/2026; the facility passes the request on to the investigation police at
   14:00 (REQUEST_FORWARDED, JC 10/2018 Art. 10(1)(a)); the police notify the Centre next day
   09:00. C1 (12 h, LAL Art. 31(3)) is the police's, from their receipt at 14:00: deadline
   02:00 Wed 11/3, missed, charged to the police, not to the facility. An arrested person's
   notice is "thụ lý ngay": C3_IMMEDIATE (24 h, A3) from Wed 11/3 09:00 → Thu 12/3 09:00;
   nothing assigned: outstanding (overdue) for the Centre.
C  a category valid then repealed. VICTIM_16_18 (LAL Art. 7(7)(đ)) is valid on 3/11/2025 and
   repealed from 1/1/2026. Request 3/11/2025 10:00, transferred 20:00 (C1 24 h: met). A
   victim's notice is immediate (LAL Art. 31(3)): C3_IMMEDIATE from Mon 3/11 20:00 → Tue 4/11
   20:00; assigned Fri 7/11 10:00: missed.
D  a mandatory appointment (CPC Art. 76) on Mon 1/6/2026 10:00: C3_IMMEDIATE (24 h) runs until
   Tue 2/6 10:00 — running when asked on 1/6 20:00, missed when asked on 3/6.
E  refused. Request Mon 2/2/2026 08:00, transferred 12:00 (C1 24 h: met), refused by the Centre
   Tue 3/2 09:00: C3_IMMEDIATE (a suspect's notice) cancelled.
G  one notification at 05:00 on 1/1/2026 Vietnam time (22:00 on 31/12/2025 UTC): it counts
   on the Vietnam-local day, in 2026.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from domain.calendar import VIETNAM_TZ
from domain.errors import InvalidEventError
from infra.bootstrap import Container, build_container
from infra.settings import Settings
from tests.conftest import IN_CI, PG_HOST, PG_PORT, PG_USER
from tests.factories import CaseScript

pytestmark = pytest.mark.postgres

VN = VIETNAM_TZ


def at(text: str) -> str:
    """An ISO instant from 'YYYY-MM-DD HH:MM' Vietnam time."""
    return datetime.fromisoformat(text).replace(tzinfo=VN).isoformat()


def vn(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=VN)


PERSON = {
    "A": "0a000000-0000-4000-8000-00000000000a",
    "B": "0b000000-0000-4000-8000-00000000000b",
    "C": "0c000000-0000-4000-8000-00000000000c",
    "D": "0d000000-0000-4000-8000-00000000000d",
    "E": "0e000000-0000-4000-8000-00000000000e",
    "G": "01000000-0000-4000-8000-000000000001",
}


def person(
    case: str,
    role: str,
    stage: str = "INVESTIGATION",
    category: str = "POOR_HOUSEHOLD",
    **more: Any,
) -> dict[str, Any]:
    return {
        "person_id": PERSON[case],
        "proceedings_kind": "criminal",
        "procedural_role": role,
        "stage": stage,
        "eligible_category": category,
        **more,
    }


def ev(
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


CASES: dict[str, list[dict[str, Any]]] = {
    "A": [
        ev(
            "A",
            1,
            "NOTIFICATION_ISSUED",
            "lsn-police",
            "2026-04-28 08:00",
            {**person("A", "WITNESS"), "form": "MAU_03", "trigger": "STATEMENT"},
        ),
        ev("A", 2, "AID_REQUESTED", "lsn-police", "2026-04-28 09:00", {"request_form": "written"}),
        ev(
            "A",
            3,
            "REQUEST_TRANSFERRED",
            "lsn-police",
            "2026-04-29 08:00",
            {"centre_id": "lsn-centre"},
        ),
        ev("A", 4, "REQUEST_ACCEPTED", "lsn-centre", "2026-04-29 10:00", {"immediate": False}),
        ev(
            "A",
            5,
            "AID_ASSIGNED",
            "lsn-centre",
            "2026-05-06 16:00",
            {
                "provider_id": "tgv-lsn-001",
                "provider_type": "LEGAL_AID_OFFICER",
                "aid_form": "DEFENCE",
            },
        ),
        ev(
            "A",
            6,
            "COUNSEL_REGISTERED",
            "lsn-police",
            "2026-05-07 10:00",
            {"documents_complete_at": at("2026-05-07 08:00")},
        ),
    ],
    "B": [
        ev(
            "B",
            1,
            "AID_REQUESTED",
            "lsn-detention",
            "2026-03-10 08:00",
            {**person("B", "ARRESTED"), "request_form": "oral"},
        ),
        ev(
            "B",
            2,
            "REQUEST_FORWARDED",
            "lsn-detention",
            "2026-03-10 14:00",
            {"to_agency_id": "lsn-police-investigation"},
        ),
        ev(
            "B",
            3,
            "REQUEST_TRANSFERRED",
            "lsn-police-investigation",
            "2026-03-11 09:00",
            {"centre_id": "lsn-centre"},
        ),
    ],
    "C": [
        ev(
            "C",
            1,
            "NOTIFICATION_ISSUED",
            "lsn-police",
            "2025-11-03 09:00",
            {
                **person(
                    "C",
                    "VICTIM",
                    category="VICTIM_16_18",
                    financial_hardship=True,
                    age_band="16_TO_UNDER_18",
                ),
                "trigger": "VICTIM_STATEMENT",
            },
        ),
        ev("C", 2, "AID_REQUESTED", "lsn-police", "2025-11-03 10:00", {}),
        ev(
            "C",
            3,
            "REQUEST_TRANSFERRED",
            "lsn-police",
            "2025-11-03 20:00",
            {"centre_id": "lsn-centre"},
        ),
        ev("C", 4, "REQUEST_ACCEPTED", "lsn-centre", "2025-11-04 09:00", {}),
        ev(
            "C",
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
    ],
    "D": [
        ev(
            "D",
            1,
            "APPOINTMENT_REQUESTED",
            "lsn-procuracy",
            "2026-06-01 10:00",
            {
                **person("D", "SUSPECT", stage="INDICTMENT"),
                "centre_id": "lsn-centre",
                "ground": "PENALTY_20Y_LIFE_DEATH",
            },
        ),
    ],
    "E": [
        ev(
            "E",
            1,
            "AID_REQUESTED",
            "lsn-police",
            "2026-02-02 08:00",
            {**person("E", "SUSPECT", category="DISABLED", financial_hardship=True)},
        ),
        ev(
            "E",
            2,
            "REQUEST_TRANSFERRED",
            "lsn-police",
            "2026-02-02 12:00",
            {"centre_id": "lsn-centre"},
        ),
        ev(
            "E",
            3,
            "REQUEST_REFUSED",
            "lsn-centre",
            "2026-02-03 09:00",
            {"reason": "NOT_ELIGIBLE", "written": True},
        ),
    ],
    "G": [
        ev(
            "G",
            1,
            "NOTIFICATION_ISSUED",
            "lsn-police",
            "2026-01-01 05:00",
            {**person("G", "WITNESS"), "trigger": "STATEMENT"},
        ),
    ],
}


def interleaved() -> list[dict[str, Any]]:
    """Every event, in occurrence order (cases interleave in the log)."""
    return sorted(
        (e for events in CASES.values() for e in events),
        key=lambda e: (e["occurred_at"], e["event_id"]),
    )


def record(container: Container, events: list[dict[str, Any]]) -> None:
    for event in events:
        container.referrals.record_event(event)


@pytest.fixture
def ledger(pg_container: Container) -> Container:
    record(pg_container, interleaved())
    pg_container.projections.process_pending(batch_size=4)  # several pages
    return pg_container


def dump_all(container: Container) -> dict[str, Any]:
    return {name: p.view.dump() for name, p in container.projections.projections.items()}


# ---------------------------------------------------------------------------------- counts
def test_agency_counts_for_a_province_and_year_when_cases_are_hand_built(
    ledger: Container,
) -> None:
    counts = ledger.projections.agency_counts
    table = counts.agency_table("LSN", date(2026, 1, 1), date(2026, 12, 31))
    assert table == {
        "lsn-police": {
            "NOTIFICATION_ISSUED": 2,
            "AID_REQUESTED": 2,
            "REQUEST_TRANSFERRED": 2,
            "COUNSEL_REGISTERED": 1,
        },
        "lsn-police-investigation": {"REQUEST_TRANSFERRED": 1},
        "lsn-detention": {"AID_REQUESTED": 1, "REQUEST_FORWARDED": 1},
        "lsn-procuracy": {"APPOINTMENT_REQUESTED": 1},
        "lsn-centre": {"REQUEST_ACCEPTED": 1, "AID_ASSIGNED": 1, "REQUEST_REFUSED": 1},
    }
    assert counts.agency_table("LSN", date(2025, 1, 1), date(2025, 12, 31)) == {
        "lsn-police": {"NOTIFICATION_ISSUED": 1, "AID_REQUESTED": 1, "REQUEST_TRANSFERRED": 1},
        "lsn-centre": {"REQUEST_ACCEPTED": 1, "AID_ASSIGNED": 1},
    }
    # custom range 28/4–29/4/2026: case A's first four events
    assert counts.agency_table("LSN", date(2026, 4, 28), date(2026, 4, 29)) == {
        "lsn-police": {"NOTIFICATION_ISSUED": 1, "AID_REQUESTED": 1, "REQUEST_TRANSFERRED": 1},
        "lsn-centre": {"REQUEST_ACCEPTED": 1},
    }
    assert counts.agency_table("VLG", date(2025, 1, 1), date(2026, 12, 31)) == {}


def test_counts_use_the_vietnam_local_day_when_utc_is_the_previous_day(
    ledger: Container,
) -> None:
    rows = ledger.projections.agency_counts.counts(
        "LSN", date(2026, 1, 1), date(2026, 1, 1), ("agency_id", "event_type", "day")
    )
    assert rows == [
        {
            "agency_id": "lsn-police",
            "event_type": "NOTIFICATION_ISSUED",
            "day": date(2026, 1, 1),
            "n": 1,
        }
    ]
    assert (
        ledger.projections.agency_counts.counts("LSN", date(2025, 12, 31), date(2025, 12, 31)) == []
    )


def test_a_2025_case_counts_under_a_category_repealed_in_2026(ledger: Container) -> None:
    by_category = ledger.projections.agency_counts.counts(
        "LSN", date(2025, 1, 1), date(2025, 12, 31), ("category", "procedural_role")
    )
    assert by_category == [{"category": "VICTIM_16_18", "procedural_role": "VICTIM", "n": 5}]
    later = {
        **CASES["C"][0],
        "event_id": "LSN-T-C2-01",
        "case_id": "LSN-T-C2",
        "occurred_at": at("2026-01-05 09:00"),
        "data": {**CASES["C"][0]["data"], "person_id": "0c200000-0000-4000-8000-00000000000c"},
    }
    with pytest.raises(InvalidEventError) as refused:
        ledger.referrals.record_event(later)
    assert refused.value.code == "CATEGORY_NOT_VALID_ON_DATE"
    ledger.projections.process_pending()
    rows_2026 = ledger.projections.agency_counts.counts(
        "LSN", date(2026, 1, 1), date(2026, 12, 31), ("category",)
    )
    assert "VICTIM_16_18" not in {r["category"] for r in rows_2026}


# ------------------------------------------------------------------------------ compliance
def _summary(container: Container, start: date, end: date, now: datetime) -> dict[tuple, Any]:
    return {
        (g["rule_id"], g["responsible_agency_id"]): (
            g["met"],
            g["missed"],
            g["running"],
            g["cancelled"],
            {s: sorted(c) for s, c in g["cases"].items() if c},
        )
        for g in container.projections.compliance.summary("LSN", start, end, now=now)
    }


def test_compliance_per_rule_and_agency_when_judged_on_1_july_2026(ledger: Container) -> None:
    now = vn("2026-07-01 00:00")
    assert _summary(ledger, date(2026, 1, 1), date(2026, 12, 31), now) == {
        ("C1_24H", "lsn-police"): (1, 0, 0, 0, {"met": ["LSN-T-E"]}),
        ("C1_12H", "lsn-police-investigation"): (0, 1, 0, 0, {"missed": ["LSN-T-B"]}),
        ("C3", "lsn-centre"): (1, 0, 0, 0, {"met": ["LSN-T-A"]}),
        ("C3_IMMEDIATE", "lsn-centre"): (
            0,
            2,
            0,
            1,
            {"missed": ["LSN-T-B", "LSN-T-D"], "cancelled": ["LSN-T-E"]},
        ),
        ("C4_CRIMINAL", "lsn-police"): (1, 0, 0, 0, {"met": ["LSN-T-A"]}),
    }
    assert _summary(ledger, date(2025, 1, 1), date(2025, 12, 31), now) == {
        ("C1_24H", "lsn-police"): (1, 0, 0, 0, {"met": ["LSN-T-C"]}),
        ("C3_IMMEDIATE", "lsn-centre"): (0, 1, 0, 0, {"missed": ["LSN-T-C"]}),
    }


def test_weekend_and_holidays_do_not_count_when_the_limit_is_in_working_days(
    ledger: Container,
) -> None:
    verdicts = {v["rule_id"]: v for v in ledger.projections.compliance.verdicts("LSN-T-A")}
    assert verdicts["C3"]["deadline"] == vn("2026-05-07 00:00")  # 24:00 on Wed 6/5
    assert verdicts["C3"]["status"] == "met"
    assert verdicts["C3"]["met_at"] == vn("2026-05-06 16:00")
    assert "C1_24H" not in verdicts and "C3_IMMEDIATE" not in verdicts  # a witness
    assert verdicts["C4_CRIMINAL"]["deadline"] == vn("2026-05-08 08:00")


def test_c1_is_charged_to_the_proceedings_agency_when_a_detention_facility_passes_it_on(
    ledger: Container,
) -> None:
    verdicts = {v["rule_id"]: v for v in ledger.projections.compliance.verdicts("LSN-T-B")}
    assert verdicts["C1_12H"]["status"] == "missed"
    assert verdicts["C1_12H"]["deadline"] == vn("2026-03-11 02:00")  # 14:00 + 12 h
    assert verdicts["C1_12H"]["responsible_agency_id"] == "lsn-police-investigation"
    assert "C3" not in verdicts
    assert verdicts["C3_IMMEDIATE"]["deadline"] == vn("2026-03-12 09:00")
    facility = ledger.projections.compliance.summary("LSN", agency_id="lsn-detention")
    assert facility == []


def test_the_centres_receipt_starts_the_assignment_limit_in_the_compliance_view(
    pg_container: Container,
) -> None:
    # Issue 20: an arrested person's notice sent Fri 6/3/2026 22:00, received by the Centre
    # Sat 7/3 07:00 (recorded on its acceptance); assigned Sun 8/3 06:00: C3_IMMEDIATE (24 h
    # from the receipt) met, where a clock from the sending would have missed it.
    record(
        pg_container,
        [
            ev(
                "R",
                1,
                "AID_REQUESTED",
                "lsn-police",
                "2026-03-06 20:00",
                {**person("A", "ARRESTED"), "person_id": "0f100000-0000-4000-8000-00000000000f"},
            ),
            ev(
                "R",
                2,
                "REQUEST_TRANSFERRED",
                "lsn-police",
                "2026-03-06 22:00",
                {"centre_id": "lsn-centre"},
            ),
            ev(
                "R",
                3,
                "REQUEST_ACCEPTED",
                "lsn-centre",
                "2026-03-07 08:00",
                {"notice_received_at": at("2026-03-07 07:00")},
            ),
            ev(
                "R",
                4,
                "AID_ASSIGNED",
                "lsn-centre",
                "2026-03-08 06:00",
                {
                    "provider_id": "tgv-lsn-003",
                    "provider_type": "LEGAL_AID_OFFICER",
                    "aid_form": "DEFENCE",
                },
            ),
        ],
    )
    pg_container.projections.process_pending()
    verdicts = {v["rule_id"]: v for v in pg_container.projections.compliance.verdicts("LSN-T-R")}
    assert set(verdicts) == {"C1_12H", "C3_IMMEDIATE"}
    immediate = verdicts["C3_IMMEDIATE"]
    assert (immediate["trigger_at"], immediate["deadline"], immediate["status"]) == (
        vn("2026-03-07 07:00"),
        vn("2026-03-08 07:00"),
        "met",
    )


def test_running_or_missed_is_judged_when_asked_from_the_stored_deadline(
    ledger: Container,
) -> None:
    compliance = ledger.projections.compliance
    june = (date(2026, 6, 1), date(2026, 6, 30))
    before = _summary(ledger, *june, now=vn("2026-06-01 20:00"))
    after = _summary(ledger, *june, now=vn("2026-06-03 00:00"))
    assert before == {("C3_IMMEDIATE", "lsn-centre"): (0, 0, 1, 0, {"running": ["LSN-T-D"]})}
    assert after == {("C3_IMMEDIATE", "lsn-centre"): (0, 1, 0, 0, {"missed": ["LSN-T-D"]})}
    assert [r["case_id"] for r in compliance.overdue("LSN", now=vn("2026-06-01 20:00"))] == [
        "LSN-T-B"
    ]
    overdue = compliance.overdue("LSN", now=vn("2026-06-03 00:00"))
    assert [(r["case_id"], r["rule_id"], r["responsible_agency_id"]) for r in overdue] == [
        ("LSN-T-B", "C3_IMMEDIATE", "lsn-centre"),
        ("LSN-T-D", "C3_IMMEDIATE", "lsn-centre"),
    ]
    assert overdue[1]["overdue_hours"] == 14.0


# ------------------------------------------------------------------------------ case index
def test_case_index_rows_and_search_when_filtered(ledger: Container) -> None:
    index = ledger.projections.case_index
    b = index.get("LSN-T-B")
    assert b is not None
    assert {
        k: b[k]
        for k in (
            "province",
            "opening_agency_id",
            "holder_agency_id",
            "centre_id",
            "status",
            "procedural_role",
            "version",
            "person_id",
        )
    } == {
        "province": "LSN",
        "opening_agency_id": "lsn-detention",
        "holder_agency_id": "lsn-police-investigation",
        "centre_id": "lsn-centre",
        "status": "AT_CENTRE",
        "procedural_role": "ARRESTED",
        "version": 3,
        "person_id": PERSON["B"],
    }
    assert index.touched_agencies("LSN-T-B") == [
        "lsn-centre",
        "lsn-detention",
        "lsn-police-investigation",
    ]
    rows, total = index.search(province="LSN", limit=2)
    assert total == 6
    assert [r["case_id"] for r in rows] == ["LSN-T-D", "LSN-T-A"]  # latest activity first
    assert index.search(touched_by="lsn-detention")[1] == 1
    assert [r["case_id"] for r in index.search(status="REFUSED")[0]] == ["LSN-T-E"]
    assert [r["case_id"] for r in index.search(category="VICTIM_16_18")[0]] == ["LSN-T-C"]
    assert index.search(provinces=[])[1] == 0
    assert index.search(provinces=["VLG"])[1] == 0
    assert {
        r["case_id"]
        for r in index.search(
            occurred_from=vn("2026-03-01 00:00"), occurred_to=vn("2026-04-01 00:00")
        )[0]
    } == {"LSN-T-B"}
    assert index.search(agency_id="lsn-police")[1] == 4  # A, C, E and G: held by the police
    assert index.search(offset=5, limit=50)[0][0]["case_id"] == "LSN-T-C"


def test_views_hold_no_identity_when_events_carry_identity(pg_container: Container) -> None:
    event = {
        **CASES["G"][0],
        "event_id": "LSN-T-H-01",
        "case_id": "LSN-T-H",
        "identity": {"full_name": "Nguyễn Văn Bí Mật", "date_of_birth": "1990-02-03"},
        "data": {**CASES["G"][0]["data"], "person_id": "0f000000-0000-4000-8000-00000000000f"},
    }
    pg_container.referrals.record_event(event)
    pg_container.projections.process_pending()
    text = repr(dump_all(pg_container))
    assert "Bí Mật" not in text and "1990-02-03" not in text and "aesgcm" not in text


# ------------------------------------------------------------------- exactly once, rebuilds
def test_views_are_identical_whatever_the_batch_size_and_after_a_rebuild(
    ledger: Container,
) -> None:
    paged = dump_all(ledger)  # built 4 events a page, cases spread over pages
    result = ledger.projections.rebuild()
    assert result["events"] == len(interleaved())
    assert dump_all(ledger) == paged
    assert all(s.lag == 0 for s in ledger.projections.status())


def test_views_are_identical_when_rebuilt_by_one_process_per_view(ledger: Container) -> None:
    paged = dump_all(ledger)
    views = len(ledger.projections.projections)
    result = ledger.projections.rebuild(processes=True, workers=views)
    assert result["processes"] == views
    assert result["events"] == len(interleaved())
    assert dump_all(ledger) == paged
    assert all(s.lag == 0 for s in ledger.projections.status())
    ledger.referrals.record_event(CaseScript().notification())  # the parent follows on
    ledger.projections.process_pending()
    assert all(s.lag == 0 for s in ledger.projections.status())


def test_views_are_identical_when_two_processes_each_feed_several_views(
    ledger: Container,
) -> None:
    """Issue 16: a process reads and decodes the log once for all the views it rebuilds."""
    paged = dump_all(ledger)
    result = ledger.projections.rebuild(processes=True, workers=2)
    assert result["processes"] == 2
    assert sorted(n for g in result["groups"] for n in g) == sorted(ledger.projections.projections)
    assert all(len(g) >= 2 for g in result["groups"])
    assert result["events"] == len(interleaved())
    assert dump_all(ledger) == paged
    assert all(s.lag == 0 for s in ledger.projections.status())


def test_status_reports_position_and_lag(pg_container: Container) -> None:
    record(pg_container, CASES["A"])
    status = {s.name: s for s in pg_container.projections.status()}
    assert {"case_index", "agency_counts", "compliance"} <= set(status)
    assert all(s.position == 0 and s.lag == 6 for s in status.values())
    pg_container.projections.process_pending()
    assert all(s.position == 6 and s.lag == 0 for s in pg_container.projections.status())


def test_a_second_runner_never_applies_a_page_twice(
    pg_container: Container, pg_settings: Settings
) -> None:
    record(pg_container, interleaved())
    other = build_container(pg_settings)
    try:
        import threading

        threads = [
            threading.Thread(target=c.projections.process_pending, kwargs={"batch_size": 3})
            for c in (pg_container, other)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        other.close()
    built = dump_all(pg_container)
    pg_container.projections.rebuild()
    assert dump_all(pg_container) == built


def _sample(container: Container, cases: int) -> int:
    from infra.sample_data import generate_events

    now = datetime.now(timezone.utc)
    events = list(
        generate_events(
            11,
            cases,
            container.reference,
            now - timedelta(days=400),
            now - timedelta(minutes=10),
            identity_ratio=0.0,
        )
    )
    for start in range(0, len(events), 500):
        container.referrals.record_batch(events[start : start + 500])
    return container.projections.max_notification_id()


def _worker(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFERRALS_")}
    env.update(
        {
            "REFERRALS_STORE": "postgres",
            "REFERRALS_PG_HOST": PG_HOST,
            "REFERRALS_PG_PORT": str(PG_PORT),
            "REFERRALS_PG_USER": PG_USER,
            "REFERRALS_PG_DBNAME": settings.pg_dbname,
            "REFERRALS_PG_SCHEMA": settings.pg_schema,
            "REFERRALS_DATA_DIR": str(settings.data_dir),
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "project", *args],
        env=env,
        cwd=settings.data_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_killing_the_worker_between_batches_gives_the_same_views(
    pg_container: Container,
    pg_settings: Settings,
) -> None:
    top = _sample(pg_container, 250)
    worker = _worker(pg_settings, "--batch-size", "13", "--pause", "0.01")
    index = pg_container.projections.case_index
    deadline = time.monotonic() + 60
    while (index.position() or 0) < top // 3:
        assert worker.poll() is None, worker.stderr.read().decode()  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    positions = {n: p.view.position() or 0 for n, p in pg_container.projections.projections.items()}
    assert 0 < min(positions.values()) and max(positions.values()) < top
    restarted = _worker(pg_settings, "--batch-size", "29", "--until-caught-up")
    out, err = restarted.communicate(timeout=120)
    assert restarted.returncode == 0, err.decode()
    assert min(pg_container.projections.positions().values()) == top
    interrupted = dump_all(pg_container)
    pg_container.projections.rebuild()  # the uninterrupted run, from event zero
    rebuilt = dump_all(pg_container)
    for name in rebuilt:
        for table in rebuilt[name]:
            a, b = set(rebuilt[name][table]), set(interrupted[name][table])
            assert a == b, (table, sorted(a - b)[:3], sorted(b - a)[:3])
    assert rebuilt == interrupted


# ------------------------------------------------------------------- the log's late commits
def test_a_late_commit_of_a_lower_id_is_not_skipped(pg_container: Container) -> None:
    """With the library's insert function two writers can commit out of id order; the
    follower must wait for the lower id rather than pass it."""
    import psycopg

    record(pg_container, CASES["E"][:1])
    pg_container.projections.process_pending()
    settings = pg_container.settings
    recorder = pg_container.referrals.recorder
    table = f'"{settings.pg_schema}"."{recorder.events_table_name}"'
    held = psycopg.connect(settings.pg_conninfo())
    try:
        # A writer draws id 2 and holds it uncommitted (event 1 copied as case T-X).
        held.execute(
            f"INSERT INTO {table} (originator_id, originator_version, topic, state) "
            "SELECT gen_random_uuid(), 1, topic, convert_to(replace(convert_from("
            f"state, 'UTF8'), 'LSN-T-E', 'LSN-T-X'), 'UTF8') FROM {table} "
            "WHERE notification_id = 1"
        )
        record(pg_container, CASES["E"][1:2])  # id 3 commits first
        with pytest.raises(TimeoutError):
            pg_container.projections.process_pending(timeout=1.0)
        assert pg_container.projections.positions()["case_index"] == 1
        held.commit()
    finally:
        held.close()
    pg_container.projections.process_pending(timeout=10)
    assert pg_container.projections.positions()["case_index"] == 3
    assert pg_container.projections.agency_counts.counts(group_by=("event_type",)) == [
        {"event_type": "AID_REQUESTED", "n": 2},
        {"event_type": "REQUEST_TRANSFERRED", "n": 1},
    ]


def test_a_burnt_id_is_passed_when_its_writer_rolled_back(pg_container: Container) -> None:
    import psycopg

    record(pg_container, CASES["E"][:1])
    settings = pg_container.settings
    table = f'"{settings.pg_schema}"."{pg_container.referrals.recorder.events_table_name}"'
    with psycopg.connect(settings.pg_conninfo()) as conn:
        conn.execute(
            f"INSERT INTO {table} (originator_id, originator_version, topic, state) "
            f"SELECT gen_random_uuid(), 1, topic, state FROM {table} "
            "WHERE notification_id = 1"
        )
        conn.rollback()
    record(pg_container, CASES["E"][1:2])
    started = time.monotonic()
    pg_container.projections.process_pending(timeout=10)
    assert time.monotonic() - started < 5
    assert pg_container.projections.positions()["agency_counts"] == 3


# ------------------------------------------------------------------------ in-process SQLite
def test_the_in_process_sqlite_runner_catches_up_within_a_second(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    container = build_container(settings)
    try:
        assert container.projections.running
        record(container, interleaved())
        top = container.projections.max_notification_id()
        started = time.monotonic()
        while min(container.projections.positions().values()) < top:
            assert time.monotonic() - started < 1.0, container.projections.positions()
            time.sleep(0.01)
        rows, total = container.projections.case_index.search(province="LSN")
        assert total == 6
        assert container.projections.agency_counts.agency_table(
            "LSN", date(2026, 1, 1), date(2026, 12, 31)
        )["lsn-centre"] == {"REQUEST_ACCEPTED": 1, "AID_ASSIGNED": 1, "REQUEST_REFUSED": 1}
        record(container, [{**CASES["G"][0], "event_id": "LSN-T-I-01", "case_id": "LSN-T-I"}])
        container.projections.catch_up(timeout=1.0)
        assert container.projections.case_index.get("LSN-T-I") is not None
    finally:
        container.close()


# ----------------------------------------------------------------------------------- reports
def test_the_xlsx_report_opens_and_converts_to_pdf(ledger: Container, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    from projections.reports import build_report, report_xlsx_bytes, write_report

    report = build_report(
        ledger, "LSN", date(2026, 1, 1), date(2026, 12, 31), now=vn("2026-07-01 00:00")
    )
    path = tmp_path / "report.xlsx"
    path.write_bytes(report_xlsx_bytes(report))
    workbook = load_workbook(path)
    assert workbook.sheetnames == [
        "Thông tin chung",
        "Theo cơ quan",
        "Tuân thủ thời hạn",
        "Vụ việc theo kết quả",
        "Đang quá hạn",
        "Thông báo quyền (C2)",
        "Chưa được thông báo (C2)",
        "Tính kịp thời",
    ]
    cover = workbook["Thông tin chung"]
    assert cover["B3"].value == "Tỉnh Lạng Sơn (LSN)"
    assert cover["B4"].value == "Từ ngày 01/01/2026 đến ngày 31/12/2026"
    due = next(r for r in cover.iter_rows(values_only=True) if r[0] == "Hạn gửi báo cáo")
    assert due[1].startswith("10/01/2027 (")  # Lạng Sơn's council plan (issue 20 point 7)
    agencies = workbook["Theo cơ quan"]
    assert agencies.freeze_panes == "A2"
    header = [c.value for c in agencies[1]]
    assert header[4] == "Giải thích, thông báo quyền được TGPL"
    police = next(r for r in agencies.iter_rows(values_only=True) if r[0] == "lsn-police")
    assert police[1] == "Công an tỉnh Lạng Sơn"
    assert header[6] == "Cơ sở giam giữ chuyển yêu cầu cho cơ quan tố tụng"
    assert police[4:8] == (2, 2, 0, 2) and police[-1] == 7
    compliance = workbook["Tuân thủ thời hạn"]
    rows = {(r[0], r[2]): r for r in compliance.iter_rows(min_row=2, values_only=True)}
    assert rows[("C3_IMMEDIATE", "lsn-centre")][4:10] == (0, 2, 0, 1, 3, 0.0)
    assert agencies.column_dimensions["B"].width >= 20
    for sheet in workbook.worksheets:  # set up to print, in a font with Vietnamese glyphs
        assert sheet.page_setup.orientation == "landscape"
        assert sheet.page_setup.fitToWidth == 1 and sheet.sheet_properties.pageSetUpPr.fitToPage
        assert "&P" in sheet.oddFooter.right.text and "&N" in sheet.oddFooter.right.text
        assert all(c.font.name == "DejaVu Sans" for row in sheet.iter_rows() for c in row)
    assert agencies.print_title_rows == "$1:$1"
    assert cover.row_dimensions[1].height >= 1.8 * cover["A1"].font.sz
    files = write_report(report, ["csv", "png"], tmp_path / "out")
    assert {p.suffix for p in files} == {".csv", ".png"}
    assert (
        (tmp_path / "out" / f"{report.slug()}-agencies.csv")
        .read_bytes()
        .startswith("\ufeffMã cơ quan".encode())
    )
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in files if p.suffix == ".png")
    office = shutil.which("libreoffice") or shutil.which("soffice")
    if office is None:
        if IN_CI:
            pytest.fail("libreoffice is required in CI")
        pytest.skip("libreoffice not on PATH")
    converted = subprocess.run(
        [
            office,
            "--headless",
            f"-env:UserInstallation=file://{tmp_path}/lo-profile",
            "--convert-to",
            "pdf",
            "--outdir",
            str(tmp_path),
            str(path),
        ],
        capture_output=True,
        timeout=120,
    )
    assert converted.returncode == 0, converted.stderr.decode()
    pdf = tmp_path / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    _assert_the_pdf_prints_right(pdf, report)


def _assert_the_pdf_prints_right(pdf: Path, report: Any) -> None:
    """What an official holds: the capitals keep their diacritics, every page is numbered and
    names the report and its checkpoint, and the page count is sane.

    The bound: this ledger's report has at most a dozen rows per table, so each of the eight
    sheets (cover + four tables + the contacts and never-notified tables of rule C2 + the
    timeliness table of issue 13) prints on exactly one landscape page once fitted to the page
    width (the cover to one page): 8 pages. Without print setup it printed 26 pages here (one
    per few columns; the issue saw 60 with more agencies).
    """
    import unicodedata

    tools = [shutil.which("pdftotext"), shutil.which("pdfinfo")]
    if None in tools:
        if IN_CI:
            pytest.fail("poppler-utils (pdftotext, pdfinfo) are required in CI")
        pytest.skip("pdftotext/pdfinfo not on PATH")
    text = unicodedata.normalize(
        "NFC",
        subprocess.run(
            [tools[0], "-layout", str(pdf), "-"],
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout.decode(),
    )
    info = subprocess.run(
        [tools[1], str(pdf)], capture_output=True, timeout=60, check=True
    ).stdout.decode()
    pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    assert "BÁO CÁO KẾT QUẢ PHỐI HỢP THỰC HIỆN TRỢ GIÚP PHÁP LÝ" in text
    assert "Tỉnh Lạng Sơn" in text and "Công an tỉnh Lạng Sơn" in text
    assert "_x000" not in text  # no escaped control characters in headers
    assert text.count(report.period_vi) >= pages  # in every page's header
    assert pages == 8, pages
    assert f"Trang {pages}/{pages}" in " ".join(text.split())
    assert text.count(report.checkpoint["root"]) >= pages  # in every page's footer


def test_report_cli_writes_xlsx_csv_and_png(ledger: Container, tmp_path: Path) -> None:
    settings = ledger.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFERRALS_")}
    env.update(
        {
            "REFERRALS_STORE": "postgres",
            "REFERRALS_PG_HOST": PG_HOST,
            "REFERRALS_PG_PORT": str(PG_PORT),
            "REFERRALS_PG_USER": PG_USER,
            "REFERRALS_PG_DBNAME": settings.pg_dbname,
            "REFERRALS_PG_SCHEMA": settings.pg_schema,
            "REFERRALS_DATA_DIR": str(settings.data_dir),
        }
    )
    out = tmp_path / "reports"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.cli",
            "report",
            "--province",
            "LSN",
            "--year",
            "2026",
            "--period",
            "jan-oct",
            "--format",
            "xlsx",
            "--format",
            "csv",
            "--format",
            "png",
            "--output",
            str(out),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    names = sorted(p.name for p in out.iterdir())
    assert "bao-cao-LSN-20260101-20261031.xlsx" in names
    assert "bao-cao-LSN-20260101-20261031-police.png" in names
    assert len([n for n in names if n.endswith(".csv")]) == 7  # issue 17: contacts, never;
    # issue 13: timeliness


def test_sqlite_views_match_postgresql_when_built_from_the_same_events(
    ledger: Container,
    tmp_path: Path,
) -> None:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "lite",  # type: ignore[call-arg]
        projections_in_process=False,
    )
    lite = build_container(settings)
    try:
        record(lite, interleaved())
        lite.projections.process_pending(batch_size=3)
        now = vn("2026-07-01 00:00")
        for start, end in (
            (date(2025, 1, 1), date(2025, 12, 31)),
            (date(2026, 1, 1), date(2026, 12, 31)),
        ):
            assert _summary(lite, start, end, now) == _summary(ledger, start, end, now)
            assert lite.projections.agency_counts.agency_table("LSN", start, end) == (
                ledger.projections.agency_counts.agency_table("LSN", start, end)
            )
        assert lite.projections.case_index.search(limit=10) == (
            ledger.projections.case_index.search(limit=10)
        )
        assert lite.projections.compliance.verdicts("LSN-T-B") == (
            ledger.projections.compliance.verdicts("LSN-T-B")
        )
        paged = dump_all(lite)
        lite.projections.rebuild()
        assert dump_all(lite) == paged
    finally:
        lite.close()
