"""Our own small tables beside the event store (keys, tokens, web accounts): one way to open
them on SQLite (embedded default) and on PostgreSQL (a psycopg pool), with SQL written once.

SQL uses `%s` placeholders; `_sql()` adapts them to the store. Timestamps go in through `_ts()`
(aware datetimes on PostgreSQL, UTC ISO-8601 text on SQLite, so text order is time order).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from infra.private_files import private_file


class SqlTables:
    """SQL written once with `%s` placeholders; a store subclass provides `_cursor()`."""

    placeholder = "%s"

    @contextmanager
    def _cursor(self) -> Iterator[Any]:  # pragma: no cover - provided by the store mixins
        raise NotImplementedError
        yield

    def _sql(self, text: str) -> str:
        return text.replace("%s", self.placeholder)

    @staticmethod
    def _ts(value: datetime | None) -> Any:
        return value


class SqliteTables(SqlTables):
    """Tables in their own SQLite file, one connection serialised by a lock."""

    placeholder = "?"

    @staticmethod
    def _ts(value: datetime | None) -> Any:
        return value.astimezone(timezone.utc).isoformat() if value is not None else None

    def _open_sqlite(self, path: Path, ddl: Iterable[str]) -> None:
        private_file(path)  # 0600 in a 0700 directory; SQLite's -wal/-shm take its mode
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._lock = threading.Lock()
        for statement in ddl:
            self._conn.execute(statement)

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                yield cur
            finally:
                cur.close()

    def close(self) -> None:
        self._conn.close()


class PostgresTables(SqlTables):
    """Tables in PostgreSQL, each use a transaction from the container's pool."""

    def _open_postgres(self, pool: Any, lock_id: int, ddl: Iterable[str]) -> None:
        """Creates the tables once, serialised across processes by an advisory lock."""
        self._pool = pool
        with self._cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id,))
            for statement in ddl:
                cur.execute(statement)

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    def close(self) -> None:
        """The pool belongs to the container."""


def parse_ts(value: Any) -> datetime:
    """A stored timestamp back as an aware datetime (either store)."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
