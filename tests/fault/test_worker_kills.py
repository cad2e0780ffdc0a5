"""SIGKILL at seeded random points: the projection worker (`referrals project`), the Kafka
ingest worker (`referrals ingest`) and the publication relay (`referrals relay`), each killed
KILLS times mid-work and restarted, with new events arriving in between.

Proves: the views after the interrupted runs equal a rebuild from event zero (the
uninterrupted run), table by table and row by row; the ingest leaves exactly one stored copy of
every streamed event and dead-letters nothing; the outbound topic holds every recorded event,
no position missing, each case's versions in order on one partition, and republished messages
only as byte-identical copies of the first.

The kill points are progress deltas drawn from `random.Random(SEED)`: "kill once the worker
has advanced N events past where it (re)started", plus a seeded delay of 0–30 ms, so every kill
lands while the worker is busy whatever the machine's speed.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.bootstrap import Container, build_container
from infra.kafka.clients import ensure_ledger_topics, inbound_topic
from infra.sample_data import generate_events
from infra.settings import Settings
from tests.factories import CENTRE, POLICE, POLICE_2, VLG_POLICE, CaseScript
from tests.fault.support import SEED, wait_until
from tests.integration.kafka_support import (
    FILTER_KAFKA_WARNINGS,
    count_events,
    kafka_settings,
    produce,
    read_topic,
    start_worker,
    stop,
    stored,
    stored_event_ids,
)

KILLS = 3
pytestmark = [pytest.mark.fault, pytest.mark.postgres, pytest.mark.slow]


def kafka_test(test: Callable[..., None]) -> Callable[..., None]:
    """Marks a test as needing the Tansu broker (and quiets kafka-python's warnings)."""
    for mark in (
        pytest.mark.kafka,
        *(pytest.mark.filterwarnings(f) for f in FILTER_KAFKA_WARNINGS),
    ):
        test = mark(test)
    return test


def _kill_points(rng: random.Random, low: int, high: int) -> list[tuple[int, float]]:
    """KILLS (progress delta, extra delay) pairs."""
    return [(rng.randint(low, high), rng.uniform(0.0, 0.03)) for _ in range(KILLS)]


def _kill_when(
    progress: Callable[[], int],
    target: int,
    delay: float,
    proc: subprocess.Popen[bytes],
    log: Path,
    poll: float = 0.002,
) -> int:
    """SIGKILLs `proc` once `progress()` reaches `target` (then `delay` later); the progress
    seen at the kill. Fails if the worker died on its own."""
    try:
        wait_until(
            lambda: proc.poll() is not None or progress() >= target,
            90,
            interval=poll,
            message=f"worker progress {target}",
        )
        assert proc.poll() is None, f"worker exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        time.sleep(delay)
        seen = progress()
    finally:
        stop(proc, signal.SIGKILL)
    return seen


def _record_more(container: Container, cases: int, rng: random.Random) -> int:
    """Records `cases` new short cases (seeded), as new work arriving; the events recorded."""
    wires = []
    for _ in range(cases):
        case = CaseScript(
            holder=POLICE,
            case_id=f"LSN-K-{rng.getrandbits(40):010x}",
            start=datetime.now(timezone.utc) - timedelta(days=2),
        )
        wires += [case.notification(), case.request(), case.transfer()]
    results = container.referrals.record_batch(wires)
    assert not [r for r in results if hasattr(r, "error")], results
    return len(wires)


# ------------------------------------------------------------------------- projections
def dump_all(container: Container) -> dict[str, Any]:
    """Every row of every projection table (no processing timestamps: the views hold none)."""
    return {name: p.view.dump() for name, p in container.projections.projections.items()}


def test_projection_worker_killed_three_times_gives_the_views_of_an_uninterrupted_run(
    pg_container: Container, pg_settings: Settings, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    now = datetime.now(timezone.utc)
    events = list(
        generate_events(
            11, 220, pg_container.reference, now - timedelta(days=400), now - timedelta(minutes=10)
        )
    )
    for start in range(0, len(events), 500):
        pg_container.referrals.record_batch(events[start : start + 500])
    projections = pg_container.projections

    def tracked() -> dict[str, int]:
        """Each view's tracking position (what its last committed page reached; the
        compliance view may still defer judging, so its visible position lags)."""
        return {n: p.view.position() or 0 for n, p in projections.projections.items()}

    def applied() -> int:
        return min(tracked().values())

    kills = []
    for number, (delta, delay) in enumerate(_kill_points(rng, 150, 400), start=1):
        log = tmp_path / f"project-{number}.log"
        start_at = applied()
        worker = start_worker("project", pg_settings, log, "--batch-size", "13", "--pause", "0.005")
        seen = _kill_when(applied, start_at + delta, delay, worker, log)
        top = projections.max_notification_id()
        positions = tracked()
        assert min(positions.values()) < top, "the worker finished before it was killed"
        kills.append((seen, dict(positions)))
        _record_more(pg_container, rng.randint(5, 15), rng)  # written while no worker runs

    log = tmp_path / "project-final.log"
    final = start_worker("project", pg_settings, log, "--batch-size", "29", "--until-caught-up")
    assert final.wait(timeout=120) == 0, log.read_text()[-3000:]
    top = projections.max_notification_id()
    assert set(projections.positions().values()) == {top} == set(tracked().values())

    interrupted = dump_all(pg_container)
    result = projections.rebuild()  # the uninterrupted run, from event zero
    assert result["events"] == top
    rebuilt = dump_all(pg_container)
    for name, tables in rebuilt.items():
        for table, rows in tables.items():
            a, b = set(rows), set(interrupted[name][table])
            assert a == b, (table, sorted(b - a, key=repr)[:3], sorted(a - b, key=repr)[:3])
            assert Counter(rows) == Counter(interrupted[name][table]), table
    assert rebuilt == interrupted
    print(f"\n{top} events; killed at {[k[0] for k in kills]}")


# ------------------------------------------------------------------------------ ingest
@kafka_test
def test_ingest_worker_killed_three_times_leaves_exactly_one_copy_of_each_event(
    pg_database: str, pg_schema: str, tmp_path: Path, kafka_broker: Any
) -> None:
    rng = random.Random(SEED + 1)
    agencies = (POLICE, POLICE_2, VLG_POLICE)
    settings = kafka_settings(
        pg_database,
        pg_schema,
        tmp_path,
        kafka_broker.bootstrap,
        kafka_inbound_agencies=",".join(agencies),
        kafka_batch_size=10,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=400,
    )
    container = build_container(settings)
    try:
        ensure_ledger_topics(settings, container.reference)

        def wires_for(cases: int) -> list[dict[str, Any]]:
            out = []
            for n in range(cases):
                holder = agencies[n % 3]
                province = holder.split("-")[0].upper()  # case ids follow its numbering
                case = CaseScript(holder=holder, case_id=f"{province}-I-{rng.getrandbits(40):010x}")
                out += [
                    case.notification(),
                    case.request(),
                    case.transfer(centre="vlg-centre" if holder == VLG_POLICE else CENTRE),
                ]
            return out

        def message(wire: dict[str, Any]) -> tuple[str, bytes, bytes]:
            return (
                inbound_topic(settings, wire["agency_id"]),
                wire["case_id"].encode(),
                json.dumps(wire, ensure_ascii=False).encode(),
            )

        wires = wires_for(400)
        produce(settings.kafka_bootstrap_servers, [message(w) for w in wires])
        with psycopg.connect(settings.pg_conninfo(), autocommit=True) as conn:

            def recorded() -> int:
                return count_events(settings, conn)

            kills = []
            for number, (delta, delay) in enumerate(_kill_points(rng, 60, 200), start=1):
                log = tmp_path / f"ingest-{number}.log"
                start_at = recorded()
                worker = start_worker("ingest", settings, log)
                # the first kill lands within a millisecond of a store commit (before the
                # offset commit, so that batch is redelivered); the others a little later
                seen = _kill_when(
                    recorded,
                    start_at + delta,
                    0.0 if number == 1 else delay,
                    worker,
                    log,
                    poll=0.0005,
                )
                assert seen < len(wires), "the ingest finished before it was killed"
                kills.append(seen)
                more = wires_for(rng.randint(3, 8))  # agencies keep sending meanwhile
                produce(settings.kafka_bootstrap_servers, [message(w) for w in more])
                wires += more

        log = tmp_path / "ingest-final.log"
        final = start_worker("ingest", settings, log)
        try:
            wait_until(
                lambda: count_events(settings) >= len(wires),
                120,
                interval=0.1,
                message=f"all {len(wires)} events recorded",
            )
            time.sleep(0.5)  # anything still redelivered would land now
        finally:
            assert stop(final, signal.SIGTERM) == 0, log.read_text()[-3000:]
        summary = json.loads(log.read_text().strip().splitlines()[-1])["ingest"]

        recorded_ids = stored_event_ids(container.referrals)
        assert count_events(settings) == len(wires)
        assert Counter(recorded_ids) == Counter((w["case_id"], w["event_id"]) for w in wires)
        assert {k: n for k, n in Counter(recorded_ids).items() if n != 1} == {}
        assert (
            read_topic(
                settings.kafka_bootstrap_servers, settings.kafka_dead_letter_topic, settle=0.2
            )
            == []
        )
        assert summary["dead_lettered"] == 0
        print(
            f"\n{len(wires)} events; killed at {kills}; final worker: {summary['recorded']} "
            f"recorded, {summary['duplicates']} redelivered duplicates"
        )
    finally:
        container.close()


# ------------------------------------------------------------------------------- relay
@kafka_test
def test_relay_killed_three_times_publishes_every_event_in_case_order_without_gaps(
    pg_database: str, pg_schema: str, tmp_path: Path, kafka_broker: Any
) -> None:
    rng = random.Random(SEED + 2)
    settings = kafka_settings(
        pg_database,
        pg_schema,
        tmp_path,
        kafka_broker.bootstrap,
        kafka_inbound_agencies="lsn-police",
        kafka_partitions=3,
        kafka_batch_size=5,
    )
    container = build_container(settings)
    try:
        ensure_ledger_topics(settings, container.reference)
        now = datetime.now(timezone.utc)
        events = list(
            generate_events(
                13, 160, container.reference, now - timedelta(days=300), now - timedelta(hours=1)
            )
        )
        for start in range(0, len(events), 250):
            container.referrals.record_batch(events[start : start + 250])

        with psycopg.connect(settings.pg_conninfo(), autocommit=True) as conn:

            def published() -> int:
                if conn.execute("SELECT to_regclass('kafka_relay_tracking')").fetchone()[0] is None:
                    return 0
                row = conn.execute("SELECT position FROM kafka_relay_tracking").fetchone()
                return int(row[0]) if row else 0

            kills = []
            for number, (delta, delay) in enumerate(_kill_points(rng, 40, 150), start=1):
                log = tmp_path / f"relay-{number}.log"
                start_at = published()
                worker = start_worker("relay", settings, log)
                seen = _kill_when(published, start_at + delta, delay, worker, log)
                top = container.referrals.recorder.max_notification_id()
                assert published() < top, "the relay finished before it was killed"
                kills.append(seen)
                _record_more(container, rng.randint(2, 6), rng)

        log = tmp_path / "relay-final.log"
        final = start_worker("relay", settings, log, "--until-caught-up")
        assert final.wait(timeout=120) == 0, log.read_text()[-3000:]

        notifications = stored(container.referrals)
        records = read_topic(
            settings.kafka_bootstrap_servers,
            settings.kafka_outbound_topic,
            at_least=len(notifications),
        )
        messages = [json.loads(r.value) for r in records]
        positions = {m["position"] for m in messages}
        assert positions == {n.id for n in notifications}  # every event, no gap
        first_copy: dict[int, bytes] = {}
        for record, value in zip(records, messages, strict=True):
            # a republished message is the same bytes: same event id, version, position
            assert first_copy.setdefault(value["position"], record.value) == record.value
            assert record.key.decode() == value["case_id"]
        partitions: dict[str, set[int]] = defaultdict(set)
        versions: dict[str, list[int]] = defaultdict(list)
        for record, value in zip(records, messages, strict=True):  # partition, then offset
            partitions[value["case_id"]].add(record.partition)
            if value["version"] not in versions[value["case_id"]]:
                versions[value["case_id"]].append(value["version"])
        assert all(len(p) == 1 for p in partitions.values())
        for case_id, seen_versions in versions.items():
            assert seen_versions == list(range(1, len(seen_versions) + 1)), case_id
        republished = len(messages) - len(positions)
        assert republished <= KILLS * settings.kafka_batch_size  # at most a batch per kill
        print(
            f"\n{len(notifications)} events; killed at positions {kills}; {republished} republished"
        )
    finally:
        container.close()
