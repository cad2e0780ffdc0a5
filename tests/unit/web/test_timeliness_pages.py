"""Issue 13 item 5 on the web pages: the dashboard's timeliness table (events entered late,
median delay) links its numbers to their cases, in both languages, and the inspection pack
shows the agency's late entries. Two commune-police contacts recorded now: one occurred 3 days ago
(late), one 2 hours ago (on time)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from domain.calendar import VIETNAM_TZ
from tests.factories import POLICE_2, CaseScript
from tests.unit.web.conftest import Web


def _record(web: Web) -> tuple[str, str]:
    now = datetime.now(VIETNAM_TZ).replace(microsecond=0)
    late = CaseScript(start=now - timedelta(days=3), holder=POLICE_2)
    on_time = CaseScript(start=now - timedelta(hours=2), holder=POLICE_2)
    results = web.container.referrals.record_batch([late.contact(), on_time.contact()])
    assert all(not hasattr(r, "error") for r in results), results
    web.container.projections.catch_up(timeout=30)
    return late.case_id, on_time.case_id


def _link(html: str, testid: str) -> tuple[str, int]:
    found = re.search(rf'<a href="([^"]+)" data-testid="{testid}" data-count="(\d+)"', html)
    assert found is not None, testid
    return found.group(1).replace("&amp;", "&"), int(found.group(2))


def _row(html: str, agency_id: str) -> str:
    table = html[html.index('data-testid="timeliness-table"') :]
    return table[table.index(f'data-agency="{agency_id}"') :].split("</tr>")[0]


def test_dashboard_shows_late_entries_and_links_them_to_their_cases(web: Web) -> None:
    late, on_time = _record(web)
    web.sign_in()
    page = web.client.get("/web/dashboard")
    assert page.status_code == 200
    row = _row(page.text, POLICE_2)
    href, count = _link(row, "timeliness-link-late")
    assert count == 1 and "late=1" in href
    assert _link(row, "timeliness-link-events")[1] == 2
    # median of 2 h and 72 h: 37 h
    assert re.search(r'data-testid="timeliness-median">37,0 giờ<', row), row
    drill = web.client.get(href)
    assert drill.status_code == 200
    assert late in drill.text and on_time not in drill.text
    assert 'data-testid="drill-late-only"' in drill.text
    everything = web.client.get(_link(row, "timeliness-link-events")[0])
    assert late in everything.text and on_time in everything.text

    english = web.client.get("/web/dashboard?lang=en")
    assert "Timeliness of recording" in english.text and "Entered late" in english.text
    assert 'data-testid="timeliness-median">37.0 h<' in _row(english.text, POLICE_2)
    web.client.get("/web/dashboard?lang=vi")


def test_inspection_pack_lists_the_agency_late_entries(web: Web) -> None:
    late, on_time = _record(web)
    web.sign_in()
    page = web.client.get(f"/web/inspection?agency_id={POLICE_2}")
    assert page.status_code == 200
    section = page.text[page.text.index('data-testid="timeliness"') :].split("</section>")[0]
    assert 'data-testid="timeliness-late" data-count="1"' in section
    listed = section[section.index('data-testid="timeliness-late-list"') :]
    assert late in listed and on_time not in listed
    assert "37,0 giờ" in section
