"""The legal clock: Vietnam-time working days, holidays as data, and the three ways a legal
time limit runs (continuous hours, working days, calendar days).

Pure stdlib. The holiday list is reference data (`infra/reference_data/holidays.json`), parsed
here by `calendar_from_record`; the government announces the Tết blocks, bridge days and the
Saturdays worked in compensation each year, so none of them is computed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

VIETNAM_TZ = timezone(timedelta(hours=7))
"""Indochina Time (UTC+7, no daylight saving): calendar days are judged in this zone."""

_ONE_DAY = timedelta(days=1)

FIRST_REPORT_DAY = date(2000, 1, 1)
LAST_REPORT_DAY = date(2100, 12, 31)
"""The days a report or search period may name (`from`/`to`): wider than any recorded event
(2018 onwards), narrow enough that a day's bounds in any offset never overflow."""


def _require_aware(value: Any, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (carry a UTC offset)")
    return value


def _require_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _date_set(values: Iterable[Any], name: str) -> frozenset[date]:
    out = set()
    for value in values:
        # datetime is a subclass of date: refuse it, a holiday is a whole local day.
        if isinstance(value, datetime) or not isinstance(value, date):
            raise ValueError(f"{name} must contain only date objects, got {value!r}")
        out.add(value)
    return frozenset(out)


def _end_of_local_day(day: date) -> datetime:
    """24:00 of `day` in Vietnam time, i.e. 00:00 of the next day."""
    return datetime.combine(day + _ONE_DAY, time(0), tzinfo=VIETNAM_TZ)


@dataclass(frozen=True)
class WorkingCalendar:
    """Which Vietnam-local days are working days for state agencies.

    A day is a working day if it is an announced extra working day (a Saturday worked to
    compensate a bridge day), or else if it is Monday to Friday and not an announced day off.
    Labour Code 2019 Art. 111–112 (weekly rest, public holidays); the Prime Minister's annual
    decision on Tết and bridge days for civil servants.
    """

    holidays: frozenset[date]
    extra_working_days: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        holidays = _date_set(self.holidays, "holidays")
        extra = _date_set(self.extra_working_days, "extra_working_days")
        clash = holidays & extra
        if clash:
            first = min(clash).isoformat()
            raise ValueError(f"extra_working_days overlap holidays (e.g. {first})")
        object.__setattr__(self, "holidays", holidays)
        object.__setattr__(self, "extra_working_days", extra)

    def is_working_day(self, d: date) -> bool:
        """Whether agencies work on the Vietnam-local day `d` (Labour Code 2019 Art. 111–112)."""
        if isinstance(d, datetime) or not isinstance(d, date):
            raise ValueError(f"d must be a date, got {type(d).__name__}")
        if d in self.extra_working_days:
            return True
        if d in self.holidays:
            return False
        return d.weekday() < 5

    def deadline_in_hours(self, start: datetime, n: int) -> datetime:
        """End of a limit of `n` hours: a continuous clock, nights and holidays included.

        CPC 2015 Art. 134 (limits in hours run from the triggering instant); used for the
        12 h / 24 h limits of LAL 2017 Art. 31(3) and JC 10/2018 Art. 12.
        """
        _require_aware(start, "start")
        _require_count(n, "n")
        return (start + timedelta(hours=n)).astimezone(VIETNAM_TZ)

    def deadline_in_working_days(self, start: datetime, n: int) -> datetime:
        """End of a limit of `n` working days: 24:00 Vietnam time of the n-th working day
        after the Vietnam-local date of `start` (n = 0: 24:00 of that date).

        CPC 2015 Art. 134(1) ("thời hạn sẽ hết vào lúc 24 giờ ngày cuối cùng"); Civil Code 2015
        Art. 147–148 (a period in days starts on the day after the event; article numbers
        UNVERIFIED, see domain.md §4a). JC 10/2018 Art. 3(4), LAL 2017 Art. 25.
        """
        _require_aware(start, "start")
        _require_count(n, "n")
        day = start.astimezone(VIETNAM_TZ).date()
        counted = 0
        while counted < n:
            day += _ONE_DAY
            if self.is_working_day(day):
                counted += 1
        return _end_of_local_day(day)

    def deadline_in_calendar_days(self, start: datetime, n: int) -> datetime:
        """End of a limit of `n` days counting every day: 24:00 Vietnam time of the n-th day
        after the Vietnam-local date of `start`.

        CPC 2015 Art. 134(1); Civil Code 2015 Art. 147–148 (UNVERIFIED numbers). A limit in
        days is not moved off a day off here (only limits in months are, Art. 134(1)).
        """
        _require_aware(start, "start")
        _require_count(n, "n")
        day = start.astimezone(VIETNAM_TZ).date() + timedelta(days=n)
        return _end_of_local_day(day)


def _iso_dates(values: Any, where: str, year: int) -> list[date]:
    if not isinstance(values, list):
        raise ValueError(f"{where}: must be a list of ISO dates")
    out = []
    for value in values:
        if not isinstance(value, str):
            raise ValueError(f"{where}: {value!r} is not an ISO date string")
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{where}: {value!r} is not an ISO date (YYYY-MM-DD)") from None
        if parsed.year != year:
            raise ValueError(f"{where}: {value} is not in year {year}")
        out.append(parsed)
    if len(set(out)) != len(out):
        raise ValueError(f"{where}: contains a date twice")
    return out


_YEAR_KEYS = {"holidays", "extra_working_days", "verified", "note", "source"}


def calendar_from_record(record: Mapping[str, Any]) -> WorkingCalendar:
    """Builds the calendar from the parsed holidays file.

    Shape: `{"version", "source", "years": {"2024": {"holidays": [ISO dates],
    "extra_working_days": [ISO dates], "verified": bool, "source": str, "note": str}, ...}}`;
    a verified year names its `source`. Every date must
    lie in its year; an extra working day must fall on a Saturday or Sunday and must not also
    be listed as a holiday. Errors name the year and the field.
    """
    if not isinstance(record, Mapping):
        raise ValueError("holidays record: must be a JSON object")
    for key in ("version", "source"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            raise ValueError(f"holidays record: field {key!r} must be a non-empty string")
    years = record.get("years")
    if not isinstance(years, Mapping) or not years:
        raise ValueError("holidays record: field 'years' must be a non-empty object")
    holidays: set[date] = set()
    extra: set[date] = set()
    for key, entry in years.items():
        if not (isinstance(key, str) and key.isdigit() and len(key) == 4):
            raise ValueError(f"holidays record: year key {key!r} must be a 4-digit year")
        year = int(key)
        where = f"holidays year {key}"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: must be an object")
        unknown = set(entry) - _YEAR_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
        if "holidays" not in entry:
            raise ValueError(f"{where}: field 'holidays' is required")
        if not isinstance(entry.get("verified"), bool):
            raise ValueError(f"{where}: field 'verified' must be true or false")
        if not isinstance(entry.get("note", ""), str):
            raise ValueError(f"{where}: field 'note' must be a string")
        source = entry.get("source")
        if source is not None and (not isinstance(source, str) or not source.strip()):
            raise ValueError(f"{where}: field 'source' must be a non-empty string")
        if entry["verified"] and source is None:
            raise ValueError(
                f"{where}: field 'source' is required when verified is true "
                "(name the notice the year was checked against)"
            )
        days_off = _iso_dates(entry["holidays"], f"{where} field 'holidays'", year)
        worked = _iso_dates(
            entry.get("extra_working_days", []), f"{where} field 'extra_working_days'", year
        )
        for day in worked:
            if day.weekday() < 5:
                raise ValueError(
                    f"{where} field 'extra_working_days': {day} is a weekday, not a weekend day"
                )
            if day in days_off:
                raise ValueError(
                    f"{where} field 'extra_working_days': {day} is also listed as a holiday"
                )
        holidays.update(days_off)
        extra.update(worked)
    return WorkingCalendar(frozenset(holidays), frozenset(extra))
