"""The composition root: builds every long-lived object of a process from `Settings`.

API, projection worker, Kafka ingest and relay, and the CLI all call `build_container`;
nothing is created at import time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from domain.calendar import VIETNAM_TZ, WorkingCalendar
from domain.deadlines import TimeLimitRule
from domain.reference import ReferenceData
from infra.event_reads import select_events_of
from infra.keystore import PostgresKeyStore, SqliteKeyStore
from infra.private_files import private_dir, private_file, tighten_file
from infra.reference_data import load_calendar, load_reference, load_time_limits
from infra.settings import Settings
from infra.tokens import PostgresTokenStore, SqliteTokenStore, TokenStore
from services.personal_data import MasterKeys, PersonalDataVault, new_master_key, parse_master_keys
from services.referrals import Clock, Referrals, system_clock


@dataclass
class Container:
    """Everything a process needs, built once."""

    settings: Settings
    reference: ReferenceData
    calendar: WorkingCalendar
    rules: tuple[TimeLimitRule, ...]
    vault: PersonalDataVault
    referrals: Referrals
    pg_pool: Any = None
    tokens: TokenStore | None = None  # bearer tokens of the HTTP API
    extras: dict[str, Any] = field(default_factory=dict)
    projections: Any = None  # projections.runtime.Projections (read models and their runner)
    reference_state: Any = None  # infra.reference_state.ReferenceState (issue 14)

    def close(self) -> None:
        """Releases connections (event store, pools, key store)."""
        for extra in list(self.extras.values()):  # the checkpointer reads the projections
            closer = getattr(extra, "close", None)
            if callable(closer):
                closer()
        if self.projections is not None:
            self.projections.close()
        if self.reference_state is not None:
            self.reference_state.app.close()
        self.referrals.close()
        if self.tokens is not None:
            self.tokens.close()
        store = self.vault.store
        if isinstance(store, SqliteKeyStore):
            store.close()
        if self.pg_pool is not None:
            self.pg_pool.close()


def master_keys_from(settings: Settings) -> MasterKeys:
    """Master keys from settings, or (development only) from a generated key file."""
    if settings.master_keys is not None:
        keys = parse_master_keys(settings.master_keys.get_secret_value())
        active = settings.active_master_key_id or sorted(keys)[-1]
        return MasterKeys(keys, active)
    path = settings.keys_file
    if not path.exists():
        private_dir(path.parent)
        document = {"active": "dev-1", "keys": {"dev-1": new_master_key()}}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle)
    tighten_file(path)
    document = json.loads(Path(path).read_text())
    keys = {k: parse_master_keys(json.dumps({k: v}))[k] for k, v in document["keys"].items()}
    return MasterKeys(keys, settings.active_master_key_id or document["active"])


def open_pg_pool(settings: Settings, max_size: int | None = None) -> Any:
    """A psycopg connection pool for our own tables (keys, projections, tokens)."""
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(
        settings.pg_service_conninfo(), min_size=1,
        max_size=max_size or settings.pool_budget()["own"],
        kwargs={"autocommit": False}, open=True, name="referrals",
    )
    pool.wait(timeout=30)
    return pool


@contextmanager
def _creating_tables(pg_pool: Any) -> Iterator[None]:
    """Serialises table creation across processes starting together (uvicorn workers, a
    rebuild's processes): the library's `CREATE OR REPLACE FUNCTION`, run by two processes at
    once, fails with "tuple concurrently updated"."""
    if pg_pool is None:
        yield
        return
    with pg_pool.connection() as conn:
        conn.autocommit = True
        try:
            conn.execute("SET lock_timeout = '120s'")  # starting processes queue here
            conn.execute("SELECT pg_advisory_lock(%s)", (TABLE_CREATION_LOCK,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (TABLE_CREATION_LOCK,))
                conn.execute("RESET lock_timeout")
        finally:
            conn.autocommit = False


TABLE_CREATION_LOCK = 726_355


def build_container(settings: Settings, clock: Clock = system_clock) -> Container:
    """Builds the process's container from settings."""
    reference = load_reference(settings.reference_data_dir)
    calendar = load_calendar(settings.reference_data_dir)
    rules = load_time_limits(settings.reference_data_dir)
    pg_pool = None
    if settings.data_dir.exists():  # keys, stores and tokens live here: 0700 (created so below)
        private_dir(settings.data_dir)
    if settings.store == "postgres":
        from infra.deployment import check_database

        check_database(settings)  # a missing database is said at once, not as a pool timeout
        pg_pool = open_pg_pool(settings)
        store: Any = PostgresKeyStore(pg_pool)
    else:
        private_dir(settings.data_dir)
        private_file(settings.sqlite_file)  # the event store's file, before the library opens it
        store = SqliteKeyStore(settings.data_dir / "personal-data.sqlite")
    vault = PersonalDataVault(store, master_keys_from(settings))
    with _creating_tables(pg_pool):
        referrals = Referrals(
            settings.eventsourcing_env(),
            reference=reference,
            vault=vault,
            rules=rules,
            calendar=calendar,
            clock=clock,
            future_tolerance=timedelta(seconds=settings.future_tolerance_seconds),
            earliest=datetime.combine(settings.earliest_occurrence, time(0), VIETNAM_TZ),
            bulk_reader=select_events_of,
            case_cache_size=settings.case_cache_size,
        )
    tokens: TokenStore = (
        PostgresTokenStore(pg_pool) if pg_pool is not None
        else SqliteTokenStore(settings.data_dir / "api-tokens.sqlite")
    )
    container = Container(settings, reference, calendar, rules, vault, referrals, pg_pool,
                          tokens=tokens)
    from infra.reference_state import ReferenceState, open_reference_versions

    # issue 14: reference data is read from its recorded versions (the files seed version 1)
    with _creating_tables(pg_pool):
        state = ReferenceState(container, open_reference_versions(settings),
                               settings.reference_poll_seconds)
        state.record_shipped()
    state.refresh(force=True)
    container.reference_state = state
    referrals.before_use = state.maybe_refresh
    from projections.runtime import open_projections

    if settings.store == "sqlite" or settings.pool_budget()["projections"] > 0:
        with _creating_tables(pg_pool):  # the relay reads no view: no views' pool (issue 19)
            container.projections = open_projections(container)
    from infra.transparency.service import start_checkpointer, transparency_log

    if settings.environment == "production" and container.projections is not None:
        transparency_log(container).signer  # noqa: B018 - a missing log key fails at start
    from infra.deployment import check_store_keys

    try:  # a node never joins a store whose keys it does not hold (issue 19)
        check_store_keys(container)
    except BaseException:
        container.close()
        raise
    if settings.projections_in_process and settings.store == "sqlite":
        container.projections.start()
        start_checkpointer(container)
    return container
