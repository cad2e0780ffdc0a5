"""Helpers for the Kafka ingest and relay tests: settings with per-test topic names, the
REFERRALS_* environment of a worker subprocess, producing, reading a whole topic, and reading
the event store back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from infra.settings import Settings
from tests.conftest import make_pg_settings

FILTER_KAFKA_WARNINGS = (
    "ignore:read_text is deprecated:DeprecationWarning",
    "ignore:open_text is deprecated:DeprecationWarning",
)


def kafka_settings(
    pg_database: str, pg_schema: str, data_dir: Path, bootstrap: str, **overrides: Any
) -> Settings:
    """PostgreSQL test settings plus Kafka settings with topic names unique to the test."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, Any] = dict(
        kafka_bootstrap_servers=bootstrap,
        kafka_inbound_topic=f"in-{tag}",
        kafka_outbound_topic=f"out-{tag}",
        kafka_dead_letter_topic=f"dlq-{tag}",
        kafka_group_id=f"ingest-{tag}",
        kafka_partitions=2,
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=1000,
        kafka_max_poll_interval_ms=10000,
        kafka_poll_timeout_ms=200,
        kafka_relay_idle_ms=50,
        kafka_flush_timeout_seconds=20.0,
    )
    values.update(overrides)
    return make_pg_settings(pg_database, pg_schema, data_dir, **values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The REFERRALS_* environment that reproduces `settings` in a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFERRALS_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"REFERRALS_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


def start_worker(
    command: str, settings: Settings, log_path: Path, *args: str
) -> subprocess.Popen[bytes]:
    """`referrals <command>` as a subprocess with the test's settings; output to log_path."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", "from infra.cli import main; main()", command, *args],
            env=settings_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(settings.data_dir),
        )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Sends `sig` to a worker we started and waits for it; its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise


def wait_for(
    condition: Callable[[], Any], timeout: float, interval: float = 0.05, message: str = "condition"
) -> Any:
    """Polls `condition` until it is truthy (bounded by `timeout`); its value."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"{message} not met within {timeout}s")


def produce(bootstrap: str, messages: Iterable[tuple[str, bytes | None, bytes | None]]) -> int:
    """Sends (topic, key, value) messages with an idempotent producer; how many."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_block_ms=10_000,
    )
    try:
        futures = [producer.send(topic, key=key, value=value) for topic, key, value in messages]
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=30)
        return len(futures)
    finally:
        producer.close(timeout=10)


def read_topic(
    bootstrap: str, topic: str, *, at_least: int = 0, timeout: float = 30.0, settle: float = 0.5
) -> list[Any]:
    """Every record of a topic (no consumer group): waits for `at_least`, then until quiet."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
    )
    try:
        partitions = wait_for(
            lambda: consumer.partitions_for_topic(topic), 10, message=f"metadata of {topic}"
        )
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        for _ in range(int(timeout / 0.1) + 10):
            batch = consumer.poll(timeout_ms=100)
            got = sum(len(v) for v in batch.values())
            for part in batch.values():
                records.extend(part)
            now = time.monotonic()
            if got:
                quiet_since = now
            if len(records) >= at_least and now - quiet_since >= settle:
                break
            if now >= deadline:
                break
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def stored(app: Any) -> list[Any]:
    """Every notification of the event store, in order (bounded pages)."""
    out: list[Any] = []
    start = 1
    for _ in range(10_000):
        page = app.recorder.select_notifications(start=start, limit=1000)
        if not page:
            break
        out.extend(page)
        start = page[-1].id + 1
    return out


def stored_event_ids(app: Any) -> list[tuple[str, str]]:
    """(case id, event id) of every referral event in the store, in log order."""
    result = []
    for notification in stored(app):
        event = app.mapper.to_domain_event(notification)
        if hasattr(event, "event_id") and hasattr(event, "case_id"):
            result.append((event.case_id, event.event_id))
    return result


def count_events(settings: Settings, conn: Any = None) -> int:
    """Rows in the event store's table (pass an autocommit connection to poll it fast)."""
    import psycopg

    if conn is None:
        with psycopg.connect(settings.pg_conninfo(), autocommit=True) as own:
            return count_events(settings, own)
    if conn.execute("SELECT to_regclass('referrals_events')").fetchone()[0] is None:
        return 0
    row = conn.execute("SELECT count(*) FROM referrals_events").fetchone()
    return int(row[0]) if row else 0
