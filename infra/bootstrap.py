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
from typing import TYPE_CHECKING, Any

from domain.calendar import VIETNAM_TZ, WorkingCalendar
from domain.deadlines import TimeLimitRule
from domain.reference import ReferenceData
from infra.event_reads import select_events_of
from infra.keystore import PostgresKeyStore, SqliteKeyStore
from infra.private_files import private_dir, private_file, tighten_file
from infra.projection_runtime import Projections, open_projections
from infra.reference_data import load_calendar, load_reference, load_time_limits, versions
from infra.settings import Settings
from infra.tokens import PostgresTokenStore, SqliteTokenStore, TokenStore
from infra.transparency.service import (
    CheckpointPublisher,
    TransparencyLog,
    start_checkpointer,
)
from services.group_recording import GroupRecorder
from services.personal_data import MasterKeys, PersonalDataVault, new_master_key, parse_master_keys
from services.referrals import Clock, Referrals, system_clock

if TYPE_CHECKING:  # imported for the annotations only (no pool or web code at import time)
    from psycopg_pool import ConnectionPool

    from infra.reference_state import ReferenceState
    from infra.sql_tables import SqlTables
    from infra.web.accounts import AccountStore


@dataclass
class Container:
    """Everything a process needs, built once by `build_container`: each long-lived service a
    named, typed field (the last ones are made on first use, then kept and closed here)."""

    settings: Settings
    reference: ReferenceData
    calendar: WorkingCalendar
    rules: tuple[TimeLimitRule, ...]
    vault: PersonalDataVault
    referrals: Referrals
    pg_pool: ConnectionPool | None = None  # our own tables (keys, projections, tokens)
    tokens: TokenStore | None = None  # bearer tokens of the HTTP API
    group_recorder: GroupRecorder = field(init=False)  # posts arriving together share a commit
    # read models and their runner; None in a process that reads no view (the relay, issue 19)
    projections: Projections | None = None
    # checkpoints, receipts, proofs, bundles (needs the audit trail: None without projections)
    transparency: TransparencyLog | None = None
    reference_state: ReferenceState | None = None  # recorded reference versions (issue 14)
    checkpointer: CheckpointPublisher | None = None  # set by transparency.start_checkpointer
    web_accounts: AccountStore | None = None  # opened by infra.web.accounts.account_store
    # the published council reports (issue 13 item 4), opened by infra.published_reports.store_of
    published_reports: SqlTables | None = None

    def reference_versions(self) -> dict[str, str]:
        """The version of every reference document (reports, /health): the recorded versions
        (issue 14), or the shipped files' version strings before any is recorded."""
        state = self.reference_state
        if state is not None and state.refs.records:
            return dict(state.versions_map())
        return versions(self.settings.reference_data_dir)

    def report_deadlines(self) -> dict[str, Any]:
        """Per province, the council's report due dates (issue 20: a provincial plan)."""
        from infra.reference_data import load_report_deadlines

        return load_report_deadlines(self.settings.reference_data_dir)

    def checkpoint_for_position(self, position: int) -> tuple[int, bytes, str]:
        """(size, root, signed note) of the log's checkpoint at `position` (what a report
        computed up to `position` is bound to)."""
        from infra.transparency.service import checkpoint_for_position

        return checkpoint_for_position(self, position)

    def close(self) -> None:
        """Releases connections (event store, pools, key store)."""
        if self.checkpointer is not None:  # it reads the projections: stopped before them
            self.checkpointer.close()
        if self.web_accounts is not None:
            self.web_accounts.close()
        if self.published_reports is not None:
            self.published_reports.close()
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
        settings.pg_service_conninfo(),
        min_size=1,
        max_size=max_size or settings.pool_budget()["own"],
        kwargs={"autocommit": False},
        open=True,
        name="referrals",
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
        PostgresTokenStore(pg_pool)
        if pg_pool is not None
        else SqliteTokenStore(settings.data_dir / "api-tokens.sqlite")
    )
    container = Container(
        settings, reference, calendar, rules, vault, referrals, pg_pool, tokens=tokens
    )
    container.group_recorder = GroupRecorder(referrals)
    from infra.reference_state import ReferenceState, open_reference_versions

    # issue 14: reference data is read from its recorded versions (the files seed version 1)
    with _creating_tables(pg_pool):
        state = ReferenceState(
            container, open_reference_versions(settings), settings.reference_poll_seconds
        )
        state.record_shipped()
    state.refresh(force=True)
    container.reference_state = state
    referrals.before_use = state.maybe_refresh
    if settings.store == "sqlite" or settings.pool_budget()["projections"] > 0:
        with _creating_tables(pg_pool):  # the relay reads no view: no views' pool (issue 19)
            container.projections = open_projections(container)
        container.transparency = TransparencyLog(container)
        if settings.environment == "production":
            container.transparency.signer  # noqa: B018 - a missing log key fails at start
    from infra.deployment import check_store_keys

    try:  # a node never joins a store whose keys it does not hold (issue 19)
        check_store_keys(container)
    except BaseException:
        container.close()
        raise
    if settings.projections_in_process and settings.store == "sqlite" and container.projections:
        container.projections.start()
        start_checkpointer(container)
    return container
