"""What people read and print on the pages: every label in the chosen language on every page,
one date format (dd/mm/yyyy, 24 h) in and out, charts that print, the as-of view's integrity,
and a favicon."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.routing import APIRoute

from domain.calendar import VIETNAM_TZ
from infra.web import format as fmt
from infra.web.i18n import EN
from tests.unit.web.conftest import Web

# Text of these elements (and these attributes) is a label: a word of the page, not data.
LABEL_TAGS = {
    "title",
    "h1",
    "h2",
    "h3",
    "th",
    "dt",
    "label",
    "legend",
    "button",
    "figcaption",
    "caption",
    "summary",
    "a",
}
LABEL_ATTRIBUTES = ("alt", "title", "aria-label", "placeholder")
# letters that only Vietnamese (of the two languages) writes
VIETNAMESE = re.compile(r"[À-ÃÈ-ÊÌÍÒ-ÕÙÚÝà-ãè-êìíò-õùúýĂăĐđĨĩŨũƠơƯưẠ-ỹ]")


class Labels(HTMLParser):
    """Collects label text: the data directly inside a LABEL_TAGS element, and label
    attributes of any element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("br", "input", "img", "meta", "link", "hr"):
            self.stack.append(tag)
        self.found.extend(v for k, v in attrs if k in LABEL_ATTRIBUTES and v)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] in LABEL_TAGS and data.strip():
            self.found.append(data.strip())


def proper_names(web: Web) -> list[str]:
    """Names that stay Vietnamese in both languages: the reference data's names of agencies,
    provinces, categories and codes, and the rules' titles (the legal terms)."""
    reference = web.container.reference
    names = [a.name_vi for a in reference.agencies.values()]
    names += [p.name_vi for p in reference.provinces.values()]
    names += [c.name_vi for c in reference.categories.values()]
    names += [i.name_vi for items in reference.code_lists.values() for i in items.values()]
    names += [r.title_vi for r in web.container.rules]
    names += [EN["language_switch"], EN["language_switch_title"]]  # the way back, in Vietnamese
    return sorted(set(names), key=len, reverse=True)


def vietnamese_labels(html: str, names: list[str]) -> list[str]:
    parser = Labels()
    parser.feed(html)
    left = []
    for text in parser.found:
        for name in names:
            text = text.replace(name, "")
        if VIETNAMESE.search(text):
            left.append(text)
    return left


def every_page(web: Web) -> dict[str, str]:
    """One address per web page (and the variants that show other labels)."""
    case_id = web.cases["full"].case_id
    rule = web.container.rules[0].rule_id
    yesterday = (datetime.now(VIETNAM_TZ) - timedelta(days=1)).strftime("%d/%m/%Y %H:%M")
    return {
        "/web/cases": "/web/cases",
        "/web/cases/{case_id:path}": f"/web/cases/{case_id}",
        "case replayed": f"/web/cases/{case_id}?v=2",
        "case as of": f"/web/cases/{case_id}?at=2020-01-01T00:00",
        "case as it happened": f"/web/cases/{case_id}?at={yesterday}&clock=occurred",
        "case as it happened, before it": f"/web/cases/{case_id}?at=2020-01-01T00:00&clock=occurred",
        "/web/held": "/web/held",
        "held anomalies": "/web/held?anomaly=1&agency_id=lsn-police",
        "/web/dashboard": "/web/dashboard",
        "/web/dashboard/cases": "/web/dashboard/cases?agency_id=lsn-police",
        "drill-down by limit": f"/web/dashboard/cases?rule_id={rule}&status=met&agency_id=-",
        "/web/reports": "/web/reports",
        "/web/inspection": "/web/inspection?agency_id=lsn-police",
        "/web/reference": "/web/reference",
        "error": "/web/cases/VV-KHONG-CO",
    }


def _get_routes(routes: Any, prefix: str = "") -> Iterator[str]:
    """Every GET path of the app, also behind included routers (FastAPI keeps an included
    router as one `_IncludedRouter` entry with the original router and its prefix)."""
    for route in routes:
        if isinstance(route, APIRoute):
            if "GET" in route.methods:
                yield prefix + route.path
        elif hasattr(route, "original_router"):  # an included router
            context = getattr(route, "include_context", None)
            yield from _get_routes(
                route.original_router.routes, prefix + (getattr(context, "prefix", "") or "")
            )


def test_every_web_page_is_walked(web: Web) -> None:
    pages = {
        p
        for p in _get_routes(web.client.app.routes)  # type: ignore[attr-defined]
        if p.startswith("/web")
    }
    assert len(pages) >= 10, pages  # the walk sees the pages (not an empty set that proves nothing)
    not_pages = {
        "/web",
        "/web/",
        "/web/reports/download",
        "/web/sign-in",
        "/web/{rest:path}",
    }  # the catch-all answering unknown pages with 404
    assert pages - not_pages <= set(every_page(web)), pages - not_pages - set(every_page(web))


def test_english_pages_have_no_vietnamese_label(web: Web) -> None:
    names = proper_names(web)
    sign_in = web.client.get("/web/sign-in?lang=en")
    problems = {"/web/sign-in": vietnamese_labels(sign_in.text, names)}
    web.sign_in()
    for name, url in every_page(web).items():
        page = web.client.get(url, params={"lang": "en"})
        assert page.status_code in (200, 404), (name, page.status_code)
        assert 'lang="en"' in page.text
        problems[name] = vietnamese_labels(page.text, names)
    assert {k: v for k, v in problems.items() if v} == {}


def test_vietnamese_pages_label_event_data_in_vietnamese(web: Web) -> None:
    web.sign_in()
    page = web.client.get(f"/web/cases/{web.cases['full'].case_id}?lang=vi").text
    assert "Mã người (bí danh, ngẫu nhiên)" in page and "Loại tố tụng" in page
    english = web.client.get(f"/web/cases/{web.cases['full'].case_id}?lang=en").text
    assert "Person id (pseudonym, random)" in english and "Kind of proceedings" in english
    assert "Mã người" not in english and "Loại tố tụng" not in english


@pytest.mark.parametrize("key", sorted(EN))
def test_no_english_string_is_vietnamese(key: str) -> None:
    allowed = {"language_switch_title"}  # names the other language on purpose
    if key not in allowed:
        assert not VIETNAMESE.search(EN[key].replace("Tiếng Việt", "")), EN[key]


def test_every_event_data_field_has_an_english_label() -> None:
    from domain.catalogue import EVENT_TYPES, field_specs
    from infra.web.format import FIELD_TITLES_EN

    titles = {spec.title_vi for wire in EVENT_TYPES for spec in field_specs(wire).values()}
    assert titles - set(FIELD_TITLES_EN) == set()


# ------------------------------------------------------------------------------------ dates
class Inputs(HTMLParser):
    """Every <input>'s attributes, and the visible text (not attributes, scripts or styles)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inputs: list[dict[str, str | None]] = []
        self.text: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "input":
            self.inputs.append(dict(attrs))
        if tag in ("script", "style"):
            self.skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.text.append(data)


def test_every_date_on_every_page_is_dd_mm_yyyy_and_24_hours(web: Web) -> None:
    web.sign_in()
    for lang in ("vi", "en"):
        for name, url in every_page(web).items():
            parser = Inputs()
            parser.feed(web.client.get(url, params={"lang": lang}).text)
            types = {i.get("type") for i in parser.inputs}
            assert not types & {"date", "datetime-local", "time"}, (name, types)
            for field in parser.inputs:
                if field.get("name") in ("from", "to"):
                    assert re.fullmatch(r"(\d{2}/\d{2}/\d{4})?", field["value"] or ""), field
                    assert field["placeholder"] == "dd/mm/yyyy" and field["pattern"]
                if field.get("name") == "at":
                    assert re.fullmatch(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}", field["value"] or "")
                    assert field["placeholder"] == "dd/mm/yyyy hh:mm"
            text = " ".join(parser.text)
            assert not re.search(r"\d{4}-\d{2}-\d{2}", text), (name, lang)
            assert not re.search(r"\b(AM|PM|am|pm)\b", text), (name, lang)
            for field in parser.inputs:  # the page's own pattern accepts what it shows
                if field.get("pattern") and field.get("value"):
                    assert re.fullmatch(str(field["pattern"]), str(field["value"])), field


def test_typed_dd_mm_yyyy_means_the_same_days_as_iso_in_links(web: Web) -> None:
    web.sign_in()
    typed = web.client.get("/web/dashboard", params={"from": "01/02/2026", "to": "28/2/2026"})
    linked = web.client.get("/web/dashboard", params={"from": "2026-02-01", "to": "2026-02-28"})
    for page in (typed, linked):
        assert page.status_code == 200
        assert "Từ ngày 01/02/2026 đến ngày 28/02/2026" in page.text
        assert 'value="01/02/2026"' in page.text and 'value="28/02/2026"' in page.text
    cases = web.client.get("/web/cases", params={"from": "02/01/2020", "to": "03/01/2020"})
    assert 'value="02/01/2020"' in cases.text and 'value="03/01/2020"' in cases.text


def test_as_of_typed_dd_mm_yyyy_hh_mm_replays_like_iso(web: Web) -> None:
    web.sign_in()
    case_id = web.cases["full"].case_id
    # as-of is recording time: these events were recorded minutes ago, so a day ago the
    # ledger knew nothing of them
    after_two = (datetime.now(VIETNAM_TZ) - timedelta(days=1)).replace(second=0, microsecond=0)
    typed = web.client.get(
        f"/web/cases/{case_id}", params={"at": after_two.strftime("%d/%m/%Y %H:%M")}
    ).text
    linked = web.client.get(
        f"/web/cases/{case_id}", params={"at": after_two.strftime("%Y-%m-%dT%H:%M")}
    ).text
    assert 'data-testid="replay-banner"' in typed
    banner = re.compile(r'data-testid="replay-banner">([^<]+)<')
    assert banner.search(typed).group(1) == banner.search(linked).group(1)  # type: ignore[union-attr]
    assert f'value="{after_two:%d/%m/%Y %H:%M}"' in typed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("01/12/2026 20:46", datetime(2026, 12, 1, 20, 46, tzinfo=VIETNAM_TZ)),
        ("1/2/2026 8:05", datetime(2026, 2, 1, 8, 5, tzinfo=VIETNAM_TZ)),
        ("01/12/2026", datetime(2026, 12, 1, 23, 59, 59, 999999, tzinfo=VIETNAM_TZ)),
        ("2026-12-01T20:46", datetime(2026, 12, 1, 20, 46, tzinfo=VIETNAM_TZ)),
        ("2026-12-01T13:46:00+00:00", datetime(2026, 12, 1, 20, 46, tzinfo=VIETNAM_TZ)),
        ("12/01/2026, 08:48 PM", None),
        ("31/02/2026", None),
        ("", None),
        ("hôm qua", None),
    ],
)
def test_parse_local_reads_dd_mm_yyyy_24_hours_and_iso(
    text: str, expected: datetime | None
) -> None:
    assert fmt.parse_local(text) == expected


def test_formats_are_dd_mm_yyyy_24_hours() -> None:
    moment = datetime(2026, 1, 12, 13, 48, tzinfo=timezone.utc)
    assert fmt.vn_time(moment) == "12/01/2026 20:48"
    assert fmt.local_input(moment) == "12/01/2026 20:48"
    assert fmt.date_input(date(2026, 1, 12)) == "12/01/2026" and fmt.date_input(None) == ""
    assert fmt.parse_day("12/01/2026") == fmt.parse_day("2026-01-12") == date(2026, 1, 12)
    assert fmt.names_a_whole_minute("12/01/2026 20:48")
    assert not fmt.names_a_whole_minute("2026-01-12T20:48:10")


# ---------------------------------------------------------------------------- as-of, favicon
def integrity_text(html: str) -> str:
    section = html.split('id="integrity-title"')[1].split("</section>")[0]
    return " ".join(re.sub(r"<[^>]+>", " ", section).split())


def test_as_of_view_shows_the_integrity_of_the_checkpoint_signed_by_then(web: Web) -> None:
    from infra.transparency.service import transparency_log

    log = transparency_log(web.container)
    other = web.cases["other"]
    first = log.publish_checkpoint()  # covers the fixture's nine events
    results = web.container.referrals.record_batch([other.transfer()])
    assert all(not hasattr(r, "error") for r in results), results
    web.container.projections.catch_up(timeout=30)
    second = log.publish_checkpoint()
    assert second.size == first.size + 1
    web.sign_in("tt-vlg")
    url = f"/web/cases/{other.case_id}"
    now = integrity_text(web.client.get(url).text)
    assert f"3/3 sự kiện nằm trong điểm kiểm đã ký số (kích thước cây {second.size}" in now
    then = integrity_text(web.client.get(url, params={"v": 3}).text)  # before `second`
    assert "Đã kiểm chứng" in then
    assert f"2/3 sự kiện nằm trong điểm kiểm đã ký số (kích thước cây {first.size}" in then
    assert "đối chiếu với điểm kiểm đã ký có đến lúc đó" in then
    before_any = integrity_text(web.client.get(url, params={"v": 2}).text)
    assert "Đến thời điểm này chưa có điểm kiểm đã ký nào bao gồm các sự kiện này." in before_any
    assert "2 sự kiện khớp với chuỗi băm" in before_any


def test_favicon_is_served(web: Web) -> None:
    for path in ("/favicon.ico", "/web/static/favicon.ico"):
        icon = web.client.get(path)
        assert icon.status_code == 200, path
        assert icon.headers["content-type"].startswith("image/")
        assert 0 < len(icon.content) < 10_000
    page = web.client.get("/web/sign-in").text
    assert 'rel="icon"' in page


def test_report_charts_load_eagerly_so_they_print(web: Web) -> None:
    web.sign_in()
    page = web.client.get("/web/reports").text
    charts = re.findall(r"<img [^>]*format=chart[^>]*>", page)
    assert charts and all('loading="lazy"' not in c for c in charts)
