"""The legal clock: working days in Vietnam time, holidays as data (domain.md §4a)."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.calendar import VIETNAM_TZ, WorkingCalendar, calendar_from_record

HOLIDAYS_FILE = Path(__file__).resolve().parents[3] / "infra" / "reference_data" / "holidays.json"
UTC = timezone.utc


def _load_record() -> dict:
    with HOLIDAYS_FILE.open(encoding="utf-8") as fh:
        return json.load(fh)


CAL = calendar_from_record(_load_record())
PLAIN = WorkingCalendar(frozenset())


def vn(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=VIETNAM_TZ)


def midnight(y: int, m: int, d: int) -> datetime:
    return vn(y, m, d)


# --- worked examples ------------------------------------------------------------------------


def test_three_working_days_end_at_saturday_midnight_when_started_tuesday():
    # domain.md §4a: Tue 10:00 + 3 working days = 24:00 Friday = 00:00 Saturday.
    assert date(2024, 3, 5).weekday() == 1
    assert CAL.deadline_in_working_days(vn(2024, 3, 5, 10), 3) == midnight(2024, 3, 9)


def test_working_days_skip_the_weekend_when_started_thursday():
    assert CAL.deadline_in_working_days(vn(2024, 3, 7, 10), 3) == midnight(2024, 3, 13)


def test_working_days_skip_tet_when_started_on_the_eve_of_the_tet_block():
    # Tết Giáp Thìn: off 8–14/2/2024 → Thu 15, Fri 16, Mon 19.
    assert CAL.deadline_in_working_days(vn(2024, 2, 7, 9), 3) == midnight(2024, 2, 20)


def test_working_days_count_the_make_up_saturday_when_crossing_30_4_and_1_5():
    # 27/4–1/5/2024 off (Mon 29/4 bridged), Sat 4/5 worked → Thu 2, Fri 3, Sat 4.
    assert CAL.deadline_in_working_days(vn(2024, 4, 26, 15), 3) == midnight(2024, 5, 5)


def test_working_days_skip_national_day_when_started_before_2_9():
    # 30/8–2/9/2025 off → first working day Wed 3/9.
    assert CAL.deadline_in_working_days(vn(2025, 8, 29, 16), 1) == midnight(2025, 9, 4)


def test_working_days_cross_a_month_end_when_started_on_the_30th():
    assert CAL.deadline_in_working_days(vn(2024, 10, 30, 8), 3) == midnight(2024, 11, 5)


def test_working_days_cross_the_year_end_when_new_year_is_bridged():
    # 31/12/2025 (1), 1–4/1/2026 off, Mon 5/1 (2), Tue 6/1 (3).
    assert CAL.deadline_in_working_days(vn(2025, 12, 30, 11), 3) == midnight(2026, 1, 7)


def test_make_up_saturday_counts_when_government_swapped_a_bridge_day():
    assert CAL.is_working_day(date(2026, 1, 10))
    assert CAL.deadline_in_working_days(vn(2026, 1, 8, 9), 2) == midnight(2026, 1, 11)


def test_local_date_is_vietnamese_when_the_instant_is_given_in_utc():
    # Mon 18:30 UTC is already Tue 01:30 in Vietnam: the count starts after Tuesday.
    start = datetime(2024, 3, 4, 18, 30, tzinfo=UTC)
    assert CAL.deadline_in_working_days(start, 3) == midnight(2024, 3, 9)
    assert CAL.deadline_in_calendar_days(start, 1) == midnight(2024, 3, 7)


def test_hour_limit_runs_through_nights_and_holidays_when_clock_is_hours():
    start = vn(2024, 2, 9, 22)
    assert CAL.deadline_in_hours(start, 12) == vn(2024, 2, 10, 10)
    assert CAL.deadline_in_hours(start, 12).tzinfo == VIETNAM_TZ


def test_calendar_days_count_weekends_when_clock_is_calendar_days():
    assert CAL.deadline_in_calendar_days(vn(2024, 3, 8, 10), 3) == midnight(2024, 3, 12)


def test_zero_working_days_end_at_midnight_of_the_same_day_when_n_is_zero():
    assert CAL.deadline_in_working_days(vn(2024, 3, 9, 23, 59), 0) == midnight(2024, 3, 10)


@pytest.mark.parametrize(
    "method", ["deadline_in_hours", "deadline_in_working_days", "deadline_in_calendar_days"]
)
def test_naive_start_is_rejected_naming_the_parameter_when_it_has_no_offset(method):
    with pytest.raises(ValueError, match="start"):
        getattr(CAL, method)(datetime(2024, 3, 5, 10), 3)


@pytest.mark.parametrize("n", [-1, True, 1.5])
def test_bad_count_is_rejected_naming_the_parameter_when_not_a_natural_number(n):
    with pytest.raises(ValueError, match="n must"):
        CAL.deadline_in_working_days(vn(2024, 3, 5), n)


def test_calendar_rejects_a_day_that_is_both_holiday_and_working_when_built():
    with pytest.raises(ValueError, match="overlap"):
        WorkingCalendar(frozenset({date(2024, 5, 4)}), frozenset({date(2024, 5, 4)}))


def test_calendar_rejects_datetimes_when_given_as_holidays():
    with pytest.raises(ValueError, match="holidays"):
        WorkingCalendar(frozenset({datetime(2024, 5, 4, tzinfo=VIETNAM_TZ)}))


# --- the holidays file -------------------------------------------------------------------------


def test_holidays_file_covers_2018_to_2027_when_loaded():
    record = _load_record()
    assert sorted(record["years"]) == [str(y) for y in range(2018, 2028)]
    for year, entry in record["years"].items():
        assert isinstance(entry["verified"], bool), year
        assert entry["note"].strip(), year  # says what to check


@pytest.mark.parametrize("year", range(2018, 2028))
def test_fixed_holidays_are_days_off_when_the_year_is_in_the_file(year):
    for month, day in ((1, 1), (4, 30), (5, 1), (9, 2)):
        assert date(year, month, day) in CAL.holidays, (year, month, day)


@pytest.mark.parametrize(
    "new_year_day",
    [
        date(2018, 2, 16),
        date(2019, 2, 5),
        date(2020, 1, 25),
        date(2021, 2, 12),
        date(2022, 2, 1),
        date(2023, 1, 22),
        date(2024, 2, 10),
        date(2025, 1, 29),
        date(2026, 2, 17),
        date(2027, 2, 6),
    ],
)
def test_tet_eve_and_first_three_days_are_off_when_listed(new_year_day):
    for offset in (-1, 0, 1, 2):
        assert new_year_day + timedelta(days=offset) in CAL.holidays


@pytest.mark.parametrize("year", range(2021, 2028))
def test_national_day_has_an_adjacent_day_off_when_labour_code_2019_applies(year):
    adjacent = {date(year, 9, 1), date(year, 9, 3)}
    assert adjacent & CAL.holidays, year


def test_days_off_on_weekdays_cover_the_statutory_count_when_summed_over_the_file():
    record = _load_record()
    net = 0
    for entry in record["years"].values():
        weekdays = [d for d in map(date.fromisoformat, entry["holidays"]) if d.weekday() < 5]
        net += len(weekdays) - len(entry.get("extra_working_days", []))
    # Labour Code 2012: 10 days a year (2018–2020); Labour Code 2019: 11 (2021–2027).
    assert net >= 3 * 10 + 7 * 11


def _record_with(year_entry: dict) -> dict:
    return {"version": "t", "source": "test", "years": {"2024": year_entry}}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"holidays": ["2024-13-01"], "verified": False}, "2024.*'holidays'"),
        ({"holidays": ["2025-01-01"], "verified": False}, "not in year 2024"),
        (
            {"holidays": [], "extra_working_days": ["2024-05-06"], "verified": False},
            "'extra_working_days'.*weekday",
        ),
        (
            {"holidays": ["2024-05-04"], "extra_working_days": ["2024-05-04"], "verified": False},
            "also listed as a holiday",
        ),
        ({"holidays": [], "verified": "no"}, "'verified'"),
        ({"holidays": [], "verified": False, "colour": "red"}, "unknown field"),
        ({"verified": False}, "'holidays' is required"),
    ],
)
def test_calendar_record_is_rejected_naming_year_and_field_when_malformed(entry, message):
    with pytest.raises(ValueError, match=message):
        calendar_from_record(_record_with(entry))


# --- properties -------------------------------------------------------------------------------

ZONES = st.sampled_from(
    [
        UTC,
        VIETNAM_TZ,
        timezone(timedelta(hours=-5)),
        timezone(timedelta(hours=14)),
        timezone(timedelta(hours=5, minutes=30)),
    ]
)
STARTS = st.datetimes(
    min_value=datetime(2018, 1, 1), max_value=datetime(2027, 10, 31), timezones=ZONES
)
COUNTS = st.integers(min_value=0, max_value=40)
PROPS = settings(max_examples=200, deadline=None)


def _working_days_between(cal: WorkingCalendar, after: date, before: date) -> int:
    """Working days d with after < d < before."""
    d, count = after + timedelta(days=1), 0
    while d < before:
        count += cal.is_working_day(d)
        d += timedelta(days=1)
    return count


@PROPS
@given(start=STARTS, n=COUNTS)
def test_working_day_deadline_is_vietnam_midnight_when_any_start(start, n):
    deadline = CAL.deadline_in_working_days(start, n)
    assert deadline.tzinfo == VIETNAM_TZ
    assert deadline.timetz() == time(0, tzinfo=VIETNAM_TZ)


@PROPS
@given(start=STARTS, n=st.integers(min_value=1, max_value=40))
def test_deadline_counts_exactly_n_working_days_when_n_is_positive(start, n):
    first = start.astimezone(VIETNAM_TZ).date()
    deadline = CAL.deadline_in_working_days(start, n)
    last_day = deadline.date() - timedelta(days=1)
    assert CAL.is_working_day(last_day)
    assert _working_days_between(CAL, first, last_day) == n - 1
    assert _working_days_between(CAL, first, deadline.date()) == n


@PROPS
@given(a=STARTS, b=STARTS, n=COUNTS)
def test_deadline_is_monotonic_in_start_when_n_is_fixed(a, b, n):
    early, late = sorted((a, b))
    assert CAL.deadline_in_working_days(early, n) <= CAL.deadline_in_working_days(late, n)
    assert CAL.deadline_in_calendar_days(early, n) <= CAL.deadline_in_calendar_days(late, n)
    assert CAL.deadline_in_hours(early, n) <= CAL.deadline_in_hours(late, n)


@PROPS
@given(start=STARTS, n=COUNTS, m=st.integers(min_value=1, max_value=10))
def test_deadline_is_strictly_increasing_in_n_when_start_is_fixed(start, n, m):
    assert CAL.deadline_in_working_days(start, n) < CAL.deadline_in_working_days(start, n + m)
    assert CAL.deadline_in_calendar_days(start, n) < CAL.deadline_in_calendar_days(start, n + m)


@PROPS
@given(start=STARTS, n=st.integers(min_value=1, max_value=20), m=COUNTS)
def test_n_then_m_working_days_equal_n_plus_m_when_restarted_inside_the_last_working_day(
    start, n, m
):
    first = CAL.deadline_in_working_days(start, n)
    restart = first - timedelta(microseconds=1)  # the last instant of the n-th working day
    assert CAL.deadline_in_working_days(restart, m) == CAL.deadline_in_working_days(start, n + m)


@PROPS
@given(start=STARTS, n=COUNTS)
def test_same_instant_gives_same_deadline_when_expressed_in_another_zone(start, n):
    in_utc = start.astimezone(UTC)
    assert CAL.deadline_in_working_days(start, n) == CAL.deadline_in_working_days(in_utc, n)
    assert CAL.deadline_in_calendar_days(start, n) == CAL.deadline_in_calendar_days(in_utc, n)


@PROPS
@given(start=STARTS, n=COUNTS)
def test_hour_deadline_is_exactly_n_hours_later_when_clock_is_hours(start, n):
    deadline = CAL.deadline_in_hours(start, n)
    assert deadline - start == timedelta(hours=n)
    assert deadline.tzinfo == VIETNAM_TZ


@PROPS
@given(start=STARTS, n=COUNTS)
def test_calendar_day_deadline_is_midnight_after_n_days_when_clock_is_calendar_days(start, n):
    deadline = CAL.deadline_in_calendar_days(start, n)
    assert deadline.date() == start.astimezone(VIETNAM_TZ).date() + timedelta(days=n + 1)
    assert deadline.timetz() == time(0, tzinfo=VIETNAM_TZ)


@PROPS
@given(start=STARTS, n=COUNTS)
def test_working_days_never_end_before_calendar_days_when_n_is_equal(start, n):
    assert CAL.deadline_in_working_days(start, n) >= CAL.deadline_in_calendar_days(start, n)


@PROPS
@given(
    holidays=st.frozensets(st.dates(date(2024, 1, 1), date(2024, 12, 31)), max_size=40),
    start=st.datetimes(datetime(2024, 1, 1), datetime(2024, 11, 30), timezones=ZONES),
    n=st.integers(min_value=1, max_value=15),
)
def test_adding_holidays_never_shortens_a_limit_when_calendars_differ(holidays, start, n):
    assert WorkingCalendar(holidays).deadline_in_working_days(start, n) >= (
        PLAIN.deadline_in_working_days(start, n)
    )


@PROPS
@given(day=st.dates(date(2018, 1, 1), date(2027, 12, 31)))
def test_weekend_is_not_working_when_not_announced_as_extra_working_day(day):
    if day.weekday() >= 5 and day not in CAL.extra_working_days:
        assert not CAL.is_working_day(day)
    if day in CAL.holidays:
        assert not CAL.is_working_day(day)


def test_2026_make_up_saturday_22_august_is_a_working_day_when_31_august_is_swapped():
    # Issue 20 point 4: Monday 31/8/2026 off, Saturday 22/8/2026 worked (Government Office
    # notice, reported 13/10/2025). From Thursday 20/8: Fri 21, Sat 22, Mon 24 -> 24:00 Mon 24/8.
    assert CAL.is_working_day(date(2026, 8, 22))
    assert not CAL.is_working_day(date(2026, 8, 31))
    assert CAL.deadline_in_working_days(vn(2026, 8, 20, 10), 3) == midnight(2026, 8, 25)
    assert CAL.is_working_day(date(2026, 11, 24))  # Culture Day 24/11 stays out (not enacted)


def test_2026_is_marked_verified_with_its_source_and_other_years_are_not_when_loaded():
    record = _load_record()
    year = record["years"]["2026"]
    assert year["verified"] is True and "22/8" in year["source"]
    assert all(not y["verified"] for k, y in record["years"].items() if k != "2026")


def test_verified_year_is_refused_when_it_names_no_source():
    record = _load_record()
    del record["years"]["2026"]["source"]
    with pytest.raises(ValueError, match="holidays year 2026: field 'source'"):
        calendar_from_record(record)
