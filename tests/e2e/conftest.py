"""E2E fixtures: the API over a real PostgreSQL schema, through `TestClient` or a real uvicorn
process, with bearer tokens per role and wire events that follow the lifecycle."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from infra.bootstrap import Container, build_container
from infra.http.app import create_app
from infra.settings import Settings
from tests.conftest import _admin_connect, make_pg_settings

VN = timezone(timedelta(hours=7))
POLICE = "lsn-police-investigation"
CENTRE = "lsn-centre"


def new_case_id(prefix: str = "LSN") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def opening(
    case_id: str,
    at: datetime,
    agency: str = POLICE,
    identity: bool = True,
    event_id: str | None = None,
    **data: Any,
) -> dict[str, Any]:
    """A NOTIFICATION_ISSUED that opens a case (with identity by default)."""
    event: dict[str, Any] = {
        "event_id": event_id or f"{case_id}-01",
        "case_id": case_id,
        "type": "NOTIFICATION_ISSUED",
        "agency_id": agency,
        "occurred_at": at.isoformat(),
        "data": {
            "person_id": str(uuid.uuid4()),
            "proceedings_kind": "criminal",
            "procedural_role": "ARRESTED",
            "stage": "INVESTIGATION",
            "eligible_category": "POOR_HOUSEHOLD",
            **data,
        },
    }
    if identity:
        event["identity"] = {"full_name": "Nguyễn Văn An", "date_of_birth": "1990-05-01"}
    return event


def request_aid(case_id: str, at: datetime, agency: str = POLICE, n: int = 2) -> dict[str, Any]:
    return {
        "event_id": f"{case_id}-{n:02d}",
        "case_id": case_id,
        "type": "AID_REQUESTED",
        "agency_id": agency,
        "occurred_at": at.isoformat(),
        "data": {"request_form": "written"},
    }


def transfer(
    case_id: str, at: datetime, agency: str = POLICE, centre: str = CENTRE, n: int = 3
) -> dict[str, Any]:
    return {
        "event_id": f"{case_id}-{n:02d}",
        "case_id": case_id,
        "type": "REQUEST_TRANSFERRED",
        "agency_id": agency,
        "occurred_at": at.isoformat(),
        "data": {"centre_id": centre},
    }


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error_shape(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "field", "message", "message_en", "request_id"}, body
    assert body["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert body["code"] == code, body
    return body


@contextmanager
def pg_schema_for(pg_database: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with _admin_connect(pg_database) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with _admin_connect(pg_database) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@dataclass
class Api:
    """A TestClient over a container, and a way to mint tokens."""

    container: Container
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, role: str, name: str | None = None, **kwargs: Any) -> str:
        secret, _ = self.container.tokens.create(  # type: ignore[union-attr]
            role, name or role, reference=self.container.reference, **kwargs
        )
        return secret


@pytest.fixture
def api(pg_container: Container) -> Iterator[Api]:
    with TestClient(create_app(pg_container)) as client:
        yield Api(pg_container, client)


# ------------------------------------------------------------------------- live uvicorn
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    base_url: str
    settings: Settings
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def server_env(settings: Settings, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFERRALS_")}
    env.update(
        {
            "REFERRALS_STORE": "postgres",
            "REFERRALS_PG_HOST": settings.pg_host,
            "REFERRALS_PG_PORT": str(settings.pg_port),
            "REFERRALS_PG_USER": settings.pg_user,
            "REFERRALS_PG_DBNAME": settings.pg_dbname,
            "REFERRALS_PG_SCHEMA": settings.pg_schema,
            "REFERRALS_PG_POOL_SIZE": "4",
            "REFERRALS_DATA_DIR": str(settings.data_dir),
            "REFERRALS_HTTP_HOST": "127.0.0.1",
            "REFERRALS_HTTP_PORT": str(port),
        }
    )
    return env


@contextmanager
def live_server(
    pg_database: str, data_dir: Path, *extra_args: str, settings: Settings | None = None
) -> Iterator[LiveServer]:
    """`referrals serve` in a subprocess on a fresh schema and a free loopback port (or on
    the given `settings`, e.g. a private cluster's: tests/private_postgres.py)."""
    with nullcontext(None) if settings is not None else pg_schema_for(pg_database) as schema:
        if settings is None:
            settings = make_pg_settings(pg_database, schema, data_dir)
        port = free_port()
        log_path = data_dir / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", "from infra.cli import main; main()", "serve", *extra_args],
                env=server_env(settings, port),
                cwd=data_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = LiveServer(f"http://127.0.0.1:{port}", settings, process, log_path)
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    pytest.fail(f"server exited with {process.returncode}:\n{server.log()}")
                try:
                    if httpx.get(server.base_url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"server did not start in 30 s:\n{server.log()}")
                time.sleep(0.1)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def mint_token(settings: Settings, role: str, **kwargs: Any) -> str:
    """Creates a token in the server's schema through the same composition root."""
    container = build_container(settings)
    try:
        secret, _ = container.tokens.create(  # type: ignore[union-attr]
            role, kwargs.pop("name", role), reference=container.reference, **kwargs
        )
        return secret
    finally:
        container.close()


def now() -> datetime:
    return datetime.now(VN).replace(microsecond=0)
