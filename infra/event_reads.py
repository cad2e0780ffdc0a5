"""Reads the stored events of many aggregates in one query (the batch path of `Referrals`).

`eventsourcing` reads one aggregate per query; a batch of 1,000 events touching 500 cases would
make 1,000 round trips. These functions read them all at once from the recorder's own table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder
from psycopg.sql import SQL, Identifier


def select_events_of(recorder: object, ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]] | None:
    """Every stored event of the given aggregates, in version order; None if unsupported."""
    if not ids:
        return {}
    found: dict[UUID, list[StoredEvent]] = defaultdict(list)
    if isinstance(recorder, PostgresAggregateRecorder):
        statement = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
        ).format(schema=Identifier(recorder.datastore.schema),
                 table=Identifier(recorder.events_table_name))
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (list(ids),))
            for row in curs.fetchall():
                found[row["originator_id"]].append(StoredEvent(
                    row["originator_id"], row["originator_version"], row["topic"],
                    bytes(row["state"])))
        return found
    if isinstance(recorder, SQLiteAggregateRecorder):
        marks = ",".join("?" * len(ids))
        statement = (
            f"SELECT originator_id, originator_version, topic, state FROM "
            f"{recorder.events_table_name} WHERE originator_id IN ({marks}) "
            "ORDER BY originator_id, originator_version"
        )
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, [i.hex for i in ids])
            for row in cursor.fetchall():
                originator_id = recorder.convert_originator_id(row["originator_id"])
                found[originator_id].append(StoredEvent(
                    originator_id, row["originator_version"], row["topic"], row["state"]))
        return found
    return None
