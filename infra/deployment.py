"""What a deployment needs before anything starts: the secrets file docker-compose.yml reads
(`referrals secrets init`), a database that exists, a free HTTP port.

The checks run before any pool, store or sample data is built, so a wrong setting is said at
once, in Vietnamese then English, with what to do — never as a 30-second pool timeout.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path

import typer

from infra.settings import PLACEHOLDER_LOG_ORIGIN, Settings

EXIT_CONFIGURATION = 2  # a setting or the environment is wrong: fix it and start again
EXIT_PORT_IN_USE = 3

# every variable the services of docker-compose.yml read from ./secrets.env
SECRET_VARIABLES = (
    "POSTGRES_PASSWORD",
    "REFERRALS_PG_PASSWORD",
    "REFERRALS_MASTER_KEYS",
    "REFERRALS_ACTIVE_MASTER_KEY_ID",
    "REFERRALS_SESSION_SECRET",
    "REFERRALS_LOG_ORIGIN",
    "REFERRALS_LOG_SIGNING_KEY",
)


class DeploymentError(RuntimeError):
    """Raised when the environment cannot run the ledger: the message says what to do."""

    def __init__(self, message_vi: str, message_en: str, exit_code: int = EXIT_CONFIGURATION):
        super().__init__(f"{message_vi}\n{message_en}")
        self.message_vi = message_vi
        self.message_en = message_en
        self.exit_code = exit_code


# ------------------------------------------------------------------------------------ secrets
def generate_secrets(log_origin: str, master_key_id: str | None = None) -> dict[str, str]:
    """Fresh values for every variable of SECRET_VARIABLES (the log key named after the origin)."""
    from services.personal_data import new_master_key
    from services.transparency.note import generate_signer

    if not log_origin.strip() or "\n" in log_origin or " " in log_origin:
        raise ValueError("the log origin must be one word, e.g. ledger.tgpl.gov.vn/log")
    key_id = master_key_id or f"mk-{datetime.now(timezone.utc):%Y}-1"
    password = secrets.token_urlsafe(32)
    return {
        "POSTGRES_PASSWORD": password,
        "REFERRALS_PG_PASSWORD": password,
        "REFERRALS_MASTER_KEYS": json.dumps({key_id: new_master_key()}),
        "REFERRALS_ACTIVE_MASTER_KEY_ID": key_id,
        "REFERRALS_SESSION_SECRET": secrets.token_urlsafe(48),
        "REFERRALS_LOG_ORIGIN": log_origin,
        "REFERRALS_LOG_SIGNING_KEY": generate_signer(log_origin).key_text,
    }


def write_secrets_file(path: Path, values: dict[str, str], force: bool = False) -> None:
    """Writes `KEY='value'` lines (mode 0600); FileExistsError unless `force`."""
    for value in values.values():
        if "'" in value or "\n" in value:
            raise ValueError("secret values cannot hold quotes or newlines")
    text = (
        "# Secrets of docker-compose.yml, made by `referrals secrets init`. Never commit.\n"
        + "".join(f"{key}='{value}'\n" for key, value in values.items())
    )
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


# ------------------------------------------------------------------------------------ database
def check_database(settings: Settings, timeout: float = 5.0) -> None:
    """Connects once, directly, to the configured PostgreSQL database; DeploymentError saying
    what is wrong (server down, database missing, password refused) instead of a pool timeout."""
    if settings.store != "postgres":
        return
    import psycopg

    where = f"{settings.pg_host}:{settings.pg_port}"
    name = settings.pg_dbname
    try:
        psycopg.connect(settings.pg_conninfo(), connect_timeout=max(1, int(timeout))).close()
    except psycopg.OperationalError as error:
        text = str(error)
        sqlstate = getattr(error, "sqlstate", None)
        if sqlstate == "3D000" or f'database "{name}" does not exist' in text:
            create = (
                f"createdb -h {settings.pg_host} -p {settings.pg_port} -U {settings.pg_user} {name}"
            )
            raise DeploymentError(
                f"Cơ sở dữ liệu «{name}» không tồn tại trên {where} — hãy tạo bằng: {create}",
                f"database {name} does not exist on {where} — create it with: {create}",
            ) from None
        if sqlstate == "28P01" or "password authentication failed" in text:
            raise DeploymentError(
                f"PostgreSQL trên {where} từ chối mật khẩu của người dùng «{settings.pg_user}» "
                "(REFERRALS_PG_PASSWORD).",
                f"PostgreSQL on {where} refused the password of user {settings.pg_user} "
                "(REFERRALS_PG_PASSWORD).",
            ) from None
        first_line = text.strip().splitlines()[-1] if text.strip() else type(error).__name__
        raise DeploymentError(
            f"Không kết nối được PostgreSQL trên {where} (REFERRALS_PG_HOST, "
            f"REFERRALS_PG_PORT): {first_line}",
            f"cannot connect to PostgreSQL on {where} (REFERRALS_PG_HOST, REFERRALS_PG_PORT): "
            f"{first_line}",
        ) from None


# ---------------------------------------------------------------------------------------- port
def check_port_free(host: str, port: int) -> None:
    """DeploymentError (exit 3) when nothing could listen on host:port, before any work."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            other = port + 1 if port < 65535 else 8001
            raise DeploymentError(
                f"Cổng {host}:{port} đang được dùng (address already in use) — dừng chương "
                f"trình đang dùng cổng này, hoặc chọn cổng khác: --port {other}",
                f"port {host}:{port} is already in use (address already in use) — stop what "
                f"uses it, or choose another port: use --port {other}",
                exit_code=EXIT_PORT_IN_USE,
            ) from None


def fail(error: DeploymentError) -> typer.Exit:
    """Prints the error's two lines on stderr; the typer.Exit to raise (no traceback)."""
    print(error.message_vi, file=sys.stderr)
    print(error.message_en, file=sys.stderr, flush=True)
    return typer.Exit(code=error.exit_code)


def is_placeholder_origin(origin: str) -> bool:
    return origin == PLACEHOLDER_LOG_ORIGIN


# ------------------------------------------------------------------------------- store keys
def check_store_keys(container: object) -> None:
    """DeploymentError unless this node holds the keys the store was written with (issue 19):
    every master key id wrapping a person's data key, and the log key that signed the
    latest checkpoint. A node started with keys of its own (a development key file made on
    this node) would otherwise sign receipts with another log key and fail to open
    identities sealed by the other nodes. Checked in every environment."""
    from infra.transparency.service import load_log_signer
    from services.transparency.note import split_note

    settings = container.settings  # type: ignore[attr-defined]
    master_keys = container.vault.master_keys  # type: ignore[attr-defined]
    configured = set(master_keys.ids)
    samples = _recorded_master_keys(container)
    missing = sorted(set(samples) - configured)
    for key_id, (person_id, wrapped) in sorted(samples.items()):
        if key_id in configured and wrapped is not None:
            try:  # the same id with other key material (a development key of this node)
                master_keys.unwrap(person_id, key_id, bytes(wrapped))
            except Exception:  # noqa: BLE001 - any failure to open means another key
                missing.append(key_id)
    if missing:
        raise DeploymentError(
            f"Kho dữ liệu dùng khoá chính {', '.join(missing)} mà nút này không có "
            f"(REFERRALS_MASTER_KEYS có: {', '.join(sorted(configured)) or 'không'}). Hãy cấu "
            "hình cùng các khoá chính như các nút khác; nút này không khởi động.",
            f"the store uses master key(s) {', '.join(missing)} that this node does not hold "
            f"(REFERRALS_MASTER_KEYS has: {', '.join(sorted(configured)) or 'none'}). Configure "
            "the same master keys as the other nodes; this node does not start.",
        )
    projections = getattr(container, "projections", None)
    if projections is None or "audit_trail" not in projections:
        return
    latest = projections.view("audit_trail").latest_checkpoint()
    if latest is None:
        return
    signer = load_log_signer(settings)
    _, signatures = split_note(latest.note)
    if not any(s.name == signer.name and s.key_hash == signer.key_hash for s in signatures):
        signed_by = ", ".join(f"{s.name}+{s.key_hash.hex()}" for s in signatures) or "?"
        mine = f"{signer.name}+{signer.key_hash.hex()}"
        raise DeploymentError(
            f"Điểm kiểm mới nhất của sổ (kích thước {latest.size}) được ký bằng khoá {signed_by}, "
            f"không phải khoá ký của nút này ({mine}). Hãy cấu hình cùng khoá ký nhật ký "
            "(REFERRALS_LOG_SIGNING_KEY) như các nút khác; nút này không khởi động.",
            f"the log's latest checkpoint (size {latest.size}) is signed by {signed_by}, not by "
            f"this node's log key ({mine}). Configure the same log signing key "
            "(REFERRALS_LOG_SIGNING_KEY) as the other nodes; this node does not start.",
        )


def _recorded_master_keys(container: object) -> dict[str, tuple[str, bytes | None]]:
    """Per master key id used in the store, one (person id, wrapped data key) it wraps."""
    sql = (
        "SELECT master_key_id, person_id, wrapped_key FROM person_data_keys WHERE person_id "
        "IN (SELECT min(person_id) FROM person_data_keys WHERE master_key_id IS NOT NULL "
        "GROUP BY master_key_id) AND master_key_id IS NOT NULL"
    )
    pool = getattr(container, "pg_pool", None)
    if pool is not None:
        with pool.connection() as conn:
            exists = conn.execute("SELECT to_regclass('person_data_keys')").fetchone()[0]
            rows = conn.execute(sql).fetchall() if exists else []
            conn.rollback()
        return {str(r[0]): (str(r[1]), r[2]) for r in rows}
    import sqlite3

    path = container.settings.data_dir / "personal-data.sqlite"  # type: ignore[attr-defined]
    if not path.exists():
        return set()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # no table yet
        rows = []
    finally:
        conn.close()
    return {str(r[0]): (str(r[1]), r[2]) for r in rows}
