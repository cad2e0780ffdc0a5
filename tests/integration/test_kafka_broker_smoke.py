"""Smoke test: kafka-python 3.0.12 and kcat against a real Tansu broker.

Run: python -m pytest tests/integration/test_kafka_broker_smoke.py -q -p tests.kafka_fixtures
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.kafka_broker import Broker, admin_create_topics, consumer_kwargs
from tests.kafka_fixtures import skip_or_fail

pytestmark = pytest.mark.kafka

N_MESSAGES = 500
N_KEYS = 12
PARTITIONS = 3
DEADLINE_S = 30.0

# kcat 1.7.1 / librdkafka 2.0.2 cannot parse Tansu's ApiVersions v3 reply and
# ListOffsets v0 is short, so: no version probe, 0.9.0 protocol, absolute -o 0.
KCAT_COMPAT = ["-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0", "-o", "0"]


@dataclass
class Produced:
    topic: str
    sent: list[tuple[bytes, int, list[tuple[str, bytes]]]]  # (key, seq, headers) in send order
    per_partition: dict[int, int]  # partition -> record count


def _key(i: int) -> bytes:
    return f"referral-{i % N_KEYS:02d}".encode()


def _headers(i: int) -> list[tuple[str, bytes]]:
    return [("event-type", b"ReferralCreated"), ("seq", str(i).encode())]


@pytest.fixture(scope="module")
def produced(kafka_broker: Broker) -> Produced:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    codes = admin_create_topics(kafka_broker.bootstrap, [topic], PARTITIONS)
    assert codes == {topic: 0}
    # idempotent: a second create is not an error
    assert admin_create_topics(kafka_broker.bootstrap, [topic], PARTITIONS) == {topic: 36}

    producer = KafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_block_ms=10_000,
        request_timeout_ms=10_000,
        delivery_timeout_ms=20_000,
    )
    try:
        sent, futures = [], []
        for i in range(N_MESSAGES):
            key, headers = _key(i), _headers(i)
            futures.append(
                producer.send(topic, key=key, value=f"payload-{i}".encode(), headers=headers)
            )
            sent.append((key, i, headers))
        producer.flush(timeout=DEADLINE_S)
        metas = [f.get(timeout=DEADLINE_S) for f in futures]
        pid = producer._transaction_manager.producer_id_and_epoch
        assert pid.producer_id >= 0, "idempotent producer got no producer id from InitProducerId"
    finally:
        producer.close(timeout=10)

    key_partition: dict[bytes, int] = {}
    per_partition: dict[int, int] = defaultdict(int)
    for (key, _, _), meta in zip(sent, metas, strict=False):
        assert key_partition.setdefault(key, meta.partition) == meta.partition
        per_partition[meta.partition] += 1
    assert sorted(m.offset for m in metas if m.partition == 0) == list(range(per_partition[0]))
    assert len(per_partition) == PARTITIONS, f"keys landed on {dict(per_partition)}"
    return Produced(topic, sent, dict(per_partition))


def _consumer(broker: Broker, topic: str, group: str) -> KafkaConsumer:
    return KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        client_id=f"smoke-{group}",
        **consumer_kwargs(),
    )


def test_group_reads_all_in_key_order_commits_and_resumes(
    kafka_broker: Broker, produced: Produced
) -> None:
    group = f"smoke-group-{uuid.uuid4().hex[:8]}"
    consumer = _consumer(kafka_broker, produced.topic, group)
    records = []
    t0 = time.monotonic()
    join_s = None
    try:
        for _ in range(int(DEADLINE_S / 0.2)):
            batch = consumer.poll(timeout_ms=200)
            if join_s is None and consumer.assignment():
                join_s = time.monotonic() - t0
            for msgs in batch.values():
                records.extend(msgs)
            if len(records) >= N_MESSAGES or time.monotonic() - t0 > DEADLINE_S:
                break
        assert len(records) == N_MESSAGES, (
            f"got {len(records)} of {N_MESSAGES} in {time.monotonic() - t0:.1f}s"
        )

        # per key: same order as sent; per partition: contiguous offsets
        by_key: dict[bytes, list[int]] = defaultdict(list)
        for rec in records:
            seq = int(dict(rec.headers)["seq"])
            assert rec.value == f"payload-{seq}".encode()
            assert list(rec.headers) == _headers(seq)
            assert rec.key == _key(seq)
            by_key[rec.key].append(seq)
        expected: dict[bytes, list[int]] = defaultdict(list)
        for key, seq, _ in produced.sent:
            expected[key].append(seq)
        assert by_key == expected
        for p, count in produced.per_partition.items():
            offsets = [r.offset for r in records if r.partition == p]
            assert offsets == list(range(count))

        consumer.commit()  # synchronous, explicit offsets = positions
        tps = {TopicPartition(produced.topic, p) for p in range(PARTITIONS)}
        assert consumer.assignment() == tps
        committed = {tp.partition: consumer.committed(tp) for tp in tps}
        assert committed == produced.per_partition
        # Fetch high watermark is right (ListOffsets LATEST is not, see notes)
        assert {tp.partition: consumer.highwater(tp) for tp in tps} == produced.per_partition
    finally:
        consumer.close()
    print(
        f"\nfirst consumer: join {join_s:.2f}s, all {N_MESSAGES} after {time.monotonic() - t0:.2f}s"
    )

    # same group, new member: resumes at the committed offsets, nothing left
    consumer = _consumer(kafka_broker, produced.topic, group)
    t1 = time.monotonic()
    leftovers = []
    try:
        for _ in range(int(DEADLINE_S / 0.2)):
            for msgs in consumer.poll(timeout_ms=200).values():
                leftovers.extend(msgs)
            if consumer.assignment() or time.monotonic() - t1 > DEADLINE_S:
                break
        rejoin_s = time.monotonic() - t1
        assert consumer.assignment(), "second consumer never got an assignment"
        for _ in range(5):  # ~1 s more: nothing may arrive
            for msgs in consumer.poll(timeout_ms=200).values():
                leftovers.extend(msgs)
        assert leftovers == []
        positions = {tp.partition: consumer.position(tp) for tp in consumer.assignment()}
        assert positions == produced.per_partition
    finally:
        consumer.close()
    print(f"second consumer: join {rejoin_s:.2f}s, 0 records")


def test_kcat_sees_all_messages_with_headers(kafka_broker: Broker, produced: Produced) -> None:
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        skip_or_fail("kcat not installed (apt-get install kcat)")
    cmd = [
        kcat,
        "-b",
        kafka_broker.bootstrap,
        *KCAT_COMPAT,
        "-C",
        "-t",
        produced.topic,
        "-e",
        "-q",
        "-f",
        r"%k %h %s\n",
    ]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, timeout=DEADLINE_S, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, (
        f"{cmd} -> {proc.returncode}\n{proc.stderr.decode(errors='replace')}"
    )
    lines = proc.stdout.decode().splitlines()
    expected = {
        f"{key.decode()} event-type=ReferralCreated,seq={seq} payload-{seq}"
        for key, seq, _ in produced.sent
    }
    assert len(lines) == N_MESSAGES
    assert set(lines) == expected
    print(f"\nkcat read {len(lines)} lines in {elapsed:.2f}s")


def test_restart_comes_back_empty_on_same_port(fresh_kafka_broker: Broker) -> None:
    broker = fresh_kafka_broker
    bootstrap = broker.bootstrap
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    admin_create_topics(bootstrap, [topic], 1)
    t0 = time.monotonic()
    broker.restart()
    assert broker.bootstrap == bootstrap and broker.is_running()
    restart_s = time.monotonic() - t0
    # memory storage: topic is gone, so creating it again reports "created"
    assert admin_create_topics(bootstrap, [topic], 1) == {topic: 0}
    broker.kill()
    assert not broker.is_running()
    broker.start()
    assert broker.bootstrap == bootstrap
    print(f"\nrestart {restart_s:.2f}s")
