"""Deployment, issue 15: `referrals secrets init`, the port and database checks that run before
anything is built, `-h`/`help`, the demo's credentials kept across restarts, the log origin."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from dotenv import dotenv_values

from infra.deployment import SECRET_VARIABLES
from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def referrals(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from infra.cli import main; main()", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_secrets_init_writes_every_compose_secret_0600_and_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "secrets.env"
    made = referrals(
        "secrets", "init", "--log-origin", "ledger.tgpl.test/log", "--out", str(out), cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    values = dotenv_values(out)
    assert set(values) == set(SECRET_VARIABLES)
    assert values["POSTGRES_PASSWORD"] == values["REFERRALS_PG_PASSWORD"]
    assert made.stdout.strip().startswith("ledger.tgpl.test/log+")  # the log's public key
    # production settings from exactly this file validate, and the log key loads
    from infra.transparency.service import load_log_signer

    settings = Settings(
        _env_file=None,
        environment="production",
        data_dir=tmp_path,  # type: ignore[call-arg]
        **{
            k.removeprefix("REFERRALS_").lower(): v
            for k, v in values.items()
            if k.startswith("REFERRALS_")
        },
    )
    assert load_log_signer(settings).name == "ledger.tgpl.test/log"
    before = out.read_bytes()
    again = referrals(
        "secrets", "init", "--log-origin", "x.test/log", "--out", str(out), cwd=tmp_path
    )
    assert again.returncode == 2 and "already exists" in again.stderr
    assert out.read_bytes() == before
    forced = referrals(
        "secrets", "init", "--log-origin", "x.test/log", "--out", str(out), "--force", cwd=tmp_path
    )
    assert forced.returncode == 0 and dotenv_values(out)["REFERRALS_LOG_ORIGIN"] == "x.test/log"
    assert out.stat().st_mode & 0o777 == 0o600


def test_production_refuses_the_placeholder_log_origin(tmp_path: Path) -> None:
    from infra.deployment import generate_secrets
    from infra.settings import PLACEHOLDER_LOG_ORIGIN
    from infra.transparency.service import LogKeyError, load_log_signer

    values = generate_secrets(PLACEHOLDER_LOG_ORIGIN)
    settings = Settings(
        _env_file=None,
        environment="production",
        data_dir=tmp_path,  # type: ignore[call-arg]
        **{
            k.removeprefix("REFERRALS_").lower(): v
            for k, v in values.items()
            if k.startswith("REFERRALS_")
        },
    )
    with pytest.raises(LogKeyError, match="REFERRALS_LOG_ORIGIN"):
        load_log_signer(settings)


def test_the_compose_file_documents_secrets_init_and_pins_its_images() -> None:
    import yaml

    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert "referrals secrets init" in text
    for variable in SECRET_VARIABLES:
        assert variable in text, f"docker-compose.yml does not mention {variable}"
    services = yaml.safe_load(text)["services"]
    postgres = services["postgres"]["image"].split(":")[1]
    assert postgres.count(".") == 1 and postgres.replace(".", "").isdigit(), postgres
    kafka = services["kafka"]["image"].split(":")[1]
    assert kafka.count(".") == 2 and kafka.replace(".", "").isdigit(), kafka
    assert "secrets init" in (ROOT / "README.md").read_text(encoding="utf-8")


def _listening_socket() -> tuple[socket.socket, int]:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    return taken, taken.getsockname()[1]


@pytest.mark.parametrize("command", [(), ("serve",)])
def test_a_taken_port_is_said_at_once_before_anything_is_loaded(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    taken, port = _listening_socket()
    try:
        start = time.monotonic()
        result = referrals(
            *command,
            "--port",
            str(port),
            cwd=tmp_path,
            env={"REFERRALS_DATA_DIR": str(tmp_path / "var")},
        )
        elapsed = time.monotonic() - start
    finally:
        taken.close()
    assert result.returncode == 3, result.stderr
    assert "address already in use" in result.stderr
    assert f"--port {port + 1}" in result.stderr and "Cổng" in result.stderr
    assert "Traceback" not in result.stderr and elapsed < 20
    assert not (tmp_path / "var").exists()  # nothing loaded, no token printed
    assert "demo" not in result.stdout


def test_help_answers_to_dash_h_and_help(tmp_path: Path) -> None:
    for args in (("-h",), ("help",), ("serve", "-h")):
        result = referrals(*args, cwd=tmp_path, timeout=30)
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage" in result.stdout and "--port" in result.stdout, args
    assert not (tmp_path / "var").exists()


@pytest.mark.postgres
def test_a_missing_database_is_said_at_once_with_how_to_create_it(
    pg_database: str, tmp_path: Path
) -> None:
    from tests.conftest import PG_HOST, PG_PORT, PG_USER

    name = f"missing_{uuid.uuid4().hex[:8]}"
    start = time.monotonic()
    result = referrals(
        "serve",
        "--port",
        "1",
        cwd=tmp_path,
        env={
            "REFERRALS_STORE": "postgres",
            "REFERRALS_PG_HOST": PG_HOST,
            "REFERRALS_PG_PORT": str(PG_PORT),
            "REFERRALS_PG_USER": PG_USER,
            "REFERRALS_PG_DBNAME": name,
            "REFERRALS_DATA_DIR": str(tmp_path / "var"),
        },
    )
    assert result.returncode == 2, result.stderr
    assert f"database {name} does not exist on {PG_HOST}:{PG_PORT}" in result.stderr
    assert f"createdb -h {PG_HOST} -p {PG_PORT} -U {PG_USER} {name}" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 3
    assert time.monotonic() - start < 15


def test_demo_credentials_stay_the_same_across_restarts(tmp_path: Path) -> None:
    from infra.bootstrap import build_container
    from infra.http.server import demo_tokens
    from infra.web import ensure_demo_accounts
    from infra.web.accounts import account_store

    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    seen = []
    for _ in range(2):  # two starts of the demo on the same data directory
        container = build_container(settings)
        try:
            accounts = ensure_demo_accounts(container)
            tokens = demo_tokens(container)
            for secret in tokens.values():
                container.tokens.authenticate(secret)  # type: ignore[union-attr]
            store = account_store(container)
            for username, password in accounts:
                assert store.authenticate(username, password).username == username
        finally:
            container.close()
        seen.append((accounts, tokens))
    assert seen[0] == seen[1] and seen[0][0] and seen[0][1]
    kept = tmp_path / "demo-credentials.json"
    assert kept.stat().st_mode & 0o777 == 0o600


def test_load_prints_its_report_in_the_language_of_lang(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from infra.cli.core import LoadReport, _print_load_report, output_language

    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(variable, raising=False)
    assert output_language(None) == "vi"
    monkeypatch.setenv("LANG", "en_GB.UTF-8")
    assert output_language(None) == "en" and output_language("vi") == "vi"
    monkeypatch.setenv("LANG", "vi_VN.UTF-8")
    assert output_language(None) == "vi" and output_language("EN") == "en"
    report = LoadReport(
        recorded=1,
        rejected=[
            (
                3,
                "e-1",
                {
                    "code": "FIELD_REQUIRED",
                    "field": "case_id",
                    "message": "Thiếu trường bắt buộc «case_id».",
                    "message_en": "Required field 'case_id' is missing.",
                },
            )
        ],
    )
    _print_load_report(report, None, "en")
    english = capsys.readouterr().out
    assert "line 3 (e-1): [FIELD_REQUIRED] case_id: Required field 'case_id' is missing." in english
    assert "Thiếu" not in english and "dòng" not in english
    _print_load_report(report, None, "vi")
    vietnamese = capsys.readouterr().out
    assert "dòng 3 (e-1): [FIELD_REQUIRED] case_id: Thiếu trường bắt buộc «case_id»." in vietnamese
