"""The inspectors' and council's pages in a real browser (Debian's chromium via Playwright):
sign in, find a case, replay it, follow a dashboard number to its cases, download the council's
report, print an inspection pack, sign out; another province's inspector sees nothing.

Every page is checked for its key Vietnamese labels (with diacritics) and for no horizontal
scrolling at 1280×800 and 800×1280; screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from openpyxl import load_workbook
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, SCREENSHOTS, SECRET_NAME, VIEWPORTS, Site

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

POLICE_NAME = "Cơ quan Cảnh sát điều tra Công an tỉnh Lạng Sơn"


def check_page(page: Any, name: str, *labels: str) -> None:
    """Key labels visible; no horizontal scrolling at either viewport; a screenshot of each."""
    for label in labels:
        expect(page.get_by_text(label, exact=False).first).to_be_visible()
    for width, height in VIEWPORTS:
        page.set_viewport_size({"width": width, "height": height})
        scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, f"{name} scrolls sideways at {width}×{height}: {scroll} > {inner}"
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}x{height}.png"), full_page=True)
    page.set_viewport_size({"width": VIEWPORTS[0][0], "height": VIEWPORTS[0][1]})


def sign_in(
    page: Any, site: Site, username: str, password: str = PASSWORD, path: str = "/web/cases"
) -> None:
    page.goto(site.url(path))
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu").fill(password)
    page.get_by_role("button", name="Đăng nhập").click()


def period(site: Site, **extra: str) -> str:
    return urlencode(
        {"from": site.period_from.isoformat(), "to": site.period_to.isoformat(), **extra}
    )


def test_inspector_signs_in_finds_a_case_replays_it_and_signs_out(page: Any, site: Site) -> None:
    page.goto(site.url("/web/cases"))
    expect(page).to_have_url(re.compile(r"/web/sign-in\?next="))
    check_page(
        page, "01-sign-in", "Đăng nhập dành cho thanh tra và Hội đồng", "Tên đăng nhập", "Mật khẩu"
    )
    sign_in(page, site, "tt-lsn", "mat-khau-sai-roi")
    expect(page.get_by_test_id("sign-in-error")).to_have_text(
        "Tên đăng nhập hoặc mật khẩu không đúng."
    )
    page.get_by_label("Tên đăng nhập").fill("tt-lsn")
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page).to_have_url(site.url("/web/cases"))
    check_page(
        page,
        "02-case-search",
        "Tìm vụ việc",
        "Mã vụ việc",
        "Diện người được TGPL",
        "Cơ quan đang thụ lý",
        "Có hoạt động trong khoảng",
        "Thanh tra Lạng Sơn",
    )

    page.get_by_label("Mã vụ việc").fill(site.replay_case.lower())
    page.get_by_role("button", name="Tìm", exact=True).click()
    expect(page.get_by_test_id("result-count")).to_have_text("Tìm thấy 1 vụ việc")
    page.get_by_role("link", name=site.replay_case).click()
    expect(page.get_by_test_id("case-status")).to_have_text("đã kết thúc")
    check_page(
        page,
        "03-case",
        "Diễn biến vụ việc",
        "Thời hạn luật định",
        "Đúng hạn",
        "Tính toàn vẹn của chuỗi sự kiện",
        "Xem lại vụ việc tại một thời điểm",
        "Giải thích, thông báo về quyền được trợ giúp pháp lý",
        "Chuyển yêu cầu trợ giúp pháp lý cho Trung tâm TGPL nhà nước",
        "Căn cứ pháp lý",
        "Ghi vào sổ",
    )
    expect(page.get_by_test_id("integrity")).to_have_text("Đã kiểm chứng")
    expect(page.get_by_test_id("timeline-event")).to_have_count(7)
    assert re.search(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}", page.inner_text("ol.timeline"))
    html = page.content()
    assert SECRET_NAME not in html and "1988-02-03" not in html

    # replay on a date before anything was recorded: nothing yet
    page.get_by_test_id("replay-at").fill("2021-01-01T08:00")
    page.get_by_role("button", name="Xem lại").click()
    expect(page.get_by_test_id("replay-empty")).to_have_text(
        "Chưa có sự kiện nào của vụ việc được ghi vào sổ tại thời điểm này."
    )
    # move the slider to the second recorded event: the request, not yet transferred
    page.get_by_test_id("replay-step").fill("2")
    expect(page).to_have_url(re.compile(r"[?&]v=2$"))
    expect(page.get_by_test_id("summary-status")).to_have_text("đã tiếp nhận yêu cầu")
    expect(page.get_by_test_id("timeline-event")).to_have_count(2)
    expect(page.get_by_test_id("replay-banner")).to_contain_text("2/7 sự kiện")
    check_page(page, "04-case-replay", "Đang xem lại", "Về hiện tại")
    # and forward to the Centre's acceptance, from the timeline of the full case
    page.get_by_role("link", name="Về hiện tại").click()
    page.get_by_role("link", name="Xem vụ việc tại sự kiện này").nth(3).click()
    expect(page.get_by_test_id("summary-status")).to_have_text("Trung tâm đã thụ lý")

    page.get_by_role("button", name="Đăng xuất").click()
    expect(page.get_by_text("Bạn đã đăng xuất.")).to_be_visible()
    page.goto(site.url(f"/web/cases/{site.replay_case}"))
    expect(page).to_have_url(re.compile(r"/web/sign-in\?next="))


def test_dashboard_number_leads_to_the_cases_behind_it(page: Any, site: Site) -> None:
    sign_in(page, site, "tt-lsn", path=f"/web/dashboard?{period(site, province='LSN')}")
    check_page(
        page,
        "05-dashboard",
        "Số liệu theo cơ quan",
        "Sự kiện đã ghi theo cơ quan",
        "Tổng số sự kiện theo cơ quan",
        "Tuân thủ thời hạn",
        "Tỷ lệ đúng hạn",
        "Đang quá hạn (chưa thực hiện)",
        "Tỉnh Lạng Sơn",
    )
    row = (
        page.get_by_test_id("compliance-table")
        .locator("tr")
        .filter(has_text="C1_12H")
        .filter(has_text=POLICE_NAME)
    )
    missed = row.get_by_test_id("limit-link-missed")
    count = int(missed.get_attribute("data-count"))
    assert count >= 1
    missed.click()
    expect(page.get_by_test_id("drill-count")).to_have_attribute("data-events", str(count))
    expect(page.get_by_test_id("drill-row")).to_have_count(count)
    expect(page.get_by_role("link", name=site.late_case)).to_be_visible()
    check_page(page, "06-drill-down-limits", "Các vụ việc phía sau con số", "Quá hạn", "Hạn cuối")

    page.get_by_role("link", name="Quay lại bảng số liệu").click()
    requests = (
        page.get_by_test_id("counts-table")
        .locator("tr")
        .filter(has_text=POLICE_NAME)
        .locator("a[href*='event_type=AID_REQUESTED']")
    )
    count = int(requests.get_attribute("data-count"))
    requests.click()
    expect(page.get_by_test_id("drill-count")).to_have_attribute("data-events", str(count))
    expect(page.get_by_test_id("drill-row")).to_have_count(count)
    expect(page.get_by_role("link", name=site.no_form03_case)).to_be_visible()
    check_page(page, "07-drill-down-events", "Tiếp nhận yêu cầu trợ giúp pháp lý", "sự kiện trong")
    page.get_by_role("link", name=site.late_case).click()
    expect(page.get_by_text("Quá hạn").first).to_be_visible()


def test_council_downloads_the_report_and_opens_it(page: Any, site: Site, tmp_path: Path) -> None:
    sign_in(page, site, "hd-lsn", path="/web/reports")
    check_page(
        page,
        "08-report",
        "Báo cáo của Hội đồng phối hợp liên ngành",
        "Kỳ 01/01 – 31/10",
        "Kỳ 01/01 – 31/12",
        "Kết quả theo cơ quan",
        "Tải báo cáo Excel (XLSX)",
        "Hội đồng tỉnh Lạng Sơn",
    )
    checked = page.locator("input[name=period]:checked")
    assert checked.get_attribute("value") in ("jan-oct", "full-year")
    page.get_by_label("Khoảng ngày khác").check()
    page.get_by_label("Từ ngày").fill(site.period_from.isoformat())
    page.get_by_label("Đến ngày").fill(site.period_to.isoformat())
    page.get_by_role("button", name="Xem").click()
    expect(page.get_by_test_id("report-heading")).to_contain_text(
        f"Từ ngày {site.period_from:%d/%m/%Y} đến ngày {site.period_to:%d/%m/%Y}"
    )
    chart = page.locator("figure img").first
    chart.scroll_into_view_if_needed()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=chart.element_handle()
    )
    with page.expect_download() as download_info:
        page.get_by_test_id("download-xlsx").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".xlsx")
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    workbook = load_workbook(target)
    assert workbook.sheetnames[:3] == ["Thông tin chung", "Theo cơ quan", "Tuân thủ thời hạn"]
    assert str(workbook["Thông tin chung"]["A1"].value).startswith("BÁO CÁO KẾT QUẢ PHỐI HỢP")
    agencies = {row[0]: row for row in workbook["Theo cơ quan"].iter_rows(values_only=True)}
    assert agencies["lsn-police-investigation"][1] == POLICE_NAME
    assert "vlg-police-investigation" not in agencies


def test_inspection_pack_lists_failing_cases_and_prints(page: Any, site: Site) -> None:
    sign_in(page, site, "tt-lsn", path="/web/inspection")
    page.get_by_label("Cơ quan").select_option("lsn-police-investigation")
    page.get_by_label("Từ ngày").fill(site.period_from.isoformat())
    page.get_by_label("Đến ngày").fill(site.period_to.isoformat())
    page.get_by_role("button", name="Xem").click()
    expect(page.get_by_test_id("pack-heading")).to_have_text(f"Hồ sơ kiểm tra: {POLICE_NAME}")
    check_page(
        page,
        "09-inspection",
        "Nội dung kiểm tra",
        "Không đạt",
        "Các vụ việc chưa đạt",
        "Ghi chú của đoàn kiểm tra",
        "Từ chối thụ lý bằng văn bản, có nêu lý do",
        "Không áp dụng cho loại cơ quan này",
    )
    expect(page.get_by_test_id("check-FORM_03")).to_contain_text("Không đạt")
    expect(
        page.get_by_test_id("detail-FORM_03").get_by_role("link", name=site.no_form03_case)
    ).to_be_visible()
    expect(page.get_by_test_id("check-TRANSFER")).to_contain_text("Không đạt")
    expect(
        page.get_by_test_id("detail-TRANSFER").get_by_role("link", name=site.late_case)
    ).to_be_visible()
    page.emulate_media(media="print")
    expect(page.locator("header.site")).to_be_hidden()
    expect(page.get_by_test_id("inspection-form")).to_be_hidden()
    page.screenshot(path=str(SCREENSHOTS / "10-inspection-print.png"), full_page=True)
    page.emulate_media(media="screen")


def test_other_province_inspector_sees_nothing_of_this_one(page: Any, site: Site) -> None:
    sign_in(page, site, "tt-vlg")
    page.get_by_label("Mã vụ việc").fill(site.replay_case)
    page.get_by_role("button", name="Tìm", exact=True).click()
    expect(page.get_by_test_id("no-cases")).to_have_text(
        "Không tìm thấy vụ việc nào phù hợp trong phạm vi được xem."
    )
    page.goto(site.url("/web/cases"))
    expect(page.get_by_role("link", name=site.vlg_case)).to_be_visible()
    expect(page.get_by_role("link", name=site.replay_case)).to_have_count(0)
    response = page.goto(site.url(f"/web/cases/{site.replay_case}"))
    assert response is not None and response.status == 403
    check_page(page, "11-refused", "Không thực hiện được", "Bạn không có quyền xem nội dung này.")
    assert site.replay_case not in page.inner_text("main")
    response = page.goto(site.url(f"/web/dashboard?{period(site, province='LSN')}"))
    assert response is not None and response.status == 403
    response = page.goto(
        site.url(
            f"/web/dashboard/cases?{period(site, province='VLG', agency_id='lsn-police-investigation')}"
        )
    )
    assert response is not None and response.status == 403


def test_pages_switch_to_english(page: Any, site: Site) -> None:
    sign_in(page, site, "tt-lsn")
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", name="Find a case")).to_be_visible()
    page.goto(site.url("/web/dashboard"))
    expect(page.get_by_role("heading", name="Agency figures")).to_be_visible()
    page.get_by_role("link", name="Tiếng Việt").click()
    expect(page.get_by_role("heading", name="Số liệu theo cơ quan")).to_be_visible()
