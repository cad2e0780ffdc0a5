"""The benchmark's database: created if missing, one schema per purpose, and the dataset
(millions of generated events) loaded once through the ledger's own batch path and reused by
later runs (`--reuse`) as long as it was loaded with the same seed and size.

Schemas in the `referrals_bench` database (never the application's database):
- `dataset` (`dataset_<events>` at other sizes): the log, its views (rebuilt by the rebuild row), keys, a `bench_meta` row;
- `writes`: dropped and created again by every run, for the rows that record events (HTTP,
  Kafka), so the dataset stays what `bench_meta` says it is;
- `baseline`: the plain-`eventsourcing` application of the batch baseline (dropped likewise).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from infra.settings import Settings

DATABASE = "referrals_bench"
DATASET_SCHEMA = "dataset"
FULL_SIZE = 5_000_000


def dataset_schema(events: int) -> str:
    """The schema of a dataset of this size: a quick run never drops the full one."""
    return DATASET_SCHEMA if events == FULL_SIZE else f"{DATASET_SCHEMA}_{events}"


WRITES_SCHEMA = "writes"
BASELINE_SCHEMA = "baseline"
LOAD_BATCH = 1000


@dataclass(frozen=True)
class Target:
    """Where the benchmark writes: the server, the database, the data folder."""

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    database: str = DATABASE
    data_dir: Path = Path("var/bench")
    dataset: str = DATASET_SCHEMA  # the dataset's schema (one per size: see dataset_schema)

    def connect(self, dbname: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=dbname or self.database,
            autocommit=True,
            connect_timeout=10,
            **kwargs,
        )

    def ensure_database(self) -> None:
        """Creates the benchmark database if it is missing (never touches any other)."""
        with self.connect("postgres") as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not found:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def fresh_schema(self, schema: str) -> None:
        with self.connect() as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{schema}"')

    def ensure_schema(self, schema: str) -> None:
        with self.connect() as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')

    def settings(self, schema: str, **overrides: Any) -> Settings:
        """Ledger settings for one schema of the benchmark database (projections not in
        process: the benchmark runs them itself)."""
        values: dict[str, Any] = dict(
            store="postgres",
            pg_host=self.host,
            pg_port=self.port,
            pg_user=self.user,
            pg_dbname=self.database,
            pg_schema=schema,
            data_dir=self.data_dir / schema,
            projections_in_process=False,
            pg_pool_size=4,
        )
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    def env(self, schema: str, **extra: str) -> dict[str, str]:
        """The same settings as REFERRALS_* environment variables (for subprocesses)."""
        out = {
            "REFERRALS_STORE": "postgres",
            "REFERRALS_PG_HOST": self.host,
            "REFERRALS_PG_PORT": str(self.port),
            "REFERRALS_PG_USER": self.user,
            "REFERRALS_PG_DBNAME": self.database,
            "REFERRALS_PG_SCHEMA": schema,
            "REFERRALS_DATA_DIR": str((self.data_dir / schema).resolve()),
            "REFERRALS_PROJECTIONS_IN_PROCESS": "false",
        }
        out.update(extra)
        return out


# ------------------------------------------------------------------------------- the dataset
@dataclass(frozen=True)
class Dataset:
    seed: int
    events: int
    cases: int
    loaded_events: int
    seconds: float
    processes: int
    rejected: int
    reused: bool


def stored_dataset(target: Target) -> dict[str, Any] | None:
    """What `bench_meta` says about the loaded dataset, if there is one."""
    with target.connect() as conn:
        exists = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND "
            "table_name = 'bench_meta'",
            (target.dataset,),
        ).fetchone()
        if not exists:
            return None
        row = conn.execute(f'SELECT meta FROM "{target.dataset}".bench_meta').fetchone()
    return json.loads(row[0]) if row else None


def ensure_dataset(
    target: Target,
    events: int,
    seed: int,
    reuse: bool,
    processes: int,
    log: Callable[[str], None] = print,
) -> Dataset:
    """The dataset of `events` events: reused if `reuse` and the stored one matches,
    otherwise generated and loaded through `Referrals.record_batch` (every rule applies)."""
    from bench.data import cases_for

    target.ensure_database()
    meta = stored_dataset(target)
    if reuse and meta and meta.get("events") == events and meta.get("seed") == seed:
        log(f"dataset: reusing {meta['loaded_events']:,} events loaded {meta['loaded_at']}")
        return Dataset(
            seed,
            events,
            meta["cases"],
            meta["loaded_events"],
            meta["seconds"],
            meta["processes"],
            meta["rejected"],
            True,
        )
    target.fresh_schema(target.dataset)
    cases = cases_for(events)
    log(
        f"dataset: generating and loading {events:,} events ({cases:,} cases, seed {seed}) "
        f"with {processes} process(es)"
    )
    settings = target.settings(target.dataset)
    _prepare(settings)
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        parts = pool.starmap(
            _load_part,
            [(target, seed, cases, events, part, processes) for part in range(processes)],
        )
    seconds = time.perf_counter() - started
    loaded = sum(p[0] for p in parts)
    rejected = sum(p[1] for p in parts)
    codes: dict[str, int] = {}
    for _, _, part_codes in parts:
        for code, n in part_codes.items():
            codes[code] = codes.get(code, 0) + n
    meta = {
        "seed": seed,
        "events": events,
        "cases": cases,
        "loaded_events": loaded,
        "rejected": rejected,
        "rejected_codes": codes,
        "seconds": seconds,
        "processes": processes,
        "loaded_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with target.connect() as conn:
        conn.execute(f'CREATE TABLE "{target.dataset}".bench_meta (meta TEXT NOT NULL)')
        conn.execute(f'INSERT INTO "{target.dataset}".bench_meta VALUES (%s)', (json.dumps(meta),))
    _analyze(target)
    log(
        f"dataset: {loaded:,} events recorded in {seconds:,.0f} s "
        f"({loaded / seconds:,.0f} events/s), {rejected} rejected {codes}"
    )
    return Dataset(seed, events, cases, loaded, seconds, processes, rejected, False)


LOADER_CASE_CACHE = 50_000
"""Cases each loader keeps in memory: about four times the cases running at any moment of the
dataset's history per loader (a larger cache only makes each full garbage collection longer)."""
ANALYZE_AFTER_BATCHES = frozenset({20, 100, 400, 1500})
"""Batches (of the first loader) after which the loaded tables are analysed: this server runs
with autovacuum off, and without statistics the planner misjudges the event store's reads as
the log grows (a DBA analyses during a bulk load)."""


def _analyze(target: Target) -> None:
    with target.connect() as conn:
        conn.execute(f'ANALYZE "{target.dataset}".referrals_events')
        conn.execute(f'ANALYZE "{target.dataset}".person_data_keys')


def _record_batch_retrying(container: Any, batch: list[dict[str, Any]]) -> list[Any]:
    """`record_batch`, again after a lost connection (the server restarting): the batch is
    judged again, and what had been committed comes back as duplicates (counted recorded)."""
    from eventsourcing.persistence import InterfaceError, OperationalError

    for attempt in range(60):  # bounded: about two minutes of a database away
        try:
            return container.referrals.record_batch(batch)
        except (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError):
            if attempt == 59:
                raise
            time.sleep(2)
    raise RuntimeError("unreachable")  # pragma: no cover


def wait_for_database(target: Target, seconds: float = 120.0) -> None:
    """Returns once the server accepts connections (it may be restarting)."""
    deadline = time.monotonic() + seconds
    for _ in range(10_000):  # bounded by the deadline too
        try:
            with target.connect("postgres") as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _prepare(settings: Settings) -> None:
    """Creates the tables once, before the loader processes race to create them."""
    from infra.bootstrap import build_container

    build_container(settings).close()


def _load_part(
    target: Target, seed: int, cases: int, events: int, part: int, parts: int
) -> tuple[int, int, dict[str, int]]:
    """One loader process: its share of the cases (case number ≡ part mod parts), in time
    order, recorded 1,000 at a time through `Referrals.record_batch`."""
    from itertools import islice

    from bench.data import batches, stream_events
    from infra.bootstrap import build_container
    from infra.process_tuning import tune_for_throughput
    from services.referrals import Rejected

    settings = target.settings(target.dataset, case_cache_size=LOADER_CASE_CACHE)
    container = build_container(settings)
    tune_for_throughput()
    recorded = rejected = 0
    codes: dict[str, int] = {}
    try:
        share = events // parts + (1 if part < events % parts else 0)
        stream = islice(
            stream_events(seed, cases, container.reference, part=part, parts=parts), share
        )
        for number, batch in enumerate(batches(stream, LOAD_BATCH)):
            if part == 0 and number in ANALYZE_AFTER_BATCHES:
                _analyze(target)
            for result in _record_batch_retrying(container, batch):
                if isinstance(result, Rejected):
                    rejected += 1
                    codes[result.error.code] = codes.get(result.error.code, 0) + 1
                else:
                    recorded += 1
    finally:
        container.close()
    return recorded, rejected, codes
