"""Issue 17 on the web pages: the dashboard's contacts table (rule C2) links every number to
its cases, and the inspection pack lists the persons never told of the right."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from domain.calendar import VIETNAM_TZ
from tests.factories import POLICE, CaseScript
from tests.unit.web.conftest import Web


def _record_contacts(web: Web) -> tuple[str, str]:
    start = datetime.now(VIETNAM_TZ).replace(microsecond=0) - timedelta(days=5)
    never = CaseScript(start=start)
    late = CaseScript(start=start)
    wires = [
        never.contact(),
        late.contact(),
        late.event("NOTIFICATION_ISSUED", after=timedelta(hours=30), data={"form": "MAU_01"}),
    ]
    results = web.container.referrals.record_batch(wires)
    assert all(not hasattr(r, "error") for r in results), results
    web.container.projections.catch_up(timeout=30)
    return never.case_id, late.case_id


def _link(html: str, testid: str) -> tuple[str, int]:
    found = re.search(rf'<a href="([^"]+)" data-testid="{testid}" data-count="(\d+)"', html)
    assert found is not None, testid
    return found.group(1).replace("&amp;", "&"), int(found.group(2))


def test_dashboard_contacts_numbers_link_to_their_cases(web: Web) -> None:
    never, late = _record_contacts(web)
    web.sign_in()
    page = web.client.get("/web/dashboard")
    assert page.status_code == 200
    assert 'data-testid="contacts-table"' in page.text
    for cell, case_id in (("never", never), ("late", late)):
        href, count = _link(page.text, f"contact-link-{cell}")
        assert count == 1
        drill = web.client.get(href)
        assert drill.status_code == 200, href
        assert case_id in drill.text and 'data-testid="drill-row"' in drill.text
    href, count = _link(page.text, "contact-link-eligible")
    assert count == 2
    drill = web.client.get(href)
    assert never in drill.text and late in drill.text
    href, count = _link(page.text, "contact-link-contacts")
    assert count == 2 and "PROCEDURAL_CONTACT" in href
    assert web.client.get(href).status_code == 200


def test_inspection_pack_lists_the_never_notified_persons_of_the_agency(web: Web) -> None:
    never, late = _record_contacts(web)
    web.sign_in()
    page = web.client.get(f"/web/inspection?agency_id={POLICE}")
    assert page.status_code == 200
    section = page.text[page.text.index('data-testid="never-notified"') :]
    assert never in section.split("</section>")[0]
    assert late not in section.split("</section>")[0]
    assert 'data-testid="check-NOTIFIED"' in page.text
