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
from services.worker_health import is_connection_error, read_worker_status
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


def _outage(
    cluster: PrivateCluster,
    proc: subprocess.Popen[bytes],
    log: Path,
    settings: Settings,
    workers: tuple[str, ...],
    during: Callable[[], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Stops the private cluster for OUTAGE_S seconds while `proc` runs; the status each
    worker reported during the outage. Fails if the worker died or never reported it."""
    seen: dict[str, dict[str, Any]] = {}
    cluster.stop()
    started = time.monotonic()
    try:
        if during is not None:
            during()
        for worker in workers:
            seen[worker] = wait_until(
                lambda w=worker: (
                    (s := _status(settings, w))["connection"].startswith("lost since") and s
                ),
                OUTAGE_S + 15,
                interval=0.1,
                message=f"{worker} reports the outage",
            )
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
    private_pg: PrivateCluster,
    tmp_path: Path,  # noqa: F811
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
            wait_until(
                lambda: min(container.projections.positions().values()) >= top,
                60,
                message="the views caught up before the outage",
            )
        finally:
            container.close()
        wait_until(lambda: _status(settings, "checkpointer")["worker"] == "checkpointer", 10)

        cli_during: list[Any] = []

        def read_status_during_the_outage() -> None:
            done = cli(settings, "projections", "status", timeout=60)
            assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
            cli_during.extend(json.loads(done.stdout.decode().strip().splitlines()[-1]))

        seen = _outage(
            private_pg,
            worker,
            log,
            settings,
            ("projections", "checkpointer"),
            read_status_during_the_outage,
        )
        assert seen["projections"]["last_error"], seen
        assert {s["connection"][:10] for s in cli_during} == {"lost since"}, cli_during
        assert all(s["position"] is None and s["last_error"] for s in cli_during), cli_during

        container = build_container(settings)
        try:
            after = _record_more(container, 20, rng)
            top = container.projections.max_notification_id()
            assert top >= before + after
            wait_until(
                lambda: min(container.projections.positions().values()) >= top,
                60,
                message="the views caught up after the outage",
            )
            for worker_name in ("projections", "checkpointer"):
                wait_until(
                    lambda w=worker_name: _status(settings, w)["connection"] == "ok",
                    30,
                    message=f"{worker_name} reports ok",
                )
            status = container.projections.status()
            assert {(s.connection, s.lag) for s in status} == {("ok", 0)}, status
            assert all(s.last_error for s in status), status  # the outage's error is kept
            # the checkpointer signed the grown tree after the outage
            from infra.transparency.service import transparency_log

            size = transparency_log(container).view.size()
            wait_until(
                lambda: (
                    (c := transparency_log(container).view.latest_checkpoint()) is not None
                    and c.size >= size
                ),
                30,
                message="a checkpoint after",
            )
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


# ------------------------------------------------------------------------------- relay
def _kafka_settings(
    cluster: PrivateCluster, tmp_path: Path, bootstrap: str, **overrides: Any
) -> Settings:
    from tests.integration.kafka_support import kafka_settings

    schema = cluster.new_schema()
    return kafka_settings(
        "referrals_test",
        schema,
        tmp_path,
        bootstrap,
        pg_host=cluster.host,
        pg_port=cluster.port,
        pg_user=cluster.user,
        projections_in_process=False,
        **overrides,
    )


@kafka_test
def test_relay_survives_a_stopped_database_reports_it_and_publishes_every_event(
    private_pg: PrivateCluster,
    tmp_path: Path,
    kafka_broker: Any,  # noqa: F811
) -> None:
    from infra.kafka.clients import ensure_ledger_topics
    from tests.integration.kafka_support import read_topic, stored

    rng = random.Random(SEED + 13)
    settings = _kafka_settings(
        private_pg,
        tmp_path,
        kafka_broker.bootstrap,
        kafka_inbound_agencies="lsn-police",
        kafka_partitions=2,
        kafka_batch_size=20,
    )

    def published() -> int:
        with psycopg.connect(settings.pg_conninfo(), autocommit=True) as conn:
            if conn.execute("SELECT to_regclass('kafka_relay_tracking')").fetchone()[0] is None:
                return 0
            row = conn.execute("SELECT position FROM kafka_relay_tracking").fetchone()
            return int(row[0]) if row else 0

    container = build_container(settings)
    try:
        ensure_ledger_topics(settings, container.reference)
        _record_more(container, 15, rng)
        top = container.referrals.recorder.max_notification_id()
    finally:
        container.close()
    log = tmp_path / "relay.log"
    worker = start_worker("relay", settings, log)
    try:
        wait_until(lambda: published() >= top, 60, message="relayed before the outage")
        seen = _outage(private_pg, worker, log, settings, ("relay",))
        assert seen["relay"]["last_error"], seen
        container = build_container(settings)
        try:
            _record_more(container, 15, rng)
            top = container.referrals.recorder.max_notification_id()
            wait_until(lambda: published() >= top, 60, message="relayed after the outage")
            wait_until(
                lambda: _status(settings, "relay")["connection"] == "ok",
                30,
                message="the relay reports ok",
            )
            _alive(worker, log)
            notifications = stored(container.referrals)
        finally:
            container.close()
    finally:
        code = stop(worker, signal.SIGTERM)
    output = log.read_text()
    assert code == 0, output[-3000:]
    summary = json.loads(output.strip().splitlines()[-1])["relay"]
    assert summary["connection"] == "ok" and summary["outages"] == 1, summary
    assert output.count(f"relay: {LOST}") == 1, output[-3000:]
    assert output.count(f"relay: {RESTORED}") == 1, output[-3000:]
    records = read_topic(
        settings.kafka_bootstrap_servers, settings.kafka_outbound_topic, at_least=len(notifications)
    )
    messages = [json.loads(r.value) for r in records]
    assert {m["position"] for m in messages} == {n.id for n in notifications}  # no gap
    first_copy: dict[int, bytes] = {}
    for record, value in zip(records, messages, strict=True):
        # a batch in hand when the database went away is republished as the same bytes
        assert first_copy.setdefault(value["position"], record.value) == record.value
    assert len(messages) - len(first_copy) <= settings.kafka_batch_size


# ------------------------------------------------------------------------------ ingest
@kafka_test
def test_ingest_survives_a_stopped_database_reports_it_and_records_each_event_once(
    private_pg: PrivateCluster,
    tmp_path: Path,
    kafka_broker: Any,  # noqa: F811
) -> None:
    from infra.kafka.clients import ensure_ledger_topics, inbound_topic
    from tests.factories import CENTRE, POLICE, CaseScript
    from tests.integration.kafka_support import count_events, produce, stored_event_ids

    rng = random.Random(SEED + 14)
    settings = _kafka_settings(
        private_pg,
        tmp_path,
        kafka_broker.bootstrap,
        kafka_inbound_agencies=POLICE,
        kafka_batch_size=10,
        kafka_store_retry_attempts=3,
        kafka_store_retry_backoff_ms=200,
    )

    def wires_for(cases: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(cases):
            case = CaseScript(holder=POLICE, case_id=f"LSN-O-{rng.getrandbits(40):010x}")
            out += [case.notification(), case.request(), case.transfer(centre=CENTRE)]
        return out

    def send(wires: list[dict[str, Any]]) -> None:
        produce(
            settings.kafka_bootstrap_servers,
            [
                (
                    inbound_topic(settings, w["agency_id"]),
                    w["case_id"].encode(),
                    json.dumps(w, ensure_ascii=False).encode(),
                )
                for w in wires
            ],
        )

    container = build_container(settings)
    try:
        ensure_ledger_topics(settings, container.reference)
    finally:
        container.close()
    wires = wires_for(10)
    send(wires)
    log = tmp_path / "ingest.log"
    worker = start_worker("ingest", settings, log)
    try:
        wait_until(
            lambda: count_events(settings) >= len(wires), 60, message="recorded before the outage"
        )
        during = wires_for(10)  # agencies keep sending while the database is down
        seen = _outage(private_pg, worker, log, settings, ("ingest",), lambda: send(during))
        wires += during
        assert seen["ingest"]["last_error"], seen
        more = wires_for(5)
        send(more)
        wires += more
        wait_until(
            lambda: count_events(settings) >= len(wires), 90, message="recorded after the outage"
        )
        wait_until(
            lambda: _status(settings, "ingest")["connection"] == "ok",
            30,
            message="the ingest reports ok",
        )
        time.sleep(0.5)  # anything redelivered would land now
        _alive(worker, log)
    finally:
        code = stop(worker, signal.SIGTERM)
    output = log.read_text()
    assert code == 0, output[-3000:]
    summary = json.loads(output.strip().splitlines()[-1])["ingest"]
    assert summary["connection"] == "ok" and summary["outages"] >= 1, summary
    assert summary["dead_lettered"] == 0, summary
    assert output.count(f"ingest: {LOST}") == summary["outages"], output[-3000:]
    assert output.count(f"ingest: {RESTORED}") == summary["outages"], output[-3000:]
    container = build_container(settings)
    try:
        recorded = Counter(stored_event_ids(container.referrals))
    finally:
        container.close()
    assert recorded == Counter((w["case_id"], w["event_id"]) for w in wires)  # each once


# ------------------------------------------------------------------ in-process runner
def test_in_process_runner_survives_a_stopped_database_and_status_reports_it(
    private_pg: PrivateCluster,
    tmp_path: Path,  # noqa: F811
) -> None:
    """The API's runner (a thread of `referrals serve`): same rules as the worker."""
    rng = random.Random(SEED + 15)
    settings = _settings(private_pg, tmp_path)
    container = build_container(settings)
    try:
        projections = container.projections
        _record_more(container, 5, rng)
        projections.start()
        projections.catch_up(timeout=30)
        private_pg.stop()
        try:
            wait_until(
                lambda: projections.runner.watch.connection.startswith("lost since"),
                OUTAGE_S + 15,
                interval=0.1,
                message="the runner reports the outage",
            )
            during = projections.status()
            time.sleep(OUTAGE_S)
            assert projections.running, projections.runner.error
        finally:
            private_pg.start()
        assert {s.connection[:10] for s in during} == {"lost since"}, during
        assert all(s.position is None and s.last_error for s in during), during
        for attempt in range(20):  # a client retries a write the dead pool refused (503)
            try:
                _record_more(container, 5, rng)
                break
            except Exception as error:  # noqa: BLE001 - only lost connections are retried
                assert is_connection_error(error) and attempt < 19, error
                time.sleep(0.5)
        projections.catch_up(timeout=60)
        wait_until(lambda: projections.runner.watch.ok, 30, message="the runner reports ok")
        status = projections.status()
        assert {(s.connection, s.lag, s.error) for s in status} == {("ok", 0, None)}, status
        assert projections.running
        interrupted = dump_all(container)
        projections.rebuild(processes=False)
        assert dump_all(container) == interrupted
    finally:
        container.close()
