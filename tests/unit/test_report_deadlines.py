"""Report submission dates: a per-province setting (issue 20 point 7), the periods statutory."""

from __future__ import annotations

from datetime import date

import pytest

from infra.reference_data import load_reference, load_report_deadlines
from projections.reports import period_dates, report_due_date, statutory_period


def test_lang_son_due_dates_come_from_its_council_plan_when_the_period_is_statutory():
    table = load_report_deadlines()
    due, source = report_due_date(table, "LSN", 2026, "jan-oct")
    assert due == date(2026, 11, 10) and "Lạng Sơn" in source
    assert report_due_date(table, "LSN", 2026, "full-year")[0] == date(2027, 1, 10)


def test_other_provinces_have_no_national_due_date_when_their_plan_is_not_entered():
    table = load_report_deadlines()
    assert report_due_date(table, "VLG", 2026, "jan-oct") is None
    assert set(table["provinces"]) <= set(load_reference().provinces)


def test_periods_stay_statutory_and_a_custom_range_has_no_due_date():
    assert period_dates(2026, "jan-oct") == (date(2026, 1, 1), date(2026, 10, 31))
    assert statutory_period(date(2026, 1, 1), date(2026, 12, 31)) == "full-year"
    assert statutory_period(date(2026, 1, 1), date(2026, 6, 30)) is None


def test_a_bad_due_date_entry_is_refused_naming_province_and_period():
    table = {"provinces": {"LSN": {"jan-oct": {"month": 13, "day": 10}}}}
    with pytest.raises(ValueError, match="province LSN, period jan-oct"):
        report_due_date(table, "LSN", 2026, "jan-oct")
