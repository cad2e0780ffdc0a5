"""The projection framework: materialised views of the referral log, each event applied exactly
once, in log order, many events per transaction.

- A *view* is an `eventsourcing` `TrackingRecorder` subclass that owns its tables and its own
  tracking table (`<name>_tracking`), with one concrete class per store
  (`PostgresProjectionView`, `SQLiteProjectionView`). Its SQL is written once, with `%s`
  placeholders and `self.t("table")` for qualified names; the store classes translate.
- A *projection* is an `eventsourcing.projection.Projection` subclass. Its `process_batch`
  receives the decoded events of one page of the log and writes them through
  `with self.view.transaction(batch) as tx:`. That transaction first checks, under a row lock,
  that the stored position is the one the batch starts after, and last moves the position to
  the highest notification id of the page: view rows and position commit together or not at all.
- A `LogFollower` reads the log once per page and hands each projection the part it has not
  yet applied. On PostgreSQL it reads gap-safely (see `PostgresLogReader`) and wakes up on
  LISTEN/NOTIFY; on SQLite it polls.

See docs/projections.md for how to add a projection and why this is exactly-once.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, ClassVar, Generic, TypeVar

import orjson
from eventsourcing.persistence import (
    JSONTranscoder,
    Notification,
    Tracking,
    TrackingRecorder,
    find_id_convertor,
)
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection as LibraryProjection
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from eventsourcing.utils import resolve_topic
from psycopg.rows import tuple_row

from projections import quarantine as q
from projections.quarantine import QuarantineEntry
from services.worker_health import ConnectionWatch, is_connection_error

log = logging.getLogger(__name__)

MIGRATION_ROW = "__migration__"


class ProjectionError(RuntimeError):
    """Raised when a projection failed; its runner stopped and resumes from its position."""


class PositionMismatchError(RuntimeError):
    """Raised when a view's stored position is not the one a batch starts after.

    Another runner (a second worker, a rebuild) moved it: the batch is rolled back and the
    follower re-reads the position. Not an error of the data.
    """


class ViewBusyError(PositionMismatchError):
    """Raised when another runner holds the view's position row (it is applying a page, or it
    froze inside its transaction): this runner does not wait on it (NOWAIT, lock_timeout) but
    leaves the view alone for a while and goes on with the others (issue 19)."""


def is_lock_busy(error: BaseException | None) -> bool:
    """Whether `error` (or what it wraps) is PostgreSQL's "lock not available" (55P03: NOWAIT,
    or lock_timeout spent waiting on a row another runner holds)."""
    for _ in range(5):
        if error is None:
            return False
        if getattr(error, "sqlstate", None) == "55P03":
            return True
        error = error.__cause__ or error.__context__
    return False


# ------------------------------------------------------------------------------------ batches
@dataclass(frozen=True)
class Item:
    """One event of the log as a projection sees it."""

    position: int  # notification id
    topic: str
    event: Any  # the decoded domain event
    notification: Notification  # the stored record (topic, state bytes) e.g. for hashing


@dataclass(frozen=True)
class Batch:
    """A page of the log for one projection: the events after `after`, up to `tracking`.

    `items` holds only the projection's topics; `tracking.notification_id` is the highest
    notification id of the page, whatever its topic, so positions advance past every event.
    """

    after: int | None
    items: Sequence[Item]
    tracking: Tracking
    more: bool = False
    """Whether later events were already recorded when the page was read (the follower is
    behind): a projection may defer derived work to the first page without `more`."""
    quarantine: Sequence[QuarantineEntry] = ()
    """Events of the page not applied but recorded in the quarantine table, in the same
    transaction (written by `ProjectionView.transaction`, not by the projection)."""
    resolve: Sequence[int] = ()
    """Positions of quarantined events this batch re-applies (marked resolved with it)."""

    @property
    def position(self) -> int:
        return self.tracking.notification_id


@dataclass(frozen=True)
class ProjectionContext:
    """What projections may consult besides the events: reference data, rules, calendar."""

    reference: Any
    rules: tuple[Any, ...] = ()
    calendar: Any = None
    references: Any = None  # infra.reference_state.ReferenceState: the recorded versions
    # case id -> its stored events in version order (ADR 0008: a case a late or held fact
    # touches is derived again from its facts; read once per case and process, on a miss)
    history: Any = None
    shared: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Per-process work the projections of this context share (e.g. the derived cases folded
    once per page for every view that needs them: `projections.derived.PageDerivation`)."""


# ------------------------------------------------------------------------------------- views
class Tx:
    """A write (or read) transaction on a view's store: `%s` placeholders, dict rows."""

    def __init__(self, view: ProjectionView, cursor: Any) -> None:
        self.view = view
        self.cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.view._execute(self.cursor, sql, params)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A query's rows as tuples (for large results: no dict per row)."""
        return self.view._execute_tuples(self.cursor, sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.view._executemany(self.cursor, sql, rows)

    def t(self, table: str) -> str:
        return self.view.t(table)

    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        key: Sequence[str],
        mode: str = "replace",
    ) -> None:
        """Writes many rows keyed by `key`: mode "replace" overwrites the other columns,
        "add" adds them to the stored numbers, "ignore" keeps the stored row."""
        if rows:
            self.view._upsert(self.cursor, table, columns, rows, key, mode)

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Appends many rows (one INSERT … SELECT FROM unnest on PostgreSQL)."""
        if rows:
            self.view._insert(self.cursor, table, columns, rows)

    def delete_in(self, table: str, column: str, values: Sequence[Any]) -> None:
        """Deletes the rows whose `column` is one of `values`."""
        for start in range(0, len(values), 500):
            cond, params = self.view.in_list(column, list(values[start : start + 500]))
            self.execute(f"DELETE FROM {self.t(table)} WHERE {cond}", params)


def _upsert_sql(
    target: str, source: str, columns: Sequence[str], key: Sequence[str], mode: str
) -> str:
    cols = ", ".join(columns)
    others = [c for c in columns if c not in key]
    if mode == "ignore" or not others:
        action = "DO NOTHING"
    elif mode == "add":
        action = "DO UPDATE SET " + ", ".join(f"{c} = t.{c} + excluded.{c}" for c in others)
    else:
        action = "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in others)
    return f"INSERT INTO {target} AS t ({cols}) {source} ON CONFLICT ({', '.join(key)}) {action}"


def _merge_by_key(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], key: Sequence[str], mode: str
) -> Sequence[Sequence[Any]]:
    """`rows` with one row per key, as if upserted one after another ("replace": the last,
    "ignore": the first, "add": the others summed): one INSERT … ON CONFLICT may not touch a
    row twice."""
    at = [columns.index(k) for k in key]
    keys = [tuple(row[i] for i in at) for row in rows]
    if len(set(keys)) == len(keys):
        return rows
    merged: dict[tuple[Any, ...], list[Any]] = {}
    for k, row in zip(keys, rows, strict=True):
        stored = merged.get(k)
        if stored is None or mode == "replace":
            merged[k] = list(row)
        elif mode == "add":
            for i, value in enumerate(row):
                if i not in at:
                    stored[i] = stored[i] + value
    return [tuple(row) for row in merged.values()]


class ProjectionView(TrackingRecorder, ABC):
    """A materialised view: its tables, its tracking table, its queries.

    Subclass per projection (queries and writes, store-neutral SQL); `store_views` makes its
    class once per store (mixing in `PostgresProjectionView` or `SQLiteProjectionView`, with
    `DDL` in that store's column types).
    """

    TABLES: ClassVar[tuple[str, ...]] = ()
    """The view's tables, dropped by a rebuild (the tracking table is handled apart)."""
    DDL: ClassVar[tuple[str, ...]] = ()
    """CREATE TABLE / INDEX statements, `{schema}` is replaced by the qualified prefix."""
    dialect: ClassVar[str] = ""
    application_name: str = "Referrals"

    name: str
    tracking_table: str

    # -- store specifics ------------------------------------------------------------------
    @abstractmethod
    def t(self, table: str) -> str:
        """The qualified name of one of this view's tables."""

    @abstractmethod
    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        """A cursor in a write transaction (committed on normal exit)."""

    @abstractmethod
    @contextlib.contextmanager
    def read(self) -> Iterator[Tx]:
        """A read-only transaction, for queries."""

    @abstractmethod
    def _execute(self, cursor: Any, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]: ...

    @abstractmethod
    def _executemany(self, cursor: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abstractmethod
    def _execute_tuples(
        self, cursor: Any, sql: str, params: Sequence[Any]
    ) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A `column IN (...)` condition and its parameters."""

    @abstractmethod
    def p_ts(self, value: datetime | None) -> Any:
        """A timestamp as a parameter."""

    @abstractmethod
    def v_ts(self, value: Any) -> datetime | None:
        """A stored timestamp as an aware datetime (UTC)."""

    @abstractmethod
    def p_date(self, value: date | None) -> Any: ...

    @abstractmethod
    def v_date(self, value: Any) -> date | None: ...

    @abstractmethod
    def _create_view_tables(self) -> None: ...

    # -- positions --------------------------------------------------------------------------
    def position(self) -> int | None:
        """The highest notification id applied to this view (None: nothing yet)."""
        return self.max_tracking_id(self.application_name)

    def visible_position(self) -> int | None:
        """The highest notification id whose effects readers see (what `wait_for` waits on).

        The same as `position()` unless the projection defers derived work (see
        `Batch.more`), in which case it is the position of its last completed page.
        """
        return self.position()

    @contextlib.contextmanager
    def transaction(self, batch: Batch) -> Iterator[Tx]:
        """One atomic unit: checks the position is `batch.after`, yields, then records
        `batch.tracking` — view rows and position commit together or not at all."""
        with self._write() as cursor:
            try:
                rows = self._execute(
                    cursor,
                    f"SELECT notification_id FROM {self.t(self.tracking_table)} "
                    f"WHERE application_name = %s{self._for_update}",
                    (self.application_name,),
                )
            except Exception as error:
                if is_lock_busy(error):  # another runner is in the middle of a page
                    raise ViewBusyError(
                        f"{self.name}: another runner holds its position"
                    ) from error
                raise
            stored = rows[0]["notification_id"] if rows else None
            if stored != batch.after:
                raise PositionMismatchError(
                    f"{self.name}: position is {stored}, batch starts after {batch.after}"
                )
            if not rows:  # the first page: claim the row now (a rival waits, then fails)
                claimed = self._execute(
                    cursor,
                    f"INSERT INTO {self.t(self.tracking_table)} (application_name, "
                    "notification_id) VALUES (%s, %s) ON CONFLICT DO NOTHING "
                    "RETURNING notification_id",
                    (self.application_name, batch.position),
                )
                if not claimed:
                    raise PositionMismatchError(f"{self.name}: another runner started it")
            yield Tx(self, cursor)
            if batch.quarantine or batch.resolve:
                self._write_quarantine(cursor, batch.quarantine, batch.resolve)
            self._execute(
                cursor,
                f"UPDATE {self.t(self.tracking_table)} SET notification_id = %s "
                "WHERE application_name = %s",
                (batch.position, self.application_name),
            )

    _for_update: ClassVar[str] = ""

    def _add_column_if_missing(self, table: str, column: str, sql_type: str) -> None:
        """A column added after the view's first release, for a store made before it (its
        rows get NULL). Looked up first: even with IF NOT EXISTS, PostgreSQL's ALTER takes a
        lock on the table and would wait behind another worker's open page (issue 19)."""
        with self._write() as cursor:
            if self.dialect == "postgres":
                cursor.execute(
                    "SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND "
                    "table_name = %s AND column_name = %s",
                    (getattr(self, "_schema", None), table, column),
                )
                if cursor.fetchone() is None:
                    cursor.execute(
                        f"ALTER TABLE {self.t(table)} ADD COLUMN IF NOT EXISTS {column} {sql_type}"
                    )
            else:
                found = {row[1] for row in cursor.execute(f"PRAGMA table_info({table})").fetchall()}
                if column not in found:
                    cursor.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")

    # -- quarantine (see projections/quarantine.py) ---------------------------------------------
    def _quarantine_ddl(self) -> tuple[str, ...]:
        ts = "TIMESTAMPTZ" if self.dialect == "postgres" else "TEXT"
        return tuple(s.replace("%(ts)s", ts) for s in q.DDL)

    def _write_quarantine(
        self, cursor: Any, entries: Sequence[QuarantineEntry], resolve: Sequence[int]
    ) -> None:
        now = self.p_ts(datetime.now(timezone.utc))
        table = self.t(q.QUARANTINE_TABLE)
        if entries:
            self._executemany(
                cursor,
                f"INSERT INTO {table} AS t ({', '.join(q.COLUMNS)}) VALUES "
                f"({', '.join('%s' for _ in q.COLUMNS)}) ON CONFLICT (view_name, position) DO "
                "UPDATE SET reason = excluded.reason, error_code = excluded.error_code, "
                "error_class = excluded.error_class, message = excluded.message, "
                "last_attempt = excluded.last_attempt, attempts = t.attempts + 1, "
                "resolved_at = NULL",
                [
                    (
                        self.name,
                        e.position,
                        e.originator_id,
                        e.case_id,
                        e.event_type,
                        e.agency_id,
                        e.reason,
                        e.error_code,
                        e.error_class,
                        e.message,
                        now,
                        now,
                        1,
                        None,
                    )
                    for e in entries
                ],
            )
        if resolve:
            self._executemany(
                cursor,
                f"UPDATE {table} SET resolved_at = %s, last_attempt = %s, "
                "attempts = attempts + 1 WHERE view_name = %s AND position = %s",
                [(now, now, self.name, position) for position in resolve],
            )

    def held_keys(self) -> set[str]:
        """The cases (aggregate ids) with an unresolved quarantined event in this view."""
        with self.read() as tx:
            rows = tx.rows(
                f"SELECT DISTINCT originator_id FROM {self.t(q.QUARANTINE_TABLE)} "
                "WHERE view_name = %s AND resolved_at IS NULL",
                (self.name,),
            )
        return {r[0] for r in rows}

    def quarantine_counts(self) -> dict[str, int]:
        """Unresolved quarantined events by reason (`failed`, `held`) and resolved ones."""
        out = {q.FAILED: 0, q.HELD: 0, "resolved": 0}
        with self.read() as tx:
            rows = tx.rows(
                f"SELECT CASE WHEN resolved_at IS NULL THEN reason ELSE 'resolved' END, "
                f"count(*) FROM {self.t(q.QUARANTINE_TABLE)} WHERE view_name = %s "
                "GROUP BY 1",
                (self.name,),
            )
        for reason, n in rows:
            out[reason] = int(n)
        return out

    def quarantined(
        self, include_resolved: bool = False, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """This view's quarantine rows in log order (unresolved only unless asked)."""
        where = "" if include_resolved else " AND resolved_at IS NULL"
        with self.read() as tx:
            rows = tx.execute(
                f"SELECT {', '.join(q.COLUMNS)} FROM {self.t(q.QUARANTINE_TABLE)} "
                f"WHERE view_name = %s{where} ORDER BY position LIMIT %s",
                (self.name, max(0, int(limit))),
            )
        for row in rows:
            for name in ("first_seen", "last_attempt", "resolved_at"):
                row[name] = self.v_ts(row[name])
        return rows

    def record_failure(self, error: BaseException) -> None:
        """Keeps the error that stopped the view (read by `status` in any process)."""
        code, name, message = q.describe(error)
        with self._write() as cursor:
            self._execute(
                cursor,
                f"INSERT INTO {self.t(q.HEALTH_TABLE)} AS t (view_name, error_class, "
                "error_code, message, error_at, failures) VALUES (%s, %s, %s, %s, %s, 1) "
                "ON CONFLICT (view_name) DO UPDATE SET error_class = excluded.error_class, "
                "error_code = excluded.error_code, message = excluded.message, "
                "error_at = excluded.error_at, failures = t.failures + 1",
                (self.name, name, code, message, self.p_ts(datetime.now(timezone.utc))),
            )

    def clear_failure(self) -> None:
        """Forgets the kept error (the view applied a page again)."""
        with self._write() as cursor:
            self._execute(
                cursor, f"DELETE FROM {self.t(q.HEALTH_TABLE)} WHERE view_name = %s", (self.name,)
            )

    def last_failure(self) -> dict[str, Any] | None:
        """The error that stopped the view last, while it has not applied a page since."""
        with self.read() as tx:
            rows = tx.execute(
                f"SELECT error_class, error_code, message, error_at, failures FROM "
                f"{self.t(q.HEALTH_TABLE)} WHERE view_name = %s",
                (self.name,),
            )
        if not rows:
            return None
        row = rows[0]
        row["error_at"] = self.v_ts(row["error_at"])
        return row

    def reset(self) -> None:
        """Drops the view's tables and forgets its position, then recreates them empty.

        Its open quarantine rows are closed (the rebuild applies every event again; one that
        still fails is reopened, with its history)."""
        with self._write() as cursor:
            for table in self.TABLES:
                self._execute(cursor, f"DROP TABLE IF EXISTS {self.t(table)}", ())
            self._execute(
                cursor,
                f"DELETE FROM {self.t(self.tracking_table)} WHERE application_name = %s",
                (self.application_name,),
            )
            self._execute(
                cursor,
                f"UPDATE {self.t(q.QUARANTINE_TABLE)} SET resolved_at = %s "
                "WHERE view_name = %s AND resolved_at IS NULL",
                (self.p_ts(datetime.now(timezone.utc)), self.name),
            )
            self._execute(
                cursor, f"DELETE FROM {self.t(q.HEALTH_TABLE)} WHERE view_name = %s", (self.name,)
            )
        self._create_view_tables()

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, sorted: for comparing two builds of the view."""
        out = {}
        with self.read() as tx:
            for table in self.TABLES:
                rows = tx.execute(f"SELECT * FROM {self.t(table)}")
                out[table] = sorted(
                    (tuple(_comparable(v) for v in row.values()) for row in rows), key=repr
                )
        return out


def _comparable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


class PostgresProjectionView(ProjectionView, PostgresTrackingRecorder):
    """A view stored in PostgreSQL, in the event store's schema."""

    dialect: ClassVar[str] = "postgres"
    _for_update: ClassVar[str] = " FOR UPDATE NOWAIT"  # never queue behind another runner

    def __init__(self, datastore: PostgresDatastore, *, name: str, **kwargs: Any) -> None:
        self.name = name
        self.tracking_table = f"{name}_tracking"
        super().__init__(datastore, tracking_table_name=self.tracking_table, **kwargs)
        self._schema = datastore.schema
        self._column_type_cache: dict[str, dict[str, str]] = {}  # table -> column -> type

    def t(self, table: str) -> str:
        return f'"{self._schema}"."{table}"'

    def create_table(self) -> None:
        super().create_table()  # the tracking table (library)
        self._create_view_tables()

    def _create_view_tables(self) -> None:
        with self._write() as cursor:
            for statement in (*self.DDL, *self._quarantine_ddl()):
                if self._already_done(cursor, statement):
                    continue
                cursor.execute(statement.replace("{schema}", f'"{self._schema}".'))

    _INDEX_DDL = re.compile(r"CREATE (?:UNIQUE )?INDEX IF NOT EXISTS (\w+)")
    _COLUMN_DDL = re.compile(r"ALTER TABLE \{schema\}(\w+) ADD COLUMN IF NOT EXISTS (\w+)")

    def _already_done(self, cursor: Any, statement: str) -> bool:
        """Whether an index or added column of the DDL exists already: then the statement is
        skipped, because even with IF NOT EXISTS it would take a lock on the table and so wait
        for (and time out behind) another worker's open page (issue 19)."""
        index = self._INDEX_DDL.match(statement)
        if index is not None:
            cursor.execute(
                "SELECT to_regclass(%s) IS NOT NULL AS found",
                (f'"{self._schema}".{index.group(1)}',),
            )
            row = cursor.fetchone()
            return bool(row["found"] if isinstance(row, dict) else row[0])
        column = self._COLUMN_DDL.match(statement)
        if column is not None:
            cursor.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s AND column_name = %s",
                (self._schema, column.group(1), column.group(2)),
            )
            return cursor.fetchone() is not None
        return False

    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        with self.datastore.transaction(commit=True) as cursor:
            yield cursor

    @contextlib.contextmanager
    def read(self) -> Iterator[Tx]:
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield Tx(self, cursor)

    def _execute(self, cursor: Any, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        cursor.execute(sql, tuple(params) if params else None)
        return list(cursor.fetchall()) if cursor.description else []

    def _execute_tuples(
        self, cursor: Any, sql: str, params: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        with cursor.connection.cursor(row_factory=tuple_row) as tuples:
            tuples.execute(sql, tuple(params) if params else None)
            return tuples.fetchall() if tuples.description else []

    # Writes never leave the server waiting for client data inside the page's transaction
    # (issue 19): no COPY FROM STDIN, no pipeline (psycopg's `executemany` is one), only
    # whole statements. A worker frozen (SIGSTOP, a paused VM) mid-COPY or mid-pipeline keeps
    # its row locks until TCP keepalive (which a live but frozen peer answers: never), since
    # PostgreSQL ends such a session on neither `statement_timeout` nor
    # `idle_in_transaction_session_timeout`. Between whole statements the server is idle in
    # transaction (that timeout ends it), inside one it runs under `statement_timeout`.
    def _executemany(self, cursor: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:
            cursor.execute(sql, tuple(row))

    def _rows_source(
        self, cursor: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> tuple[str, list[list[Any]]]:
        """`SELECT * FROM unnest(…) AS r(cols)` over `rows` sent as one binary array per
        column, each cast to its column's type: any number of rows in one statement (one
        text per table and columns, prepared once). The client's cost is that of one JSON
        text (psycopg dumps the lists in C); the server reads binary values instead of parsing
        JSON and the text input of every timestamp and `bytea` (≈ 6 µs a row less for the
        audit trail's rows: bench/RESULTS.md, "The views' writes as binary arrays")."""
        types = self._column_types(cursor, table)
        if any(c not in types for c in columns):  # a column added since it was read
            types = self._column_types(cursor, table, again=True)
            missing = [c for c in columns if c not in types]
            if missing:
                raise ProjectionError(f"{self.t(table)} has no column(s) {', '.join(missing)}")
        arrays = [list(column) for column in zip(*rows, strict=True)]
        casts = ", ".join(f"%b::{types[c]}[]" for c in columns)
        return f"SELECT * FROM unnest({casts}) AS r({', '.join(columns)})", arrays

    def _column_types(self, cursor: Any, table: str, again: bool = False) -> dict[str, str]:
        """The table's column types as PostgreSQL writes them (read once per table)."""
        found = None if again else self._column_type_cache.get(table)
        if found is None:
            with cursor.connection.cursor(row_factory=tuple_row) as tuples:
                tuples.execute(
                    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                    (self.t(table),),
                )
                found = {name: kind for name, kind in tuples.fetchall()}
                self._column_type_cache[table] = found
        return found

    def _insert(
        self, cursor: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        source, params = self._rows_source(cursor, table, columns, rows)
        cursor.execute(
            f"INSERT INTO {self.t(table)} ({', '.join(columns)}) {source}", params, prepare=True
        )

    def _upsert(
        self,
        cursor: Any,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        key: Sequence[str],
        mode: str,
    ) -> None:
        rows = _merge_by_key(columns, rows, key, mode)
        source, params = self._rows_source(cursor, table, columns, rows)
        cursor.execute(_upsert_sql(self.t(table), source, columns, key, mode), params, prepare=True)

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(%s)", [list(values)]

    def p_ts(self, value: datetime | None) -> Any:
        # as UTC: timestamptz refuses offsets beyond ±15:59 that Python allows (issue 12)
        return value.astimezone(timezone.utc) if value is not None else None

    def v_ts(self, value: Any) -> datetime | None:
        return value.astimezone(timezone.utc) if value is not None else None

    def p_date(self, value: date | None) -> Any:
        return value

    def v_date(self, value: Any) -> date | None:
        return value


class SQLiteProjectionView(ProjectionView, SQLiteTrackingRecorder):
    """A view stored in the embedded SQLite projections file.

    The library's SQLite tracking recorder names its table `tracking`; this one uses
    `<name>_tracking` so that several views share one file.
    """

    dialect: ClassVar[str] = "sqlite"

    def __init__(self, datastore: SQLiteDatastore, *, name: str, **kwargs: Any) -> None:
        self.name = name
        self.tracking_table = f"{name}_tracking"
        super().__init__(datastore, **kwargs)
        table = self.tracking_table
        self.insert_tracking_statement = (
            f"INSERT INTO {table} VALUES (:application_name, :notification_id) "
            "ON CONFLICT (application_name) DO UPDATE SET notification_id = :notification_id "
            f"WHERE {table}.notification_id < :notification_id RETURNING notification_id"
        )
        self.select_max_tracking_id_statement = (
            f"SELECT MAX(notification_id) FROM {table} WHERE application_name=?"
        )
        self.create_table_statements = [
            f"CREATE TABLE IF NOT EXISTS {table} (application_name TEXT, notification_id "
            "INTEGER, PRIMARY KEY (application_name)) WITHOUT ROWID",
            *(s.replace("{schema}", "") for s in (*self.DDL, *self._quarantine_ddl())),
        ]

    def t(self, table: str) -> str:
        return table

    def create_table(self) -> None:
        with self._write() as cursor:
            exists = self._execute(
                cursor,
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=%s",
                (self.tracking_table,),
            )
            for statement in self.create_table_statements:
                cursor.execute(statement)
            if not exists:
                self._execute(
                    cursor, f"INSERT INTO {self.tracking_table} VALUES (%s, 1)", (MIGRATION_ROW,)
                )

    def _create_view_tables(self) -> None:
        with self._write() as cursor:
            for statement in (*self.DDL, *self._quarantine_ddl()):
                cursor.execute(statement.replace("{schema}", ""))

    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        with self.datastore.get_connection(commit=True) as conn:
            raw = conn._sqlite_conn  # noqa: SLF001 - BEGIN IMMEDIATE needs the raw connection
            cursor = raw.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                raw.rollback()
                raise
            else:
                raw.commit()
            finally:
                cursor.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[Tx]:
        with self.datastore.get_connection(commit=False) as conn:
            raw = conn._sqlite_conn  # noqa: SLF001 - the library keeps the sqlite3 connection private
            cursor = raw.cursor()
            cursor.execute("BEGIN")  # one snapshot for every query of the block
            try:
                yield Tx(self, cursor)
            finally:
                raw.rollback()
                cursor.close()

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%s", "?")

    def _execute(self, cursor: Any, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        cursor.execute(self._sql(sql), tuple(params))
        if cursor.description is None:
            return []
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _execute_tuples(
        self, cursor: Any, sql: str, params: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        cursor.execute(self._sql(sql), tuple(params))
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []

    def _executemany(self, cursor: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        cursor.executemany(self._sql(sql), rows)

    def _insert(
        self, cursor: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        cursor.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
            f"({', '.join('?' for _ in columns)})",
            rows,
        )

    def _upsert(
        self,
        cursor: Any,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        key: Sequence[str],
        mode: str,
    ) -> None:
        values = f"VALUES ({', '.join('?' for _ in columns)})"
        cursor.executemany(_upsert_sql(table, values, columns, key, mode), rows)

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        if not values:
            return "0 = 1", []
        return f"{column} IN ({', '.join('%s' for _ in values)})", list(values)

    def p_ts(self, value: datetime | None) -> Any:
        if value is None:
            return None
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")

    def v_ts(self, value: Any) -> datetime | None:
        return datetime.fromisoformat(value) if value is not None else None

    def p_date(self, value: date | None) -> Any:
        return value.isoformat() if value is not None else None

    def v_date(self, value: Any) -> date | None:
        return date.fromisoformat(value) if value is not None else None


TView = TypeVar("TView", bound=ProjectionView)


# ------------------------------------------------------------------------- views per store
COLUMN_TYPES: dict[str, dict[str, str]] = {
    "postgres": {"ts": "TIMESTAMPTZ", "date": "DATE", "bytes": "BYTEA"},
    "sqlite": {"ts": "TEXT", "date": "TEXT", "bytes": "BLOB"},
}
"""The column types that differ between the stores, written `%(ts)s`, `%(date)s`, `%(bytes)s`
in a projection's DDL."""

_STORE_BASES: dict[str, tuple[str, type[ProjectionView]]] = {
    "postgres": ("Postgres", PostgresProjectionView),
    "sqlite": ("SQLite", SQLiteProjectionView),
}


def ddl_for(store: str, tables: Sequence[str]) -> tuple[str, ...]:
    """A projection's CREATE statements with `store`'s column types (`{schema}` is left for the
    view to fill in)."""
    statements = []
    for statement in tables:
        for name, sql_type in COLUMN_TYPES[store].items():
            statement = statement.replace(f"%({name})s", sql_type)
        statements.append(statement)
    return tuple(statements)


def store_views(
    view: type[ProjectionView], tables: Sequence[str]
) -> dict[str, type[ProjectionView]]:
    """A projection's `views`: its view class once per store (`PostgresXView`, `SQLiteXView`),
    each creating `tables` with that store's column types."""
    made: dict[str, type[ProjectionView]] = {}
    for store, (prefix, base) in _STORE_BASES.items():
        name = prefix + view.__name__
        made[store] = type(
            name,
            (view, base),
            {
                "DDL": ddl_for(store, tables),
                "__module__": view.__module__,
                "__qualname__": name,
            },
        )
    return made


# ------------------------------------------------------------------------------- projections
class Projection(LibraryProjection[TView], Generic[TView]):
    """A read model: folds pages of the log into its view, one transaction per page.

    Subclasses set `name` (table prefix), `topics` (empty: every topic), `views`
    (store -> view class) and implement `process_batch`.
    """

    views: ClassVar[dict[str, type[ProjectionView]]] = {}
    quarantine_scope: ClassVar[str] = "case"
    """What an event the view cannot apply takes with it into quarantine (issue 12):
    "case" — it and every later event of its case (views that fold per case: re-applied in
    log order they give the rows an in-order build gives); "event" — only itself (views with
    no per-case state); "none" — nothing is skipped, the view stops and reports (a view whose
    order is global, e.g. the audit trail's Merkle tree)."""

    def __init__(self, view: TView, context: ProjectionContext | None = None) -> None:
        super().__init__(view)
        self.context = context

    @abstractmethod
    def process_batch(self, batch: Batch) -> None:
        """Applies the page's events and records its position, in one transaction."""

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:  # type: ignore[override]
        """The library's one-event entry point (stock `ProjectionRunner`): a batch of one."""
        after = self.view.position()
        item = Item(tracking.notification_id, type(domain_event).TOPIC, domain_event, None)  # type: ignore[arg-type]
        self.process_batch(Batch(after, [item], tracking))

    def wants(self, topic: str) -> bool:
        return not self.topics or topic in self.topics

    def prepare(self, items: Sequence[Item]) -> None:
        """Called by the follower with every page it read (in log order, before any view
        applies it, in the follower's own thread): work that several views of the process
        share is done here once (nothing by default)."""

    def forget(self) -> None:
        """Drops whatever the projection caches in memory (after a failed or foreign write,
        and before a rebuild)."""


class StateCache:
    """Per-key state a projection folds, kept in memory across pages.

    Valid because a view has one writer at a time (the position check enforces it); a
    projection reads misses from its view, and stores new states only after its transaction
    committed. Cleared by `Projection.forget()`.
    """

    def __init__(self, max_size: int = 200_000) -> None:
        self.max_size = max_size
        self._data: dict[Any, Any] = {}

    def split(self, keys: Sequence[Any]) -> tuple[dict[Any, Any], list[Any]]:
        """(cached states, keys to load)."""
        found, missing = {}, []
        data = self._data
        for key in keys:
            value = data.get(key)
            if value is None:
                missing.append(key)
            else:
                found[key] = value
        return found, missing

    def update(self, states: dict[Any, Any]) -> None:
        if len(self._data) + len(states) > self.max_size:
            self._data.clear()
        self._data.update(states)

    def clear(self) -> None:
        self._data.clear()


# ------------------------------------------------------------------------------ log readers
@dataclass(frozen=True)
class Page:
    """A page of the log and the highest id recorded when it was read."""

    notifications: list[Notification]
    head: int


class LogReader(ABC):
    """Reads the application's notification log in pages that never skip a late commit."""

    def __init__(self, app: Any) -> None:
        self.app = app

    @abstractmethod
    def read(self, after: int, limit: int) -> Page:
        """Notifications with ids > `after`, in order, stopping before any unsettled gap;
        with the highest id recorded when they were read."""

    def max_notification_id(self) -> int:
        return self.app.recorder.max_notification_id() or 0


class SQLiteLogReader(LogReader):
    """SQLite commits writers one at a time in id order, so the log has no unsettled gaps."""

    def read(self, after: int, limit: int) -> Page:
        recorder = self.app.recorder
        notifications = list(
            recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)
        )
        return Page(notifications, recorder.max_notification_id() or 0)


class PostgresLogReader(LogReader):
    """Reads the PostgreSQL log without passing an id a still-running transaction holds.

    The library's insert function (POSTGRES_ENABLE_DB_FUNCTIONS=y, our default) does not take
    the table lock the plain insert path takes, so two writers can commit out of id order: a
    follower that saw id 12 could move past id 11 committed a moment later and never see it.
    So when a page has a gap, the reader takes the events table in SHARE mode for an instant:
    that waits for every insert in flight (each holds ROW EXCLUSIVE from the start of its
    statement, before it draws its id), and any later insert draws a higher id. Re-read up to
    the highest id seen, the page is then final: an id still missing was burnt by a rolled-back
    insert. If the lock is not granted within `lock_timeout` (a writer holding its transaction
    open), the page stops before the gap and the gap is tried again on the next read. (The
    Kafka relay settles gaps the same way.)
    """

    def __init__(self, app: Any, lock_timeout: float = 1.0) -> None:
        super().__init__(app)
        recorder = app.recorder
        self.datastore = recorder.datastore
        self.table = f'"{self.datastore.schema}"."{recorder.events_table_name}"'
        self.lock_timeout = lock_timeout
        self.gap_waits = 0

    def _select(self, conn: Any, after: int, limit: int, stop: int | None) -> tuple[list, int]:
        cursor = conn.cursor(row_factory=tuple_row, binary=True)
        upper = " AND notification_id <= %s" if stop is not None else ""
        params = (after, stop, limit) if stop is not None else (after, limit)
        rows = cursor.execute(
            f"SELECT notification_id, originator_id, originator_version, topic, state "
            f"FROM {self.table} WHERE notification_id > %s{upper} "
            f"ORDER BY notification_id LIMIT %s",
            params,
        ).fetchall()
        head = cursor.execute(f"SELECT max(notification_id) FROM {self.table}").fetchone()[0]
        return rows, head or 0

    def read(self, after: int, limit: int) -> Page:
        with self.datastore.get_connection() as conn:
            rows, head = self._select(conn, after, limit, None)
            if _gap_at(after, [r[0] for r in rows]) is not None:
                self.gap_waits += 1
                if self._wait_for_writers(conn):
                    rows, head = self._select(conn, after, limit, rows[-1][0])
                else:
                    cut = _gap_at(after, [r[0] for r in rows])
                    rows = rows[:cut]
        return Page(
            [
                Notification(
                    id=nid,
                    originator_id=originator_id,
                    originator_version=version,
                    topic=topic,
                    state=bytes(state),
                )
                for nid, originator_id, version, topic, state in rows
            ],
            head,
        )

    def _wait_for_writers(self, conn: Any) -> bool:
        """Waits until no insert is in flight (a SHARE lock, released at once)."""
        import psycopg

        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = '{int(self.lock_timeout * 1000)}ms'")
                conn.execute(f"LOCK TABLE {self.table} IN SHARE MODE")
        except psycopg.errors.LockNotAvailable:
            log.info("a writer holds the log open; waiting before passing a gap")
            return False
        return True


def _gap_at(after: int, ids: Sequence[int]) -> int | None:
    """Index of the first id that does not follow the one before it (None: no gap)."""
    expected = after + 1
    for index, nid in enumerate(ids):
        if nid != expected:
            return index
        expected = nid + 1
    return None


# ---------------------------------------------------------------------------------- decoding


def _holds_float(value: Any) -> bool:
    for item in value.values() if type(value) is dict else value:
        kind = type(item)
        if kind is float or ((kind is dict or kind is list) and _holds_float(item)):
            return True
    return False


_ZONES: dict[Any, Any] = {}


def _shared_zone(instant: datetime) -> datetime:
    """The same instant with one `tzinfo` object per UTC offset. Each parsed instant has a
    fixed-offset zone object of its own, and comparing two aware datetimes whose zones are
    different objects calls `utcoffset()` on both (≈ 1.4 µs against ≈ 0.05 µs for the same
    object): the views compare `occurred_at`s many times per event. Equal values, same
    offset, same text: nothing a view stores or hashes changes."""
    zone = instant.tzinfo
    shared = _ZONES.get(zone)
    if shared is None:
        shared = _ZONES.setdefault(zone, zone)
    return instant if shared is zone else instant.replace(tzinfo=shared)


class EventDecoder:
    """Turns stored notifications into domain events, like the application's mapper.

    Fast path (the mapper has no cipher or compressor and uses the JSON transcoder): plain
    `orjson.loads` and conversion of the top-level typed values (the event's datetimes). Any
    event with typed values deeper down, or needing an upcast, goes through the mapper, so
    the result is always the mapper's.
    """

    def __init__(self, mapper: Any) -> None:
        self.mapper = mapper
        transcoder = getattr(mapper, "transcoder", None)
        self.fast = (
            getattr(mapper, "cipher", None) is None
            and getattr(mapper, "compressor", None) is None
            and isinstance(transcoder, JSONTranscoder)
        )
        self.names = transcoder.names if self.fast else {}
        self._classes: dict[str, type] = {}

    def decode(self, notification: Notification) -> Any:
        if not self.fast:
            return self.mapper.to_domain_event(notification)
        topic = notification.topic
        cls = self._classes.get(topic)
        if cls is None:
            cls = self._classes[topic] = resolve_topic(topic)
        state = notification.state
        try:
            state_dict = orjson.loads(state)
        except orjson.JSONDecodeError:  # JSON that orjson refuses (NaN, huge integers): json's
            return self.mapper.to_domain_event(notification)
        if type(state_dict) is not dict or _holds_float(state_dict):
            # orjson reads an integer beyond 64 bits as a float: numbers go to the mapper
            return self.mapper.to_domain_event(notification)
        typed = 0
        for key, value in state_dict.items():
            if type(value) is dict and len(value) == 2 and "_type_" in value:
                transcoding = self.names.get(value["_type_"])
                if transcoding is None or "_data_" not in value:
                    return self.mapper.to_domain_event(notification)
                decoded = transcoding.decode(value["_data_"])
                if type(decoded) is datetime and decoded.tzinfo is not None:
                    decoded = _shared_zone(decoded)
                state_dict[key] = decoded
                typed += 1
        if state.count(b'"_type_"') != typed:
            return self.mapper.to_domain_event(notification)
        if state_dict.pop("class_version", 1) != getattr(cls, "class_version", 1):
            return self.mapper.to_domain_event(notification)
        originator_id = notification.originator_id
        state_dict["originator_id"] = find_id_convertor(cls, type(originator_id))(originator_id)
        state_dict["originator_version"] = notification.originator_version
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state_dict)
        return event


# ---------------------------------------------------------------------------------- follower
@dataclass
class ProjectionState:
    """A projection's runtime state in one follower."""

    projection: Projection[Any]
    position: int | None = None
    applied_events: int = 0
    batches: int = 0
    last_batch_at: datetime | None = None
    held: set[str] = field(default_factory=set)
    """Cases with an unresolved quarantined event: their later events are held too."""
    failing: bool = False
    """Whether an error of this view is kept in the health table (cleared on success)."""
    error: BaseException | None = None
    error_at: datetime | None = None
    quarantined_events: int = 0
    busy_until: float = 0.0
    """While `time.monotonic()` is below it, another runner holds the view: left alone."""


@dataclass
class PageResult:
    read: int
    end: int | None


class LogFollower:
    """Reads the log page by page and applies each page to every projection behind it."""

    def __init__(
        self,
        app: Any,
        projections: Sequence[Projection[Any]],
        reader: LogReader,
        batch_size: int = 2000,
        busy_backoff: float = 1.0,
    ) -> None:
        self.app = app
        self.reader = reader
        self.batch_size = batch_size
        self.busy_backoff = busy_backoff
        self.only: set[str] | None = None
        """The views this follower applies (None: all): those leased to its worker."""
        self.states = [ProjectionState(p) for p in projections]
        self.decoder = EventDecoder(app.mapper)
        self._executor: ThreadPoolExecutor | None = None
        self._prefetch: tuple[tuple[int, int], Future[tuple[Page, list[Item]]]] | None = None
        self.reload_positions()

    def reload_positions(self) -> None:
        self._prefetch = None
        for state in self.states:
            view = state.projection.view
            state.position = view.position()
            self._reload_held(state)
            state.failing = view.last_failure() is not None

    @staticmethod
    def _reload_held(state: ProjectionState) -> None:
        """Re-reads the cases held in quarantine; if one was resolved elsewhere (a retry in
        another process wrote its rows), the projection's caches are dropped."""
        held = state.projection.view.held_keys()
        if state.held - held:
            state.projection.forget()
        state.held = held

    def step(self, batch_size: int | None = None) -> PageResult:
        """Reads one page after the lowest position and applies it; (events read, page end).

        Projections apply the page concurrently (one thread and one transaction each, so one
        projection's database round trips overlap another's work) while the next page is
        read ahead when this one was full.
        """
        size = batch_size or self.batch_size
        now = time.monotonic()
        only = self.only
        active = [
            s
            for s in self.states
            if s.busy_until <= now and (only is None or s.projection.name in only)
        ]
        if not active:  # every view is another runner's for now
            return PageResult(0, None)
        low = min((s.position or 0 for s in active), default=0)
        page, everything = self._read(low, size)
        notifications = page.notifications
        if not notifications:
            return PageResult(0, None)
        end = notifications[-1].id
        more = page.head > end
        if more:  # read and decode the next page while the projections write this one
            self._prefetch = ((end, size), self._pool().submit(self._read_page, end, size))
        behind = [s for s in active if s.position is None or s.position < end]
        for state in behind:
            state.projection.prepare(everything)
        topics = {i.topic for i in everything}
        work: list[tuple[ProjectionState, Batch]] = []
        for state in behind:
            after = state.position or 0
            wants = state.projection.wants
            if after < notifications[0].id and all(wants(t) for t in topics):
                items = everything
            else:
                items = [i for i in everything if i.position > after and wants(i.topic)]
            work.append((state, Batch(state.position, items, Tracking(self.app.name, end), more)))
        if len(work) == 1:
            outcomes = [self._apply(*work[0])]
        else:
            futures = [self._pool().submit(self._apply, state, batch) for state, batch in work]
            outcomes = [f.result() for f in futures]
        errors = [e for e in outcomes if e is not None]
        if errors:
            self._prefetch = None
            raise errors[0]
        return PageResult(len(notifications), end)

    def _apply(self, state: ProjectionState, batch: Batch) -> BaseException | None:
        projection = state.projection
        try:
            if state.held:
                self._reload_held(state)
            try:
                projection.process_batch(self._holding(state, batch, batch.items))
            except PositionMismatchError:
                raise
            except Exception as error:
                projection.forget()
                if is_lock_busy(error):  # a row another runner holds (lock_timeout)
                    raise ViewBusyError(f"{projection.name}: {error}") from error
                if projection.quarantine_scope == "none" or not q.is_event_error(error):
                    raise
                log.warning(
                    "%s: page after %s failed (%r); isolating the event(s) at fault",
                    projection.name,
                    batch.after,
                    error,
                )
                self._isolate(state, batch)
        except PositionMismatchError as error:
            projection.forget()
            self._prefetch = None
            if isinstance(error, ViewBusyError):
                log.info("%s; leaving it for %.1fs", error, self.busy_backoff)
                state.busy_until = time.monotonic() + self.busy_backoff
                return None
            log.info("%s; re-reading its position", error)
            state.position = projection.view.position()
            return None
        except BaseException as error:  # noqa: BLE001 - handed back to step(), which raises
            projection.forget()
            self._failed(state, error)
            return error
        state.position = batch.position
        state.applied_events += len(batch.items)
        state.batches += 1
        state.last_batch_at = datetime.now(timezone.utc)
        state.error = state.error_at = None
        if state.failing:
            with contextlib.suppress(Exception):
                projection.view.clear_failure()
                state.failing = False
        return None

    @staticmethod
    def _holding(
        state: ProjectionState,
        batch: Batch,
        items: Sequence[Item],
        after: int | None | type = ...,
        end: int | None = None,
        more_entries: Sequence[QuarantineEntry] = (),
    ) -> Batch:
        """`items` as a batch, without (but recording as held) those of held cases."""
        kept: Sequence[Item] = items
        entries: list[QuarantineEntry] = []
        if state.held and state.projection.quarantine_scope == "case":
            kept = []
            for item in items:
                if q.case_key(item) in state.held:
                    entries.append(QuarantineEntry.of(item, q.HELD))
                else:
                    kept.append(item)
        tracking = batch.tracking if end is None else Tracking(batch.tracking.application_name, end)
        start = batch.after if after is ... else after
        return Batch(
            start,
            kept,
            tracking,
            batch.more,  # type: ignore[arg-type]
            quarantine=(*entries, *more_entries),
        )

    def _isolate(self, state: ProjectionState, batch: Batch) -> None:
        """Applies the page in halves, down to single events; quarantines each event that
        fails alone (and, for "case" views, holds its case's later events)."""
        projection = state.projection
        failures = 0

        def attempt(items: Sequence[Item], after: int | None, end: int) -> None:
            nonlocal failures
            sub = self._holding(state, batch, items, after, end)
            try:
                projection.process_batch(sub)
                return
            except PositionMismatchError:
                raise
            except Exception as error:
                projection.forget()
                kept = list(sub.items)
                if not q.is_event_error(error) or not kept:
                    raise
                if len(kept) == 1:
                    failures += 1
                    if failures > q.PAGE_LIMIT:
                        raise
                    entry = QuarantineEntry.of(kept[0], q.FAILED, error)
                    projection.process_batch(
                        self._holding(state, batch, [], after, end, (*sub.quarantine, entry))
                    )
                    log.warning(
                        "%s: event at position %s quarantined: %s",
                        projection.name,
                        entry.position,
                        entry.message,
                    )
                    state.quarantined_events += 1
                    if projection.quarantine_scope == "case":
                        state.held.add(entry.originator_id)
                    return
                cut = items.index(kept[len(kept) // 2])
                first, second = items[:cut], items[cut:]
                attempt(first, after, first[-1].position)
                attempt(second, first[-1].position, end)

        attempt(list(batch.items), batch.after, batch.position)

    def _failed(self, state: ProjectionState, error: BaseException) -> None:
        """Keeps the error in memory and, unless the store itself is unreachable (no waiting
        on a dead pool), in the health table for `status` in other processes."""
        state.error = error
        state.error_at = datetime.now(timezone.utc)
        if q.is_transient(error):
            return
        try:
            state.projection.view.record_failure(error)
            state.failing = True
        except Exception:  # noqa: BLE001 - the store may be the failure; memory still has it
            log.debug("could not keep the error of %s", state.projection.name, exc_info=True)

    def _read(self, after: int, size: int) -> tuple[Page, list[Item]]:
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            key, future = prefetch
            result = future.result()
            if key == (after, size):
                return result
        return self._read_page(after, size)

    def _read_page(self, after: int, size: int) -> tuple[Page, list[Item]]:
        """A page and its events decoded once, for the topics any projection wants."""
        page = self.reader.read(after, size)
        wanted: dict[str, bool] = {}
        decode = self.decoder.decode
        items = []
        for n in page.notifications:
            topic = n.topic
            keep = wanted.get(topic)
            if keep is None:
                keep = wanted[topic] = any(s.projection.wants(topic) for s in self.states)
            if keep:
                items.append(Item(n.id, topic, decode(n), n))
        return page, items

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=len(self.states) + 1, thread_name_prefix="projection"
            )
        return self._executor

    def close(self) -> None:
        self._prefetch = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def run_until_caught_up(
        self,
        stop: threading.Event | None = None,
        progress: Callable[[int], None] | None = None,
        batch_size: int | None = None,
        pause: float = 0.0,
        deadline: float | None = None,
    ) -> int:
        """Applies pages until a read finds nothing new (or `time.monotonic()` passes
        `deadline`); returns the events read."""
        total = 0
        while stop is None or not stop.is_set():
            if deadline is not None and total and time.monotonic() >= deadline:
                break
            result = self.step(batch_size)
            if not result.read:
                break
            total += result.read
            if progress is not None:
                progress(result.read)
            if pause:
                time.sleep(pause)
        return total


# ----------------------------------------------------------------------------- the runner
@dataclass
class ProjectionStatus:
    """Where a projection stands: its position and how far behind the log it is."""

    name: str
    position: int | None  # None: the database could not be read
    max_notification_id: int | None
    lag: int | None
    running: bool
    error: str | None = None
    applied_events: int = 0
    last_batch_at: datetime | None = None
    connection: str = "ok"  # or "lost since <instant>" (the runner's database connection)
    last_error: str | None = None  # the runner's last connection error
    error_at: datetime | None = None
    """When `error` happened (the view has not applied a page since)."""
    error_code: str | None = None
    quarantined: int = 0
    """Unresolved events the view could not apply (skipped; see `quarantine`)."""
    held: int = 0
    """Unresolved later events of those events' cases, not applied either."""
    resolved: int = 0
    """Quarantined events applied since (kept as history)."""

    @property
    def log_head(self) -> int | None:
        return self.max_notification_id

    @property
    def excluded(self) -> int:
        """Events the view's figures leave out (quarantined and held)."""
        return self.quarantined + self.held

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "position": self.position,
            "max_notification_id": self.max_notification_id,
            "lag": self.lag,
            "running": self.running,
            "error": self.error,
            "applied_events": self.applied_events,
            "last_batch_at": self.last_batch_at.isoformat() if self.last_batch_at else None,
            "connection": self.connection,
            "last_error": self.last_error,
            "log_head": self.log_head,
            "error_at": self.error_at.isoformat() if self.error_at else None,
            "error_code": self.error_code,
            "quarantined": self.quarantined,
            "held": self.held,
            "resolved": self.resolved,
            "excluded_events": self.excluded,
        }


@dataclass
class BackgroundRunner:
    """Runs a follower in a daemon thread: polls (SQLite) or waits on NOTIFY (PostgreSQL).

    An error stops the thread (never swallowed): it is kept in `error`, shown by `status()`
    and raised by `catch_up`; a restart resumes from the stored positions. A lost database
    connection is not such an error: it is retried with backoff and shown in `watch`.
    """

    follower: LogFollower
    poll_interval: float = 0.1
    listen: Callable[[threading.Event, float], None] | None = None
    pause: float = 0.0
    error: BaseException | None = None
    watch: ConnectionWatch = field(
        default_factory=lambda: ConnectionWatch("projection runner", logger=log)
    )
    _stop: threading.Event = field(default_factory=threading.Event)
    _wake: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        if self.running:
            return
        self.error = None
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="projections", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        try:
            reload = True
            while not self._stop.is_set():
                try:
                    if reload:
                        self.follower.reload_positions()
                        reload = False
                    self._wake.clear()
                    read = self.follower.run_until_caught_up(self._stop, pause=self.pause)
                    self.watch.restored()
                    if read or self._stop.is_set():
                        continue
                    if self.listen is not None:
                        self.listen(self._wake, self.poll_interval)
                    else:
                        self._wake.wait(self.poll_interval)
                except Exception as error:
                    if not is_connection_error(error):
                        raise
                    reload = True  # positions again from the tracking rows
                    self._stop.wait(self.watch.lost(error))
        except BaseException as error:  # noqa: BLE001 - kept and re-raised to callers
            log.exception("projection runner stopped")
            self.error = error
