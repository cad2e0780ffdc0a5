"""How the pages show and read times, dates and event data: Vietnam time, dd/mm/yyyy HH:MM,
Vietnamese names from the catalogue and the reference data (never identity)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from domain.calendar import FIRST_REPORT_DAY, LAST_REPORT_DAY, VIETNAM_TZ
from domain.catalogue import EVENT_TYPES, field_specs
from domain.reference import UNDETERMINED_CATEGORY, UNDETERMINED_NAME_VI, ReferenceData

ENUM_NAMES_VI = {
    "criminal": "hình sự",
    "civil": "dân sự",
    "administrative": "hành chính",
    "DEFENCE": "bào chữa",
    "PROTECTION": "bảo vệ quyền lợi",
    "written": "bằng văn bản",
    "oral": "bằng lời nói",
    "MAU_01": "Mẫu 01",
    "MAU_03": "Mẫu 03",
    "SUCCESSFUL": "thành công",
    "NOT_SUCCESSFUL": "không thành công",
    "UNKNOWN": "chưa rõ",
}

ENUM_NAMES_EN = {
    "criminal": "criminal",
    "civil": "civil",
    "administrative": "administrative",
    "DEFENCE": "defence",
    "PROTECTION": "protection of rights",
    "written": "in writing",
    "oral": "oral",
    "MAU_01": "Form 01",
    "MAU_03": "Form 03",
    "SUCCESSFUL": "successful",
    "NOT_SUCCESSFUL": "not successful",
    "UNKNOWN": "unknown",
}
BOOL_NAMES = {"vi": ("Không", "Có"), "en": ("No", "Yes")}
# The English label of each event data field, by its catalogue title (domain/catalogue.py keeps
# the Vietnamese one, which is what the law and the forms say; English is a page switch).
FIELD_TITLES_EN = {
    "Mã người (bí danh, ngẫu nhiên)": "Person id (pseudonym, random)",
    "Loại tố tụng": "Kind of proceedings",
    "Diện người được TGPL": "Eligibility category",
    "Có khó khăn về tài chính": "Financial hardship",
    "Tư cách tố tụng": "Procedural role",
    "Giai đoạn tố tụng": "Stage of proceedings",
    "Nhóm tuổi tại ngày sự kiện": "Age band on the day of the event",
    "Giới tính": "Sex",
    "Mã cán bộ thực hiện": "Official's code",
    "Hình thức": "Channel",
    "Số/ký hiệu văn bản, biên bản": "Document or minutes number",
    "Biểu mẫu": "Form",
    "Biểu mẫu đã giao, đọc (Mẫu 01; MAU_03: giá trị cũ)": "Form handed over or read out (Form 01; MAU_03: legacy value)",
    "Thời điểm Trung tâm nhận được thông báo": "When the Centre received the notice",
    "Điều, khoản căn cứ (ví dụ Luật TGPL 2017 Điều 7)": "Article relied on (e.g. Legal Aid Law 2017 Art. 7)",
    "Biên bản, quyết định tố tụng": "Procedural minutes or decision",
    "Số sổ, số thứ tự trong sổ (sổ tiếp nhận, sổ tạm giữ, quyết định)": "Register and line number (intake register, holding register, decision)",
    "Lý do không thuộc diện": "Reason the person is not eligible",
    "Ngôn ngữ cần phiên dịch (mã ISO 639)": "Language to interpret (ISO 639 code)",
    "Cơ quan tiến hành tố tụng nhận yêu cầu": "Proceedings agency receiving the request",
    "Thời điểm giải thích": "When the rights were explained",
    "Biên bản tố tụng ghi nhận": "Procedural minutes recording it",
    "Có người phiên dịch": "Interpreter present",
    "Hình thức yêu cầu": "Form of the request",
    "Đủ giấy tờ chứng minh diện": "Eligibility documents complete",
    "Trung tâm TGPL được đề nghị": "Legal aid centre asked",
    "Trung tâm TGPL nhận yêu cầu": "Legal aid centre receiving the request",
    "Căn cứ chỉ định": "Grounds for appointment",
    "Cơ quan tiếp nhận": "Receiving agency",
    "Giai đoạn mới": "New stage",
    "Thụ lý ngay": "Accepted at once",
    "Số thụ lý (Mẫu 01-TP-TGPL)": "Logbook number (Form 01-TP-TGPL)",
    "Lý do từ chối": "Reason for refusal",
    "Từ chối bằng văn bản": "Refused in writing",
    "Mã người thực hiện TGPL": "Legal aid provider's code",
    "Mã người thực hiện TGPL mới": "New legal aid provider's code",
    "Loại người thực hiện TGPL": "Type of legal aid provider",
    "Bào chữa / bảo vệ quyền lợi": "Defence / protection of rights",
    "Thời điểm nhận đủ giấy tờ": "When the documents were complete",
    "Số đăng ký": "Registration number",
    "Có biên bản ba bên": "Three-party record made",
    "Số biên bản": "Record number",
    "Thời điểm có yêu cầu thay đổi": "When the change was asked for",
    "Mã sự kiện (event_id) được đính chính hoặc rút": "Event id corrected or withdrawn",
    "Số thứ tự của sự kiện đó trong vụ việc": "That event's version in the case",
    "Các trường đính chính và giá trị đúng": "Corrected fields and their right values",
    "Lý do đính chính": "Reason for the correction",
    "Số văn bản, biên bản đính chính": "Reference of the correction's document",
    "Lý do rút": "Reason for the withdrawal",
    "Số văn bản, biên bản": "Reference of the document",
    "Căn cứ": "Grounds",
    "Căn cứ thay đổi": "Grounds for the change",
    "Lý do kết thúc": "Reason for closing",
    "Kết quả": "Outcome",
    "Kết quả đánh giá": "Assessment result",
    "Mã người đánh giá": "Reviewer's code",
}
KIND_NAMES_EN = {
    "police": "police",
    "procuracy": "procuracy",
    "court": "court",
    "detention_facility": "detention facility",
    "legal_aid_centre": "State legal aid centre",
    "council": "interagency council",
    "justice_department": "Department of Justice",
}
LEVEL_NAMES_EN = {
    "central": "central",
    "provincial": "provincial",
    "regional": "regional",
    "commune": "commune",
}


def enum_name(value: str | None, lang: str = "vi") -> str | None:
    """The name of an enum value in `lang` (the value itself if unknown)."""
    names = ENUM_NAMES_EN if lang == "en" else ENUM_NAMES_VI
    return names.get(value or "", value)


def field_title(title_vi: str, lang: str = "vi") -> str:
    return FIELD_TITLES_EN.get(title_vi, title_vi) if lang == "en" else title_vi


def period_text(start: date, end: date, lang: str = "vi") -> str:
    """'Từ ngày 01/01/2026 đến ngày 31/10/2026' or 'From 01/01/2026 to 31/10/2026'."""
    if lang == "en":
        return f"From {start:%d/%m/%Y} to {end:%d/%m/%Y}"
    return f"Từ ngày {start:%d/%m/%Y} đến ngày {end:%d/%m/%Y}"


def vn_time(value: datetime | str | None) -> str:
    """dd/mm/yyyy HH:MM in Vietnam time (UTC+7); '—' for nothing."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(VIETNAM_TZ).strftime("%d/%m/%Y %H:%M")


def vn_date(value: date | datetime | str | None) -> str:
    """dd/mm/yyyy (a datetime is taken in Vietnam time)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = (
            date.fromisoformat(value[:10])
            if len(value) <= 10
            else datetime.fromisoformat(value.replace("Z", "+00:00"))
        )
    if isinstance(value, datetime):
        value = value.astimezone(VIETNAM_TZ).date()
    return value.strftime("%d/%m/%Y")


# One format for every date people read or type: dd/mm/yyyy, times 24 h (dd/mm/yyyy HH:MM), in
# Vietnam time. Inputs are text fields with this pattern (a browser's own date widgets show the
# browser's locale, e.g. 12/01/2026, 08:48 PM: day and month swapped beside our dates); ISO
# (2026-01-12, 2026-01-12T20:48) is still accepted, for links and scripts.
DATE_PLACEHOLDER = "dd/mm/yyyy"
DATETIME_PLACEHOLDER = "dd/mm/yyyy hh:mm"
DATE_PATTERN = r"\d{1,2}/\d{1,2}/\d{4}|\d{4}-\d{2}-\d{2}"
DATETIME_PATTERN = (
    r"\d{1,2}/\d{1,2}/\d{4}( \d{1,2}:\d{2})?"
    r"|\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?)?"
)
_VN_DATETIME = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?")


def local_input(value: datetime) -> str:
    """The value of the as-of text input for an instant: dd/mm/yyyy HH:MM, Vietnam time."""
    return vn_time(value)


def date_input(value: date | str | None) -> str:
    """The value of a date text input: dd/mm/yyyy, or empty."""
    return "" if value is None or value == "" else vn_date(value)


def parse_local(text: str | None) -> datetime | None:
    """An instant from `dd/mm/yyyy HH:MM[:SS]` or `YYYY-MM-DDTHH:MM[:SS]` (Vietnam time unless
    an offset is given), or from a date alone (the end of that day); None if empty or
    malformed."""
    if not text:
        return None
    text = text.strip()
    try:
        found = _VN_DATETIME.fullmatch(text)
        if found:
            day, month, year, hour, minute, second = found.groups()
            moment = date(int(year), int(month), int(day))
            if hour is None:
                return datetime.combine(moment, time(23, 59, 59, 999999), VIETNAM_TZ)
            return datetime.combine(
                moment, time(int(hour), int(minute), int(second or 0)), VIETNAM_TZ
            )
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time(23, 59, 59, 999999), VIETNAM_TZ)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=VIETNAM_TZ)


def names_a_whole_minute(text: str | None) -> bool:
    """Whether a typed instant stops at the minute (`… 20:46`, no seconds): it then means
    the whole of that minute."""
    return bool(text) and re.search(r"(^|[ T])\d{1,2}:\d{2}$", text.strip()) is not None


def parse_day(text: str | None) -> date | None:
    """A date from `YYYY-MM-DD` or `dd/mm/yyyy`; None if empty or malformed. A day outside
    FIRST_REPORT_DAY..LAST_REPORT_DAY is clamped to it (no event lies beyond; the bounds of a
    day near year 1 or 9999 would overflow)."""
    if not text:
        return None
    text = text.strip()
    try:
        if "/" in text:
            day, month, year = (int(x) for x in text.split("/"))
            parsed = date(year, month, day)
        else:
            parsed = date.fromisoformat(text)
    except ValueError:
        return None
    return min(max(parsed, FIRST_REPORT_DAY), LAST_REPORT_DAY)


def day_start(day: date) -> datetime:
    """00:00 Vietnam time of a day."""
    return datetime.combine(day, time(0), VIETNAM_TZ)


def day_after(day: date) -> datetime:
    """00:00 Vietnam time of the next day (the exclusive end of a period ending on `day`)."""
    return day_start(day + timedelta(days=1))


def today_vn(now: datetime) -> date:
    return now.astimezone(VIETNAM_TZ).date()


def hours_text(hours: float) -> str:
    """'5,2 giờ' under two days, else '3 ngày 4 giờ'-like (Vietnamese decimal comma)."""
    if hours < 48:
        return f"{hours:.1f}".replace(".", ",") + " giờ"
    days, rest = divmod(int(round(hours)), 24)
    return f"{days} ngày {rest} giờ"


def delay_text(hours: float | None, lang: str = "vi") -> str:
    """A recording delay: `hours_text` in Vietnamese, '5.2 h' or '3 d 4 h' in English;
    '—' when there is none."""
    if hours is None:
        return "—"
    if lang != "en":
        return hours_text(hours)
    if hours < 48:
        return f"{hours:.1f} h"
    days, rest = divmod(int(round(hours)), 24)
    return f"{days} d {rest} h"


def agency_name(reference: ReferenceData, agency_id: str | None) -> str:
    if not agency_id:
        return "—"
    agency = reference.agencies.get(agency_id)
    return agency.name_vi if agency is not None else agency_id


def code_name(reference: ReferenceData, list_name: str, code: str | None) -> str:
    if not code:
        return "—"
    if list_name == "categories":
        if code == UNDETERMINED_CATEGORY:
            return UNDETERMINED_NAME_VI
        item = reference.categories.get(code)
        return item.name_vi if item is not None else code
    items = reference.code_lists.get(list_name, {})
    item = items.get(code)
    return item.name_vi if item is not None else code


def event_title(wire_type: str, lang: str = "vi") -> str:
    spec = EVENT_TYPES.get(wire_type)
    if spec is None:
        return wire_type
    return spec.title_en if lang == "en" else spec.title_vi


def describe_data(
    wire_type: str, data: Mapping[str, Any], reference: ReferenceData, lang: str = "vi"
) -> list[tuple[str, str]]:
    """(label, value) of an event's stored data, in catalogue order, names resolved; labels
    and enum values in `lang` (reference-data names stay Vietnamese: the legal terms).

    The data is pseudonymous by construction (the catalogue refuses identifying fields)."""
    specs = field_specs(wire_type) if wire_type in EVENT_TYPES else {}
    out: list[tuple[str, str]] = []
    for name, spec in specs.items():
        if name in data and data[name] is not None:
            out.append(
                (
                    field_title(spec.title_vi, lang) or name,
                    _value(spec, data[name], reference, lang),
                )
            )
    for name, value in data.items():
        if name not in specs and value is not None:
            out.append((name, str(value)))
    return out


def _value(spec: Any, value: Any, reference: ReferenceData, lang: str = "vi") -> str:
    kind = spec.kind
    if kind == "bool":
        return BOOL_NAMES.get(lang, BOOL_NAMES["vi"])[bool(value)]
    if kind == "agency":
        return agency_name(reference, value)
    if kind == "category":
        return code_name(reference, "categories", value)
    if kind == "code" and spec.reference:
        return code_name(reference, spec.reference, value)
    if kind == "datetime":
        try:
            return vn_time(value)
        except ValueError:
            return str(value)
    if kind == "enum":
        return str(enum_name(value, lang))
    return str(value)


def describe_changes(
    target: Any,
    changes: Mapping[str, Any],
    reference: ReferenceData,
    lang: str = "vi",
    occurred_label: str = "occurred_at",
) -> list[tuple[str, str, str]]:
    """(label, recorded value, corrected value) of each field a correction changes on its
    target event (ADR 0008 addendum), names resolved as `describe_data` resolves them."""
    specs = field_specs(target.WIRE_TYPE) if target.WIRE_TYPE in EVENT_TYPES else {}
    out: list[tuple[str, str, str]] = []
    for key, value in changes.items():
        if key == "occurred_at":
            label = occurred_label
            try:
                out.append((label, vn_time(target.occurred_at), vn_time(value)))
            except (TypeError, ValueError):
                out.append((label, vn_time(target.occurred_at), str(value)))
            continue
        name = key.removeprefix("data.")
        spec = specs.get(name)
        before = target.data.get(name)
        if spec is None:
            out.append((name, "—" if before is None else str(before), str(value)))
            continue
        out.append(
            (
                field_title(spec.title_vi, lang) or name,
                "—" if before is None else _value(spec, before, reference, lang),
                _value(spec, value, reference, lang),
            )
        )
    return out
