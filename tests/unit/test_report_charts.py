"""The council report's charts as printed: an empty period reads "Không có số liệu" on a sane
axis, not a bare −0.045…0.045 axis."""

from __future__ import annotations

from datetime import date, datetime, timezone

from projections.reports import NO_DATA_VI, AgencyRow, Report, report_chart_figure, report_chart_png


def report_with(counts: dict[str, int]) -> Report:
    now = datetime(2026, 7, 1, tzinfo=timezone.utc)
    return Report(
        province="LSN",
        province_name_vi="Tỉnh Lạng Sơn",
        start=date(2026, 1, 1),
        end=date(2026, 12, 31),
        generated_at=now,
        judged_at=now,
        reference_versions={},
        positions={},
        compliance=[],
        agencies=[
            AgencyRow("lsn-police", "Công an tỉnh Lạng Sơn", "police", "province", counts),
            AgencyRow("lsn-police-2", "Công an Cao Lộc", "police", "commune", {}),
        ],
    )


def texts_of(figure) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.get_text() for t in figure.findobj(lambda o: hasattr(o, "get_text"))]


def test_chart_says_no_data_on_a_whole_number_axis_when_every_count_is_zero() -> None:
    figure = report_chart_figure(report_with({}), "police")
    axes = figure.axes[0]
    assert NO_DATA_VI in texts_of(figure)
    assert axes.get_ylim() == (0, 5)
    assert all(float(tick).is_integer() and tick >= 0 for tick in axes.get_yticks())
    assert report_chart_png(report_with({}), "police")[:8] == b"\x89PNG\r\n\x1a\n"


def test_chart_has_no_no_data_note_and_starts_at_zero_when_there_are_counts() -> None:
    figure = report_chart_figure(report_with({"NOTIFICATION_ISSUED": 3}), "police")
    assert NO_DATA_VI not in texts_of(figure)
    bottom, top = figure.axes[0].get_ylim()
    assert bottom == 0 and top >= 3
