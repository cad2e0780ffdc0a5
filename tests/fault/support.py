"""Helpers of the fault suite: the ledger's CLI as a subprocess, what the event store holds,
PostgreSQL restarts, seeded kill points, and checks of the API's error shape.

Every loop here is bounded in count and in time; every random choice takes a seeded RNG.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from infra.settings import Settings
from tests.conftest import PG_HOST, PG_PORT, PG_USER
from tests.integration.kafka_support import settings_env, wait_for
from tests.kafka_fixtures import skip_or_fail

SEED = 20260707
ERROR_KEYS = {"code", "field", "message", "message_en", "request_id"}


# ------------------------------------------------------------------------------ the CLI
def cli(settings: Settings, *args: str, timeout: float = 120,
        stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """`referrals <args>` as a subprocess with the test's settings (never raises on exit code)."""
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", "from infra.cli import main; main()", *args],
        env=settings_env(settings), cwd=data_dir, input=stdin, capture_output=True,
        timeout=timeout, check=False,
    )


def cli_token(settings: Settings, role: str, *options: str) -> str:
    """A bearer token made with `referrals token create` (printed once, last stdout line)."""
    done = cli(settings, "token", "create", "--role", role, "--name", f"fault {role}", *options,
               timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    secret = done.stdout.decode().strip().splitlines()[-1]
    assert secret.startswith("rlt_"), secret
    return secret


def cli_token_id(settings: Settings, secret: str) -> str:
    """The token id of a secret (its second `_`-separated part), as `token list` shows it."""
    listed = cli(settings, "token", "list", "--json", timeout=60)
    assert listed.returncode == 0, listed.stderr.decode(errors="replace")
    ids = [json.loads(line)["token_id"] for line in listed.stdout.decode().splitlines()]
    matching = [token_id for token_id in ids if token_id in secret]
    assert len(matching) == 1, (ids, secret[:20])
    return matching[0]


# ----------------------------------------------------------------------- the event store
def _connect(settings: Settings) -> psycopg.Connection[Any]:
    return psycopg.connect(settings.pg_conninfo(), autocommit=True, connect_timeout=5)


def table_count(settings: Settings, table: str) -> int:
    """Rows in one of the ledger's tables in the test schema (0 if it does not exist)."""
    with _connect(settings) as conn:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
            return 0
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def event_count(settings: Settings) -> int:
    return table_count(settings, "referrals_events")


@dataclass(frozen=True)
class StoredEvent:
    position: int
    case_id: str | None
    event_id: str | None
    version: int
    wire_type: str | None


def stored_events(settings: Settings) -> list[StoredEvent]:
    """Every stored event in log order, decoded by the application's own mapper."""
    from infra.bootstrap import build_container

    container = build_container(settings)
    try:
        app = container.referrals
        out: list[StoredEvent] = []
        start = 1
        for _ in range(10_000):
            page = app.recorder.select_notifications(start=start, limit=1000)
            if not page:
                break
            for notification in page:
                event = app.mapper.to_domain_event(notification)
                out.append(StoredEvent(
                    notification.id, getattr(event, "case_id", None),
                    getattr(event, "event_id", None), event.originator_version,
                    getattr(event, "WIRE_TYPE", None)))
            start = page[-1].id + 1
        return out
    finally:
        container.close()


def copies(events: list[StoredEvent]) -> Counter[tuple[str | None, str | None]]:
    """How many times each (case id, event id) is stored."""
    return Counter((e.case_id, e.event_id) for e in events)


# ------------------------------------------------------------------------------ PostgreSQL
def _cluster() -> tuple[str, str]:
    """(version, name) of the local cluster serving PG_HOST:PG_PORT (skips if none)."""
    if PG_HOST not in ("127.0.0.1", "localhost", "::1") or shutil.which("pg_ctlcluster") is None:
        skip_or_fail("restarting PostgreSQL needs the local Debian cluster (pg_ctlcluster)")
    try:
        versions = os.listdir("/etc/postgresql")
    except OSError:
        versions = []
    if not versions:
        skip_or_fail("no cluster under /etc/postgresql")
    newest = sorted(versions, key=lambda v: [int(p) for p in v.split(".") if p.isdigit()])[-1]
    return newest, "main"


def pg_ctl(action: str) -> None:
    """`pg_ctlcluster <version> main <action>` in fast mode (start | stop | restart)."""
    version, name = _cluster()
    mode = ["-m", "fast"] if action in ("stop", "restart") else []
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", *mode, version, name, action]
    if os.geteuid() != 0:
        command = ["sudo", "-n", *command]
    done = subprocess.run(command, capture_output=True, timeout=90, check=False)
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, f"{command} exited {done.returncode}: {output}"


def postgres_answers() -> bool:
    try:
        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres",
                             connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def wait_for_postgres(timeout: float = 60.0) -> float:
    """Blocks until PostgreSQL accepts connections again; the seconds it took."""
    started = time.monotonic()
    for _ in range(int(timeout / 0.2) + 1):
        if postgres_answers():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            break
        time.sleep(0.2)
    raise AssertionError(f"PostgreSQL did not come back within {timeout}s")


def ensure_postgres_running() -> None:
    """Starts the cluster if a test left it down (so later tests find it)."""
    if postgres_answers():
        return
    try:
        pg_ctl("start")
    except AssertionError:
        pass  # already starting
    wait_for_postgres()


# ------------------------------------------------------------------------------- polling
wait_until = wait_for  # the Kafka tests' bounded poller (tests/integration/kafka_support.py)


# ---------------------------------------------------------------------------- HTTP shapes
def assert_error_body(response: httpx.Response) -> dict[str, Any]:
    """The documented error shape: exactly these keys, strings, and the echoed request id."""
    body = response.json()
    assert isinstance(body, dict) and set(body) == ERROR_KEYS, (response.status_code, body)
    assert isinstance(body["code"], str) and body["code"].isupper(), body
    assert isinstance(body["message"], str) and body["message"], body
    assert isinstance(body["message_en"], str) and body["message_en"], body
    assert body["field"] is None or isinstance(body["field"], str), body
    assert body["request_id"] == response.headers.get("x-request-id"), body
    return body
