"""What counts as a lost connection, the backoff's bounds, and one log line per state change."""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import OperationalError as ESOperationalError
from psycopg_pool import PoolTimeout

from infra.settings import Settings
from services.worker_health import (
    Backoff,
    ConnectionWatch,
    is_connection_error,
    read_worker_status,
    status_path,
)


def _wrapped(cause: BaseException) -> ESOperationalError:
    try:
        raise ESOperationalError(str(cause)) from cause
    except ESOperationalError as error:
        return error


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        PoolTimeout("couldn't get a connection after 5.00 sec"),
        psycopg.InterfaceError("the connection is closed"),
        _wrapped(psycopg.OperationalError("connection refused")),
    ],
)
def test_lost_connections_are_recognised(error: BaseException) -> None:
    assert is_connection_error(error)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.DataError("time zone displacement out of range"),
        psycopg.errors.UndefinedTable("relation does not exist"),
        _wrapped(sqlite3.OperationalError("no such table: x")),  # a bug, not an outage
        ValueError("a programming error"),
        KeyError("x"),
    ],
)
def test_other_errors_are_not_connection_errors(error: BaseException) -> None:
    assert not is_connection_error(error)


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    backoff = Backoff(initial=0.2, cap=10.0, rng=random.Random(1))
    delays = [backoff.next() for _ in range(40)]
    assert 0.1 <= delays[0] <= 0.2
    assert 0.2 <= delays[1] <= 0.4
    assert all(0.1 <= d <= 10.0 for d in delays)
    assert max(delays[-10:]) > 5.0  # it does reach the cap's range
    backoff.reset()
    assert backoff.next() <= 0.2


def test_watch_logs_once_per_state_change_and_writes_its_status(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = status_path(tmp_path, "relay")
    watch = ConnectionWatch("relay", path)
    assert read_worker_status(tmp_path, "relay")["connection"] == "ok"
    with caplog.at_level(logging.INFO):
        for _ in range(5):
            watch.lost(psycopg.OperationalError("connection refused\nmore detail"))
        during = read_worker_status(tmp_path, "relay")
        watch.restored()
        watch.restored()
    lines = [r.getMessage() for r in caplog.records]
    assert len([m for m in lines if "connection lost" in m]) == 1, lines
    assert len([m for m in lines if "connection restored" in m]) == 1, lines
    assert during["connection"].startswith("lost since ")
    assert during["last_error"] == "OperationalError: connection refused"
    after = json.loads(path.read_text())
    assert after["connection"] == "ok" and after["outages"] == 1
    assert after["last_error"] == "OperationalError: connection refused"  # kept after


def test_a_dead_workers_status_file_is_not_read(tmp_path: Path) -> None:
    path = status_path(tmp_path, "ingest")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pid": 2**22 + 12345, "connection": "ok"}))
    assert read_worker_status(tmp_path, "ingest") is None


def test_a_programming_error_still_stops_the_projection_worker(tmp_path: Path) -> None:
    """A failing projection is not retried as an outage: run_forever raises it."""
    from infra.bootstrap import build_container
    from tests.factories import POLICE, CaseScript

    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,  # type: ignore[call-arg]
        projections_in_process=False,
    )
    container = build_container(settings)
    try:
        case = CaseScript(holder=POLICE, case_id="LSN-U-0000000001")
        container.referrals.record_batch([case.notification()])
        projection = container.projections.projections["case_index"]

        def broken(batch: object) -> None:
            raise ValueError("a bug in a projection")

        projection.process_batch = broken  # type: ignore[method-assign]
        stop = threading.Event()
        timer = threading.Timer(20, stop.set)  # bound: never hang the suite
        timer.start()
        try:
            with pytest.raises(ValueError, match="a bug in a projection"):
                container.projections.run_forever(stop)
        finally:
            timer.cancel()
    finally:
        container.close()
