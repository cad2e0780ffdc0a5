"""Long-running workers live through a lost database (issue 12).

Each worker runs as a subprocess against a PRIVATE PostgreSQL cluster the test starts itself
(tests/private_postgres.py; the machine's shared cluster is never stopped). The cluster is
stopped for OUTAGE_S seconds — longer than eventsourcing's own 2 s of insert retries — and
started again. Proves, for the projection worker (`referrals project`, with its checkpoint
publisher), the publication relay (`referrals relay`) and the Kafka ingest (`referrals ingest`):
the process is still alive; it reported the outage while it lasted (its status file, and for
the projections `referrals projections status`) with one log line when the connection was lost
and one when it came back; it reports `ok` after; and every event posted before and after the
outage is applied / published / recorded exactly once.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.bootstrap import Container, build_container
from infra.settings import Settings
from infra.worker_health import read_worker_status
from tests.fault.support import SEED, cli, wait_until
from tests.fault.test_worker_kills import _record_more, dump_all, kafka_test
from tests.integration.kafka_support import start_worker, stop
from tests.private_postgres import PrivateCluster, private_pg  # noqa: F401 - the fixture

pytestmark = [pytest.mark.fault, pytest.mark.postgres, pytest.mark.slow]

OUTAGE_S = 3.5  # > eventsourcing's own insert retries (10 × 0.2 s)
LOST = "database connection lost"
RESTORED = "database connection restored"


def _status(settings: Settings, worker: str) -> dict[str, Any]:
    body = read_worker_status(settings.data_dir, worker)
    assert body is not None, f"no live status file of {worker}"
    return body


def _alive(proc: subprocess.Popen[bytes], log: Path) -> None:
    assert proc.poll() is None, f"worker exited {proc.returncode}:\n{log.read_text()[-3000:]}"


def _outage(cluster: PrivateCluster, proc: subprocess.Popen[bytes], log: Path,
            settings: Settings, workers: tuple[str, ...],
            during: Callable[[], None] | None = None) -> dict[str, dict[str, Any]]:
    """Stops the private cluster for OUTAGE_S seconds while `proc` runs; the status each
    worker reported during the outage. Fails if the worker died or never reported it."""
    seen: dict[str, dict[str, Any]] = {}
    cluster.stop()
    started = time.monotonic()
    try:
        for worker in workers:
            seen[worker] = wait_until(
                lambda w=worker: (s := _status(settings, w))["connection"].startswith(
                    "lost since") and s, OUTAGE_S + 15, interval=0.1,
                message=f"{worker} reports the outage")
        if during is not None:
            during()
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
        _alive(proc, log)
    finally:
        cluster.start()
    return seen


def _settings(cluster: PrivateCluster, tmp_path: Path, **overrides: Any) -> Settings:
    return cluster.settings(tmp_path, projections_in_process=False, **overrides)


@pytest.fixture
def container_factory() -> Iterator[Callable[[Settings], Container]]:
    made: list[Container] = []

    def make(settings: Settings) -> Container:
        made.append(build_container(settings))
        return made[-1]

    yield make
    for container in made:
        container.close()


# ------------------------------------------------------------------------- projections
def test_projection_worker_and_checkpointer_survive_a_stopped_database_and_report_it(
    private_pg: PrivateCluster, tmp_path: Path  # noqa: F811
) -> None:
    rng = random.Random(SEED + 12)
    settings = _settings(private_pg, tmp_path, checkpoint_interval_seconds=1)
    container = build_container(settings)
    try:
        before = _record_more(container, 20, rng)
    finally:
        container.close()
    log = tmp_path / "project.log"
    worker = start_worker("project", settings, log)
    try:
        container = build_container(settings)
        try:
            top = container.projections.max_notification_id()
            wait_until(lambda: min(container.projections.positions().values()) >= top, 60,
                       message="the views caught up before the outage")
        finally:
            container.close()
        wait_until(lambda: _status(settings, "checkpointer")["worker"] == "checkpointer", 10)

        cli_during: list[Any] = []

        def read_status_during_the_outage() -> None:
            done = cli(settings, "projections", "status", timeout=60)
            assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
            cli_during.extend(json.loads(done.stdout.decode().strip().splitlines()[-1]))

        seen = _outage(private_pg, worker, log, settings, ("projections", "checkpointer"),
                       read_status_during_the_outage)
        assert seen["projections"]["last_error"], seen
        assert {s["connection"][:10] for s in cli_during} == {"lost since"}, cli_during
        assert all(s["position"] is None and s["last_error"] for s in cli_during), cli_during

        container = build_container(settings)
        try:
            after = _record_more(container, 20, rng)
            top = container.projections.max_notification_id()
            assert top >= before + after
            wait_until(lambda: min(container.projections.positions().values()) >= top, 60,
                       message="the views caught up after the outage")
            for worker_name in ("projections", "checkpointer"):
                wait_until(lambda w=worker_name: _status(settings, w)["connection"] == "ok",
                           30, message=f"{worker_name} reports ok")
            status = container.projections.status()
            assert {(s.connection, s.lag) for s in status} == {("ok", 0)}, status
            assert all(s.last_error for s in status), status  # the outage's error is kept
            # the checkpointer signed the grown tree after the outage
            from infra.transparency.service import transparency_log

            size = transparency_log(container).view.size()
            wait_until(lambda: (c := transparency_log(container).view.latest_checkpoint())
                       is not None and c.size >= size, 30, message="a checkpoint after")
            _alive(worker, log)
            interrupted = dump_all(container)
            result = container.projections.rebuild(processes=False)
            assert result["events"] == top
            assert dump_all(container) == interrupted  # nothing skipped, nothing twice
        finally:
            container.close()
    finally:
        code = stop(worker, signal.SIGTERM)
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert output.count(f"projections: {LOST}") == 1, output[-3000:]
    assert output.count(f"projections: {RESTORED}") == 1, output[-3000:]
    assert output.count(f"checkpointer: {LOST}") == 1, output[-3000:]
    assert output.count(f"checkpointer: {RESTORED}") == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
