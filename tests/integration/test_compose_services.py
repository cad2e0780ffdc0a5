"""Every service of docker-compose.yml, started as compose would start it (no Docker engine
here): the ledger services run their `command` with exactly the compose `environment` plus a
`secrets.env` made by `referrals secrets init`; `postgres` is a private PostgreSQL 15 cluster
set up as the image sets itself up from the compose file (user, password, database) and `kafka`
the test Kafka-protocol broker. Only host names, ports and the data volume are rewritten. Each must become healthy: the
API answers /ready, the workers are still running after a while.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dotenv import dotenv_values

from tests.kafka_broker import free_port
from tests.kafka_fixtures import skip_or_fail

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
WORKER_ALIVE_SECONDS = 8
API_READY_SECONDS = 60


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else [str(w) for w in command]


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL's server programs refuse root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture
def compose_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """What the compose `postgres` service is, on a private cluster of the test machine's
    PostgreSQL 15 (the shared test server has too few free connections for four services
    with the compose pool sizes): its POSTGRES_USER with the POSTGRES_PASSWORD of the
    secrets file (password authentication over TCP) owning POSTGRES_DB. Yields host/port."""
    bindir = Path("/usr/lib/postgresql/15/bin")
    if not (bindir / "initdb").exists():
        skip_or_fail("PostgreSQL 15 server programs (initdb, pg_ctl) are not installed")
    root = Path(tempfile.mkdtemp(prefix="compose-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    started = False
    try:
        subprocess.run(
            _as_postgres(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            _as_postgres(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(root / "log"),
                    "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=90,
        )
        started = True
        yield {"host": "127.0.0.1", "port": str(port), "socket_dir": str(root)}
    finally:
        if started:
            subprocess.run(
                _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


def _create_compose_database(
    server: dict[str, str], env: dict[str, str], secrets: dict[str, str]
) -> None:
    """What the postgres image does with POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB."""
    import psycopg
    from psycopg import sql

    user, database = env["POSTGRES_USER"], env["POSTGRES_DB"]
    with psycopg.connect(
        host=server["socket_dir"],
        port=int(server["port"]),
        user="postgres",
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(secrets["POSTGRES_PASSWORD"])
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(user)
            )
        )


def _stop(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    for process in processes.values():
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_every_compose_service_starts_with_the_compose_environment_and_becomes_healthy(
    compose_postgres: dict[str, str], kafka_broker: Any, tmp_path: Path
) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]

    # secrets.env as the README says; every service's env_file is this file
    secrets_file = tmp_path / "secrets.env"
    made = subprocess.run(
        [
            sys.executable,
            "-c",
            "from infra.cli import main; main()",
            "secrets",
            "init",
            "--log-origin",
            "compose.ledger.test/log",
            "--out",
            str(secrets_file),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert made.returncode == 0, made.stderr
    secrets = {k: v or "" for k, v in dotenv_values(secrets_file).items()}

    # postgres and kafka: the test server and broker stand in for the images
    postgres_env = _environment(services["postgres"])
    _create_compose_database(compose_postgres, postgres_env, secrets)
    assert services["kafka"]["image"].startswith("apache/kafka:")

    ledger = {name: s for name, s in services.items() if "build" in s}
    assert set(ledger) == {"api", "projector", "ingest", "relay"}
    for service in ledger.values():
        files = [f["path"] if isinstance(f, dict) else f for f in service["env_file"]]
        assert files == ["./secrets.env"]

    api_port = free_port()
    rewrites = {  # host names and ports to this machine; the volume to a temporary folder
        "REFERRALS_PG_HOST": compose_postgres["host"],
        "REFERRALS_PG_PORT": compose_postgres["port"],
        "REFERRALS_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
        "REFERRALS_HTTP_HOST": "127.0.0.1",
        "REFERRALS_HTTP_PORT": str(api_port),
        "REFERRALS_DATA_DIR": str(tmp_path / "data"),
    }
    base = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
    }

    def start(name: str) -> subprocess.Popen[bytes]:
        service = ledger[name]
        env = {**base, **secrets, **_environment(service)}
        assert env["REFERRALS_PG_USER"] == postgres_env["POSTGRES_USER"]
        assert env["REFERRALS_PG_DBNAME"] == postgres_env["POSTGRES_DB"]
        for key, value in rewrites.items():
            if key in env or key == "REFERRALS_DATA_DIR":
                env[key] = value
        words = _command(service)
        if words and words[0] == "referrals":
            words = words[1:]
        words = [{"0.0.0.0": "127.0.0.1", "8000": str(api_port)}.get(w, w) for w in words]
        (tmp_path / "data").mkdir(exist_ok=True)
        log = (tmp_path / f"{name}.log").open("wb")
        return subprocess.Popen(
            [sys.executable, "-c", "from infra.cli import main; main()", *words],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def log_of(name: str) -> str:
        return (tmp_path / f"{name}.log").read_text(encoding="utf-8", errors="replace")[-4000:]

    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        # compose order: the API first (it creates the tables), the workers once it is healthy
        processes["api"] = start("api")
        deadline = time.monotonic() + API_READY_SECONDS
        while True:
            if processes["api"].poll() is not None:
                pytest.fail(f"api exited with {processes['api'].returncode}:\n{log_of('api')}")
            try:
                ready = httpx.get(f"http://127.0.0.1:{api_port}/ready", timeout=2)
                if ready.status_code == 200:
                    assert ready.json() == {"status": "ready", "store": "postgres"}
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"api not ready in {API_READY_SECONDS} s:\n{log_of('api')}")
            time.sleep(0.3)
        health = httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=5)
        assert health.status_code == 200  # what the compose health check asks

        for name in ("projector", "ingest", "relay"):
            processes[name] = start(name)
        time.sleep(WORKER_ALIVE_SECONDS)
        for name in ("projector", "ingest", "relay"):
            code = processes[name].poll()
            assert code is None, f"{name} exited with {code}:\n{log_of(name)}"
        assert processes["api"].poll() is None, log_of("api")
        assert httpx.get(f"http://127.0.0.1:{api_port}/ready", timeout=5).status_code == 200
        # the log key of secrets.env signs under the origin of secrets.env
        public = httpx.get(f"http://127.0.0.1:{api_port}/v1/log/public-key", timeout=5)
        if public.status_code == 200:
            assert public.text.startswith("compose.ledger.test/log+")
    finally:
        _stop(processes)
    for name, process in processes.items():  # SIGTERM: each finishes and exits cleanly
        assert process.returncode in (0, -15), (
            f"{name} exited {process.returncode}:\n{log_of(name)}"
        )
