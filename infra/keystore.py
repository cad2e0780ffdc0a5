"""Stores for wrapped personal-data keys, erasure tombstones and the personal-data access log.

Kept outside the immutable event log on purpose: destroying a row here is what erases a person.
PostgreSQL in deployments; a SQLite file on the embedded default.

Destroying a key is an UPDATE, and both databases keep the old row version for a while (a dead
tuple in the PostgreSQL heap until vacuum; the old page in SQLite's -wal until a checkpoint).
`purge_erased()` removes those copies from the live database files: run after every erasure
(once per retention run). See docs/adr/0003-personal-data-crypto-shredding.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from infra.sql_tables import PostgresTables, SqliteTables, SqlTables, parse_ts
from services.personal_data import AccessLogEntry, WrappedKey

_DDL = (
    """CREATE TABLE IF NOT EXISTS person_data_keys (
        person_id TEXT PRIMARY KEY,
        master_key_id TEXT,
        wrapped_key BYTEA,
        created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
        erased_at TIMESTAMPTZ
    )""",
    """CREATE TABLE IF NOT EXISTS personal_data_access_log (
        id {serial} PRIMARY KEY,
        at TIMESTAMPTZ NOT NULL,
        principal_id TEXT NOT NULL,
        principal_role TEXT NOT NULL,
        agency_id TEXT,
        person_id TEXT NOT NULL,
        case_id TEXT,
        purpose TEXT NOT NULL,
        province TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS personal_data_access_log_person "
    "ON personal_data_access_log (person_id, at)",
)


class _SqlKeyStore(SqlTables):
    """The KeyStore protocol over our own tables; the store mixin supplies connections."""

    def get(self, person_id: str) -> WrappedKey | None:
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    "SELECT person_id, master_key_id, wrapped_key, erased_at "
                    "FROM person_data_keys WHERE person_id = %s"
                ),
                (person_id,),
            )
            row = cur.fetchone()
        return None if row is None else _key(row)

    def insert_if_absent(self, key: WrappedKey) -> WrappedKey:
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO person_data_keys (person_id, master_key_id, wrapped_key, "
                    "erased_at) VALUES (%s, %s, %s, %s) ON CONFLICT (person_id) DO NOTHING"
                ),
                (key.person_id, key.master_key_id, key.wrapped, self._ts(key.erased_at)),
            )
        stored = self.get(key.person_id)
        if stored is None:  # pragma: no cover - the row was just written
            raise RuntimeError("data key vanished after insert")
        return stored

    def get_many(self, person_ids: Sequence[str]) -> dict[str, WrappedKey]:
        """The stored keys (or tombstones) of these persons, in one query per 500."""
        out: dict[str, WrappedKey] = {}
        ids = list(dict.fromkeys(person_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            with self._cursor() as cur:
                cur.execute(
                    self._sql(
                        "SELECT person_id, master_key_id, wrapped_key, erased_at "
                        "FROM person_data_keys WHERE person_id IN ("
                        + ", ".join(["%s"] * len(chunk))
                        + ")"
                    ),
                    chunk,
                )
                for row in cur.fetchall():
                    out[row[0]] = _key(row)
        return out

    def insert_many_if_absent(self, keys: Sequence[WrappedKey]) -> dict[str, WrappedKey]:
        """`insert_if_absent` for many keys in one transaction; what is stored, by person."""
        if not keys:
            return {}
        with self._cursor() as cur:
            cur.executemany(
                self._sql(
                    "INSERT INTO person_data_keys (person_id, master_key_id, wrapped_key, "
                    "erased_at) VALUES (%s, %s, %s, %s) ON CONFLICT (person_id) DO NOTHING"
                ),
                [(k.person_id, k.master_key_id, k.wrapped, self._ts(k.erased_at)) for k in keys],
            )
        return self.get_many([k.person_id for k in keys])

    def destroy(self, person_id: str, at: datetime) -> bool:
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    "UPDATE person_data_keys SET wrapped_key = NULL, master_key_id = NULL, "
                    "erased_at = %s WHERE person_id = %s AND erased_at IS NULL"
                ),
                (self._ts(at), person_id),
            )
            return bool(cur.rowcount)

    def purge_erased(self) -> bool:  # pragma: no cover - provided by each store
        """Removes old row versions of destroyed keys from the live database files."""
        raise NotImplementedError

    def iter_live(self, batch: int = 1000) -> Iterator[WrappedKey]:
        after = ""
        while True:
            with self._cursor() as cur:
                cur.execute(
                    self._sql(
                        "SELECT person_id, master_key_id, wrapped_key, erased_at "
                        "FROM person_data_keys WHERE erased_at IS NULL AND person_id > %s "
                        "ORDER BY person_id LIMIT %s"
                    ),
                    (after, batch),
                )
                rows = cur.fetchall()
            if not rows:
                return
            for row in rows:
                yield _key(row)
            after = rows[-1][0]

    def replace_wrapping(self, person_id: str, master_key_id: str, wrapped: bytes) -> None:
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    "UPDATE person_data_keys SET master_key_id = %s, wrapped_key = %s "
                    "WHERE person_id = %s AND erased_at IS NULL"
                ),
                (master_key_id, wrapped, person_id),
            )

    def log_access(self, entry: AccessLogEntry) -> None:
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO personal_data_access_log (at, principal_id, principal_role, "
                    "agency_id, person_id, case_id, purpose, province) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                ),
                (
                    self._ts(entry.at),
                    entry.principal_id,
                    entry.principal_role,
                    entry.agency_id,
                    entry.person_id,
                    entry.case_id,
                    entry.purpose,
                    entry.province,
                ),
            )

    def access_log(
        self,
        person_id: str | None = None,
        limit: int = 1000,
        provinces: Iterable[str] | None = None,
    ) -> list[AccessLogEntry]:
        """Newest first; only the given provinces' entries when `provinces` is given."""
        clauses: list[str] = []
        params: list[Any] = []
        if person_id:
            clauses.append("person_id = %s")
            params.append(person_id)
        if provinces is not None:
            wanted = sorted(provinces)
            if not wanted:
                return []
            clauses.append("province IN (" + ", ".join(["%s"] * len(wanted)) + ")")
            params.extend(wanted)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    "SELECT at, principal_id, principal_role, agency_id, person_id, case_id, "
                    f"purpose, province FROM personal_data_access_log {where} "
                    "ORDER BY id DESC LIMIT %s"
                ),
                (*params, limit),
            )
            rows = cur.fetchall()
        return [
            AccessLogEntry(parse_ts(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows
        ]


class SqliteKeyStore(_SqlKeyStore, SqliteTables):
    """Key store in its own SQLite file (embedded default)."""

    def __init__(self, path: Path) -> None:
        self._open_sqlite(path, (ddl.format(serial="INTEGER") for ddl in _DDL))
        # freed bytes (the wrapped key a destroy or a re-wrap replaces) are overwritten by zeros
        self._conn.execute("PRAGMA secure_delete=ON")

    def purge_erased(self, attempts: int = 100, pause: float = 0.05) -> bool:
        """Writes every page back to the database file and truncates the -wal to zero bytes
        (the frames there still hold the pages as they were before the destroy). False if
        another connection kept the checkpoint from completing for `attempts` tries."""
        for _ in range(attempts):
            with self._lock:
                busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return True
            time.sleep(pause)
        return False


# VACUUM (FULL, VERBOSE)'s detail: "N dead row versions cannot be removed yet." (PostgreSQL 12+)
_KEPT_DEAD = re.compile(r"(\d+) dead row versions cannot be removed yet")


class PostgresKeyStore(_SqlKeyStore, PostgresTables):
    """Key store in PostgreSQL tables beside (not inside) the event store."""

    def __init__(self, pool: Any) -> None:
        self._open_postgres(pool, 726354, (ddl.format(serial="BIGSERIAL") for ddl in _DDL))

    def purge_erased(self, wait_seconds: float = 30.0) -> bool:
        """Rewrites `person_data_keys` (VACUUM FULL: a new relation file, its index and TOAST
        rebuilt) so that no dead row version still holds a destroyed key.

        VACUUM must copy a dead version that a transaction of this database may still see, so
        this first waits (up to `wait_seconds`) until no snapshot is older than the destroys,
        and then believes only PostgreSQL's own count ("dead row versions cannot be removed
        yet", from VERBOSE): while it is not 0, or the table's lock is not granted within 2 s,
        the rewrite is retried until the deadline; False if it never succeeded (the caller
        warns; `referrals purge-erased-keys` finishes later). Each rewrite holds the table's
        exclusive lock for milliseconds (one row per person): recording waits, it does not
        fail.
        """
        from psycopg.errors import LockNotAvailable

        kept: list[int] = []

        def on_notice(diagnostic: Any) -> None:
            found = _KEPT_DEAD.search(diagnostic.message_detail or "")
            if found:
                kept.append(int(found.group(1)))

        deadline = time.monotonic() + wait_seconds
        with self._pool.connection() as conn:
            conn.autocommit = True
            conn.add_notice_handler(on_notice)
            try:
                marker = conn.execute("SELECT txid_current()").fetchone()[0]
                while (
                    time.monotonic() < deadline
                    and conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL "
                        "AND age(backend_xmin) >= age((%s %% 4294967296)::text::xid)",
                        (marker,),
                    ).fetchone()[0]
                ):
                    time.sleep(0.1)
                # a short lock wait: while VACUUM queues for its exclusive lock, every writer
                # queues behind it; an open transaction that read the table makes it retry
                conn.execute("SET lock_timeout = '2s'")
                while True:
                    kept.clear()
                    try:
                        conn.execute("VACUUM (FULL, VERBOSE) person_data_keys")
                    except LockNotAvailable:
                        kept.append(-1)
                    if not any(kept):
                        return True
                    if time.monotonic() >= deadline:
                        return False
                    time.sleep(0.5)
            finally:
                conn.remove_notice_handler(on_notice)
                conn.execute("RESET lock_timeout")
                conn.autocommit = False

    # The two calls on the recording path, one round trip each: a single statement needs no
    # BEGIN/COMMIT of its own (a pooled connection is not in autocommit mode, and those are
    # two more round trips per call; recording an event with an identity block made nine).
    @contextmanager
    def _statement(self) -> Iterator[Any]:
        with self._pool.connection() as conn:
            conn.autocommit = True
            try:
                with conn.cursor() as cur:
                    yield cur
            finally:
                conn.autocommit = False

    def get(self, person_id: str) -> WrappedKey | None:
        with self._statement() as cur:
            cur.execute(
                "SELECT person_id, master_key_id, wrapped_key, erased_at "
                "FROM person_data_keys WHERE person_id = %s",
                (person_id,),
            )
            row = cur.fetchone()
        return None if row is None else _key(row)

    def insert_if_absent(self, key: WrappedKey) -> WrappedKey:
        """One statement: insert unless present, and answer the stored row either way."""
        with self._statement() as cur:
            cur.execute(
                "WITH inserted AS (INSERT INTO person_data_keys (person_id, master_key_id, "
                "wrapped_key, erased_at) VALUES (%s, %s, %s, %s) ON CONFLICT (person_id) "
                "DO NOTHING RETURNING person_id, master_key_id, wrapped_key, erased_at) "
                "SELECT * FROM inserted UNION ALL SELECT person_id, master_key_id, wrapped_key, "
                "erased_at FROM person_data_keys WHERE person_id = %s",
                (key.person_id, key.master_key_id, key.wrapped, key.erased_at, key.person_id),
            )
            row = cur.fetchone()
        if row is not None:
            return _key(row)
        # the row we conflicted with was committed after this statement's snapshot
        stored = super().get(key.person_id)
        if stored is None:  # pragma: no cover - the row was just written
            raise RuntimeError("data key vanished after insert")
        return stored


def _key(row: Any) -> WrappedKey:
    wrapped = bytes(row[2]) if row[2] is not None else None
    return WrappedKey(row[0], row[1], wrapped, parse_ts(row[3]) if row[3] else None)
