"""Reads the stored events of many aggregates in one query (the batch path of `Referrals`).

`eventsourcing` reads one aggregate per query; a batch of 1,000 events touching 500 cases would
make 1,000 round trips. These functions read them all at once from the recorder's own table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder
from psycopg.sql import SQL, Identifier


def select_events_of(
    recorder: object, ids: Sequence[UUID], after: Mapping[UUID, int] | None = None
) -> dict[UUID, list[StoredEvent]] | None:
    """Every stored event of the given aggregates, in version order; None if unsupported.

    With `after`, only the events of an aggregate above the version it gives (the versions a
    caller already holds in memory), still in one query.
    """
    if not ids:
        return {}
    found: dict[UUID, list[StoredEvent]] = defaultdict(list)
    after = after or {}
    if isinstance(recorder, PostgresAggregateRecorder):
        if len(ids) == 1:  # a single post: plain parameters, a prepared statement
            return _select_one(recorder, ids[0], after.get(ids[0], 0))
        if after:
            # LATERAL: one primary-key range scan per aggregate, whatever the table's size
            # (a plain join lets the planner merge-join against the whole table)
            statement = SQL(
                "SELECT e.originator_id, e.originator_version, e.topic, e.state "
                "FROM unnest(%s::uuid[], %s::int8[]) AS u(id, v) CROSS JOIN LATERAL ("
                "SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
                "WHERE originator_id = u.id AND originator_version > u.v "
                "ORDER BY originator_version) e"
            ).format(
                schema=Identifier(recorder.datastore.schema),
                table=Identifier(recorder.events_table_name),
            )
            params: tuple[Any, ...] = (list(ids), [after.get(i, 0) for i in ids])
        else:
            statement = SQL(
                "SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
                "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
            ).format(
                schema=Identifier(recorder.datastore.schema),
                table=Identifier(recorder.events_table_name),
            )
            params = (list(ids),)
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params)
            for row in curs.fetchall():
                found[row["originator_id"]].append(
                    StoredEvent(
                        row["originator_id"],
                        row["originator_version"],
                        row["topic"],
                        bytes(row["state"]),
                    )
                )
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
                if row["originator_version"] <= after.get(originator_id, 0):
                    continue
                found[originator_id].append(
                    StoredEvent(
                        originator_id, row["originator_version"], row["topic"], row["state"]
                    )
                )
        return found
    return None


_ONE_STATEMENTS: dict[tuple[str, str], str] = {}


def _select_one(
    recorder: PostgresAggregateRecorder, aggregate_id: UUID, after: int
) -> dict[UUID, list[StoredEvent]]:
    key = (recorder.datastore.schema, recorder.events_table_name)
    statement = _ONE_STATEMENTS.get(key)
    if statement is None:
        statement = _ONE_STATEMENTS[key] = (
            SQL(
                "SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
                "WHERE originator_id = %s AND originator_version > %s ORDER BY originator_version"
            )
            .format(schema=Identifier(key[0]), table=Identifier(key[1]))
            .as_string()
        )
    found: dict[UUID, list[StoredEvent]] = {}
    with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(statement, (aggregate_id, after), prepare=True)
        rows = curs.fetchall()
    if rows:
        found[aggregate_id] = [
            StoredEvent(
                row["originator_id"], row["originator_version"], row["topic"], bytes(row["state"])
            )
            for row in rows
        ]
    return found
