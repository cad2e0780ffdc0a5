"""The ingest worker against a real Kafka-protocol broker (Tansu) and a real PostgreSQL:
exactly-once recording of streamed events, crash and redelivery, dead letters, topic binding.
"""

from __future__ import annotations

import json
import signal
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.bootstrap import Container, build_container
from infra.kafka.clients import ensure_ledger_topics, inbound_topic
from infra.kafka.ingest import IngestWorker
from infra.sample_data import generate_events
from infra.settings import Settings
from tests.factories import CENTRE, POLICE, POLICE_2, PROCURACY, VLG_POLICE, CaseScript
from tests.integration.kafka_support import (
    FILTER_KAFKA_WARNINGS,
    count_events,
    kafka_settings,
    produce,
    read_topic,
    start_worker,
    stop,
    stored_event_ids,
    wait_for,
)

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.postgres,
    *(pytest.mark.filterwarnings(f) for f in FILTER_KAFKA_WARNINGS),
]


@pytest.fixture
def ingest_settings(
    pg_database: str, pg_schema: str, tmp_path: Path, kafka_broker: Any
) -> Settings:
    return kafka_settings(pg_database, pg_schema, tmp_path, kafka_broker.bootstrap)


@pytest.fixture
def container(ingest_settings: Settings) -> Iterator[Container]:
    container = build_container(ingest_settings)
    ensure_ledger_topics(ingest_settings, container.reference)
    yield container
    container.close()


class RunningWorker:
    """An in-process ingest worker on its own thread (stopped and closed by the fixture)."""

    def __init__(self, settings: Settings, container: Container) -> None:
        self.worker = IngestWorker.connect(settings, container.referrals)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run(max_seconds=150)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error

    def finish(self) -> None:
        self.worker.stop()
        self.thread.join(timeout=30)
        self.worker.close()
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


@pytest.fixture
def worker(ingest_settings: Settings, container: Container) -> Iterator[RunningWorker]:
    running = RunningWorker(ingest_settings, container)
    yield running
    running.finish()


def message(settings: Settings, wire: dict[str, Any]) -> tuple[str, bytes, bytes]:
    """(agency's inbound topic, key, value) for a wire event."""
    return (
        inbound_topic(settings, wire["agency_id"]),
        wire["case_id"].encode(),
        json.dumps(wire, ensure_ascii=False).encode(),
    )


def headers_of(record: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


def test_streamed_events_are_recorded_exactly_once_when_every_agency_sends_on_its_topic(
    ingest_settings: Settings, container: Container, worker: RunningWorker
) -> None:
    now = datetime.now(timezone.utc)
    events = list(
        generate_events(
            7, 260, container.reference, now - timedelta(days=400), now - timedelta(hours=1)
        )
    )[:1000]
    assert len(events) == 1000
    # An agency sends a case's next event once the previous one is in the ledger (it learns of
    # it from the outbound topic); so stream the k-th event of every case in round k.
    rounds: dict[int, list[dict[str, Any]]] = defaultdict(list)
    seen: Counter[str] = Counter()
    for event in events:
        rounds[seen[event["case_id"]]].append(event)
        seen[event["case_id"]] += 1
    assert len({e["agency_id"] for e in events}) >= 8  # many agencies, many topics
    total = 0
    for index in sorted(rounds):
        total += produce(
            ingest_settings.kafka_bootstrap_servers,
            [message(ingest_settings, e) for e in rounds[index]],
        )
        wait_for(
            lambda expected=total: count_events(ingest_settings) >= expected,
            60,
            message=f"round {index} recorded ({total} events)",
        )

    recorded = stored_event_ids(container.referrals)
    assert len(recorded) == 1000
    assert Counter(recorded) == Counter((e["case_id"], e["event_id"]) for e in events)

    # Redelivery of everything (as after a crash before the commit) records nothing new.
    produce(ingest_settings.kafka_bootstrap_servers, [message(ingest_settings, e) for e in events])
    wait_for(lambda: worker.worker.stats.duplicates >= 1000, 60, message="1000 duplicates seen")
    assert count_events(ingest_settings) == 1000
    assert worker.worker.stats.dead_lettered == 0
    assert (
        read_topic(
            ingest_settings.kafka_bootstrap_servers,
            ingest_settings.kafka_dead_letter_topic,
            settle=0.2,
        )
        == []
    )


def test_unrecordable_messages_go_to_the_dead_letter_topic_and_never_block_the_partition(
    pg_database: str, pg_schema: str, tmp_path: Path, kafka_broker: Any
) -> None:
    settings = kafka_settings(
        pg_database,
        pg_schema,
        tmp_path,
        kafka_broker.bootstrap,
        kafka_partitions=1,
        kafka_inbound_agencies=f"{POLICE},{CENTRE}",
    )
    container = build_container(settings)
    try:
        ensure_ledger_topics(settings, container.reference)
        running = RunningWorker(settings, container)
        try:
            _dead_letter_scenario(settings, container, running)
        finally:
            running.finish()
    finally:
        container.close()


def _dead_letter_scenario(settings: Settings, container: Container, running: RunningWorker) -> None:
    police, centre = inbound_topic(settings, POLICE), inbound_topic(settings, CENTRE)
    a, b, c = CaseScript(), CaseScript(), CaseScript()
    unknown = dict(a.request(), event_id="bad-type", type="NOT_A_REFERRAL_EVENT")
    a.count -= 1
    wrong_agency = dict(b.notification(), agency_id=POLICE_2)  # a commune police's event
    b.count -= 1
    bad = {
        "malformed": b'{"event_id": "x", "case_id": ',
        "not-utf8": b'\xff\xfe{"event_id": "y"}',
        "unknown-type": json.dumps(unknown).encode(),
        "wrong-agency": json.dumps(wrong_agency).encode(),
    }
    good_police = [
        a.notification(),
        a.request(),
        b.notification(),
        b.request(),
        c.notification(),
        c.request(),
        c.transfer(),
    ]
    police_messages = [
        (police, b"k", json.dumps(good_police[0]).encode()),
        (police, b"k", bad["malformed"]),
        (police, b"k", json.dumps(good_police[1]).encode()),
        (police, b"k", bad["not-utf8"]),
        (police, b"k", bad["unknown-type"]),
        (police, b"k", json.dumps(good_police[2]).encode()),
        (police, b"k", bad["wrong-agency"]),
        *[(police, b"k", json.dumps(w).encode()) for w in good_police[3:]],
    ]
    produce(settings.kafka_bootstrap_servers, police_messages)
    wait_for(lambda: count_events(settings) >= len(good_police), 60, message="police events")

    # The centre assigns a lawyer on case B, whose request has not reached it yet: out of
    # order, so held (ADR 0008; it was dead-lettered), never dead-lettered for order alone.
    out_of_order = b.assign()
    behind = [c.accept(), c.assign()]
    produce(
        settings.kafka_bootstrap_servers,
        [
            (centre, b"k", json.dumps(out_of_order).encode()),
            *[(centre, b"k", json.dumps(w).encode()) for w in behind],
        ],
    )
    wait_for(
        lambda: count_events(settings) >= len(good_police) + len(behind) + 1,
        60,
        message="centre events behind the dead letter",
    )

    letters = read_topic(
        settings.kafka_bootstrap_servers, settings.kafka_dead_letter_topic, at_least=4
    )
    by_value = {r.value: headers_of(r) for r in letters}
    assert len(letters) == 4
    assert set(by_value) == set(bad.values())  # the original bytes, unchanged
    expected = {
        "malformed": ("FIELD_INVALID", "$", police),
        "not-utf8": ("FIELD_INVALID", "$", police),
        "unknown-type": ("EVENT_TYPE_UNKNOWN", "type", police),
        "wrong-agency": ("NOT_AUTHORISED", "agency_id", police),
    }
    offsets = {value: offset for offset, (_, _, value) in enumerate(police_messages)}
    for name, (code, field, topic) in expected.items():
        headers = by_value[bad[name]]
        assert (headers["error_code"], headers["error_field"], headers["source_topic"]) == (
            code,
            field,
            topic,
        ), name
        assert headers["source_partition"] == "0"
        assert headers["error_message_vi"] and headers["error_message_en"]
        if topic == police:
            assert headers["source_offset"] == str(offsets[bad[name]])
    assert "Không có quyền" in by_value[bad["wrong-agency"]]["error_message_vi"]

    recorded = set(stored_event_ids(container.referrals))
    assert recorded == {
        (w["case_id"], w["event_id"]) for w in [*good_police, *behind, out_of_order]
    }
    assert running.worker.stats.dead_letter_codes == {
        "FIELD_INVALID": 2,
        "EVENT_TYPE_UNKNOWN": 1,
        "NOT_AUTHORISED": 1,
    }
    assert running.worker.stats.held == 1
    standing = container.referrals.get_case(b.case_id).held[out_of_order["event_id"]]
    assert standing["reason"] == "AGENCY_NOT_ADDRESSED_CENTRE"  # no part in case B yet


def test_worker_killed_mid_stream_and_restarted_leaves_exactly_one_copy_of_each_event(
    pg_database: str, pg_schema: str, tmp_path: Path, kafka_broker: Any
) -> None:
    agencies = (POLICE, POLICE_2, VLG_POLICE)
    settings = kafka_settings(
        pg_database,
        pg_schema,
        tmp_path,
        kafka_broker.bootstrap,
        kafka_inbound_agencies=",".join(agencies),
        kafka_batch_size=20,
        kafka_session_timeout_ms=3000,
        kafka_heartbeat_interval_ms=500,
    )
    container = build_container(settings)
    try:
        ensure_ledger_topics(settings, container.reference)
        wires = []
        for n in range(300):
            holder = agencies[n % 3]
            case = CaseScript(holder=holder)
            wires += [
                case.notification(),
                case.request(),
                case.transfer(centre="vlg-centre" if holder == VLG_POLICE else CENTRE),
            ]
        produce(settings.kafka_bootstrap_servers, [message(settings, w) for w in wires])

        first = start_worker("ingest", settings, tmp_path / "ingest-1.log")
        with psycopg.connect(settings.pg_conninfo(), autocommit=True) as conn:
            try:  # kill within a millisecond of a store commit: before the offset commit
                at_kill = wait_for(
                    lambda: (n := count_events(settings, conn)) >= 150 and n,
                    60,
                    interval=0.0005,
                    message="first worker recording",
                )
            finally:
                stop(first, signal.SIGKILL)
        assert at_kill < len(wires), "the worker finished before it was killed"

        second = start_worker("ingest", settings, tmp_path / "ingest-2.log")
        try:
            wait_for(
                lambda: count_events(settings) >= len(wires),
                90,
                interval=0.1,
                message="second worker catching up",
            )
        finally:
            assert stop(second, signal.SIGTERM) == 0, (tmp_path / "ingest-2.log").read_text()
        summary = json.loads((tmp_path / "ingest-2.log").read_text().strip().splitlines()[-1])

        recorded = stored_event_ids(container.referrals)
        assert Counter(recorded) == Counter((w["case_id"], w["event_id"]) for w in wires)
        assert summary["ingest"]["dead_lettered"] == 0
        print("\nkilled at", at_kill, "of", len(wires), "; after restart:", summary["ingest"])
    finally:
        container.close()


def test_every_streamed_event_gets_a_signed_receipt_on_its_agency_topic(
    ingest_settings: Settings, container: Container
) -> None:
    from infra.kafka.clients import receipts_topic
    from infra.transparency.service import receipts_for, transparency_log
    from services.transparency.receipt import open_receipt

    worker = IngestWorker.connect(  # wired as `referrals ingest` wires it (receipt/v1 each)
        ingest_settings,
        container.referrals,
        receipts=lambda results: receipts_for(container, results, one_signature=False),
    )
    thread = threading.Thread(target=worker.run, kwargs={"max_seconds": 60}, daemon=True)
    thread.start()
    try:
        case = CaseScript()
        wires = [case.notification(), case.request(), case.transfer()]
        produce(
            ingest_settings.kafka_bootstrap_servers, [message(ingest_settings, w) for w in wires]
        )
        topic = receipts_topic(ingest_settings, POLICE)
        ours = {w["event_id"] for w in wires}  # the shared broker holds other tests' receipts

        def mine(found: list[Any]) -> list[Any]:
            return [r for r in found if headers_of(r)["event_id"] in ours]

        def read_mine(count: int) -> list[Any]:
            return wait_for(
                lambda: (lambda found: found if len(found) >= count else None)(
                    mine(read_topic(ingest_settings.kafka_bootstrap_servers, topic, settle=0.2))
                ),
                60,
                message=f"{count} receipts on {topic}",
            )

        records = read_mine(3)
        verifier = transparency_log(container).signer.verifier()
        receipts = sorted(
            (open_receipt(r.value.decode(), [verifier]) for r in records), key=lambda r: r.position
        )  # keyed by event id: many partitions
        assert [r.event_id for r in receipts] == [w["event_id"] for w in wires]
        assert len({r.position for r in receipts}) == 3
        first = next(
            r.value
            for r in records
            if open_receipt(r.value.decode(), [verifier]).event_id == wires[0]["event_id"]
        )

        # a redelivered (re-sent) event gets the very same receipt once the trail has it
        container.projections.process_pending()
        produce(ingest_settings.kafka_bootstrap_servers, [message(ingest_settings, wires[0])])
        again = read_mine(4)
        same = [
            r.value
            for r in again
            if open_receipt(r.value.decode(), [verifier]).event_id == wires[0]["event_id"]
        ]
        assert same == [first, first]
        assert {headers_of(r)["status"] for r in records} == {"recorded"}

        # ADR 0008: a registration before the assignment it follows is held, and its receipt
        # says so, naming what it awaits (it is not dead-lettered)
        early = case.register()
        ours.add(early["event_id"])
        produce(ingest_settings.kafka_bootstrap_servers, [message(ingest_settings, early)])
        held = [r for r in read_mine(5) if headers_of(r)["event_id"] == early["event_id"]]
        assert headers_of(held[0])["status"] == "held"
        awaiting = json.loads(headers_of(held[0])["awaiting"])
        assert awaiting["reason"] == "ORDER_VIOLATION" and "AID_ASSIGNED" in awaiting["types"]
        assert worker.stats.held == 1 and worker.stats.dead_lettered == 0

        # ADR 0008 addendum: the procuracy has no part in the case; its fact is held without
        # the case's state, and its receipt binds no leaf hash (the leaf holds the version)
        stranger = case.event("NOTIFICATION_ISSUED", agency=PROCURACY, data={"form": "MAU_03"})
        produce(ingest_settings.kafka_bootstrap_servers, [message(ingest_settings, stranger)])
        found = wait_for(
            lambda: [
                r
                for r in read_topic(
                    ingest_settings.kafka_bootstrap_servers,
                    receipts_topic(ingest_settings, PROCURACY),
                    settle=0.2,
                )
                if headers_of(r)["event_id"] == stranger["event_id"]
            ],
            60,
            message="the procuracy's receipt",
        )
        headers = headers_of(found[0])
        assert headers["status"] == "held" and "version" not in headers
        assert json.loads(headers["awaiting"])["reason"] == "AGENCY_NOT_HOLDER"
        note = found[0].value.decode()
        assert note.startswith("legal-aid-ledger held-receipt/v1\n")
        promised = open_receipt(note, [verifier])
        assert promised.held and promised.position == int(headers["position"])
    finally:
        worker.stop()
        thread.join(timeout=30)
        worker.close()
