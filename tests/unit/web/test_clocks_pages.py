"""Issue 13 items 1–2 on the web pages: the case timeline replays the case "as known at T"
(recorded ≤ T) or "as it happened at T" (occurred ≤ T, as known now), in both languages; every
event row shows both instants and a "held" badge naming what it awaits. The case below occurred
20 days ago and was recorded now, its counsel registration posted without the assignment (held)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from domain.calendar import VIETNAM_TZ
from domain.referral import STATUS_NAMES_VI
from infra.web import format as fmt
from tests.factories import CaseScript
from tests.unit.web.conftest import Web


def _held_case(web: Web) -> tuple[CaseScript, datetime]:
    start = datetime.now(VIETNAM_TZ).replace(second=0, microsecond=0) - timedelta(days=20)
    script = CaseScript(start=start)
    opening, request, transfer = script.notification(), script.request(), script.transfer()
    accept = script.accept()
    script.assign()  # never posted: the registration awaits it
    register = script.register()
    results = web.container.referrals.record_batch([opening, request, transfer, accept, register])
    assert all(not hasattr(r, "error") for r in results), results
    assert getattr(results[-1], "held", False), results[-1]
    web.container.projections.catch_up(timeout=30)
    return script, start


def _rows(html: str) -> list[str]:
    return [part.split("</li>")[0] for part in html.split('data-testid="timeline-event"')[1:]]


def test_case_page_replays_as_it_happened_and_as_known(web: Web) -> None:
    script, start = _held_case(web)
    web.sign_in()
    at = fmt.local_input(start + timedelta(minutes=90))  # after the request, before the transfer
    assert re.fullmatch(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}", at)

    happened = web.client.get(
        f"/web/cases/{script.case_id}", params={"at": at, "clock": "occurred"}
    )
    assert happened.status_code == 200
    assert len(_rows(happened.text)) == 2
    assert 'data-testid="replay-banner"' in happened.text
    assert 'data-clock="occurred"' in happened.text
    assert "như đã xảy ra" in happened.text
    assert re.search(r'name="clock" value="occurred"[^>]*checked', happened.text)

    # as known at the same instant: nothing had been recorded 20 days ago
    known = web.client.get(f"/web/cases/{script.case_id}", params={"at": at})
    assert known.status_code == 200
    assert _rows(known.text) == []
    assert 'data-testid="replay-empty"' in known.text
    assert 'data-clock="recorded"' in known.text
    assert re.search(r'name="clock" value="recorded"[^>]*checked', known.text)

    english = web.client.get(
        f"/web/cases/{script.case_id}", params={"at": at, "clock": "occurred", "lang": "en"}
    )
    assert "as it happened by" in english.text and "As it happened" in english.text
    assert len(_rows(english.text)) == 2
    web.client.get("/web/cases", params={"lang": "vi"})


def test_as_it_happened_status_and_limits_are_judged_on_the_law_clock(web: Web) -> None:
    script, start = _held_case(web)
    web.sign_in()
    at = fmt.local_input(start + timedelta(minutes=90))
    page = web.client.get(f"/web/cases/{script.case_id}", params={"at": at, "clock": "occurred"})
    referral, _ = web.container.referrals.case_as_happened(
        script.case_id, fmt.parse_local(at) + timedelta(seconds=59, microseconds=999_999)
    )
    assert referral is not None and referral.status == "REQUESTED"
    assert 'data-testid="summary-status">' in page.text
    status = page.text.split('data-testid="summary-status">')[1].split("<")[0]
    assert status == STATUS_NAMES_VI["REQUESTED"]
    # the request's transfer limit is running at that instant (the transfer came 1 h later)
    limits = page.text.split('id="limits-title"')[1].split("</section>")[0]
    assert "C1_" in limits and "s-running" in limits and "s-met" not in limits


def test_every_event_row_shows_both_instants_and_the_held_badge(web: Web) -> None:
    script, _ = _held_case(web)
    web.sign_in()
    page = web.client.get(f"/web/cases/{script.case_id}")
    rows = _rows(page.text)
    assert len(rows) == 5
    for row in rows:
        assert 'data-testid="event-occurred"' in row and 'data-testid="event-recorded"' in row
    held = [r for r in rows if 'data-testid="event-held"' in r]
    assert len(held) == 1
    assert fmt.event_title("COUNSEL_REGISTERED") in held[0]
    assert "Đang chờ" in held[0] and fmt.event_title("AID_ASSIGNED") in held[0]
    english = web.client.get(f"/web/cases/{script.case_id}", params={"lang": "en"})
    held_en = [r for r in _rows(english.text) if 'data-testid="event-held"' in r]
    assert len(held_en) == 1 and "Held" in held_en[0]
    assert fmt.event_title("AID_ASSIGNED", "en") in held_en[0]
    web.client.get("/web/cases", params={"lang": "vi"})


def _days_later(web: Web, days: int) -> None:
    """The ledger's clock moved on: the held event has waited `days` days on the recording
    clock (what the pages judge age by)."""
    referrals = web.container.referrals
    real = referrals.clock
    referrals.clock = lambda: real() + timedelta(days=days)  # type: ignore[method-assign]


def test_held_events_page_lists_held_events_with_age_and_anomaly(web: Web) -> None:
    script, _ = _held_case(web)
    web.sign_in()
    page = web.client.get("/web/held")
    assert page.status_code == 200
    rows = [r.split("</tr>")[0] for r in page.text.split('data-testid="held-row"')[1:]]
    assert len(rows) == 1 and script.case_id in rows[0]
    assert fmt.event_title("COUNSEL_REGISTERED") in rows[0]
    assert fmt.event_title("AID_ASSIGNED") in rows[0]  # what it awaits
    assert 'data-testid="held-anomaly"' not in rows[0]
    assert 'data-testid="held-count" data-count="1"' in page.text
    # another province's inspector sees none of it
    web.client.post("/web/sign-out", data={"csrf_token": _csrf(web.client.get("/web/held"))})
    web.sign_in("tt-vlg")
    other = web.client.get("/web/held")
    assert other.status_code == 200 and script.case_id not in other.text
    assert (
        web.client.get("/web/held", params={"agency_id": "lsn-police-investigation"}).status_code
        == 403
    )


def _csrf(page: object) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)  # type: ignore[attr-defined]
    assert found is not None
    return found.group(1)


def test_held_anomaly_on_the_held_page_the_dashboard_and_the_inspection_pack(web: Web) -> None:
    script, _ = _held_case(web)
    web.sign_in()
    agency = "lsn-police-investigation"
    dashboard = web.client.get("/web/dashboard")
    assert 'data-testid="held-anomalies"' in dashboard.text
    before = dashboard.text.split('data-testid="held-anomalies"')[1].split("</section>")[0]
    assert f'data-agency="{agency}"' in before and 'data-testid="held-anomaly-link"' not in before

    _days_later(web, 4)  # past the 72 h setting
    held = web.client.get("/web/held")
    row = held.text.split('data-testid="held-row"')[1].split("</tr>")[0]
    assert 'data-testid="held-anomaly"' in row and "96" in row
    dashboard = web.client.get("/web/dashboard")
    section = dashboard.text.split('data-testid="held-anomalies"')[1].split("</section>")[0]
    found = re.search(
        rf'data-agency="{agency}".*?<a href="([^"]+)" data-testid="held-anomaly-link"'
        rf' data-count="(\d+)"',
        section,
        re.S,
    )
    assert found is not None, section
    assert found.group(2) == "1"
    listed = web.client.get(found.group(1).replace("&amp;", "&"))
    assert listed.status_code == 200 and script.case_id in listed.text
    assert 'data-testid="held-count" data-count="1"' in listed.text

    pack = web.client.get("/web/inspection", params={"agency_id": agency})
    part = pack.text.split('data-testid="held-anomalies"')[1].split("</section>")[0]
    assert 'data-count="1"' in part and script.case_id in part
    assert fmt.event_title("AID_ASSIGNED") in part
    english = web.client.get("/web/inspection", params={"agency_id": agency, "lang": "en"})
    part_en = english.text.split('data-testid="held-anomalies"')[1].split("</section>")[0]
    assert "Held longer than 72 h" in part_en and script.case_id in part_en
    held_en = web.client.get("/web/held", params={"lang": "en"})
    assert "Held events" in held_en.text and "Anomaly" in held_en.text
    web.client.get("/web/cases", params={"lang": "vi"})


def test_the_timeline_shows_a_corrected_and_a_withdrawn_event_with_who_when_and_why(
    web: Web,
) -> None:
    # issue 13 item 3: "the audit trail and timeline show both, with who and when": the original
    # row says it was corrected (who, when, reason, recorded → corrected value) or withdrawn,
    # and the amendment's own row names the event it amends; in Vietnamese and in English
    start = datetime.now(VIETNAM_TZ).replace(second=0, microsecond=0) - timedelta(days=20)
    script = CaseScript(start=start)
    opening, request, transfer, accept = (
        script.notification(),
        script.request(),
        script.transfer(),
        script.accept(),
    )
    right = datetime.fromisoformat(request["occurred_at"]) - timedelta(minutes=30)
    correction = script.event(
        "EVENT_CORRECTED",
        after=timedelta(minutes=1),
        data={
            "target_event_id": request["event_id"],
            "changes": {"occurred_at": right.isoformat()},
            "reason_code": "WRONG_OCCURRED_AT",
            "reason": "CV-12/2026",
        },
    )
    withdrawal = script.event(
        "EVENT_WITHDRAWN",
        agency=accept["agency_id"],
        after=timedelta(minutes=1),
        data={"target_event_id": accept["event_id"], "reason_code": "ENTERED_TWICE"},
    )
    app = web.container.referrals
    for wire in (opening, request, transfer, accept, correction, withdrawal):
        app.record_event(wire)
    web.container.projections.catch_up(timeout=30)
    web.sign_in()
    page = web.client.get(f"/web/cases/{script.case_id}")
    rows = _rows(page.text)
    assert len(rows) == 6
    police = fmt.agency_name(app.reference, request["agency_id"])
    centre = fmt.agency_name(app.reference, accept["agency_id"])

    corrected = rows[1]
    assert 'data-testid="event-corrected"' in corrected and "Đã đính chính" in corrected
    assert 'data-testid="event-withdrawn"' not in corrected
    assert f"Đính chính bởi {police} (sự kiện thứ 5)" in corrected
    assert "Ghi sai thời điểm xảy ra" in corrected and "CV-12/2026" in corrected
    change = corrected.split('data-testid="amendment-change">')[1].split("</span>")[0]
    assert change == (
        f"Xảy ra: {fmt.vn_time(request['occurred_at'])} → {fmt.vn_time(right.isoformat())}"
    )
    recorded_at = app.case_history(script.case_id)[4].timestamp
    assert fmt.vn_time(recorded_at) in corrected  # when the ledger learned of the correction

    withdrawn = rows[3]
    assert 'data-testid="event-withdrawn"' in withdrawn and "Đã rút" in withdrawn
    assert f"Rút bởi {centre} (sự kiện thứ 6)" in withdrawn and "Ghi trùng" in withdrawn

    assert 'data-testid="event-amends" data-target="2"' in rows[4]
    assert f"Đính chính sự kiện thứ 2: {fmt.event_title('AID_REQUESTED')}" in rows[4]
    assert 'data-testid="event-amends" data-target="4"' in rows[5]
    assert f"Rút sự kiện thứ 4: {fmt.event_title('REQUEST_ACCEPTED')}" in rows[5]

    english = _rows(web.client.get(f"/web/cases/{script.case_id}", params={"lang": "en"}).text)
    assert "Corrected" in english[1] and f"Corrected by {police} (event 5)" in english[1]
    assert "Withdrawn" in english[3] and f"Withdrawn by {centre} (event 6)" in english[3]
    assert f"Corrects event 2: {fmt.event_title('AID_REQUESTED', 'en')}" in english[4]
    web.client.get("/web/cases", params={"lang": "vi"})

    # as known before the correction was recorded: the original without the mark
    before = web.client.get(f"/web/cases/{script.case_id}", params={"v": "4"})
    assert 'data-testid="event-corrected"' not in before.text
    assert 'data-testid="event-withdrawn"' not in before.text
