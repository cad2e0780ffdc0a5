"""Shared fixtures: a real PostgreSQL database with a fresh schema per test, SQLite settings,
and a container built through the same composition root as production.

PostgreSQL tests skip with a reason when the database is unreachable locally; under CI
(CI=true) an unreachable database fails the run, because a skipped suite hides failures.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from infra.bootstrap import Container, build_container
from infra.settings import Settings

pytest_plugins = ["tests.kafka_fixtures"]

# Property tests check behaviour, never speed (speed is for bench/): no per-example deadline and
# no "too slow" health check, which fail at random on a loaded shared machine (CI runs on one).
# A test's own @settings still sets what it names (max_examples...) over this profile.
hypothesis_settings.register_profile(
    "ledger", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("ledger")

PG_HOST = os.environ.get("TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TEST_PG_USER", "postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _admin_connect(dbname: str = "postgres"):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user=PG_USER,
        dbname=dbname,
        autocommit=True,
        connect_timeout=5,
    )


@pytest.fixture(scope="session")
def pg_database() -> str:
    """Creates (once) the test database `referrals_test[_<xdist worker>]`."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    name = f"referrals_test_{worker}" if worker else "referrals_test"
    try:
        with _admin_connect() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as error:  # noqa: BLE001 - any connection failure means "no database"
        if IN_CI:
            pytest.fail(f"PostgreSQL on {PG_HOST}:{PG_PORT} is required in CI: {error}")
        pytest.skip(f"PostgreSQL on {PG_HOST}:{PG_PORT} unreachable: {error}")
    return name


@pytest.fixture
def pg_schema(pg_database: str) -> Iterator[str]:
    """A fresh schema for one test, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with _admin_connect(pg_database) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield schema
    with _admin_connect(pg_database) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def make_pg_settings(
    pg_database: str, schema: str, data_dir: Path, **overrides: object
) -> Settings:
    """Settings for the PostgreSQL test database and schema."""
    values: dict[str, object] = dict(
        store="postgres",
        pg_host=PG_HOST,
        pg_port=PG_PORT,
        pg_user=PG_USER,
        pg_dbname=pg_database,
        pg_schema=schema,
        pg_pool_size=4,
        data_dir=data_dir,
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def pg_settings(pg_database: str, pg_schema: str, tmp_path: Path) -> Settings:
    """Settings pointing at a fresh PostgreSQL schema."""
    return make_pg_settings(pg_database, pg_schema, tmp_path)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Settings for the embedded default in a temporary folder."""
    return Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Each behavioural test runs on both event stores."""
    if request.param == "sqlite":
        return Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    return request.getfixturevalue("pg_settings")


@pytest.fixture
def pg_container(pg_settings: Settings) -> Iterator[Container]:
    container = build_container(pg_settings)
    yield container
    container.close()


@pytest.fixture
def sqlite_container(sqlite_settings: Settings) -> Iterator[Container]:
    container = build_container(sqlite_settings)
    yield container
    container.close()


@pytest.fixture
def any_container(any_settings: Settings) -> Iterator[Container]:
    container = build_container(any_settings)
    yield container
    container.close()
