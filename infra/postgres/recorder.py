"""The event store's PostgreSQL recorder: the library's, with a bulk insert path for batches.

`eventsourcing`'s insert function (`POSTGRES_ENABLE_DB_FUNCTIONS=y`) passes a batch as one
array of composite values; building and sending that array costs more than the insert itself
(≈ 30k rows/s). For batches of `COPY_THRESHOLD` events or more this recorder instead COPYs the
rows (binary) into a per-connection temporary table, then moves them with one
`INSERT … SELECT … ORDER BY … RETURNING notification_id` (≈ 100k rows/s).

What readers depend on is kept (docs/adr/0006):
- one transaction, `SET LOCAL lock_timeout` and `NOTIFY` on the same channel, as the function;
- notification ids are drawn by the one INSERT statement, which holds the events table's
  ROW EXCLUSIVE lock from its start: a gap-settling reader's SHARE lock still waits for it,
  and ids follow the batch's order (returned in that order);
- a duplicate (originator id, version) raises the library's `IntegrityError`.
Small batches keep the library's insert function; a single event (an HTTP post) calls our
own function taking the four values as plain parameters (one round trip, like the library's,
without building and sending a composite-type array), with the same body: `SET LOCAL
lock_timeout`, `NOTIFY`, one `INSERT … RETURNING notification_id`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from eventsourcing.utils import retry
from psycopg.sql import SQL

COPY_THRESHOLD = 50
_STAGE = "_referrals_stage_events"
_ONE_FUNCTION = "referrals_insert_event_v1"


class PostgresReferralRecorder(PostgresApplicationRecorder):
    """`PostgresApplicationRecorder` with a COPY-based insert for batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        table = f'"{self.datastore.schema}"."{self.events_table_name}"'
        self._bulk_prepare = (
            f"SET LOCAL lock_timeout = '{self.datastore.lock_timeout}s'; "
            f'NOTIFY "{self.channel_name}"; '
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (i int4, originator_id "
            f"{self.datastore.originator_id_type}, originator_version int8, topic text, "
            "state bytea) ON COMMIT DELETE ROWS"
        )
        self._bulk_copy = f"COPY {_STAGE} FROM STDIN (FORMAT BINARY)"
        self._bulk_types = ["int4", self.datastore.originator_id_type, "int8", "text", "bytea"]
        self._bulk_insert = (
            f"INSERT INTO {table} (originator_id, originator_version, topic, state) "
            f"SELECT originator_id, originator_version, topic, state FROM {_STAGE} "
            "ORDER BY i RETURNING notification_id"
        )
        id_type = self.datastore.originator_id_type
        function = f'"{self.datastore.schema}"."{_ONE_FUNCTION}_{id_type}"'
        self._insert_one = f"SELECT {function}(%s, %s, %s, %s) AS notification_id"
        # created once (a versioned name, never replaced: concurrent CREATE OR REPLACE of one
        # function by several starting processes can fail)
        self.sql_create_statements.append(
            SQL(
                "DO $DO$ BEGIN "
                f"CREATE FUNCTION {function}(o_id {id_type}, o_version bigint, o_topic text, "
                "o_state bytea) RETURNS bigint LANGUAGE plpgsql AS $BODY$ "
                "DECLARE new_id bigint; "
                "BEGIN "
                f"SET LOCAL lock_timeout = '{self.datastore.lock_timeout}s'; "
                f'NOTIFY "{self.channel_name}"; '
                f"INSERT INTO {table} AS t (originator_id, originator_version, topic, state) "
                "VALUES (o_id, o_version, o_topic, o_state) RETURNING notification_id INTO new_id; "
                "RETURN new_id; "
                "END; $BODY$; "
                "EXCEPTION WHEN duplicate_function OR unique_violation THEN NULL; "
                "END $DO$"
            )
        )

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not self.datastore.enable_db_functions:
            return super().insert_events(stored_events, **kwargs)
        if len(stored_events) == 1:
            return self._insert_single(stored_events[0])
        if len(stored_events) < COPY_THRESHOLD:
            return super().insert_events(stored_events, **kwargs)
        return self._copy_insert(stored_events)

    def _insert_single(self, event: StoredEvent) -> list[int]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                self._insert_one,
                (event.originator_id, event.originator_version, event.topic, event.state),
                prepare=True,
            )
            return [curs.fetchall()[0]["notification_id"]]

    def _copy_insert(self, stored_events: Sequence[StoredEvent]) -> list[int]:
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            curs.execute(self._bulk_prepare)
            with curs.copy(self._bulk_copy) as copy:
                copy.set_types(self._bulk_types)
                write = copy.write_row
                for index, event in enumerate(stored_events):
                    write(
                        (
                            index,
                            event.originator_id,
                            event.originator_version,
                            event.topic,
                            event.state,
                        )
                    )
            curs.execute(self._bulk_insert)
            ids = [row["notification_id"] for row in curs.fetchall()]
        if len(ids) != len(stored_events):  # pragma: no cover - the INSERT is all or nothing
            raise RuntimeError(f"inserted {len(ids)} of {len(stored_events)} events")
        return ids


class ReferralsPostgresFactory(PostgresFactory):
    """The library's PostgreSQL factory; every connection of its pool also gets the libpq
    parameters of `POSTGRES_CONNECT_KWARGS` (JSON: application_name, TCP keepalives, session
    timeouts — `Settings.pg_session_kwargs`), set before the pool opens its first one."""

    POSTGRES_CONNECT_KWARGS = "POSTGRES_CONNECT_KWARGS"

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        extra = self.env.get(self.POSTGRES_CONNECT_KWARGS)
        if extra:
            self.datastore.pool.kwargs.update(json.loads(extra))
