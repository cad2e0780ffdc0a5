"""Helpers of the fault suite: the ledger's CLI as a subprocess, what the event store holds,
seeded kill points, and checks of the API's error shape.

Every loop here is bounded in count and in time; every random choice takes a seeded RNG.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from infra.settings import Settings
from tests.integration.kafka_support import settings_env, wait_for

SEED = 20260707
ERROR_KEYS = {"code", "field", "message", "message_en", "request_id"}


# ------------------------------------------------------------------------------ the CLI
def cli(
    settings: Settings, *args: str, timeout: float = 120, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`referrals <args>` as a subprocess with the test's settings (never raises on exit code)."""
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", "from infra.cli import main; main()", *args],
        env=settings_env(settings),
        cwd=data_dir,
        input=stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def cli_token(settings: Settings, role: str, *options: str) -> str:
    """A bearer token made with `referrals token create` (printed once, last stdout line)."""
    done = cli(
        settings, "token", "create", "--role", role, "--name", f"fault {role}", *options, timeout=60
    )
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
                out.append(
                    StoredEvent(
                        notification.id,
                        getattr(event, "case_id", None),
                        getattr(event, "event_id", None),
                        event.originator_version,
                        getattr(event, "WIRE_TYPE", None),
                    )
                )
            start = page[-1].id + 1
        return out
    finally:
        container.close()


def copies(events: list[StoredEvent]) -> Counter[tuple[str | None, str | None]]:
    """How many times each (case id, event id) is stored."""
    return Counter((e.case_id, e.event_id) for e in events)


# ------------------------------------------------------------------------------ PostgreSQL
# Tests that stop, restart or kill PostgreSQL use a PRIVATE cluster of their own
# (tests/private_postgres.py, fixture `private_pg`): the machine's cluster is shared and is
# never stopped, restarted, or has its backends terminated by a test.


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
