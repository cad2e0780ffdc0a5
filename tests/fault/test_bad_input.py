"""Hostile wire events (tests/fault/wire_fuzz.py) through every way in: HTTP `POST /v1/events`
and `/v1/events/batch` on a `referrals serve` subprocess, a JSONL file (with lines that are
not UTF-8) given to `referrals load` as a subprocess, and an agency's inbound Kafka topic read
by a `referrals ingest` subprocess.

Proves, for each channel: no 5xx and no crash (the server, the load command and the ingest
worker keep going and exit normally); every refusal is in the documented shape (HTTP error
body, batch item error, load report line, dead-letter headers); nothing is partly recorded:
the event store grows by exactly the number of events the channel said it accepted, and a case
that accepted nothing is exactly as it was (state and version); on Kafka, every message that
was not recorded is on the dead-letter topic, byte for byte.

Hypothesis runs derandomized (a fixed seed per test), without a database of examples and
without shrinking, so each run sends the same items and stays within its time budget.
"""

from __future__ import annotations

import itertools
import json
import signal
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from infra.bootstrap import build_container
from infra.kafka.clients import ensure_ledger_topics, inbound_topic
from infra.settings import Settings
from tests.e2e.conftest import (
    LiveServer,
    auth,
    live_server,
    mint_token,
    new_case_id,
    now,
    opening,
)
from tests.fault.support import (
    ERROR_KEYS,
    assert_error_body,
    cli,
    event_count,
    stored_events,
    wait_until,
)
from tests.fault.wire_fuzz import NOT_UTF8, POLICE, WireItem, wire_items
from tests.integration.kafka_support import (
    FILTER_KAFKA_WARNINGS,
    kafka_settings,
    produce,
    read_topic,
    start_worker,
    stop,
)

pytestmark = [pytest.mark.fault, pytest.mark.postgres, pytest.mark.slow]

POOL = 8  # open cases the items aim at
FUZZ = dict(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
RECORDED_KEYS = {
    "case_id",
    "event_id",
    "version",
    "recorded_at",
    "duplicate",
    "position",
    "receipt",
    "status",
    "awaiting",
}  # status/awaiting: held events (ADR 0008)


@dataclass
class Ledger:
    """A live server over a fresh schema with POOL open cases, and how to look at them."""

    server: LiveServer
    police: str
    inspector: str
    cases: list[tuple[str, str]]  # (case id, instant of a lawful next event)
    ids: Iterator[int] = field(default_factory=itertools.count)

    def states(self) -> dict[str, Any]:
        with httpx.Client(
            base_url=self.server.base_url, headers=auth(self.inspector), timeout=30
        ) as http:
            return {case_id: http.get(f"/v1/cases/{case_id}").json() for case_id, _ in self.cases}


@pytest.fixture(scope="module")
def ledger(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    with live_server(pg_database, tmp_path_factory.mktemp("bad-input")) as server:
        police = mint_token(server.settings, "agency", agency_id=POLICE)
        inspector = mint_token(server.settings, "inspector", provinces=["LSN"])
        cases = []
        with httpx.Client(base_url=server.base_url, headers=auth(police), timeout=30) as http:
            for _ in range(POOL):
                case_id = new_case_id()
                t = now() - timedelta(days=2)
                assert http.post("/v1/events", json=opening(case_id, t)).status_code == 201
                cases.append((case_id, (t + timedelta(hours=1)).isoformat()))
        yield Ledger(server, police, inspector, cases)


def _check_unchanged_unless_accepted(
    before: dict[str, Any], after: dict[str, Any], accepted: Counter[str]
) -> None:
    for case_id, state in before.items():
        if accepted[case_id] == 0:
            assert after[case_id] == state, case_id
        else:
            assert after[case_id]["version"] == state["version"] + accepted[case_id], case_id


# ---------------------------------------------------------------------------------- HTTP
def test_hostile_events_over_http_get_no_5xx_and_record_nothing_partly(ledger: Ledger) -> None:
    settings_ = ledger.server.settings
    before_count, before_states = event_count(settings_), ledger.states()
    accepted: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    headers = {**auth(ledger.police), "Content-Type": "application/json"}

    with httpx.Client(base_url=ledger.server.base_url, headers=headers, timeout=30) as http:

        @settings(max_examples=500, **FUZZ)
        @given(item=wire_items(ledger.cases, ledger.ids))
        def post_one(item: WireItem) -> None:
            response = http.post("/v1/events", content=item.raw)
            statuses[response.status_code] += 1
            where = f"{item.note}: {response.status_code} {response.text[:300]}"
            assert response.status_code in (200, 201, 202, 403, 409, 413, 422), where
            if response.status_code in (200, 201, 202):  # 202: recorded and held (ADR 0008)
                assert set(response.json()) == RECORDED_KEYS, where
                if response.status_code in (201, 202):
                    accepted[response.json()["case_id"]] += 1
            else:
                assert_error_body(response)

        @settings(max_examples=300, **FUZZ)
        @given(items=st.lists(wire_items(ledger.cases, ledger.ids), min_size=1, max_size=6))
        def post_batch(items: list[WireItem]) -> None:
            body = b'{"events":[' + b",".join(i.raw for i in items) + b"]}"
            response = http.post("/v1/events/batch", content=body)
            statuses[response.status_code] += 1
            where = f"{[i.note for i in items]}: {response.status_code} {response.text[:300]}"
            assert response.status_code in (200, 413, 422), where
            if response.status_code != 200:
                assert_error_body(response)
                return
            answer = response.json()
            assert [i["index"] for i in answer["items"]] == list(range(len(items))), where
            assert answer["recorded"] + answer["duplicates"] + answer["rejected"] == len(items)
            for item in answer["items"]:
                if item["status"] == "rejected":
                    assert set(item["error"]) == ERROR_KEYS - {"request_id"}, where
                elif item["status"] in ("recorded", "held"):  # held: recorded (ADR 0008)
                    accepted[item["case_id"]] += 1

        post_one()
        post_batch()
        assert http.get("/ready").status_code == 200

    assert event_count(settings_) - before_count == sum(accepted.values())
    _check_unchanged_unless_accepted(before_states, ledger.states(), accepted)
    assert 422 in statuses and 200 in statuses
    print(f"\nHTTP answers {dict(statuses)}; {sum(accepted.values())} events accepted")


# -------------------------------------------------------------------------- referrals load
def test_hostile_lines_given_to_referrals_load_are_reported_and_never_half_recorded(
    ledger: Ledger, tmp_path: Path
) -> None:
    settings_ = ledger.server.settings
    runs: list[dict[str, int]] = []

    @settings(max_examples=2, **FUZZ)
    @given(
        items=st.lists(wire_items(ledger.cases, ledger.ids), min_size=50, max_size=50),
        junk=st.lists(NOT_UTF8, min_size=4, max_size=4),
    )
    def load_file(items: list[WireItem], junk: list[bytes]) -> None:
        lines = (
            [i.raw for i in items]
            + [b'{"event_id": "' + j + b'"}' for j in junk]
            + [b"\xff\xfe" + items[0].raw, b"[" * 100_000 + b"]" * 100_000, b"1" * 5000]
        )
        path = tmp_path / f"hostile-{len(runs)}.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        report = tmp_path / f"rejected-{len(runs)}.jsonl"
        before_count, before_states = event_count(settings_), ledger.states()
        before_position = _last_position(settings_)
        done = cli(settings_, "load", str(path), "--report-file", str(report), timeout=120)
        out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
        assert done.returncode in (0, 1), f"exit {done.returncode}\n{out[-2000:]}\n{err[-3000:]}"
        assert "Traceback" not in err, err[-3000:]
        summary = json.loads(out.strip().splitlines()[-1])
        assert sum(summary.values()) == len(lines), summary
        assert event_count(settings_) - before_count == summary["recorded"]
        rejected = [json.loads(line) for line in report.read_text("utf-8").splitlines()]
        assert len(rejected) == summary["rejected"]
        assert all({"line", "code", "field", "message", "message_en"} <= set(r) for r in rejected)
        assert {r["line"] for r in rejected} >= set(range(len(items) + 1, len(lines) + 1))
        accepted = _accepted_by_case(settings_, before_position)
        assert sum(accepted.values()) == summary["recorded"]
        _check_unchanged_unless_accepted(before_states, ledger.states(), accepted)
        runs.append(summary)

    load_file()
    assert len(runs) == 2
    print(f"\nload runs: {runs}")


def _last_position(settings_: Settings) -> int:
    return max((e.position for e in stored_events(settings_)), default=0)


def _accepted_by_case(settings_: Settings, after_position: int) -> Counter[str]:
    """How many events each case got after the given log position."""
    return Counter(e.case_id for e in stored_events(settings_) if e.position > after_position)


# ---------------------------------------------------------------------------------- Kafka
def kafka_test(test: Any) -> Any:
    for mark in (
        pytest.mark.kafka,
        *(pytest.mark.filterwarnings(f) for f in FILTER_KAFKA_WARNINGS),
    ):
        test = mark(test)
    return test


def _committed(settings_: Settings, topic: str) -> int:
    """Offsets the ingest group committed on `topic`, summed over its partitions."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings_.kafka_bootstrap_servers,
        group_id=settings_.kafka_group_id,
        enable_auto_commit=False,
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in partitions)
    finally:
        consumer.close(autocommit=False)


@kafka_test
def test_hostile_messages_on_an_inbound_topic_are_dead_lettered_and_never_half_recorded(
    pg_database: str, pg_schema: str, tmp_path: Path, kafka_broker: Any
) -> None:
    settings_ = kafka_settings(
        pg_database,
        pg_schema,
        tmp_path,
        kafka_broker.bootstrap,
        kafka_inbound_agencies=POLICE,
        kafka_partitions=2,
        kafka_batch_size=25,
    )
    container = build_container(settings_)
    try:
        ensure_ledger_topics(settings_, container.reference)
        cases = []
        for _ in range(POOL):
            case_id = new_case_id()
            t = now() - timedelta(days=2)
            container.referrals.record_event(opening(case_id, t))
            cases.append((case_id, (t + timedelta(hours=1)).isoformat()))

        def states() -> dict[str, Any]:
            return {c: container.referrals.get_case(c).snapshot_view() for c, _ in cases}

        topic = inbound_topic(settings_, POLICE)
        log = tmp_path / "ingest.log"
        worker = start_worker("ingest", settings_, log)
        sent: list[bytes] = []
        ids = itertools.count()
        try:

            @settings(max_examples=3, **FUZZ)
            @given(
                items=st.lists(wire_items(cases, ids), min_size=30, max_size=30),
                junk=st.lists(NOT_UTF8, min_size=2, max_size=2),
            )
            def stream(items: list[WireItem], junk: list[bytes]) -> None:
                values = [i.raw for i in items] + [b'{"event_id": "' + j + b'"}' for j in junk]
                values += [b"[" * 100_000 + b"]" * 100_000, b"1" * 5000]
                before_position, before_states = _last_position(settings_), states()
                keys = [(i.case_id or "none").encode() for i in items]
                keys += [b"junk"] * (len(values) - len(keys))
                produce(
                    settings_.kafka_bootstrap_servers,
                    [(topic, k, v) for k, v in zip(keys, values, strict=True)],
                )
                sent.extend(values)
                wait_until(
                    lambda: worker.poll() is not None or _committed(settings_, topic) >= len(sent),
                    90,
                    interval=0.2,
                    message=f"ingest committing {len(sent)} messages",
                )
                assert worker.poll() is None, f"ingest died:\n{log.read_text()[-4000:]}"
                accepted = _accepted_by_case(settings_, before_position)
                after = states()
                for case_id, state in before_states.items():
                    if accepted[case_id] == 0:
                        assert after[case_id] == state, case_id
                    else:
                        assert after[case_id]["version"] == state["version"] + accepted[case_id]

            stream()
            recorded = event_count(settings_) - POOL
            letters = read_topic(
                settings_.kafka_bootstrap_servers,
                settings_.kafka_dead_letter_topic,
                at_least=len(sent) - recorded,
            )
        finally:
            code = stop(worker, signal.SIGTERM)
        assert code == 0, log.read_text()[-4000:]
        summary = json.loads(log.read_text().strip().splitlines()[-1])["ingest"]
        assert len(letters) == len(sent) - recorded == summary["dead_lettered"]
        assert not Counter(r.value for r in letters) - Counter(sent)  # the original bytes
        for letter in letters:
            headers = {k: v.decode("utf-8") for k, v in letter.headers}
            assert headers["error_code"] and headers["error_message_vi"], headers
            assert headers["source_topic"] == topic
        assert "INTERNAL_ERROR" not in summary["dead_letter_codes"], summary
        print(
            f"\nKafka: {len(sent)} sent, {recorded} recorded, dead letters "
            f"{summary['dead_letter_codes']}"
        )
    finally:
        container.close()
