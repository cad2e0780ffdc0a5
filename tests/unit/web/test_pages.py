"""The pages over TestClient: sign-in, CSRF, session expiry, scope, no identity, integrity."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from infra.web import ensure_demo_accounts
from infra.web.accounts import IDLE_TTL
from infra.web.deps import CSP, SESSION_COOKIE
from infra.web.i18n import EN, VI
from tests.unit.conftest import FixedClock
from tests.unit.web.conftest import PASSWORD, SECRET_NAME, Web, csrf_of


def test_page_redirects_to_sign_in_when_not_signed_in(web: Web) -> None:
    response = web.client.get("/web/cases?status=OPEN", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/web/sign-in?next=%2Fweb%2Fcases%3Fstatus%3DOPEN"
    page = web.client.get(response.headers["location"])
    assert "Đăng nhập dành cho thanh tra và Hội đồng" in page.text
    assert 'name="next" value="/web/cases?status=OPEN"' in page.text


def test_sign_in_fails_when_password_wrong(web: Web) -> None:
    response = web.sign_in(password="khong-dung-mat-khau")
    assert response.status_code == 400
    assert "Tên đăng nhập hoặc mật khẩu không đúng." in response.text
    assert SESSION_COOKIE not in response.cookies
    assert web.client.get("/web/cases", follow_redirects=False).status_code == 303


def test_sign_in_sets_an_http_only_lax_cookie_when_password_right(web: Web) -> None:
    response = web.sign_in()
    assert response.status_code == 303 and response.headers["location"] == "/web/cases"
    cookie = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "=")
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/web" in cookie
    page = web.client.get("/web/cases")
    assert page.status_code == 200 and "Thanh tra Lạng Sơn" in page.text


def test_sign_in_refused_when_csrf_token_wrong(web: Web) -> None:
    web.sign_in_token()
    response = web.client.post(
        "/web/sign-in",
        data={"username": "tt-lsn", "password": PASSWORD, "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "Biểu mẫu đã hết hiệu lực" in response.text
    assert SESSION_COOKIE not in response.cookies


def test_sign_in_refused_when_posted_from_another_site(web: Web) -> None:
    token = web.sign_in_token()
    response = web.client.post(
        "/web/sign-in",
        data={"username": "tt-lsn", "password": PASSWORD, "csrf_token": token},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.cookies


def test_sign_out_refused_when_csrf_token_missing_and_done_with_it(web: Web) -> None:
    web.sign_in()
    refused = web.client.post("/web/sign-out", data={}, follow_redirects=False)
    assert refused.status_code == 403 and "Biểu mẫu đã hết hiệu lực" in refused.text
    page = web.client.get("/web/cases")
    assert page.status_code == 200  # still signed in
    done = web.client.post(
        "/web/sign-out", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == "/web/sign-in?signed_out=1"
    assert web.client.get("/web/cases", follow_redirects=False).status_code == 303


def test_session_expires_when_idle_too_long(web: Web) -> None:
    web.sign_in()
    assert web.client.get("/web/cases").status_code == 200
    clock = FixedClock(web.container.referrals.clock())
    web.store.clock = clock
    clock.advance(IDLE_TTL + timedelta(seconds=1))
    response = web.client.get("/web/cases", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].endswith("&expired=1")
    page = web.client.get(response.headers["location"])
    assert "Phiên làm việc đã hết hạn" in page.text


def test_case_page_never_shows_clear_identity(web: Web) -> None:
    web.sign_in()
    case_id = web.cases["full"].case_id
    page = web.client.get(f"/web/cases/{case_id}")
    assert page.status_code == 200
    for label in (
        "Diễn biến vụ việc",
        "Thời hạn luật định",
        "Tính toàn vẹn của chuỗi sự kiện",
        "Giải thích, thông báo về quyền được trợ giúp pháp lý",
        "đã kết thúc",
    ):
        assert label in page.text
    assert SECRET_NAME not in page.text and "1990-05-01" not in page.text
    assert "Có kèm thông tin định danh (đã mã hoá)" in page.text


def test_case_replay_shows_the_state_after_each_recorded_event(web: Web) -> None:
    web.sign_in()
    case_id = web.cases["full"].case_id
    assert "đã tiếp nhận yêu cầu" in web.client.get(f"/web/cases/{case_id}?v=2").text
    before = web.client.get(f"/web/cases/{case_id}?at=2020-01-01T00:00").text
    assert "Chưa có sự kiện nào của vụ việc được ghi vào sổ tại thời điểm này." in before


def test_other_province_inspector_sees_nothing_of_this_one(web: Web) -> None:
    web.sign_in("tt-vlg")
    case_id = web.cases["full"].case_id
    refused = web.client.get(f"/web/cases/{case_id}")
    assert refused.status_code == 403 and "Bạn không có quyền xem nội dung này." in refused.text
    main = refused.text.split('<main id="main">')[1]
    assert case_id not in main  # only the address the user typed, in the language link
    search = web.client.get("/web/cases", params={"q": case_id})
    assert "Không tìm thấy vụ việc nào" in search.text
    listing = web.client.get("/web/cases")
    assert case_id not in listing.text and web.cases["other"].case_id in listing.text
    assert web.client.get("/web/dashboard", params={"province": "LSN"}).status_code == 403
    assert (
        web.client.get(
            "/web/inspection", params={"agency_id": "lsn-police-investigation"}
        ).status_code
        == 403
    )


def test_case_page_shows_the_chain_broken_when_a_stored_event_is_altered(web: Web) -> None:
    web.sign_in()
    case_id = web.cases["full"].case_id
    assert "Đã kiểm chứng" in web.client.get(f"/web/cases/{case_id}").text
    with sqlite3.connect(web.container.settings.sqlite_file) as conn:
        changed = conn.execute(
            "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), "
            "'\"lsn-centre\"', '\"vlg-centre\"') AS BLOB) "
            "WHERE CAST(state AS TEXT) LIKE ?",
            (f'%"event_id":"{case_id}-003"%',),
        ).rowcount
    assert changed == 1
    page = web.client.get(f"/web/cases/{case_id}").text
    assert "Bị phá vỡ" in page
    assert f"Chuỗi bị phá vỡ tại sự kiện thứ 3 (mã sự kiện {case_id}-003)" in page


def test_pages_carry_a_strict_content_security_policy_and_no_store(web: Web) -> None:
    web.sign_in()
    for path in ("/web/cases", "/web/dashboard", "/web/reports", "/web/inspection"):
        response = web.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["cache-control"] == "no-store"


def test_english_switch_is_remembered_in_a_cookie(web: Web) -> None:
    web.sign_in()
    english = web.client.get("/web/cases?lang=en")
    assert "Find a case" in english.text and 'lang="en"' in english.text
    assert "Find a case" in web.client.get("/web/cases").text
    assert "Tìm vụ việc" in web.client.get("/web/cases?lang=vi").text


def test_every_string_exists_in_both_languages() -> None:
    assert set(VI) == set(EN)


def test_demo_accounts_keep_their_password_across_starts(web: Web) -> None:
    # issue 15: a restart of the demo on the same data directory keeps its credentials
    first = dict(ensure_demo_accounts(web.container))
    second = dict(ensure_demo_accounts(web.container))
    assert set(first) == {"thanhtra", "hoidong"} and first == second
    assert web.sign_in("thanhtra", first["thanhtra"]).status_code == 303


@pytest.mark.parametrize("path", ["/web/dashboard", "/web/reports"])
def test_council_reads_only_its_province(web: Web, path: str) -> None:
    web.store.create_account(
        "hd-lsn",
        PASSWORD,
        "council",
        "Hội đồng Lạng Sơn",
        provinces=["LSN"],
        reference=web.container.reference,
    )
    web.sign_in("hd-lsn")
    assert web.client.get(path).status_code == 200
    assert web.client.get(path, params={"province": "VLG"}).status_code == 403
