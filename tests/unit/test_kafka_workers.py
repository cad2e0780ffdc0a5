"""Ingest batch semantics and the relay's outbound form, on the in-memory store with fake
Kafka clients: commit order, redelivery on store or dead-letter failure, topic binding,
no clear identity in outbound messages.
"""

from __future__ import annotations

import json
from collections import namedtuple
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError

from infra.kafka.clients import (
    KafkaSetupError,
    agency_of_topic,
    client_config,
    inbound_pattern,
    inbound_topic,
    wanted_topics,
)
from infra.kafka.ingest import IngestWorker, decode_value
from infra.kafka.relay import UnpublishableEventError, outbound_message
from infra.settings import Settings
from services.referrals import Referrals
from tests.factories import CENTRE, POLICE, POLICE_2, CaseScript

pytestmark = [
    pytest.mark.filterwarnings("ignore:read_text is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:open_text is deprecated:DeprecationWarning"),
]

TP = namedtuple("TP", "topic partition")
Record = namedtuple("Record", "topic partition offset timestamp key value headers")


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_inbound_topic": "in",
        "kafka_dead_letter_topic": "dlq",
        "kafka_store_retry_attempts": 3,
        "kafka_store_retry_backoff_ms": 10,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class Future:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def get(self, timeout: float | None = None) -> None:
        if self.error is not None:
            raise self.error


class FakeProducer:
    def __init__(self, calls: list[str], fail: Exception | None = None) -> None:
        self.calls, self.fail, self.sent = calls, fail, []

    def send(self, topic: str, key: Any = None, value: Any = None, headers: Any = None) -> Future:
        self.sent.append((topic, key, value, dict(headers)))
        return Future(self.fail)

    def flush(self, timeout: float | None = None) -> None:
        self.calls.append("flush")


class FakeConsumer:
    def __init__(self, calls: list[str]) -> None:
        self.calls, self.committed, self.seeks = calls, {}, {}

    def commit(self, offsets: dict[Any, Any]) -> None:
        self.calls.append("commit")
        self.committed.update({tp: o.offset for tp, o in offsets.items()})

    def assignment(self) -> set[Any]:
        return {TP("in." + POLICE, 0), TP("in." + CENTRE, 0)}

    def seek(self, tp: Any, offset: int) -> None:
        self.seeks[tp] = offset


class Recording:
    """Wraps the application to log when the store commits."""

    def __init__(self, app: Referrals, calls: list[str], failures: int = 0) -> None:
        self.app, self.calls, self.failures = app, calls, failures

    def record_batch(self, wires: list[Any]) -> list[Any]:
        if self.failures:
            self.failures -= 1
            self.calls.append("store-down")
            raise OperationalError("connection refused")
        self.calls.append("store")
        return self.app.record_batch(wires)


def batch_of(*items: tuple[str, bytes]) -> dict[Any, list[Record]]:
    batch: dict[Any, list[Record]] = {}
    for offset, (agency, value) in enumerate(items):
        tp = TP("in." + agency, 0)
        batch.setdefault(tp, []).append(
            Record(tp.topic, 0, offset, 1000 + offset, b"k", value, [("trace", b"t-1")])
        )
    return batch


def worker(
    referrals: Referrals, calls: list[str], failures: int = 0, dlq_error: Exception | None = None
) -> tuple[IngestWorker, FakeConsumer, FakeProducer]:
    consumer, producer = FakeConsumer(calls), FakeProducer(calls, dlq_error)
    instance = IngestWorker(
        settings(),
        Recording(referrals, calls, failures),  # type: ignore[arg-type]
        consumer,
        producer,
        wait=lambda _s: False,
    )
    return instance, consumer, producer


def test_offsets_are_committed_after_the_store_and_the_dead_letter_flush(
    referrals: Referrals,
) -> None:
    calls: list[str] = []
    ingest, consumer, producer = worker(referrals, calls)
    case = CaseScript()
    bad = b"{not json"
    batch = batch_of(
        (POLICE, json.dumps(case.notification()).encode()),
        (POLICE, bad),
        (POLICE, json.dumps(case.request()).encode()),
    )
    assert ingest.process(batch)
    assert calls == ["store", "flush", "commit"]
    assert consumer.committed == {TP("in." + POLICE, 0): 3}
    [(topic, key, value, headers)] = producer.sent
    assert (topic, key, value) == ("dlq", b"k", bad)
    assert headers["error_code"] == b"FIELD_INVALID" and headers["error_field"] == b"$"
    assert headers["source_offset"] == b"1" and headers["source_header.trace"] == b"t-1"
    assert referrals.get_case(case.case_id).version == 2


def test_a_redelivered_batch_records_nothing_twice(referrals: Referrals) -> None:
    calls: list[str] = []
    ingest, _, _ = worker(referrals, calls)
    case = CaseScript()
    batch = batch_of(*[(POLICE, json.dumps(w).encode()) for w in case.full_history()[:3]])
    assert ingest.process(batch) and ingest.process(batch)
    assert (ingest.stats.recorded, ingest.stats.duplicates) == (3, 3)
    assert referrals.get_case(case.case_id).version == 3


def test_store_down_retries_then_rewinds_without_commit_or_dead_letter(
    referrals: Referrals,
) -> None:
    calls: list[str] = []
    ingest, consumer, producer = worker(referrals, calls, failures=5)
    batch = batch_of((POLICE, json.dumps(CaseScript().notification()).encode()))
    assert not ingest.process(batch)
    assert calls == ["store-down"] * 3
    assert consumer.committed == {} and producer.sent == []
    assert consumer.seeks == {TP("in." + POLICE, 0): 0}
    assert ingest.stats.store_retries == 2


def test_store_back_within_the_retries_commits_the_batch(referrals: Referrals) -> None:
    calls: list[str] = []
    ingest, consumer, _ = worker(referrals, calls, failures=2)
    assert ingest.process(batch_of((POLICE, json.dumps(CaseScript().notification()).encode())))
    assert calls == ["store-down", "store-down", "store", "commit"]


def test_items_raced_by_another_writer_are_judged_again_not_dead_lettered(
    referrals: Referrals,
) -> None:
    from domain.errors import ConflictError
    from services.referrals import Rejected

    calls: list[str] = []
    ingest, _, producer = worker(referrals, calls)
    real = referrals.record_batch
    raced = {"left": 1}

    def racing(wires: list[Any]) -> list[Any]:
        if raced["left"]:
            raced["left"] -= 1
            return [
                Rejected(w["event_id"], ConflictError("CONCURRENT_WRITE", "case_id")) for w in wires
            ]
        return real(wires)

    ingest.referrals.app = type("App", (), {"record_batch": staticmethod(racing)})()
    case = CaseScript()
    assert ingest.process(
        batch_of(
            (POLICE, json.dumps(case.notification()).encode()),
            (POLICE, json.dumps(case.request()).encode()),
        )
    )
    assert producer.sent == [] and ingest.stats.concurrent_write_retries == 2
    assert referrals.get_case(case.case_id).version == 2


def test_dead_letter_topic_refusing_means_no_commit_and_redelivery(referrals: Referrals) -> None:
    from kafka.errors import KafkaTimeoutError

    calls: list[str] = []
    ingest, consumer, _ = worker(referrals, calls, dlq_error=KafkaTimeoutError("no broker"))
    assert not ingest.process(batch_of((POLICE, b"\xff")))
    assert "commit" not in calls and consumer.seeks == {TP("in." + POLICE, 0): 0}


def test_an_agency_writing_as_another_is_refused_by_topic_binding(referrals: Referrals) -> None:
    calls: list[str] = []
    ingest, _, producer = worker(referrals, calls)
    wire = CaseScript().notification()
    wire["agency_id"] = POLICE_2
    assert ingest.process(batch_of((POLICE, json.dumps(wire).encode())))
    assert producer.sent[0][3]["error_code"] == b"NOT_AUTHORISED"
    assert calls == ["flush", "commit"]  # nothing reached the store


def test_decode_value_names_the_whole_message_when_it_is_not_json() -> None:
    for raw in (b"\xff\xfe", b"{", None):
        error = decode_value(raw)
        assert error.field == "$" and error.code in ("FIELD_INVALID", "FIELD_REQUIRED")
    assert decode_value(b'{"a": 1}') == {"a": 1}


def test_topic_names_bind_agencies_and_the_pattern_matches_only_inbound_topics() -> None:
    s = settings(kafka_inbound_topic="referral-events-in")
    topic = inbound_topic(s, POLICE)
    assert topic == "referral-events-in.lsn-police-investigation"
    assert agency_of_topic(s, topic) == POLICE
    import re

    pattern = re.compile(inbound_pattern(s))
    assert pattern.match(topic)
    assert not pattern.match("referral-events-inx.a") and not pattern.match("referral-events")
    with pytest.raises(KafkaSetupError):
        inbound_topic(s, "agency/with:slash")


def test_every_agency_of_the_register_gets_an_inbound_and_a_receipts_topic(reference: Any) -> None:
    topics = wanted_topics(settings(kafka_partitions=6), reference)
    per_agency = {
        f"{prefix}.{a}" for a in reference.agencies for prefix in ("in", "referral-receipts")
    }
    assert per_agency | {"referral-events", "dlq"} == set(topics)
    assert all(t["num_partitions"] == 6 for t in topics.values())
    configured = wanted_topics(settings(kafka_inbound_agencies=f"{POLICE}, {CENTRE}"), reference)
    assert set(configured) == {
        "referral-events",
        "dlq",
        f"in.{POLICE}",
        f"in.{CENTRE}",
        f"referral-receipts.{POLICE}",
        f"referral-receipts.{CENTRE}",
    }


def test_security_settings_reach_every_client() -> None:
    from pydantic import SecretStr

    config = client_config(
        settings(
            kafka_bootstrap_servers="k1:9093, k2:9093",
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="ledger",
            kafka_sasl_password=SecretStr("s3cret"),
            kafka_ssl_cafile="/etc/ca.pem",
        )
    )
    assert config["bootstrap_servers"] == ["k1:9093", "k2:9093"]
    assert (
        config["sasl_mechanism"],
        config["sasl_plain_username"],
        config["sasl_plain_password"],
        config["ssl_cafile"],
    ) == ("SCRAM-SHA-512", "ledger", "s3cret", "/etc/ca.pem")
    with pytest.raises(KafkaSetupError):
        client_config(settings(kafka_security_protocol="SASL_PLAINTEXT"))


def test_outbound_message_marks_identity_without_carrying_it(referrals: Referrals) -> None:
    case = CaseScript()
    first = case.notification()
    first["identity"] = {"full_name": "Phạm Thị Quỳnh", "date_of_birth": "1990-05-01"}
    referrals.record_event(first)
    referrals.erase_person(case.person_id, "REQUEST_OF_PERSON", "PDPL 2025", "admin")
    notifications = referrals.recorder.select_notifications(start=1, limit=10)
    messages = [
        outbound_message(referrals.mapper.to_domain_event(n), n.id, n.topic) for n in notifications
    ]
    body = json.loads(messages[0].value)
    assert body["identity"] == {"encrypted": True} and body["version"] == 1
    assert dict(messages[0].headers)["case_version"] == b"1"
    assert messages[0].key == case.case_id.encode()
    assert "Quỳnh".encode() not in messages[0].value and b"Qu\\u1ef3nh" not in messages[0].value
    assert [json.loads(m.value)["type"] for m in messages[1:]] == [
        "PERSON_RECORD_CREATED",
        "PERSON_DATA_ERASED",
    ]


def test_an_event_type_without_an_outbound_form_stops_the_relay() -> None:
    with pytest.raises(UnpublishableEventError):
        outbound_message(object(), 1, "other.Thing.v1")
