"""Several instances of every service on one PostgreSQL database (issue 19).

- Two projection workers, one frozen (SIGSTOP) inside its transactions: the other goes on,
  the API's bundle read answers within its wait, and the views equal a single-worker rebuild.
- The relay's lease is fenced: a relay frozen, then resumed after the standby took over,
  publishes nothing more (tests/fault/test_cluster.py::test_relay_*).
- Each service's process holds at most its configured connections, each named.
- A node without the store's keys refuses to start.

Every process of a test is named `referrals-<service>:<schema>-<node>`, so only this test's
connections are counted in pg_stat_activity (the database is shared).
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from infra.bootstrap import build_container
from infra.sample_data import generate_events
from infra.settings import Settings
from tests.conftest import make_pg_settings
from tests.fault.test_worker_kills import dump_all
from tests.integration.kafka_support import start_worker, stop
from tests.integration.test_transparency_witness import transparency_app

pytestmark = [pytest.mark.fault, pytest.mark.postgres, pytest.mark.slow]


def _node(settings: Settings, service: str, node: str, **overrides: Any) -> Settings:
    return settings.model_copy(
        update={"service": service, "instance": f"{settings.pg_schema}-{node}", **overrides}
    )


def _backends(settings: Settings, application_name: str) -> list[tuple[str, Any]]:
    """(state, xact_start) of every connection of one named process."""
    with psycopg.connect(settings.pg_conninfo(), autocommit=True) as conn:
        return conn.execute(
            "SELECT state, xact_start FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchall()


def _in_transaction(settings: Settings, name: str) -> int:
    return sum(
        1
        for state, xact in _backends(settings, name)
        if xact is not None and state in ("idle in transaction", "active")
    )


def _stuck_mid_pipeline(settings: Settings, name: str, idle_timeout: float) -> bool:
    """Whether a session of `name` has stayed idle in transaction, or active but waiting for its
    client (a COPY's rows, a pipeline's Sync), far longer than the session timeouts: the server
    did not end it, so the client froze in the middle of the protocol."""
    with psycopg.connect(settings.pg_conninfo(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM now() - state_change) FROM pg_stat_activity "
            "WHERE application_name = %s AND (state = 'idle in transaction' "
            "OR (state = 'active' AND wait_event = 'ClientRead'))",
            (name,),
        ).fetchall()
    return any(float(age) > idle_timeout * 3 for (age,) in rows)


def _wait(condition: Any, timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
    return condition()


def test_a_frozen_projection_worker_stalls_neither_the_other_worker_nor_api_reads(
    pg_database: str, pg_schema: str, tmp_path: Path
) -> None:
    base = make_pg_settings(
        pg_database,
        pg_schema,
        tmp_path,
        pg_idle_in_transaction_timeout_ms=8000,
        pg_project_statement_timeout_ms=8000,
        projection_busy_backoff_seconds=0.3,
        api_read_wait_seconds=1.0,
    )
    api_settings = _node(base, "api", "api")
    container = build_container(api_settings)
    try:
        now = datetime.now(timezone.utc)
        events = list(
            generate_events(
                19, 400, container.reference, now - timedelta(days=400), now - timedelta(minutes=10)
            )
        )
        for start in range(0, len(events), 500):
            container.referrals.record_batch(events[start : start + 500])
        projections = container.projections
        top = projections.max_notification_id()
        case_id = events[0]["case_id"]

        def tracked() -> dict[str, int]:
            return {n: p.view.position() or 0 for n, p in projections.projections.items()}

        # worker A, frozen while it holds transactions open (retried until a stop lands so)
        a_settings = _node(base, "project", "a")
        a_log = tmp_path / "project-a.log"
        worker_a = start_worker("project", a_settings, a_log, "--batch-size", "97")
        frozen = 0
        try:
            assert _wait(lambda: min(tracked().values()) > 0 or worker_a.poll() is not None, 60), (
                "worker A never applied a page"
            )
            assert worker_a.poll() is None, a_log.read_text()[-3000:]
            for _ in range(40):
                worker_a.send_signal(signal.SIGSTOP)
                time.sleep(0.3)  # its statements in flight finish; its transactions stay
                frozen = _in_transaction(base, a_settings.application_name)
                if frozen:
                    break
                worker_a.send_signal(signal.SIGCONT)
                time.sleep(0.013)
            assert frozen, "worker A was never stopped inside a transaction"
            stopped_at = time.monotonic()
            held = tracked()
            assert min(held.values()) < top, "worker A finished before it was frozen"

            # the API's bundle read (it catches the audit trail up itself) answers in time
            answers: dict[str, Any] = {}
            secret, _ = container.tokens.create(
                "inspector", "inspector", reference=container.reference, provinces=["LSN", "VLG"]
            )

            def read_bundle() -> None:
                with TestClient(transparency_app(container)) as client:  # started, then timed
                    started = time.monotonic()
                    response = client.get(
                        f"/v1/cases/{case_id}/bundle", headers={"Authorization": f"Bearer {secret}"}
                    )
                    answers["seconds"] = time.monotonic() - started
                answers["status"] = response.status_code
                answers["lag"] = response.headers.get("X-Audit-Trail-Lag")

            reader = threading.Thread(target=read_bundle, daemon=True)
            reader.start()
            reader.join(timeout=15)
            assert not reader.is_alive(), "the API's bundle read hangs on the frozen worker"
            assert answers["status"] == 200, answers
            assert answers["seconds"] < 1.0 + 4.0, answers
            assert answers["lag"] is not None

            # worker B goes on and, once A's transactions time out, finishes every view
            b_log = tmp_path / "project-b.log"
            worker_b = start_worker(
                "project",
                _node(base, "project", "b"),
                b_log,
                "--batch-size",
                "89",
                "--until-caught-up",
            )
            try:
                try:
                    code = worker_b.wait(timeout=240)
                except subprocess.TimeoutExpired:
                    code = None
                activity = ""
                if code != 0:  # what every session of this test waits on (for the message)
                    with psycopg.connect(base.pg_conninfo(), autocommit=True) as conn:
                        activity = "\n".join(
                            str(r)
                            for r in conn.execute(
                                "SELECT application_name, state, now() - state_change, now() - xact_start, wait_event, "
                                "left(query, 160) FROM pg_stat_activity WHERE application_name "
                                "LIKE 'referrals-%'"
                            ).fetchall()
                        )
                # A may have frozen anywhere, in the middle of a statement's messages too: its
                # view writes are whole statements (no COPY FROM STDIN, no pipeline), so the
                # server ends its transactions by the session timeouts (issue 19)
                stuck = code != 0 and _stuck_mid_pipeline(base, a_settings.application_name, 8.0)
                assert code == 0, (
                    f"stuck mid-protocol: {stuck}\n" + b_log.read_text()[-6000:] + "\n" + activity
                )
            finally:
                stop(worker_b, signal.SIGKILL)
            assert time.monotonic() - stopped_at < 90
            assert worker_a.poll() is None  # still frozen: B did not wait for it to resume
            assert set(tracked().values()) == {top}
            assert set(projections.positions().values()) == {top}
        finally:
            worker_a.send_signal(signal.SIGCONT)
            time.sleep(1.0)  # resumed: its killed transactions must not write anything
            stop(worker_a, signal.SIGTERM)
        assert set(tracked().values()) == {top}

        two_workers = dump_all(container)
        result = projections.rebuild()  # one runner, from event zero
        assert result["events"] == top
        rebuilt = dump_all(container)
        for name, tables in rebuilt.items():
            for table, rows in tables.items():
                assert Counter(rows) == Counter(two_workers[name][table]), (name, table)
    finally:
        container.close()


# ------------------------------------------------------------------------------- relay
@pytest.mark.kafka
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_relay_frozen_then_resumed_after_losing_its_lease_publishes_nothing(
    pg_database: str, pg_schema: str, tmp_path: Path, kafka_broker: Any
) -> None:
    from infra.kafka.clients import ensure_ledger_topics
    from infra.kafka.relay import LeaseLostError, Relay
    from tests.integration.kafka_support import kafka_settings, read_topic

    base = kafka_settings(
        pg_database,
        pg_schema,
        tmp_path,
        kafka_broker.bootstrap,
        kafka_inbound_agencies="lsn-police",
        kafka_batch_size=5,
    )
    container = build_container(_node(base, "relay", "main"))
    frozen = standby = None
    try:
        ensure_ledger_topics(base, container.reference)
        now = datetime.now(timezone.utc)
        events = list(
            generate_events(
                23, 10, container.reference, now - timedelta(days=30), now - timedelta(hours=1)
            )
        )
        container.referrals.record_batch(events)
        top = container.referrals.recorder.max_notification_id()
        assert top > 10

        a = _node(base, "relay", "a")
        frozen = Relay.connect(a, container.referrals)
        assert frozen.acquire_lease(max_seconds=5)
        assert frozen.publish_batch() == 5
        # frozen here; its lease session ends (keepalives / idle timeout stand-in). Closed from
        # this side: the shared PostgreSQL's backends are never terminated by a test.
        frozen.tracking._conn.close()
        assert frozen.tracking._conn.closed

        standby = Relay.connect(_node(base, "relay", "b"), container.referrals)
        stats = standby.run(max_seconds=60, until_caught_up=True)
        assert stats.position == top
        published = read_topic(
            base.kafka_bootstrap_servers, base.kafka_outbound_topic, at_least=top, settle=0.3
        )
        assert sorted({int(dict(m.headers)["position"]) for m in published}) == list(
            range(1, top + 1)
        )

        # the frozen relay resumes where it was: it publishes (and saves) nothing more
        with pytest.raises(LeaseLostError):
            frozen.publish_batch()
        assert frozen.run(max_seconds=2).published == 5  # back to standby: the lease is held
        after = read_topic(
            base.kafka_bootstrap_servers,
            base.kafka_outbound_topic,
            at_least=len(published),
            settle=0.5,
        )
        assert len(after) == len(published)
        assert standby.tracking.position() == top
    finally:
        for relay in (frozen, standby):
            if relay is not None:
                relay.close()
        container.close()


# -------------------------------------------------------------------------------- keys
def test_a_node_without_the_stores_keys_refuses_to_start(
    pg_database: str, pg_schema: str, tmp_path: Path
) -> None:
    from infra.deployment import DeploymentError
    from infra.transparency.service import transparency_log
    from tests.integration.test_audit_trail import record_cases

    first = make_pg_settings(pg_database, pg_schema, tmp_path / "node-1")
    container = build_container(first)
    try:
        record_cases(container.referrals, 2, identity=True)  # a person's data key, wrapped
        log = transparency_log(container)
        log.catch_up()
        log.publish_checkpoint()  # signed with node 1's log key
    finally:
        container.close()
    build_container(first).close()  # the node that holds the keys starts again

    # a third node with development keys of its own (the same id "dev-1", other material)
    with pytest.raises(DeploymentError) as refused:
        build_container(make_pg_settings(pg_database, pg_schema, tmp_path / "node-3"))
    assert "dev-1" in refused.value.message_en and "does not start" in refused.value.message_en
    assert "khoá chính" in refused.value.message_vi

    # the shared master keys but its own log key: refused too, naming the log key
    (tmp_path / "node-4").mkdir()
    (tmp_path / "node-4" / "master-keys.json").write_bytes(
        (tmp_path / "node-1" / "master-keys.json").read_bytes()
    )
    with pytest.raises(DeploymentError) as refused:
        build_container(make_pg_settings(pg_database, pg_schema, tmp_path / "node-4"))
    assert "log signing key" in refused.value.message_en
    assert "khoá ký nhật ký" in refused.value.message_vi


# -------------------------------------------------------------------- connection budget
def _local_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (from /proc, no extra package)."""
    import os

    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _connections_of(settings: Settings, pid: int) -> list[tuple[str, int]]:
    """(application_name, client port) of every backend connected from process `pid`."""
    ports = _local_ports(pid)
    with psycopg.connect(settings.pg_conninfo(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name, client_port FROM pg_stat_activity "
            "WHERE client_port IS NOT NULL"
        ).fetchall()
    return [(name, port) for name, port in rows if port in ports]


@pytest.mark.kafka
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_each_service_holds_at_most_its_configured_connections_each_named(
    pg_database: str, pg_schema: str, tmp_path: Path, kafka_broker: Any
) -> None:
    import httpx

    from infra.kafka.clients import ensure_ledger_topics
    from tests.integration.kafka_support import kafka_settings

    base = kafka_settings(
        pg_database,
        pg_schema,
        tmp_path,
        kafka_broker.bootstrap,
        kafka_inbound_agencies="lsn-police",
    )
    container = build_container(_node(base, "cli", "setup"))
    procs: dict[str, Any] = {}
    try:
        ensure_ledger_topics(base, container.reference)
        now = datetime.now(timezone.utc)
        container.referrals.record_batch(
            list(
                generate_events(
                    29, 60, container.reference, now - timedelta(days=60), now - timedelta(hours=1)
                )
            )
        )
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        nodes = {
            service: _node(base, service, "n1", http_port=port)
            for service in ("api", "project", "ingest", "relay")
        }
        for service, settings in nodes.items():
            command = "serve" if service == "api" else service
            procs[service] = start_worker(command, settings, tmp_path / f"{service}.log")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

            def answers() -> bool:
                try:
                    return client.get("/ready").status_code == 200
                except httpx.HTTPError:
                    return False

            assert _wait(answers, 60, 0.2), (tmp_path / "api.log").read_text()[-3000:]
            for _ in range(20):
                client.get("/ready")
        top = container.referrals.recorder.max_notification_id()
        assert _wait(lambda: min(container.projections.positions().values()) >= top, 60, 0.2)

        peaks: dict[str, int] = {}
        for _ in range(10):  # sampled while they work and idle
            for service, proc in procs.items():
                assert proc.poll() is None, (tmp_path / f"{service}.log").read_text()[-3000:]
                seen = _connections_of(base, proc.pid)
                named = {name for name, _ in seen}
                assert named == {nodes[service].application_name}, (service, seen)
                peaks[service] = max(peaks.get(service, 0), len(seen))
            time.sleep(0.2)
        for service, peak in peaks.items():
            assert 0 < peak <= nodes[service].connection_budget(), (service, peaks)
        print(
            f"\nconnections per process: {peaks}; budgets: "
            f"{ {s: n.connection_budget() for s, n in nodes.items()} }"
        )
    finally:
        for proc in procs.values():
            stop(proc, signal.SIGTERM)
        container.close()


# ------------------------------------------------------------------------ shared views
def test_two_projection_workers_share_the_views_and_take_over_an_expired_lease(
    pg_database: str, pg_schema: str, tmp_path: Path
) -> None:
    from projections.leases import holders

    base = make_pg_settings(pg_database, pg_schema, tmp_path, projection_lease_seconds=2.0)
    container = build_container(_node(base, "cli", "main"))
    workers: dict[str, Any] = {}
    try:
        now = datetime.now(timezone.utc)
        events = list(
            generate_events(
                31, 300, container.reference, now - timedelta(days=300), now - timedelta(minutes=10)
            )
        )
        for start in range(0, len(events), 500):
            container.referrals.record_batch(events[start : start + 500])
        projections = container.projections
        views = set(projections.projections)
        for node in ("a", "b"):
            workers[node] = start_worker(
                "project",
                _node(base, "project", node),
                tmp_path / f"project-{node}.log",
                "--batch-size",
                "50",
            )

        def split() -> dict[str, set[str]]:
            by_holder: dict[str, set[str]] = {}
            for view, holder in holders(projections.datastore).items():
                by_holder.setdefault(holder.split(":")[1], set()).add(view)
            return by_holder

        shared = _wait(
            lambda: (
                len(split()) == 2
                and set().union(*split().values()) == views
                and all(len(v) == len(views) // 2 for v in split().values())
            ),
            30,
            0.1,
        )
        assert shared, split()
        names = {node: _node(base, "project", node).application_name for node in workers}
        assert set(split()) == {n.split(":")[1] for n in names.values()}

        stop(workers.pop("a"), signal.SIGKILL)  # its leases expire; b takes every view
        container.referrals.record_batch(
            list(
                generate_events(
                    37,
                    40,
                    container.reference,
                    now - timedelta(days=20),
                    now - timedelta(minutes=5),
                )
            )
        )
        top = projections.max_notification_id()
        assert _wait(
            lambda: len(split()) == 1 and set().union(*split().values()) == views, 30, 0.1
        ), split()
        assert _wait(lambda: set(projections.positions().values()) == {top}, 60, 0.2)
        assert stop(workers.pop("b"), signal.SIGTERM) == 0
        assert holders(projections.datastore) == {}  # a clean stop gives its leases back

        shared_run = dump_all(container)
        projections.rebuild()
        rebuilt = dump_all(container)
        for name, tables in rebuilt.items():
            for table, rows in tables.items():
                assert Counter(rows) == Counter(shared_run[name][table]), (name, table)
    finally:
        for proc in workers.values():
            stop(proc, signal.SIGKILL)
        container.close()
