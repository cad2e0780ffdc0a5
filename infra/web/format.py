"""How the pages show and read times, dates and event data: Vietnam time, dd/mm/yyyy HH:MM,
Vietnamese names from the catalogue and the reference data (never identity)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from domain.calendar import VIETNAM_TZ
from domain.catalogue import EVENT_TYPES, field_specs
from domain.reference import UNDETERMINED_CATEGORY, UNDETERMINED_NAME_VI, ReferenceData

ENUM_NAMES_VI = {
    "criminal": "hình sự", "civil": "dân sự", "administrative": "hành chính",
    "DEFENCE": "bào chữa", "PROTECTION": "bảo vệ quyền lợi",
    "written": "bằng văn bản", "oral": "bằng lời nói",
    "MAU_01": "Mẫu 01", "MAU_03": "Mẫu 03",
    "SUCCESSFUL": "thành công", "NOT_SUCCESSFUL": "không thành công", "UNKNOWN": "chưa rõ",
}


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
        value = date.fromisoformat(value[:10]) if len(value) <= 10 else \
            datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        value = value.astimezone(VIETNAM_TZ).date()
    return value.strftime("%d/%m/%Y")


def local_input(value: datetime) -> str:
    """The value of an `<input type="datetime-local">` for an instant (Vietnam time)."""
    return value.astimezone(VIETNAM_TZ).strftime("%Y-%m-%dT%H:%M")


def parse_local(text: str | None) -> datetime | None:
    """An instant from `YYYY-MM-DDTHH:MM[:SS]` (Vietnam time) or a date (end of that day);
    None if empty or malformed."""
    if not text:
        return None
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time(23, 59, 59, 999999), VIETNAM_TZ)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=VIETNAM_TZ)


def parse_day(text: str | None) -> date | None:
    """A date from `YYYY-MM-DD` or `dd/mm/yyyy`; None if empty or malformed."""
    if not text:
        return None
    text = text.strip()
    try:
        if "/" in text:
            day, month, year = (int(x) for x in text.split("/"))
            return date(year, month, day)
        return date.fromisoformat(text)
    except ValueError:
        return None


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


def describe_data(wire_type: str, data: Mapping[str, Any], reference: ReferenceData
                  ) -> list[tuple[str, str]]:
    """(label, value) of an event's stored data, in catalogue order, names resolved.

    The data is pseudonymous by construction (the catalogue refuses identifying fields)."""
    specs = field_specs(wire_type) if wire_type in EVENT_TYPES else {}
    out: list[tuple[str, str]] = []
    for name, spec in specs.items():
        if name in data and data[name] is not None:
            out.append((spec.title_vi or name, _value(spec, data[name], reference)))
    for name, value in data.items():
        if name not in specs and value is not None:
            out.append((name, str(value)))
    return out


def _value(spec: Any, value: Any, reference: ReferenceData) -> str:
    kind = spec.kind
    if kind == "bool":
        return "Có" if value else "Không"
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
        return ENUM_NAMES_VI.get(value, str(value))
    return str(value)
