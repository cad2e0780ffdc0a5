"""What people print and type, in a real chromium: the report's charts are there when the page
is printed (not lazy images never scrolled to), and dates are typed dd/mm/yyyy (24 h)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Site
from tests.browser.test_web_pages import sign_in

pytestmark = pytest.mark.browser


def test_report_typed_dd_mm_yyyy_prints_with_its_charts(page: Any, site: Site) -> None:
    sign_in(page, site, "hd-lsn", path="/web/reports")
    page.get_by_label("Khoảng ngày khác").check()
    page.get_by_label("Từ ngày").fill(f"{site.period_from:%d/%m/%Y}")
    page.get_by_label("Đến ngày").fill(f"{site.period_to:%d/%m/%Y}")
    page.get_by_role("button", name="Xem").click()
    expect(page.get_by_test_id("report-heading")).to_contain_text(
        f"Từ ngày {site.period_from:%d/%m/%Y} đến ngày {site.period_to:%d/%m/%Y}"
    )
    expect(page.get_by_label("Từ ngày")).to_have_value(f"{site.period_from:%d/%m/%Y}")
    # print at once, scrolling nowhere: every chart must already be there
    page.emulate_media(media="print")
    page.wait_for_load_state("load")
    loaded = page.evaluate(
        "() => Array.from(document.querySelectorAll('figure img'))"
        ".map(img => img.complete && img.naturalWidth > 0)"
    )
    assert loaded and all(loaded), loaded
    pdf = page.pdf(format="A4", print_background=False)
    assert pdf[:5] == b"%PDF-" and len(pdf) > 50_000  # the chart images are in it


def test_case_replay_takes_a_typed_dd_mm_yyyy_hh_mm(page: Any, site: Site) -> None:
    sign_in(page, site, "tt-lsn", path=f"/web/cases/{site.replay_case}")
    field = page.get_by_test_id("replay-at")
    assert re.fullmatch(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}", field.input_value())
    assert field.get_attribute("type") == "text"
    field.fill("01/01/2021 08:00")
    page.get_by_role("button", name="Xem lại").click()
    expect(page.get_by_test_id("replay-empty")).to_have_text(
        "Chưa có sự kiện nào của vụ việc được ghi vào sổ tại thời điểm này."
    )
    expect(page.get_by_test_id("replay-at")).to_have_value("01/01/2021 08:00")  # as typed
