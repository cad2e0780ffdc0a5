"""`referrals token create | list | revoke` and what the API makes of the tokens, on both
stores (SQLite embedded default, PostgreSQL)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import typer
from typer.testing import CliRunner

from domain.errors import DomainError
from infra.bootstrap import build_container
from infra.cli.api import register
from infra.settings import Settings
from infra.tokens import token_hash


def _env(settings: Settings) -> dict[str, str]:
    env = {"REFERRALS_DATA_DIR": str(settings.data_dir), "REFERRALS_STORE": settings.store}
    if settings.store == "postgres":
        env.update(
            {
                "REFERRALS_PG_HOST": settings.pg_host,
                "REFERRALS_PG_PORT": str(settings.pg_port),
                "REFERRALS_PG_USER": settings.pg_user,
                "REFERRALS_PG_DBNAME": settings.pg_dbname,
                "REFERRALS_PG_SCHEMA": settings.pg_schema,
            }
        )
    return env


def test_token_create_list_revoke_when_run_from_the_cli(any_settings: Settings) -> None:
    cli = typer.Typer()
    register(cli)
    runner = CliRunner()
    env = _env(any_settings)
    created = runner.invoke(
        cli,
        [
            "token",
            "create",
            "--role",
            "agency",
            "--agency",
            "lsn-police-investigation",
            "--name",
            "CSĐT Lạng Sơn",
        ],
        env=env,
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("rlt_")
    refused = runner.invoke(
        cli, ["token", "create", "--role", "agency", "--agency", "nope", "--name", "x"], env=env
    )
    assert refused.exit_code == 2
    listed = runner.invoke(cli, ["token", "list", "--json"], env=env)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["role"], r["agency_id"], r["provinces"], r["status"]) for r in rows] == [
        ("agency", "lsn-police-investigation", ["LSN"], "active")
    ]
    assert secret not in listed.stdout

    container = build_container(any_settings)
    try:
        assert container.tokens.authenticate(secret).agency_id == "lsn-police-investigation"
        with container.tokens._cursor() as cur:  # only the hash is stored
            cur.execute("SELECT token_hash FROM api_tokens")
            assert [r[0] for r in cur.fetchall()] == [token_hash(secret)]
    finally:
        container.close()

    revoked = runner.invoke(cli, ["token", "revoke", rows[0]["token_id"]], env=env)
    assert revoked.exit_code == 0 and json.loads(revoked.stdout)["revoked"] is True
    container = build_container(any_settings)
    try:
        with pytest.raises(DomainError) as caught:
            container.tokens.authenticate(secret)
        assert caught.value.code == "NOT_AUTHENTICATED"
    finally:
        container.close()


def test_token_expires_when_its_time_is_over(any_settings: Settings) -> None:
    container = build_container(any_settings)
    try:
        start = datetime.now(timezone.utc)
        secret, record = container.tokens.create(
            "inspector",
            "i",
            provinces=["LSN"],
            expires_at=start + timedelta(hours=1),
            reference=container.reference,
        )
        assert container.tokens.authenticate(secret, now=start).provinces == {"LSN"}
        with pytest.raises(DomainError, match="expired"):
            container.tokens.authenticate(secret, now=start + timedelta(hours=2))
        assert record.status(start + timedelta(hours=2)) == "expired"
    finally:
        container.close()


def test_demo_tokens_replace_the_previous_ones_when_the_demo_restarts(
    sqlite_settings: Settings,
) -> None:
    from infra.http.server import create_demo_tokens

    container = build_container(sqlite_settings)
    try:
        first = create_demo_tokens(container)
        assert container.tokens.authenticate(first["inspector"]).provinces == {"LSN", "VLG"}
        second = create_demo_tokens(container)
        assert container.tokens.authenticate(second["agency"]).agency_id == (
            "lsn-police-investigation"
        )
        for old in first.values():
            with pytest.raises(DomainError):
                container.tokens.authenticate(old)
    finally:
        container.close()
