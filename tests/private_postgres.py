"""A PRIVATE PostgreSQL cluster for tests that stop, restart or kill the database.

The machine's cluster on 127.0.0.1:5432 is shared with other work: a test never stops it,
restarts it or terminates its backends. A test that needs an outage takes the `private_pg`
fixture instead: `initdb` into a fresh temporary directory, `postgres` on a free loopback port
(unix socket in that directory, trust authentication, fsync off), and only THAT cluster is
stopped, started or restarted. The fixture stops it and deletes the directory at the end, also
when the test fails.

As root, the server binaries run as the `postgres` user (`runuser -u postgres --`), which owns
the temporary directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.kafka_fixtures import skip_or_fail

PG_BIN = Path(os.environ.get("TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PrivateCluster:
    """One throw-away cluster: its directory, port, and start / stop / restart."""

    root: Path
    port: int
    host: str = "127.0.0.1"
    user: str = "postgres"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        argv = [str(PG_BIN / command[0]), *command[1:]]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", SERVER_USER, "--", *argv]
        done = subprocess.run(
            argv, capture_output=True, timeout=timeout, check=False, cwd=str(self.root)
        )
        output = (done.stdout + done.stderr).decode(errors="replace")
        assert done.returncode == 0, f"{argv} exited {done.returncode}: {output[-2000:]}"
        return done

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            timeout=120,
        )

    def _options(self) -> str:
        return (
            f"-p {self.port} -c listen_addresses={self.host} "
            f"-c unix_socket_directories={self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )

    def start(self, timeout: float = 60) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            self._options(),
            "-w",
            "-t",
            str(int(timeout)),
            "-l",
            str(self.root / "server.log"),
            "start",
            timeout=timeout + 10,
        )
        self.wait_until_answering(timeout)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", timeout=70)

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def answers(self) -> bool:
        try:
            with psycopg.connect(
                host=self.host, port=self.port, user=self.user, dbname="postgres", connect_timeout=2
            ) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def wait_until_answering(self, timeout: float = 60) -> float:
        started = time.monotonic()
        for _ in range(int(timeout / 0.1) + 1):
            if self.answers():
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"the private cluster on port {self.port} did not answer within {timeout}s"
        )

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        )

    def create_database(self, name: str) -> str:
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def new_schema(self) -> str:
        """A fresh schema in the database `referrals_test`."""
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with self.connect("referrals_test") as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        return schema

    def settings(self, data_dir: Path, **overrides: Any) -> Any:
        """Ledger settings on this cluster: database `referrals_test`, a fresh schema."""
        from tests.conftest import make_pg_settings

        return make_pg_settings(
            "referrals_test",
            self.new_schema(),
            data_dir,
            pg_host=self.host,
            pg_port=self.port,
            pg_user=self.user,
            **overrides,
        )

    def destroy(self) -> None:
        """Stops the cluster (immediate mode if a fast stop fails) and deletes its files."""
        try:
            if self.running():
                try:
                    self.stop("fast")
                except (AssertionError, subprocess.TimeoutExpired):
                    self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_private_cluster() -> PrivateCluster:
    """A new cluster, initialised and running, with the database `referrals_test`."""
    if not (PG_BIN / "initdb").exists():
        skip_or_fail(f"a private PostgreSQL cluster needs the server binaries in {PG_BIN}")
    root = Path(tempfile.mkdtemp(prefix="private-pg-"))
    cluster = PrivateCluster(root=root, port=_free_port())
    try:
        if os.geteuid() == 0:
            account = pwd.getpwnam(SERVER_USER)
            os.chown(root, account.pw_uid, account.pw_gid)
        root.chmod(0o700)
        cluster.init()
        cluster.start()
        cluster.create_database("referrals_test")
    except BaseException:
        cluster.destroy()
        raise
    return cluster


@pytest.fixture
def private_pg() -> Iterator[PrivateCluster]:
    """A private cluster for one test: stopped and deleted afterwards, whatever happens."""
    cluster = start_private_cluster()
    try:
        yield cluster
    finally:
        cluster.destroy()
