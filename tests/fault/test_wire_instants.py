"""Issue 12 (wire instants, per-item answers, ambiguous requests) through every way in: HTTP
`POST /v1/events` and `/v1/events/batch` on a `referrals serve` subprocess, `referrals load`
as a subprocess, and an agency's inbound Kafka topic read by a `referrals ingest` subprocess.

- An instant PostgreSQL `timestamptz` cannot hold (offset beyond ±14:00, seconds in the offset)
  or outside the legal range (before 2018-01-01, after now + tolerance) is refused on every
  edge, for `occurred_at` and for the datetime fields of `data`, with the field named.
- Extreme dates (year 1 at +14:00, year 9999 at -14:00) answer 422, never 500; a batch of
  three lawful events and one such item records the three.
- Report and web `from`/`to` of 0001-01-01 / 9999-12-31 answer no 5xx.
- A repeated Authorization header answers 400, `expected_version: true` 422, a JSON key twice
  in an object 422 (HTTP single and batch, `load` lines, Kafka messages).
- hypothesis over every wire field (offsets across Python's whole range, datetime.min/max,
  unicode categories, numbers where strings go, nested objects): no 5xx, no traceback, no
  worker crash, nothing partly recorded.
"""

from __future__ import annotations

import itertools
import json
import signal
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.catalogue import EVENT_TYPES, field_specs
from infra.bootstrap import build_container
from infra.kafka.clients import ensure_ledger_topics, inbound_topic
from tests.e2e.conftest import auth, new_case_id, now, opening
from tests.fault.support import (
    ERROR_KEYS,
    assert_error_body,
    cli,
    event_count,
    wait_until,
)
from tests.fault.test_bad_input import (  # noqa: F401 - `ledger` is a fixture
    FUZZ,
    RECORDED_KEYS,
    Ledger,
    _accepted_by_case,
    _committed,
    _last_position,
    kafka_test,
    ledger,
)
from tests.fault.wire_fuzz import POLICE
from tests.integration.kafka_support import (
    kafka_settings,
    produce,
    read_topic,
    start_worker,
    stop,
)

pytestmark = [pytest.mark.fault, pytest.mark.postgres, pytest.mark.slow]

PLUS_16 = "2026-11-03T09:00:00+16:00"  # a valid Python offset, not a PostgreSQL one
OFFSET_SECONDS = "2026-03-03T09:00:00+07:00:30"
YEAR_1 = "0001-01-01T00:00:00+14:00"
YEAR_9999 = "9999-12-31T23:59:59-14:00"
UNHOLDABLE = (PLUS_16, OFFSET_SECONDS, YEAR_1, YEAR_9999)


def _recent() -> datetime:
    return now() - timedelta(days=1)


def _case_after(ledger: Ledger, index: int) -> tuple[str, str]:
    return ledger.cases[index % len(ledger.cases)]


def _aid_requested(case_id: str, at: str, event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "case_id": case_id,
        "type": "AID_REQUESTED",
        "agency_id": POLICE,
        "occurred_at": at,
        "data": {"request_form": "written"},
        **extra,
    }


def _http(ledger: Ledger, token: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=ledger.server.base_url, timeout=30, headers=auth(token or ledger.police)
    )


# ------------------------------------------------------------------- instants over HTTP
@pytest.mark.parametrize("instant", UNHOLDABLE)
def test_an_instant_no_store_can_hold_is_refused_over_http_single_and_batch(
    ledger: Ledger, instant: str
) -> None:
    before = event_count(ledger.server.settings)
    with _http(ledger) as http:
        single = http.post(
            "/v1/events", json=opening(new_case_id(), _recent()) | {"occurred_at": instant}
        )
        assert single.status_code == 422, single.text
        body = assert_error_body(single)
        assert body["field"] == "occurred_at", body
        assert body["code"] in ("FIELD_INVALID", "OCCURRED_TOO_EARLY", "OCCURRED_IN_FUTURE")
        lawful = opening(new_case_id(), _recent())
        batch = http.post(
            "/v1/events/batch",
            json={"events": [lawful, opening(new_case_id(), _recent()) | {"occurred_at": instant}]},
        )
        assert batch.status_code == 200, batch.text
        items = batch.json()["items"]
        assert [i["status"] for i in items] == ["recorded", "rejected"], items
        assert items[1]["error"]["field"] == "occurred_at"
    assert event_count(ledger.server.settings) - before == 1


@pytest.mark.parametrize(
    ("wire_type", "field", "other"),
    [
        ("COUNSEL_REGISTERED", "documents_complete_at", {}),
        (
            "PROVIDER_CHANGED",
            "requested_at",
            {
                "provider_id": "LAWYER-9",
                "provider_type": "CONTRACTED_LAWYER",
                "grounds": "PERSON_REQUEST",
            },
        ),
    ],
)
@pytest.mark.parametrize("instant", [PLUS_16, YEAR_1, YEAR_9999, "2017-06-01T09:00:00+07:00"])
def test_a_datetime_field_of_data_is_held_to_the_same_rule(
    ledger: Ledger, wire_type: str, field: str, other: dict[str, Any], instant: str
) -> None:
    case_id, at = _case_after(ledger, 0)
    event = {
        "event_id": f"dt-{new_case_id()}",
        "case_id": case_id,
        "type": wire_type,
        "agency_id": POLICE,
        "occurred_at": at,
        "data": {field: instant, **other},
    }
    with _http(ledger) as http:
        response = http.post("/v1/events", json=event)
    assert response.status_code == 422, response.text
    body = assert_error_body(response)
    assert body["field"] == f"data.{field}", body  # before the lifecycle: the field is named
    assert body["code"] in ("FIELD_INVALID", "OCCURRED_TOO_EARLY", "OCCURRED_IN_FUTURE")


def test_extreme_dates_are_422_and_a_batch_of_three_lawful_and_one_extreme_records_the_three(
    ledger: Ledger,
) -> None:
    settings_ = ledger.server.settings
    with _http(ledger) as http:
        for instant in (YEAR_1, YEAR_9999):
            response = http.post(
                "/v1/events", json=opening(new_case_id(), _recent()) | {"occurred_at": instant}
            )
            assert response.status_code == 422, response.text
        before = event_count(settings_)
        events = [opening(new_case_id(), _recent()) for _ in range(3)]
        events.insert(2, opening(new_case_id(), _recent()) | {"occurred_at": YEAR_1})
        response = http.post("/v1/events/batch", json={"events": events})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert (answer["recorded"], answer["rejected"]) == (3, 1), answer
        assert answer["items"][2]["error"]["code"] == "OCCURRED_TOO_EARLY"
    assert event_count(settings_) - before == 3


def test_a_bug_met_while_judging_one_item_is_that_items_answer_and_the_others_are_recorded(
    pg_container: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`record_batch` answers per item even when judging one item raises something that is
    not a DomainError (a bug meeting a hostile value, as OverflowError did)."""
    referrals = pg_container.referrals
    decide = referrals._decide

    def buggy(event: Any, *args: Any, **kwargs: Any) -> Any:
        if event.event_id.endswith("-poison"):
            raise OverflowError("date value out of range")
        return decide(event, *args, **kwargs)

    monkeypatch.setattr(referrals, "_decide", buggy)
    events = [opening(new_case_id(), _recent()) for _ in range(3)]
    poison = opening(new_case_id(), _recent(), event_id="x-poison")
    shared = events[1]["case_id"]
    after_poison = _aid_requested(shared, _recent().isoformat(), "after-it")
    results = referrals.record_batch([events[0], events[1], poison, after_poison, events[2]])
    assert [type(r).__name__ for r in results] == [
        "Recorded",
        "Recorded",
        "Rejected",
        "Recorded",
        "Recorded",
    ], results
    assert results[2].error.code == "INTERNAL_ERROR"
    assert results[2].error.as_dict()["message_en"].startswith("Internal error")
    assert referrals.get_case(shared).version == 2
    assert pg_container.referrals.recorder.max_notification_id() == 4


def test_report_and_stats_periods_at_the_ends_of_the_calendar_answer_no_5xx(
    ledger: Ledger,
) -> None:
    with _http(ledger, ledger.inspector) as http:
        for start, end in (
            ("0001-01-01", "9999-12-31"),
            ("0001-01-01", "0001-01-01"),
            ("9999-12-31", "9999-12-31"),
        ):
            for path in (
                "/v1/reports/LSN?format=json",
                "/v1/stats/agency-counts?x=1",
                "/v1/stats/compliance?x=1",
            ):
                response = http.get(f"{path}&from={start}&to={end}")
                assert response.status_code == 422, (path, start, end, response.text)
                assert assert_error_body(response)["field"] in ("from", "to")
        assert (
            http.get("/v1/reports/LSN?format=json&from=2018-01-01&to=2030-12-31").status_code == 200
        )


def test_web_periods_at_the_ends_of_the_calendar_are_clamped() -> None:
    from infra.web import format as fmt

    for text in ("9999-12-31", "31/12/9999", "0001-01-01", "01/01/0001"):
        day = fmt.parse_day(text)
        assert day is not None
        assert fmt.day_start(day) < fmt.day_after(day)  # OverflowError before the fix


# ------------------------------------------------------------------ ambiguous requests
def test_a_repeated_authorization_header_is_refused_with_400(ledger: Ledger) -> None:
    headers = [
        ("Authorization", f"Bearer {ledger.police}"),
        ("Authorization", "Bearer x"),
        ("Content-Type", "application/json"),
    ]
    event = json.dumps(opening(new_case_id(), _recent())).encode()
    response = httpx.post(
        ledger.server.base_url + "/v1/events", content=event, headers=headers, timeout=30
    )
    assert response.status_code == 400, response.text
    assert assert_error_body(response)["code"] == "HEADER_REPEATED"
    response = httpx.get(
        ledger.server.base_url + "/v1/cases/" + ledger.cases[0][0], headers=headers[:2], timeout=30
    )
    assert response.status_code == 400, response.text


def test_expected_version_true_is_not_read_as_1(ledger: Ledger) -> None:
    case_id, at = _case_after(ledger, 1)
    with _http(ledger) as http:
        version = http.get(f"/v1/cases/{case_id}", headers=auth(ledger.inspector)).json()["version"]
        assert version == 1  # so `true` would have matched
        event = _aid_requested(case_id, at, f"ev-{new_case_id()}", expected_version=True)
        response = http.post("/v1/events", json=event)
        assert response.status_code == 422, response.text
        assert assert_error_body(response)["field"] == "expected_version"
        response = http.post("/v1/events/batch", json={"events": [event]})
        assert response.json()["items"][0]["status"] == "rejected", response.text
        assert response.json()["items"][0]["error"]["field"] == "expected_version"


def test_a_json_key_twice_in_an_object_is_refused_over_http(ledger: Ledger) -> None:
    case_id, at = _case_after(ledger, 2)
    lawful = json.dumps(_aid_requested(case_id, at, f"dk-{new_case_id()}"))
    twice = lawful[:-1] + f', "case_id": "{ledger.cases[3][0]}"}}'  # the last would win
    nested = lawful.replace(
        '"request_form": "written"', '"request_form": "written", "request_form": "oral"'
    )
    before = event_count(ledger.server.settings)
    with httpx.Client(
        base_url=ledger.server.base_url,
        timeout=30,
        headers={**auth(ledger.police), "Content-Type": "application/json"},
    ) as http:
        for body in (twice, nested, '{"events": [' + lawful + '], "events": []}'):
            path = "/v1/events/batch" if body.startswith('{"events"') else "/v1/events"
            response = http.post(path, content=body.encode())
            assert response.status_code == 422, response.text
            assert assert_error_body(response)["code"] == "JSON_DUPLICATE_KEY"
        response = http.post("/v1/events/batch", content=('{"events": [' + twice + "]}").encode())
        assert response.status_code == 422, response.text
    assert event_count(ledger.server.settings) == before


# ------------------------------------------------------------------------ referrals load
def test_referrals_load_refuses_unholdable_instants_and_duplicate_keys_without_a_traceback(
    ledger: Ledger, tmp_path: Path
) -> None:
    settings_ = ledger.server.settings
    lawful = [json.dumps(opening(new_case_id(), _recent())) for _ in range(3)]
    bad = [json.dumps(opening(new_case_id(), _recent()) | {"occurred_at": i}) for i in UNHOLDABLE]
    case_id, at = _case_after(ledger, 4)
    bad.append(
        json.dumps(_aid_requested(case_id, at, f"ld-{new_case_id()}"))[:-1]
        + ', "event_id": "other"}'
    )
    bad.append(
        json.dumps(_aid_requested(case_id, at, f"ld-{new_case_id()}", expected_version=True))
    )
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([*lawful[:2], *bad, lawful[2]]) + "\n", encoding="utf-8")
    report = tmp_path / "rejected.jsonl"
    before = event_count(settings_)
    done = cli(settings_, "load", str(path), "--report-file", str(report), timeout=120)
    out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    assert done.returncode == 1, f"{out[-2000:]}\n{err[-3000:]}"
    assert "Traceback" not in err + out, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1]) == {
        "recorded": 3,
        "duplicates": 0,
        "rejected": len(bad),
    }
    assert event_count(settings_) - before == 3
    rejected = sorted(
        (json.loads(line) for line in report.read_text("utf-8").splitlines()),
        key=lambda r: r["line"],
    )
    assert [r["line"] for r in rejected] == list(range(3, 3 + len(bad)))
    assert [r["field"] for r in rejected[:4]] == ["occurred_at"] * 4
    assert rejected[4]["code"] == "JSON_DUPLICATE_KEY"
    assert rejected[5]["field"] == "expected_version"


# ---------------------------------------------------------------------------------- Kafka
@kafka_test
def test_kafka_ingest_dead_letters_unholdable_instants_and_duplicate_keys(
    pg_database: str, pg_schema: str, tmp_path: Path, kafka_broker: Any
) -> None:
    settings_ = kafka_settings(
        pg_database,
        pg_schema,
        tmp_path,
        kafka_broker.bootstrap,
        kafka_inbound_agencies=POLICE,
        kafka_partitions=1,
    )
    container = build_container(settings_)
    try:
        ensure_ledger_topics(settings_, container.reference)
        topic = inbound_topic(settings_, POLICE)
        lawful = [json.dumps(opening(new_case_id(), _recent())).encode() for _ in range(2)]
        bad = [
            json.dumps(opening(new_case_id(), _recent()) | {"occurred_at": i}).encode()
            for i in UNHOLDABLE
        ]
        bad.append(lawful[0][:-1] + b', "event_id": "kf-other"}')
        values = [lawful[0], *bad, lawful[1]]
        log = tmp_path / "ingest.log"
        worker = start_worker("ingest", settings_, log)
        try:
            produce(settings_.kafka_bootstrap_servers, [(topic, b"k", v) for v in values])
            wait_until(
                lambda: worker.poll() is not None or _committed(settings_, topic) >= len(values),
                90,
                interval=0.2,
                message="ingest committing",
            )
            assert worker.poll() is None, f"ingest died:\n{log.read_text()[-4000:]}"
            letters = read_topic(
                settings_.kafka_bootstrap_servers,
                settings_.kafka_dead_letter_topic,
                at_least=len(bad),
            )
        finally:
            code = stop(worker, signal.SIGTERM)
        assert code == 0, log.read_text()[-4000:]
        assert "Traceback" not in log.read_text()
        assert event_count(settings_) == 2
        assert sorted(r.value for r in letters) == sorted(bad)
        codes = {r.value: dict(r.headers)["error_code"].decode() for r in letters}
        assert codes[bad[-1]] == "JSON_DUPLICATE_KEY"
        fields = [dict(r.headers)["error_field"].decode() for r in letters if r.value != bad[-1]]
        assert fields == ["occurred_at"] * len(UNHOLDABLE)
    finally:
        container.close()


# ------------------------------------------------------------------ property: every field
_MAX_OFFSET = timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999)
OFFSETS = st.one_of(
    st.timedeltas(min_value=-_MAX_OFFSET, max_value=_MAX_OFFSET),
    st.sampled_from(
        [
            timedelta(hours=14),
            timedelta(hours=-14),
            timedelta(hours=14, minutes=1),
            timedelta(hours=7, seconds=1),
            -_MAX_OFFSET,
            _MAX_OFFSET,
        ]
    ),
)
INSTANTS = st.one_of(
    st.builds(
        lambda offset: (
            (_recent().replace(tzinfo=None) - timedelta(hours=1))
            .replace(tzinfo=timezone(offset))
            .isoformat()
        ),
        OFFSETS,
    ),  # lawful but the offset
    st.builds(
        lambda when, offset: when.replace(tzinfo=timezone(offset)).isoformat(),
        st.datetimes(min_value=datetime.min, max_value=datetime.max),
        OFFSETS,
    ),
    st.builds(
        lambda when, offset: when.replace(tzinfo=timezone(offset)).isoformat(),
        st.sampled_from(
            [datetime.min, datetime.max, datetime(2018, 1, 1), datetime(2017, 12, 31, 17)]
        ),
        OFFSETS,
    ),
    st.sampled_from(
        [
            datetime.min.isoformat(),
            datetime.max.isoformat() + "Z",
            YEAR_1,
            YEAR_9999,
            PLUS_16,
            OFFSET_SECONDS,
        ]
    ),
)
CATEGORIES = (
    "Lu",
    "Ll",
    "Lo",
    "Mn",
    "Nd",
    "Pd",
    "Ps",
    "Sm",
    "Sc",
    "Zs",
    "Zl",
    "Cc",
    "Cf",
    "Co",
    "Cs",
    "So",
)
UNICODE = st.one_of(
    *(st.text(st.characters(categories=[c]), min_size=1, max_size=12) for c in CATEGORIES)
)
NUMBERS = st.one_of(st.integers(), st.floats(), st.sampled_from([2**31, 2**63, 10**30, -1, 0]))
NESTED = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
HOSTILE = st.one_of(INSTANTS, UNICODE, NUMBERS, NESTED, st.booleans(), st.none())
TOP_FIELDS = (
    "event_id",
    "case_id",
    "type",
    "agency_id",
    "occurred_at",
    "data",
    "identity",
    "expected_version",
)
IDENTITY_FIELDS = ("full_name", "date_of_birth", "id_number", "phone")


@st.composite
def field_items(
    draw: st.DrawFn, cases: list[tuple[str, str]], ids: Iterator[int]
) -> tuple[bytes, str]:
    """A lawful event with one to three of its fields (any wire field, any `data` field of
    its type, any identity field) given a hostile value; (JSON bytes, note)."""
    number = next(ids)
    if draw(st.booleans()):
        event = opening(f"LSN-PF-{number:06d}", _recent(), event_id=f"pf-{number:06d}")
    else:
        case_id, at = draw(st.sampled_from(cases))
        wire_type = draw(
            st.sampled_from(
                ["AID_REQUESTED", "COUNSEL_REGISTERED", "PROVIDER_CHANGED", "REQUEST_TRANSFERRED"]
            )
        )
        event = {
            "event_id": f"pf-{number:06d}",
            "case_id": case_id,
            "type": wire_type,
            "agency_id": POLICE,
            "occurred_at": at,
            "data": {},
        }
    data_fields = sorted(field_specs(event["type"])) if event["type"] in EVENT_TYPES else []
    paths = (
        [(f,) for f in TOP_FIELDS]
        + [("data", f) for f in data_fields]
        + [("identity", f) for f in IDENTITY_FIELDS]
    )
    notes = []
    chosen = draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3, unique=True))
    if draw(st.integers(0, 3)) == 0:  # the instant alone: accepted unless it is refused
        chosen = [("occurred_at",)]
    for path in chosen:
        value = draw(
            INSTANTS
            if path[-1] in ("occurred_at", "documents_complete_at", "requested_at")
            and draw(st.booleans())
            else HOSTILE
        )
        node = event
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
        notes.append(f"{'.'.join(path)}={value!r:.40}")
    return json.dumps(event).encode("ascii"), "; ".join(notes)


def _assert_postgres_holds_every_instant(settings_: Any, items: list[bytes]) -> None:
    """Every instant of every accepted item, as the ledger stores it (Python's ISO form),
    casts to PostgreSQL `timestamptz` (what the projections' COPY does): an accepted +16:00
    stopped them for good."""
    import psycopg

    instants = []
    for raw in items:
        event = json.loads(raw)
        instants.append(event["occurred_at"])
        specs = field_specs(event["type"])
        instants += [
            v
            for k, v in (event.get("data") or {}).items()
            if k in specs and specs[k].kind == "datetime"
        ]
    assert instants
    with psycopg.connect(settings_.pg_conninfo(), autocommit=True) as conn:
        for instant in instants:
            stored = datetime.fromisoformat(instant.replace("Z", "+00:00")).isoformat()
            try:
                conn.execute("SELECT %s::text::timestamptz", (stored,))
            except psycopg.Error as error:
                pytest.fail(f"accepted {instant!r}, which PostgreSQL cannot hold: {error}")


def test_every_wire_field_hostile_over_http_and_load_no_5xx_nothing_partly_recorded(
    ledger: Ledger, tmp_path: Path
) -> None:
    settings_ = ledger.server.settings
    ids = itertools.count()
    before = event_count(settings_)
    accepted = 0
    statuses: Counter[int] = Counter()
    recorded_items: list[bytes] = []
    with httpx.Client(
        base_url=ledger.server.base_url,
        timeout=30,
        headers={**auth(ledger.police), "Content-Type": "application/json"},
    ) as http:

        @settings(max_examples=120, **FUZZ)
        @given(item=field_items(ledger.cases, ids))
        def post_one(item: tuple[bytes, str]) -> None:
            nonlocal accepted
            response = http.post("/v1/events", content=item[0])
            statuses[response.status_code] += 1
            assert response.status_code in (200, 201, 202, 403, 409, 422), (item[1], response.text)
            if response.status_code in (201, 202):  # 202: recorded and held (ADR 0008)
                assert set(response.json()) == RECORDED_KEYS
                accepted += 1
                recorded_items.append(item[0])
            elif response.status_code != 200:
                assert_error_body(response)

        @settings(max_examples=40, **FUZZ)
        @given(items=st.lists(field_items(ledger.cases, ids), min_size=2, max_size=5))
        def post_batch(items: list[tuple[bytes, str]]) -> None:
            nonlocal accepted
            body = b'{"events":[' + b",".join(i[0] for i in items) + b"]}"
            response = http.post("/v1/events/batch", content=body)
            statuses[response.status_code] += 1
            assert response.status_code == 200, ([i[1] for i in items], response.text)
            answer = response.json()
            assert len(answer["items"]) == len(items)
            for item in answer["items"]:
                assert item["status"] != "rejected" or set(item["error"]) == ERROR_KEYS - {
                    "request_id"
                }
                assert item["status"] != "rejected" or item["error"]["code"] != "INTERNAL_ERROR"
            accepted += answer["recorded"]
            recorded_items.extend(
                i[0]
                for i, out in zip(items, answer["items"], strict=True)
                if out["status"] in ("recorded", "held")
            )

        post_one()
        post_batch()
        assert http.get("/ready").status_code == 200
    assert event_count(settings_) - before == accepted  # every row is an accepted item
    assert 422 in statuses
    _assert_postgres_holds_every_instant(settings_, recorded_items)

    lines: list[bytes] = []

    @settings(max_examples=6, **FUZZ)  # several examples: the first one is the simplest
    @given(items=st.lists(field_items(ledger.cases, ids), min_size=10, max_size=10))
    def collect(items: list[tuple[bytes, str]]) -> None:
        lines.extend(i[0] for i in items)

    collect()
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = tmp_path / "rejected.jsonl"
    before = event_count(settings_)
    done = cli(settings_, "load", str(path), "--report-file", str(report), timeout=120)
    err = done.stderr.decode(errors="replace") + done.stdout.decode(errors="replace")
    assert done.returncode in (0, 1) and "Traceback" not in err, err[-3000:]
    summary = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert sum(summary.values()) == len(lines), summary
    assert event_count(settings_) - before == summary["recorded"]
    codes = {json.loads(r)["code"] for r in report.read_text("utf-8").splitlines()}
    assert "INTERNAL_ERROR" not in codes, codes
    assert len(codes) > 3, codes  # the lines vary
    print(f"\nHTTP answers {dict(statuses)}; load {summary}, codes {sorted(codes)}")


@kafka_test
def test_every_wire_field_hostile_over_kafka_no_crash_nothing_partly_recorded(
    pg_database: str, pg_schema: str, tmp_path: Path, kafka_broker: Any
) -> None:
    settings_ = kafka_settings(
        pg_database,
        pg_schema,
        tmp_path,
        kafka_broker.bootstrap,
        kafka_inbound_agencies=POLICE,
        kafka_partitions=1,
        kafka_batch_size=25,
    )
    container = build_container(settings_)
    try:
        ensure_ledger_topics(settings_, container.reference)
        cases = []
        for _ in range(4):
            case_id, t = new_case_id(), now() - timedelta(days=2)
            container.referrals.record_event(opening(case_id, t))
            cases.append((case_id, (t + timedelta(hours=1)).isoformat()))
        values: list[bytes] = []

        @settings(max_examples=6, **FUZZ)  # several examples: the first one is the simplest
        @given(items=st.lists(field_items(cases, itertools.count()), min_size=10, max_size=10))
        def collect(items: list[tuple[bytes, str]]) -> None:
            values.extend(i[0] for i in items)

        collect()
        values += [
            json.dumps(opening(new_case_id(), _recent()) | {"occurred_at": instant}).encode()
            for instant in UNHOLDABLE
        ]  # explicit examples
        topic = inbound_topic(settings_, POLICE)
        log = tmp_path / "ingest.log"
        before_position = _last_position(settings_)
        worker = start_worker("ingest", settings_, log)
        try:
            produce(settings_.kafka_bootstrap_servers, [(topic, b"k", v) for v in values])
            wait_until(
                lambda: worker.poll() is not None or _committed(settings_, topic) >= len(values),
                90,
                interval=0.2,
                message="ingest committing",
            )
            assert worker.poll() is None, f"ingest died:\n{log.read_text()[-4000:]}"
            recorded = sum(_accepted_by_case(settings_, before_position).values())
            letters = read_topic(
                settings_.kafka_bootstrap_servers,
                settings_.kafka_dead_letter_topic,
                at_least=len(values) - recorded,
            )
        finally:
            code = stop(worker, signal.SIGTERM)
        assert code == 0, log.read_text()[-4000:]
        summary = json.loads(log.read_text().strip().splitlines()[-1])["ingest"]
        assert len(letters) == len(values) - recorded == summary["dead_lettered"]
        assert "INTERNAL_ERROR" not in summary["dead_letter_codes"], summary
        assert len(summary["dead_letter_codes"]) > 3, summary  # the items vary
        print(
            f"\nKafka: {len(values)} sent, {recorded} recorded, dead letters "
            f"{summary['dead_letter_codes']}"
        )
        accepted = list((Counter(values) - Counter(r.value for r in letters)).elements())
        assert len(accepted) == recorded
        _assert_postgres_holds_every_instant(settings_, accepted)
    finally:
        container.close()
