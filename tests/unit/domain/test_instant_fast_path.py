"""`parse_instant` answers every value exactly as the first validator of issue 12 did (kept
below as the reference): the same instant, or the same error (code, field, messages). The
one format is checked first and, when it matches, the offset checks it implies are skipped."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.catalogue import (
    _INSTANT_SHAPE,
    _OFFSET_TEXT,
    _SAFE_MAX,
    _SAFE_MIN,
    FIRST_YEAR,
    LAST_YEAR,
    MAX_OFFSET,
    InstantRange,
    parse_instant,
)
from domain.errors import InvalidEventError

ALLOWED = InstantRange(
    datetime(2018, 1, 1, tzinfo=timezone.utc), datetime(2026, 12, 2, 9, tzinfo=timezone.utc)
)


def _reference(value: Any, field_name: str, allowed: InstantRange | None = None) -> datetime:
    """The validator before the fast path (commit 2e17711 and later, unchanged in behaviour)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and 10 <= len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidEventError(
                "FIELD_INVALID",
                field_name,
                rule_vi="phải là thời điểm theo ISO 8601, ví dụ 2026-01-05T09:30:00+07:00",
                rule_en="must be an ISO 8601 instant, e.g. 2026-01-05T09:30:00+07:00",
            ) from None
    else:
        raise InvalidEventError(
            "FIELD_INVALID",
            field_name,
            rule_vi="phải là chuỗi thời điểm theo ISO 8601 có múi giờ",
            rule_en="must be an ISO 8601 string with a UTC offset",
        )
    offset = parsed.utcoffset() if parsed.tzinfo is not None else None
    if offset is None:
        raise InvalidEventError("TIMESTAMP_WITHOUT_OFFSET", field_name)
    if (
        abs(offset) > MAX_OFFSET
        or offset % timedelta(minutes=1)
        or (isinstance(value, str) and not _OFFSET_TEXT.search(value))
    ):
        raise InvalidEventError(
            "FIELD_INVALID",
            field_name,
            rule_vi="múi giờ phải nằm trong khoảng -14:00 đến +14:00, tính bằng giờ và phút",
            rule_en="the UTC offset must be within -14:00 to +14:00, in hours and minutes",
        )
    if isinstance(value, str) and not _INSTANT_SHAPE.fullmatch(value):
        raise InvalidEventError(
            "FIELD_INVALID",
            field_name,
            rule_vi="phải là thời điểm theo RFC 3339 (có giây, múi giờ dạng +07:00 hoặc Z), "
            "ví dụ 2026-01-05T09:30:00+07:00",
            rule_en="must be an RFC 3339 instant (with seconds, offset as +07:00 or Z), "
            "e.g. 2026-01-05T09:30:00+07:00",
        )
    shown = parsed.isoformat()
    try:
        utc = parsed.astimezone(timezone.utc)
    except OverflowError:
        utc = _SAFE_MIN - timedelta(days=1) if parsed.year < 5000 else _SAFE_MAX + timedelta(days=1)
    if allowed is not None:
        if utc < allowed.earliest:
            raise InvalidEventError(
                "OCCURRED_TOO_EARLY",
                field_name,
                value=shown,
                earliest=allowed.earliest.date().isoformat(),
            )
        if utc > allowed.latest:
            raise InvalidEventError("OCCURRED_IN_FUTURE", field_name, value=shown)
    if not _SAFE_MIN <= utc <= _SAFE_MAX or (
        isinstance(value, str) and not FIRST_YEAR <= parsed.year <= LAST_YEAR
    ):
        raise InvalidEventError(
            "FIELD_INVALID",
            field_name,
            rule_vi=f"thời điểm nằm ngoài khoảng năm {FIRST_YEAR}–{LAST_YEAR} mà sổ nhận",
            rule_en=f"the instant is outside the years {FIRST_YEAR}–{LAST_YEAR} the ledger takes",
        )
    return parsed


def _outcome(parse: Any, value: Any, allowed: InstantRange | None) -> tuple[Any, ...]:
    try:
        parsed = parse(value, "occurred_at", allowed)
    except InvalidEventError as error:
        return ("error", error.code, error.field, error.message_vi, error.message_en)
    return ("ok", parsed, parsed.utcoffset(), parsed.isoformat())


def _same(value: Any) -> None:
    for allowed in (None, ALLOWED):
        assert _outcome(parse_instant, value, allowed) == _outcome(_reference, value, allowed), (
            value
        )


_PIECES = (
    "0001",
    "0999",
    "1000",
    "2017",
    "2018",
    "2024",
    "2026",
    "9899",
    "9900",
    "9999",
    "-",
    "T",
    "t",
    " ",
    ":",
    ".",
    "Z",
    "z",
    "+",
    "-",
    "00",
    "01",
    "07",
    "12",
    "13",
    "14",
    "15",
    "23",
    "24",
    "29",
    "30",
    "31",
    "59",
    "60",
    "123",
    "123456",
    "1234567",
    "123456789",
    "+07:00",
    "-14:00",
    "+14:00",
    "+14:01",
    "+13:59",
    "+0700",
    "+07",
    "+07:00:30",
    "\n",
)


def test_every_shape_and_its_near_misses_answer_as_before() -> None:
    rng = random.Random(2026)
    base = "2024-03-05T09:30:12"
    values: list[Any] = [
        base + "+07:00",
        base + ".5Z",
        base + ".123456789-03:30",
        base + "+14:00",
        base + "-14:00",
        base + "+14:30",
        base + "+07:00:30",
        base,
        base + "Z\n",
        "2017-12-31T23:59:59+00:00",
        "2017-12-31T23:59:59-01:00",
        "2026-12-02T09:00:00Z",
        "2026-12-02T09:00:01Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:59:59+00:00",
        "0999-01-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-03-05 09:30:12+07:00",
        "2024-03-05T09:30+07:00",
        20240305,
        None,
        datetime(2024, 3, 5, tzinfo=timezone(timedelta(hours=7))),
        datetime(2024, 3, 5),
        datetime(2024, 3, 5, tzinfo=timezone(timedelta(hours=15))),
        datetime(2024, 3, 5, tzinfo=timezone(timedelta(seconds=30))),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
    ]
    for _ in range(20_000):  # bounded
        roll = rng.random()
        if roll < 0.3:  # in the one format, with fields in and out of their ranges
            values.append(
                f"{rng.choice(['0001', '1000', '2017', '2018', '2024', '2026', '2027', '9899', '9999'])}"
                f"-{rng.randrange(1, 13):02d}-{rng.randrange(1, 32):02d}T{rng.randrange(24):02d}:"
                f"{rng.randrange(60):02d}:{rng.randrange(60):02d}"
                f"{rng.choice(['', '.5', '.123456', '.123456789'])}"
                f"{rng.choice(['Z', '+07:00', '-14:00', '+14:00', '-09:30', '+13:59', '+00:00'])}"
            )
        elif roll < 0.65:
            text = list(base + rng.choice(["+07:00", "Z", ".123456-05:00", "+14:00"]))
            for _ in range(rng.randrange(1, 3)):
                at = rng.randrange(len(text) + 1)
                text[at:at] = rng.choice(_PIECES)[: rng.randrange(1, 4)]
            values.append("".join(text))
        else:
            values.append("".join(rng.choice(_PIECES) for _ in range(rng.randrange(3, 14))))
    shaped = 0
    for value in values:
        _same(value)
        shaped += isinstance(value, str) and bool(_INSTANT_SHAPE.fullmatch(value))
    assert shaped > 1_000  # the fast path was taken, and so were the others


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(None)
    ),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
    st.sampled_from(["", ".1", ".123", ".123456", ".123456789"]),
)
def test_generated_instants_answer_as_before(
    moment: datetime, offset_minutes: int, fraction: str
) -> None:
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + f"{sign}{hours:02d}:{minutes:02d}"
    if len(moment.strftime("%Y")) == 4:
        _same(text)
        _same(text.replace("+00:00", "Z"))
    _same(moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes))))
