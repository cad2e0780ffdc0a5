"""The ingest worker (`referrals ingest`): records the events agencies publish on their inbound
topics, through the same application service (same rules, same idempotency) as the HTTP API.

One batch at a time: poll → judge and record (`Referrals.record_batch`) → send what cannot be
recorded to the dead-letter topic → flush → commit offsets. Offsets are committed only after
the event store has committed and the dead-letter topic has acknowledged, so a crash means
redelivery, and redelivery is harmless because recording is idempotent by `event_id`.
Design and failure cases: docs/adr/0004-kafka-delivery.md.
"""

from __future__ import annotations

import heapq
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError
from psycopg_pool import PoolTimeout

from domain.errors import DomainError, InvalidEventError, NotAuthorisedError, utf8_safe
from infra.kafka.clients import (
    MAX_MESSAGE_BYTES,
    agency_of_topic,
    client_config,
    inbound_pattern,
    receipts_topic,
)
from infra.settings import Settings
from services.referrals import Referrals, Rejected
from services.wire import loads_strict
from services.worker_health import ConnectionWatch, is_connection_error, status_path

log = logging.getLogger(__name__)

TRANSIENT_STORE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    PoolTimeout,
    ConnectionError,
    TimeoutError,
)
"""Errors that mean "the event store is unreachable now": retry, never dead-letter."""

# Dead-letter headers (values are UTF-8). The value of a dead letter is the original bytes.
H_CODE = "error_code"
H_FIELD = "error_field"
H_MESSAGE_VI = "error_message_vi"
H_MESSAGE_EN = "error_message_en"
H_TOPIC = "source_topic"
H_PARTITION = "source_partition"
H_OFFSET = "source_offset"
H_TIMESTAMP = "source_timestamp"
H_EVENT_ID = "event_id"
H_ORIGINAL_PREFIX = "source_header."


CONCURRENT_WRITE_ROUNDS = 3
"""Times a batch's items refused for a concurrent write to their case are judged again."""


class StoreUnavailableError(RuntimeError):
    """Raised when the event store stayed unreachable through every retry of a batch."""


@dataclass
class Judged:
    """One consumed record: its decoded wire object, or the error that keeps it out."""

    record: Any
    wire: Any = None
    error: DomainError | None = None


@dataclass
class IngestStats:
    """What the worker did since it started."""

    batches: int = 0
    records: int = 0
    recorded: int = 0
    duplicates: int = 0
    held: int = 0  # recorded, awaiting an earlier fact (ADR 0008): never dead-lettered
    dead_lettered: int = 0
    receipts: int = 0
    store_retries: int = 0
    rewound_batches: int = 0
    concurrent_write_retries: int = 0
    commit_failures: int = 0
    dead_letter_codes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decode_value(value: bytes | None) -> Any:
    """The JSON object of a message, or the FIELD_INVALID error on `$` that says why not."""
    if value is None:
        return InvalidEventError("FIELD_REQUIRED", "$")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidEventError(
            "FIELD_INVALID",
            "$",
            rule_vi="thông điệp không phải UTF-8 hợp lệ",
            rule_en="the message is not valid UTF-8",
        )
    try:
        return loads_strict(text)
    except DomainError as error:  # e.g. JSON_DUPLICATE_KEY
        return error
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deep
        msg, col = getattr(error, "msg", "invalid"), getattr(error, "colno", 0)
        return InvalidEventError(
            "FIELD_INVALID",
            "$",
            rule_vi=f"JSON không hợp lệ ({msg}, cột {col})",
            rule_en=f"invalid JSON ({msg}, column {col})",
        )


def judge(settings: Settings, record: Any) -> Judged:
    """Decodes a record and checks that its agency is the one its topic is bound to."""
    obj = decode_value(record.value)
    if isinstance(obj, DomainError):
        return Judged(record, error=obj)
    agency = agency_of_topic(settings, record.topic)
    claimed = obj.get("agency_id") if isinstance(obj, Mapping) else None
    if agency is None or (isinstance(claimed, str) and claimed != agency):
        return Judged(
            record,
            error=NotAuthorisedError(
                "NOT_AUTHORISED",
                "agency_id",
                rule_vi=f"chủ đề «{record.topic}» chỉ nhận sự kiện của cơ quan «{agency}», "
                f"không nhận sự kiện của «{str(claimed)[:128]}»",
                rule_en=f"topic '{record.topic}' takes events of agency '{agency}' only, "
                f"not of '{str(claimed)[:128]}'",
            ),
        )
    return Judged(record, wire=obj)


def dead_letter_headers(judged: Judged) -> list[tuple[str, bytes]]:
    """Why the record was refused and where it came from; its own headers follow, prefixed."""
    record, error = judged.record, judged.error
    assert error is not None
    headers = [
        (H_CODE, error.code),
        (H_FIELD, error.field or ""),
        (H_MESSAGE_VI, error.message_vi),
        (H_MESSAGE_EN, error.message_en),
        (H_TOPIC, record.topic),
        (H_PARTITION, str(record.partition)),
        (H_OFFSET, str(record.offset)),
        (H_TIMESTAMP, str(record.timestamp)),
    ]
    if isinstance(judged.wire, Mapping) and isinstance(judged.wire.get("event_id"), str):
        headers.append((H_EVENT_ID, utf8_safe(judged.wire["event_id"][:128])))
    encoded = [(name, value.encode("utf-8")) for name, value in headers]
    encoded += [(H_ORIGINAL_PREFIX + name, value or b"") for name, value in record.headers or ()]
    return encoded


class IngestWorker:
    """Consumes every agency's inbound topic (by pattern) as one consumer group member."""

    def __init__(
        self,
        settings: Settings,
        referrals: Referrals,
        consumer: Any,
        producer: Any,
        *,
        wait: Callable[[float], bool] | None = None,
        receipts: Callable[[Sequence[Any]], Sequence[str | None]] | None = None,
        watch: ConnectionWatch | None = None,
    ) -> None:
        self.settings = settings
        self.watch = watch or ConnectionWatch("ingest", logger=log)
        self.referrals = referrals
        self.receipts = receipts
        self.consumer = consumer
        self.producer = producer
        self.stats = IngestStats()
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait

    @classmethod
    def connect(
        cls,
        settings: Settings,
        referrals: Referrals,
        receipts: Callable[[Sequence[Any]], Sequence[str | None]] | None = None,
    ) -> IngestWorker:
        """A worker with its own consumer (subscribed by pattern) and dead-letter producer;
        `receipts` signs a receipt for each accepted event (published per agency)."""
        from kafka import KafkaConsumer, KafkaProducer

        common = client_config(settings)
        producer = KafkaProducer(
            acks="all",
            enable_idempotence=True,
            max_in_flight_requests_per_connection=1,
            linger_ms=5,
            max_request_size=MAX_MESSAGE_BYTES,
            **common,
        )
        consumer = KafkaConsumer(
            group_id=settings.kafka_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a new group never skips what agencies sent
            isolation_level="read_committed",  # never an aborted transactional write
            max_poll_records=settings.kafka_batch_size,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
            max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
            **common,
        )
        consumer.subscribe(pattern=inbound_pattern(settings))
        watch = ConnectionWatch("ingest", status_path(settings.data_dir, "ingest"), logger=log)
        return cls(settings, referrals, consumer, producer, receipts=receipts, watch=watch)

    def stop(self) -> None:
        """Asks the loop to finish the batch in hand and return (SIGTERM handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Leaves the group (without committing anything more) and closes the producer."""
        try:
            self.consumer.close(autocommit=False)
        finally:
            self.producer.close(timeout=self.settings.kafka_flush_timeout_seconds)

    # ------------------------------------------------------------------------------ loop
    def run(self, max_seconds: float | None = None, max_batches: int | None = None) -> IngestStats:
        """Processes batches until stopped (or for at most `max_seconds` / `max_batches`)."""
        log.info(
            "ingest: group %s on topics matching %s",
            self.settings.kafka_group_id,
            inbound_pattern(self.settings),
        )
        started = last_report = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if max_seconds is not None and now - started >= max_seconds:
                break
            if max_batches is not None and self.stats.batches >= max_batches:
                break
            self.poll_once()
            if now - last_report >= 30:
                log.info("ingest: %s", json.dumps(self.stats.as_dict()))
                last_report = now
        return self.stats

    def poll_once(self) -> int:
        """Polls one batch and processes it; the number of records it held."""
        batch = self.consumer.poll(
            timeout_ms=self.settings.kafka_poll_timeout_ms,
            max_records=self.settings.kafka_batch_size,
        )
        if not batch:
            return 0
        self.process(batch)
        return sum(len(records) for records in batch.values())

    def process(self, batch: Mapping[Any, Sequence[Any]]) -> bool:
        """Records one polled batch; True if its offsets were committed.

        Partitions are merged by record timestamp (each partition's order is kept), so that
        events of one case sent by two agencies are judged in the order they were sent when
        they arrive in the same batch.
        """
        records = list(heapq.merge(*(list(r) for r in batch.values()), key=lambda r: r.timestamp))
        judged = [judge(self.settings, record) for record in records]
        accepted = [j for j in judged if j.error is None]
        try:
            results = self._record(accepted)
        except StoreUnavailableError as error:
            # the outage itself is logged once by `watch` (lost, then restored)
            log.debug("ingest: event store unavailable, batch will be redelivered: %s", error)
            self._rewind(batch)
            return False
        for item, result in zip(accepted, results, strict=True):
            if isinstance(result, Rejected):
                item.error = result.error
            elif result.duplicate:
                self.stats.duplicates += 1
            else:
                self.stats.recorded += 1
                if result.held:
                    self.stats.held += 1
        dead = [j for j in judged if j.error is not None]
        try:
            self._publish_receipts(accepted, results)
        except Exception as error:  # noqa: BLE001 - redelivery re-issues the same receipts
            if is_connection_error(error):  # signing reads the audit trail
                self._wait(self.watch.lost(error))
            else:
                log.error(
                    "ingest: receipts topic did not take the batch (%r); it will be redelivered",
                    error,
                )
            self._rewind(batch)
            return False
        if dead:
            try:
                self._dead_letter(dead)
            except Exception as error:  # noqa: BLE001 - any producer failure: redeliver the batch
                log.error(
                    "ingest: dead-letter topic did not take the batch (%r); it will be redelivered",
                    error,
                )
                self._rewind(batch)
                return False
        self.stats.batches += 1
        self.stats.records += len(records)
        return self._commit(batch)

    # --------------------------------------------------------------------------- steps
    def _record(self, accepted: list[Judged]) -> list[Any]:
        """record_batch with bounded retries while the store is unreachable."""
        if not accepted:
            return []
        wires = [j.wire for j in accepted]
        delay = self.settings.kafka_store_retry_backoff_ms / 1000
        attempts = self.settings.kafka_store_retry_attempts
        for attempt in range(1, attempts + 1):
            try:
                results = self._record_isolating(wires)
            except TRANSIENT_STORE_ERRORS as error:
                if attempt == attempts or self._stop.is_set():
                    raise StoreUnavailableError(f"{type(error).__name__}: {error}") from error
                self.stats.store_retries += 1
                self.watch.lost(error)  # logs once per outage, not per retry
                log.debug(
                    "ingest: event store unavailable (%s), retry %d/%d in %.1fs",
                    type(error).__name__,
                    attempt,
                    attempts - 1,
                    delay,
                )
                if self._wait(delay * random.uniform(0.5, 1.0)):  # jitter
                    raise StoreUnavailableError("stopping") from error
                delay = min(delay * 2, 10.0)
                continue
            self.watch.restored()
            if len(results) != len(wires):
                raise RuntimeError(f"record_batch answered {len(results)} of {len(wires)} items")
            return self._retry_concurrent_writes(wires, results)
        raise StoreUnavailableError("no attempt made")  # pragma: no cover - attempts >= 1

    def _retry_concurrent_writes(self, wires: list[Any], results: list[Any]) -> list[Any]:
        """Judges again, against the case as it now is, the items another writer raced.

        A CONCURRENT_WRITE refusal covers every item of that case in the batch, so retrying
        them together, in their order, keeps the case's order. Transient store errors here
        propagate to the caller's retry loop, which is safe: recording is idempotent.
        """
        for _ in range(CONCURRENT_WRITE_ROUNDS):
            raced = [
                i
                for i, r in enumerate(results)
                if isinstance(r, Rejected) and r.error.code == "CONCURRENT_WRITE"
            ]
            if not raced:
                break
            self.stats.concurrent_write_retries += len(raced)
            again = self._record_isolating([wires[i] for i in raced])
            for index, result in zip(raced, again, strict=True):
                results[index] = result
        return results

    def _record_isolating(self, wires: list[Any]) -> list[Any]:
        """record_batch; if it fails unexpectedly, item by item, so one poison item is found."""
        try:
            return self.referrals.record_batch(wires)
        except TRANSIENT_STORE_ERRORS:
            raise
        except Exception:
            log.exception("ingest: record_batch failed unexpectedly; recording item by item")
        results: list[Any] = []
        for wire in wires:
            try:
                results.extend(self.referrals.record_batch([wire]))
            except TRANSIENT_STORE_ERRORS:
                raise
            except Exception as error:  # noqa: BLE001 - a poison message must not block the partition
                log.exception("ingest: item cannot be recorded (%s)", type(error).__name__)
                event_id = wire.get("event_id") if isinstance(wire, Mapping) else None
                results.append(
                    Rejected(
                        event_id if isinstance(event_id, str) else None,
                        DomainError("INTERNAL_ERROR"),
                    )
                )
        return results

    def _publish_receipts(self, accepted: list[Judged], results: Sequence[Any]) -> None:
        """Sends each accepted event's signed receipt to its agency's receipts topic (a
        duplicate gets the original's receipt again), before offsets are committed."""
        if self.receipts is None:
            return
        recorded = [
            (item, result)
            for item, result in zip(accepted, results, strict=True)
            if not isinstance(result, Rejected)
        ]
        if not recorded:
            return
        notes = self.receipts([result for _, result in recorded])
        futures = []
        for (item, result), note in zip(recorded, notes, strict=True):
            if note is None:
                continue
            agency = agency_of_topic(self.settings, item.record.topic) or ""
            futures.append(
                self.producer.send(
                    receipts_topic(self.settings, agency),
                    key=result.event_id.encode(),
                    value=note.encode(),
                    headers=[
                        ("event_id", result.event_id.encode()),
                        ("case_id", result.case_id.encode()),
                        ("position", str(result.position or "").encode()),
                        *_standing_headers(result),
                    ],
                )
            )
        self.producer.flush(timeout=self.settings.kafka_flush_timeout_seconds)
        for future in futures:
            future.get(timeout=self.settings.kafka_flush_timeout_seconds)
        self.stats.receipts += len(futures)

    def _dead_letter(self, dead: list[Judged]) -> None:
        futures = []
        for item in dead:
            record, error = item.record, item.error
            assert error is not None
            self.stats.dead_letter_codes[error.code] = (
                self.stats.dead_letter_codes.get(error.code, 0) + 1
            )
            log.warning(
                "ingest: dead-lettered %s[%d]@%d: %s on %s",
                record.topic,
                record.partition,
                record.offset,
                error.code,
                error.field,
            )
            futures.append(
                self.producer.send(
                    self.settings.kafka_dead_letter_topic,
                    key=record.key,
                    value=record.value,
                    headers=dead_letter_headers(item),
                )
            )
        self.producer.flush(timeout=self.settings.kafka_flush_timeout_seconds)
        for future in futures:
            future.get(timeout=self.settings.kafka_flush_timeout_seconds)  # raises if refused
        self.stats.dead_lettered += len(dead)

    def _commit(self, batch: Mapping[Any, Sequence[Any]]) -> bool:
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata

        offsets = {
            tp: OffsetAndMetadata(max(r.offset for r in records) + 1, "", -1)
            for tp, records in batch.items()
            if records
        }
        try:
            self.consumer.commit(offsets)
        except KafkaError as error:
            # Rebalanced or coordinator gone: whoever owns the partitions next gets these
            # records again, and recording them again is a no-op (idempotent by event_id).
            self.stats.commit_failures += 1
            log.warning("ingest: offset commit failed (%r); records will be redelivered", error)
            return False
        return True

    def _rewind(self, batch: Mapping[Any, Sequence[Any]]) -> None:
        """Seeks back to the batch's first offsets so the next poll delivers it again."""
        self.stats.rewound_batches += 1
        assigned = self.consumer.assignment()
        for tp, records in batch.items():
            if records and tp in assigned:
                self.consumer.seek(tp, min(r.offset for r in records))


def _standing_headers(result: Any) -> list[tuple[str, bytes]]:
    """The receipt's standing (ADR 0008): `status` recorded | held | duplicate and, for a held
    event, `awaiting` (JSON: reason, types, messages) — what it waits for."""
    status = "duplicate" if result.duplicate else "held" if result.held else "recorded"
    headers = [("status", status.encode())]
    if result.awaiting is not None:
        entry = result.awaiting
        headers.append(
            (
                "awaiting",
                json.dumps(
                    {
                        "reason": entry["reason"],
                        "types": list(entry["awaiting"]),
                        "message": entry["message"],
                        "message_en": entry["message_en"],
                    },
                    ensure_ascii=False,
                ).encode(),
            )
        )
    return headers
