"""The publication relay (`referrals relay`): publishes every recorded event, in the event
store's global order, to the outbound topic, keyed by case id (one case, one partition, in
version order).

Per batch: read notifications after the tracked position → send → `flush()` → record the new
position. The position is written only after the broker has acknowledged every message of the
batch, so a crash republishes at most one batch: at-least-once, and a republished message is
byte-for-byte the same (same `event_id`, `position`). Consumers deduplicate by `position`
(or by `case_id` + `event_id`). Design: docs/adr/0004-kafka-delivery.md.

The value never holds clear personal data: identifying data stays encrypted in the store, and
the message only says that an encrypted identity block exists.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from domain.person import PersonRecord
from domain.referral import Referral
from infra.kafka.clients import MAX_MESSAGE_BYTES, client_config
from infra.settings import Settings
from services.worker_health import ConnectionWatch, is_connection_error, status_path

log = logging.getLogger(__name__)

PERSON_TYPES = {
    PersonRecord.Created: "PERSON_RECORD_CREATED",
    PersonRecord.Erased: "PERSON_DATA_ERASED",
}
"""Outbound type names of the person-record events (referral events use their wire type)."""

TRACKING_TABLE = "kafka_relay_tracking"


class LeaseLostError(RuntimeError):
    """Raised when this relay no longer holds the lease (its session ended, a standby took
    over and raised the fencing token): it must publish and save nothing more."""


class UnpublishableEventError(RuntimeError):
    """Raised when the log holds an event type the relay has no outbound form for."""


@dataclass(frozen=True)
class OutboundMessage:
    """One Kafka message of the outbound topic."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def outbound_message(event: Any, position: int, stored_topic: str) -> OutboundMessage:
    """The outbound form of one stored event (pseudonymous data only)."""
    if isinstance(event, Referral.Event) and event.WIRE_TYPE:
        body: dict[str, Any] = {
            "event_id": event.event_id,
            "case_id": event.case_id,
            "type": event.WIRE_TYPE,
            "version": event.originator_version,
            "agency_id": event.agency_id,
            "occurred_at": event.occurred_at.isoformat(),
            "recorded_at": event.timestamp.isoformat(),
            "position": position,
            "data": event.data,
            "identity": {"encrypted": True} if event.identity_ciphertext else None,
            "topic": stored_topic,
        }
        key = event.case_id
        headers = {
            "event_id": event.event_id,
            "position": str(position),
            "type": event.WIRE_TYPE,
            "case_version": str(event.originator_version),
        }
    elif type(event) in PERSON_TYPES:
        person_id = event.person_id if isinstance(event, PersonRecord.Created) else None
        data = (
            {"reason": event.reason, "rule": event.rule, "requested_by": event.requested_by}
            if isinstance(event, PersonRecord.Erased)
            else {}
        )
        event_id = f"person:{event.originator_id}:{event.originator_version}"
        body = {
            "event_id": event_id,
            "record_id": str(event.originator_id),
            "person_id": person_id,
            "type": PERSON_TYPES[type(event)],
            "version": event.originator_version,
            "recorded_at": event.timestamp.isoformat(),
            "position": position,
            "data": data,
            "topic": stored_topic,
        }
        key = str(event.originator_id)
        headers = {
            "event_id": event_id,
            "position": str(position),
            "type": PERSON_TYPES[type(event)],
            "record_version": str(event.originator_version),
        }
    else:
        raise UnpublishableEventError(
            f"no outbound form for stored topic {stored_topic!r} at position {position}"
        )
    value = json.dumps(
        body, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=_json_default
    ).encode("utf-8")
    return OutboundMessage(
        key.encode("utf-8"), value, [(k, v.encode("utf-8")) for k, v in headers.items()]
    )


# ------------------------------------------------------------------------ position store
class RelayTracking(Protocol):
    """Where the relay keeps the last published position, durably, and its lease."""

    def try_lease(self) -> bool: ...

    def reconnect(self) -> None: ...

    def check(self) -> None: ...

    def check_lease(self) -> None: ...

    def position(self) -> int: ...

    def save(self, position: int) -> None: ...

    def close(self) -> None: ...


class PostgresRelayTracking:
    """The position in a small table of the event store's database, plus a lease.

    The lease is a session advisory lock: a second relay for the same topic waits as a
    standby until the first one's connection ends (clean stop, crash, or the server ending a
    frozen relay's session). It is fenced (issue 19): each take-over raises a fencing token
    (`epoch`, stored with the position); `check_lease` — before every publish — fails once
    this session's lock is gone or a later relay raised the token, and `save` moves the
    position only under this relay's token. A relay that froze, lost the lease and resumed
    therefore publishes and saves nothing.
    """

    def __init__(self, settings: Settings, name: str) -> None:
        self.name = name
        self._conninfo = settings.pg_service_conninfo()
        self._epoch: int | None = None
        self._lost = False  # lost the lease: only an explicit `try_lease` takes it again
        self._lock_key = zlib.crc32(f"referrals-relay:{name}".encode())
        self._conn = self._connect()

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TRACKING_TABLE} ("
            " relay_name text PRIMARY KEY,"
            " position bigint NOT NULL,"
            " updated_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(
            f"ALTER TABLE {TRACKING_TABLE} ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0"
        )
        return conn

    def reconnect(self) -> None:
        """A new session after a lost connection. The lease went with the old session:
        take it again (`try_lease`, which also takes a new fencing epoch) before publishing."""
        old, self._conn = self._conn, None
        if old is not None:
            old.close()
        self._epoch, self._lost = None, False
        self._conn = self._connect()

    def check(self) -> None:
        """Raises if the session (and with it the lease) is gone. Called before each batch,
        so that a relay notices an outage at once (the event store's own reads retry for many
        seconds before they fail); `check_lease` then fences the publish itself."""
        self._conn.execute("SELECT 1")

    def try_lease(self) -> bool:
        if self._conn.closed:  # the session ended (a lost lease): a new one, as a standby
            self._epoch = None
            self._conn = self._connect()
        row = self._conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (0x52454C, self._lock_key - 2**31)
        ).fetchone()
        if not (row and row[0]):
            return False
        got = self._conn.execute(
            f"INSERT INTO {TRACKING_TABLE} AS t (relay_name, position, epoch) "
            "VALUES (%s, 0, 1) ON CONFLICT (relay_name) DO UPDATE SET epoch = t.epoch + 1 "
            "RETURNING epoch",
            (self.name,),
        ).fetchone()
        self._epoch, self._lost = int(got[0]), False
        return True

    def check_lease(self) -> None:
        """LeaseLostError unless this session still holds the lock and the newest token."""
        import psycopg

        if self._epoch is None and not self._lost and self.try_lease():
            return  # a relay used without `acquire_lease` (one batch, tests) takes it here
        if self._epoch is None:
            raise LeaseLostError(f"{self.name}: this relay does not hold the lease")
        try:
            row = self._conn.execute(
                f"SELECT epoch FROM {TRACKING_TABLE} WHERE relay_name = %s AND EXISTS ("
                " SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = pg_backend_pid() AND classid::int8 = %s AND objid::int8 = %s)",
                (self.name, 0x52454C, (self._lock_key - 2**31) & 0xFFFFFFFF),
            ).fetchone()
        except psycopg.Error as error:  # the session is gone: so is the lock
            self._epoch, self._lost = None, True
            self._conn.close()
            raise LeaseLostError(f"{self.name}: lease session ended ({error})") from None
        if row is None or int(row[0]) != self._epoch:
            self._epoch, self._lost = None, True
            raise LeaseLostError(f"{self.name}: another relay holds the lease now")

    def position(self) -> int:
        row = self._conn.execute(
            f"SELECT position FROM {TRACKING_TABLE} WHERE relay_name = %s", (self.name,)
        ).fetchone()
        return int(row[0]) if row else 0

    def save(self, position: int) -> None:
        """Moves the position forward, only under this relay's fencing token."""
        self.check_lease()
        self._conn.execute(
            f"UPDATE {TRACKING_TABLE} SET position = %s, updated_at = now() "
            "WHERE relay_name = %s AND epoch = %s AND position < %s",
            (position, self.name, self._epoch, position),
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # ends the session: releases the lease


class SqliteRelayTracking:
    """The position in a small table of the embedded SQLite event store's file."""

    def __init__(self, settings: Settings, name: str) -> None:
        import sqlite3

        self.name = name
        self._conn = sqlite3.connect(str(settings.sqlite_file), timeout=10, isolation_level=None)
        self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TRACKING_TABLE} (relay_name TEXT PRIMARY KEY, "
            "position INTEGER NOT NULL, updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )

    def try_lease(self) -> bool:
        return True

    def reconnect(self) -> None:
        """Nothing to do: the SQLite file has no connection to lose."""

    def check(self) -> None:
        """Nothing to check: no session, no lease."""

    def check_lease(self) -> None:
        """Embedded SQLite: one process, no lease to lose."""

    def position(self) -> int:
        row = self._conn.execute(
            f"SELECT position FROM {TRACKING_TABLE} WHERE relay_name = ?", (self.name,)
        ).fetchone()
        return int(row[0]) if row else 0

    def save(self, position: int) -> None:
        self._conn.execute(
            f"INSERT INTO {TRACKING_TABLE} (relay_name, position) VALUES (?, ?) "
            "ON CONFLICT (relay_name) DO UPDATE SET position = excluded.position, "
            f"updated_at = CURRENT_TIMESTAMP WHERE {TRACKING_TABLE}.position < excluded.position",
            (self.name, position),
        )

    def close(self) -> None:
        self._conn.close()


def open_tracking(settings: Settings) -> PostgresRelayTracking | SqliteRelayTracking:
    """The relay's position store for the configured event store (one row per outbound topic)."""
    name = f"relay:{settings.kafka_outbound_topic}"
    if settings.store == "postgres":
        return PostgresRelayTracking(settings, name)
    return SqliteRelayTracking(settings, name)


# ----------------------------------------------------------------------------------- relay
@dataclass
class RelayStats:
    """What the relay did since it started."""

    batches: int = 0
    published: int = 0
    position: int = 0
    gap_checks: int = 0
    publish_failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Relay:
    """Follows the notification log from the tracked position and publishes each event."""

    def __init__(
        self,
        settings: Settings,
        app: Any,
        tracking: RelayTracking,
        producer_factory: Callable[[], Any],
        watch: ConnectionWatch | None = None,
    ) -> None:
        self.settings = settings
        self.app = app
        self.tracking = tracking
        self.producer_factory = producer_factory
        self.producer: Any = None
        self.stats = RelayStats()
        self.watch = watch or ConnectionWatch("relay", logger=log)
        self._stop = threading.Event()
        self._position: int | None = None

    @classmethod
    def connect(cls, settings: Settings, app: Any) -> Relay:
        """A relay with its position store and an idempotent producer."""

        def producer() -> Any:
            from kafka import KafkaProducer

            # Idempotent, acks from every in-sync replica; one request in flight per
            # connection, so a retried batch can never overtake the next one (case order).
            return KafkaProducer(
                acks="all",
                enable_idempotence=True,
                max_in_flight_requests_per_connection=1,
                linger_ms=5,
                batch_size=256 * 1024,
                compression_type="gzip",
                max_request_size=MAX_MESSAGE_BYTES,
                **client_config(settings),
            )

        watch = ConnectionWatch("relay", status_path(settings.data_dir, "relay"), logger=log)
        return cls(settings, app, open_tracking(settings), producer, watch)

    def stop(self) -> None:
        """Asks the loop to finish the batch in hand and return (SIGTERM handler)."""
        self._stop.set()

    def close(self) -> None:
        try:
            if self.producer is not None:
                self.producer.close(timeout=self.settings.kafka_flush_timeout_seconds)
        finally:
            self.tracking.close()

    @property
    def position(self) -> int:
        if self._position is None:
            self._position = self.tracking.position()
            self.stats.position = self._position
        return self._position

    # ------------------------------------------------------------------------------ loop
    def acquire_lease(self, max_seconds: float | None = None) -> bool:
        """Waits (as a standby) until this relay holds the lease; False if stopped first."""
        started = time.monotonic()
        logged = False
        while not self._stop.is_set():
            if self.tracking.try_lease():
                return True
            if not logged:
                log.info("relay: another relay holds the lease; waiting as a standby")
                logged = True
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                return False
            self._stop.wait(1.0)
        return False

    def run(self, max_seconds: float | None = None, until_caught_up: bool = False) -> RelayStats:
        """Publishes until stopped (or `max_seconds`, or — if asked — until caught up).

        A lost database connection is retried with backoff and reported in `watch` (one log
        line when lost, one when back); then the tracking session is opened again, the lease
        taken again (another relay may hold it now: this one waits as a standby) and the
        position read again, so the batch in hand is republished as the same bytes. Any other
        error is raised.
        """
        started = time.monotonic()
        reconnect = False
        while not self._stop.is_set():
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                break
            try:
                if reconnect:
                    self._position = None
                    self.tracking.reconnect()
                    reconnect = False
                return self._run(started, max_seconds, until_caught_up)
            except Exception as error:
                if not is_connection_error(error):
                    raise
                reconnect = True
                self._stop.wait(self.watch.lost(error))
        return self.stats

    def _run(self, started: float, max_seconds: float | None, until_caught_up: bool) -> RelayStats:
        if not self.acquire_lease(max_seconds):
            return self.stats
        log.info(
            "relay: publishing to %s from position %d",
            self.settings.kafka_outbound_topic,
            self.position,
        )
        self.watch.restored()
        idle = self.settings.kafka_relay_idle_ms / 1000
        failures = 0
        while not self._stop.is_set():
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                break
            try:
                self.tracking.check()
                published = self.publish_batch()
                failures = 0
                self.watch.restored()
            except LeaseLostError as error:
                log.warning("relay: %s; publishing nothing more, back to standby", error)
                self._reset_producer()
                remaining = (
                    None
                    if max_seconds is None
                    else max(0.0, max_seconds - (time.monotonic() - started))
                )
                if not self.acquire_lease(remaining):
                    break
                continue
            except UnpublishableEventError:
                raise
            except Exception as error:
                from kafka.errors import KafkaError

                if not isinstance(error, KafkaError):
                    raise  # a lost database connection: handled by run()
                failures += 1
                self.stats.publish_failures += 1
                delay = min(0.5 * 2 ** min(failures, 6), 30.0)
                log.warning(
                    "relay: publishing failed (%r); resuming from position %d in %.1fs",
                    error,
                    self.position,
                    delay,
                )
                self._reset_producer()
                self._stop.wait(delay)
                continue
            if published == 0:
                if until_caught_up:
                    break
                self._stop.wait(idle)
        return self.stats

    def publish_batch(self) -> int:
        """Publishes the next batch of notifications; how many it held (0: caught up)."""
        start = self.position
        notifications = self._read_after(start)
        if not notifications:
            return 0
        messages = [
            outbound_message(self.app.mapper.to_domain_event(n), n.id, n.topic)
            for n in notifications
        ]
        if self.producer is None:
            self.producer = self.producer_factory()
        self.tracking.check_lease()  # fenced: a relay that lost the lease publishes nothing
        futures = [
            self.producer.send(
                self.settings.kafka_outbound_topic, key=m.key, value=m.value, headers=m.headers
            )
            for m in messages
        ]
        self.producer.flush(timeout=self.settings.kafka_flush_timeout_seconds)
        for future in futures:
            future.get(timeout=self.settings.kafka_flush_timeout_seconds)  # raises if refused
        last = notifications[-1].id
        self.tracking.save(last)  # only after every message is acknowledged
        self._position = last
        self.stats.batches += 1
        self.stats.published += len(messages)
        self.stats.position = last
        return len(messages)

    def _read_after(self, position: int) -> Sequence[Any]:
        """The next notifications after `position`, never passing over one still in flight.

        Notification ids are taken when a transaction inserts, not when it commits. With
        eventsourcing's insert function (POSTGRES_ENABLE_DB_FUNCTIONS=y) inserts do not lock
        the table, so id n+1 can be visible while id n is still uncommitted. On a gap, the
        relay waits for every writer in flight (a SHARE lock conflicts with their inserts),
        then reads again up to the highest id it saw: what is still missing then was rolled
        back and will never appear.
        """
        recorder = self.app.recorder
        limit = self.settings.kafka_batch_size
        notifications = recorder.select_notifications(start=position + 1, limit=limit)
        if not notifications or not _has_gap(position, notifications):
            return notifications
        datastore = getattr(recorder, "datastore", None)
        if datastore is None or not hasattr(recorder, "events_table_name"):
            return notifications  # SQLite: one writer at a time, ids commit in order
        self.stats.gap_checks += 1
        highest = notifications[-1].id
        _wait_for_writers_in_flight(datastore, recorder.events_table_name)
        return recorder.select_notifications(start=position + 1, limit=limit, stop=highest)

    def _reset_producer(self) -> None:
        producer, self.producer = self.producer, None
        self._position = None  # re-read the durable position: republish the failed batch
        if producer is not None:
            try:
                producer.close(timeout=5)
            except Exception:  # noqa: BLE001 - a broken producer may fail to close; drop it
                log.warning("relay: closing the failed producer raised", exc_info=True)


def _has_gap(position: int, notifications: Sequence[Any]) -> bool:
    expected = position + 1
    for notification in notifications:
        if notification.id != expected:
            return True
        expected += 1
    return False


def _wait_for_writers_in_flight(datastore: Any, table: str) -> None:
    from psycopg.sql import SQL, Identifier

    with datastore.transaction(commit=True) as cursor:
        cursor.execute("SET LOCAL lock_timeout = '30s'")
        cursor.execute(
            SQL("LOCK TABLE {}.{} IN SHARE MODE").format(
                Identifier(datastore.schema), Identifier(table)
            )
        )
