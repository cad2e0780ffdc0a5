"""The publication relay against a real Kafka-protocol broker (Tansu) and a real PostgreSQL:
every recorded event published, in case order, without gaps across a crash, with its headers,
and without clear personal data.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from domain.referral import Referral
from infra.bootstrap import Container, build_container
from infra.kafka.clients import ensure_ledger_topics
from infra.kafka.relay import Relay
from infra.sample_data import generate_events
from infra.settings import Settings
from services.wire import parse_wire
from tests.factories import CaseScript
from tests.integration.kafka_support import (
    FILTER_KAFKA_WARNINGS,
    kafka_settings,
    read_topic,
    start_worker,
    stop,
    stored,
    wait_for,
)
from tests.kafka_fixtures import skip_or_fail

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.postgres,
    *(pytest.mark.filterwarnings(f) for f in FILTER_KAFKA_WARNINGS),
]

KCAT_COMPAT = ["-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0", "-o", "0"]
NAMES = ("Nguyễn Thị Hoà Bình", "Trần Văn Đức", "Lê Ngọc Ánh")


@pytest.fixture
def relay_settings(pg_database: str, pg_schema: str, tmp_path: Path, kafka_broker: Any) -> Settings:
    return kafka_settings(
        pg_database,
        pg_schema,
        tmp_path,
        kafka_broker.bootstrap,
        kafka_inbound_agencies="lsn-police",
        kafka_partitions=3,
    )


@pytest.fixture
def container(relay_settings: Settings) -> Iterator[Container]:
    container = build_container(relay_settings)
    ensure_ledger_topics(relay_settings, container.reference)
    yield container
    container.close()


def record_sample(container: Container, cases: int, seed: int = 11) -> int:
    """Records generated cases (about half with an identity block); the events recorded."""
    now = datetime.now(timezone.utc)
    events = list(
        generate_events(
            seed, cases, container.reference, now - timedelta(days=300), now - timedelta(hours=1)
        )
    )
    recorded = 0
    for start in range(0, len(events), 250):
        results = container.referrals.record_batch(events[start : start + 250])
        assert not [r for r in results if hasattr(r, "error")]
        recorded += len(results)
    return recorded


def relay_until_caught_up(settings: Settings, container: Container) -> Any:
    relay = Relay.connect(settings, container.referrals)
    try:
        return relay.run(max_seconds=60, until_caught_up=True)
    finally:
        relay.close()


def values(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]


def test_relay_killed_and_restarted_publishes_every_event_in_case_order_without_gaps(
    relay_settings: Settings, container: Container, tmp_path: Path
) -> None:
    total = record_sample(container, 150)
    assert total >= 800
    settings = relay_settings.model_copy(update={"kafka_batch_size": 25})

    def published() -> int:
        with container.pg_pool.connection() as conn:
            if conn.execute("SELECT to_regclass('kafka_relay_tracking')").fetchone()[0] is None:
                return 0
            row = conn.execute("SELECT position FROM kafka_relay_tracking").fetchone()
        return row[0] if row else 0

    first = start_worker("relay", settings, tmp_path / "relay-1.log")
    try:
        at_kill = wait_for(
            lambda: (p := published()) >= 150 and p,
            60,
            interval=0.01,
            message="first relay publishing",
        )
    finally:
        stop(first, signal.SIGKILL)
    assert at_kill < total, "the relay finished before it was killed"

    # More events arrive while no relay runs.
    case = CaseScript()
    for wire in case.full_history():
        container.referrals.record_event(wire)
    total += 7

    second = start_worker("relay", settings, tmp_path / "relay-2.log", "--until-caught-up")
    assert second.wait(timeout=90) == 0, (tmp_path / "relay-2.log").read_text()

    records = read_topic(
        settings.kafka_bootstrap_servers, settings.kafka_outbound_topic, at_least=total
    )
    messages = values(records)
    notifications = stored(container.referrals)
    assert len(notifications) == total
    positions = {m["position"] for m in messages}
    assert positions == {n.id for n in notifications}  # no gap
    # Duplicates (the batch in flight at the kill) are the same message, same event id.
    first_copy: dict[int, bytes] = {}
    for record, value in zip(records, messages, strict=True):
        assert first_copy.setdefault(value["position"], record.value) == record.value
        assert record.key.decode() == value["case_id"]
    # Per case: one partition, versions in order (after dropping republished copies).
    partitions: dict[str, set[int]] = defaultdict(set)
    versions: dict[str, list[int]] = defaultdict(list)
    for record, value in zip(records, messages, strict=True):
        partitions[value["case_id"]].add(record.partition)
        if value["version"] not in versions[value["case_id"]]:
            versions[value["case_id"]].append(value["version"])
    assert all(len(p) == 1 for p in partitions.values())
    for case_id, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), case_id
    assert len(messages) - len(positions) <= 25  # at most the batch in flight
    print(
        f"\nkilled at position {at_kill} of {total}; republished {len(messages) - len(positions)}"
    )


def test_kcat_sees_every_recorded_event_with_its_headers(
    relay_settings: Settings, container: Container
) -> None:
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        skip_or_fail("kcat not installed (apt-get install kcat)")
    total = record_sample(container, 40, seed=5)
    relay_until_caught_up(relay_settings, container)
    command = [
        kcat,
        "-b",
        relay_settings.kafka_bootstrap_servers,
        *KCAT_COMPAT,
        "-C",
        "-t",
        relay_settings.kafka_outbound_topic,
        "-e",
        "-q",
        "-f",
        "%k|%h|%s\n",
    ]
    proc = subprocess.run(command, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == total
    by_position = {}
    for line in lines:
        key, headers, value = line.split("|", 2)
        body = json.loads(value)
        header = dict(h.split("=", 1) for h in headers.split(","))
        assert key == body["case_id"]
        assert header == {
            "event_id": body["event_id"],
            "position": str(body["position"]),
            "type": body["type"],
            "case_version": str(body["version"]),
        }
        by_position[body["position"]] = body
    for notification in stored(container.referrals):
        event = container.referrals.mapper.to_domain_event(notification)
        body = by_position[notification.id]
        assert (body["event_id"], body["case_id"], body["type"], body["version"]) == (
            event.event_id,
            event.case_id,
            event.WIRE_TYPE,
            event.originator_version,
        )
        assert body["recorded_at"] == event.timestamp.isoformat()


def test_outbound_messages_hold_no_clear_personal_data(
    relay_settings: Settings, container: Container
) -> None:
    record_sample(container, 30, seed=3)
    named, persons = [], []
    for name in NAMES:
        case = CaseScript()
        first = case.notification()
        first["identity"] = {"full_name": name, "date_of_birth": "1990-05-01"}
        named.append(container.referrals.record_event(first))
        container.referrals.record_event(case.request())
        persons.append(case.person_id)
    assert container.referrals.erase_person(persons[0], "REQUEST_OF_PERSON", "PDPL 2025", "admin")
    relay_until_caught_up(relay_settings, container)

    records = read_topic(
        relay_settings.kafka_bootstrap_servers,
        relay_settings.kafka_outbound_topic,
        at_least=len(stored(container.referrals)),
    )
    assert len(records) == len(stored(container.referrals))
    generated = [
        e["identity"]["full_name"]
        for e in generate_events(
            3,
            30,
            container.reference,
            datetime.now(timezone.utc) - timedelta(days=300),
            datetime.now(timezone.utc) - timedelta(hours=1),
        )
        if e.get("identity")
    ]
    assert generated
    forbidden = set()
    for name in (*NAMES, *generated):
        forbidden |= {
            name.encode(),
            json.dumps(name).encode()[1:-1],
            json.dumps(name, ensure_ascii=False).encode()[1:-1],
        }
    for record in records:
        blob = b"\0".join([record.key or b"", record.value or b"", *(v for _, v in record.headers)])
        assert not [f for f in forbidden if f in blob]
    bodies = values(records)
    marked = {
        (b["case_id"], b["event_id"]) for b in bodies if b.get("identity") == {"encrypted": True}
    }
    assert {(r.case_id, r.event_id) for r in named} <= marked
    assert "PERSON_DATA_ERASED" in {b["type"] for b in bodies}


def test_relay_never_passes_over_an_event_whose_transaction_is_still_in_flight(
    relay_settings: Settings, container: Container
) -> None:
    app = container.referrals
    first, second = CaseScript(), CaseScript()
    app.record_event(first.notification())
    relay = Relay.connect(relay_settings, app)
    try:
        assert relay.publish_batch() == 1
        # A writer takes the next id and has not committed yet...
        _, pending = app._decide(parse_wire(second.notification(), app.reference), None)
        stored_event = app.mapper.to_stored_event(pending.pending_events[0])
        recorder = app.recorder
        holding, release = threading.Event(), threading.Event()

        def slow_writer() -> None:
            with recorder.datastore.get_connection() as conn, conn.transaction():
                conn.execute(
                    recorder.sql_invoke_pg_function_insert_events,
                    (
                        [
                            recorder.construct_pg_stored_event(
                                stored_event.originator_id,
                                stored_event.originator_version,
                                stored_event.topic,
                                stored_event.state,
                            )
                        ],
                    ),
                )
                holding.set()
                release.wait(10)

        writer = threading.Thread(target=slow_writer)
        writer.start()
        assert holding.wait(10)
        # ...while a later writer commits: the log shows position 3 but not yet 2.
        app.record_event(first.request())
        assert [n.id for n in recorder.select_notifications(start=2, limit=10)] == [3]
        published: list[int] = []
        reader = threading.Thread(target=lambda: published.append(relay.publish_batch()))
        reader.start()
        reader.join(0.5)
        assert reader.is_alive(), "the relay must wait for the writer in flight"
        release.set()
        writer.join(10)
        reader.join(10)
        assert published == [2] and relay.position == 3
    finally:
        relay.close()
    records = read_topic(
        relay_settings.kafka_bootstrap_servers, relay_settings.kafka_outbound_topic, at_least=3
    )
    assert sorted(json.loads(r.value)["position"] for r in records) == [1, 2, 3]
    assert {json.loads(r.value)["type"] for r in records} == {
        Referral.NotificationIssued.WIRE_TYPE,
        Referral.AidRequested.WIRE_TYPE,
    }
