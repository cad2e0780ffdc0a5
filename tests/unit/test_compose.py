"""docker-compose.yml cannot run here (no Docker engine), so check what can go wrong in it:
every ledger service runs a real `referrals` sub-command with real options, every REFERRALS_*
variable is a Settings field, KRaft is configured, health checks and start order are set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml  # the dev extra's pyyaml

from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
LEDGER_SERVICES = {"api": "serve", "projector": "project", "ingest": "ingest", "relay": "relay"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cli_commands() -> dict[str, Any]:
    import typer.main

    from infra.cli import register_all
    from infra.cli.core import app

    if not any(c.name == "ingest" for c in app.registered_commands):
        register_all(app)
    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    words = command.split() if isinstance(command, str) else [str(w) for w in command]
    return words[1:] if words and words[0] == "referrals" else words


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_every_ledger_service_runs_a_real_referrals_subcommand(
    compose: dict[str, Any], cli_commands: dict[str, Any]
) -> None:
    services = compose["services"]
    assert set(LEDGER_SERVICES) <= set(services)
    for name, expected in LEDGER_SERVICES.items():
        words = command_of(services[name])
        assert words[0] == expected, name
        assert expected in cli_commands, f"`referrals {expected}` is not a CLI command"
        options = {opt for p in cli_commands[expected].params for opt in p.opts}
        for word in words[1:]:
            if word.startswith("--"):
                assert word.split("=", 1)[0] in options, f"{name}: unknown option {word}"


def test_every_referrals_variable_is_a_settings_field(compose: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    seen = set()
    for name, service in compose["services"].items():
        for variable in environment_of(service):
            if variable.startswith("REFERRALS_"):
                seen.add(variable)
                assert variable.removeprefix("REFERRALS_").lower() in fields, (name, variable)
    assert "REFERRALS_STORE" in seen and "REFERRALS_KAFKA_BOOTSTRAP_SERVERS" in seen


def test_ledger_services_are_production_postgres_with_secrets_from_an_env_file(
    compose: dict[str, Any],
) -> None:
    for name in LEDGER_SERVICES:
        service = compose["services"][name]
        env = environment_of(service)
        assert env["REFERRALS_STORE"] == "postgres" and env["REFERRALS_PG_HOST"] == "postgres"
        assert env["REFERRALS_ENVIRONMENT"] == "production"
        for secret in (
            "REFERRALS_MASTER_KEYS",
            "REFERRALS_SESSION_SECRET",
            "REFERRALS_PG_PASSWORD",
            "REFERRALS_ACTIVE_MASTER_KEY_ID",
        ):
            assert secret not in env, f"{name}: {secret} belongs in the env file"
        files = [f["path"] if isinstance(f, dict) else f for f in service["env_file"]]
        assert "./secrets.env" in files
        assert service["build"]["context"] == "."
        # production settings validate once the secrets are there
        Settings(
            _env_file=None,
            **{
                k.removeprefix("REFERRALS_").lower(): v  # type: ignore[arg-type]
                for k, v in env.items()
            },
            master_keys='{"k": "' + "A" * 43 + '="}',
            active_master_key_id="k",
            session_secret="s" * 64,
        )


def test_kafka_runs_in_kraft_mode_on_a_single_node(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = environment_of(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:9093"
    assert "CONTROLLER://:9093" in env["KAFKA_LISTENERS"].split(",")
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert "CONTROLLER:PLAINTEXT" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    assert env["CLUSTER_ID"] and env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    bootstrap = environment_of(compose["services"]["ingest"])["REFERRALS_KAFKA_BOOTSTRAP_SERVERS"]
    assert f"PLAINTEXT://{bootstrap}" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert any(v.endswith(":/var/lib/kafka/data") for v in kafka["volumes"])


def test_health_checks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:15")
    assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])
    assert "kafka-broker-api-versions" in str(services["kafka"]["healthcheck"]["test"])
    assert "/health" in str(services["api"]["healthcheck"]["test"])
    for name in LEDGER_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
    for name in ("ingest", "relay"):
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_the_image_is_python_311_slim_with_the_package_installed() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM python:3.11-slim" in dockerfile
    assert "pip install -c requirements.lock ." in dockerfile
    assert "COPY pyproject.toml README.md requirements.lock ./" in dockerfile
    assert 'ENTRYPOINT ["referrals"]' in dockerfile


def test_the_image_and_the_tests_install_the_same_locked_versions() -> None:
    script = (ROOT / "scripts" / "test").read_text(encoding="utf-8")
    assert '-c requirements.lock -e ".[dev]"' in script
    locked = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            locked[name.lower().replace("_", "-")] = version
    for name in ("eventsourcing", "fastapi", "psycopg", "pydantic", "swagger-ui-bundle"):
        assert name in locked, f"{name} is not locked"
    assert (
        (ROOT / ".ci" / "run")
        .read_text(encoding="utf-8")
        .rstrip()
        .endswith('exec bash scripts/test "$@"')
    )


def test_kafka_clients_checksum_in_c_not_python() -> None:
    """Issue 16: kafka-python computes every record batch's CRC-32C in pure Python unless the
    `crc32c` package is installed (≈ 8× slower consume here); it is a locked dependency."""
    import kafka.record.util

    locked = (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("crc32c==") for line in locked)
    assert kafka.record.util.crc32c_c is not None
    data = b"legal-aid referral" * 100
    assert kafka.record.util.crc32c_c(data) == kafka.record.util.crc32c_py(data)
