"""`referrals account create | list | disable` as a process, on the embedded SQLite default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from infra.settings import Settings
from infra.web.accounts import open_account_store


def _run(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFERRALS_")}
    env["REFERRALS_DATA_DIR"] = str(tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", "account", *args],
        input=stdin,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_account_create_reads_the_password_from_stdin_and_binds_the_scope(tmp_path: Path) -> None:
    done = _run(
        tmp_path,
        "create",
        "--username",
        "thanhtra.lsn",
        "--role",
        "inspector",
        "--province",
        "LSN",
        "--name",
        "Thanh tra Lạng Sơn",
        "--password-stdin",
        stdin="mot-mat-khau-dai\n",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "username": "thanhtra.lsn",
        "role": "inspector",
        "provinces": ["LSN"],
    }
    store = open_account_store(Settings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]
    try:
        account = store.authenticate("thanhtra.lsn", "mot-mat-khau-dai")
        assert account.principal.display_name == "Thanh tra Lạng Sơn"
    finally:
        store.close()
    listed = _run(tmp_path, "list")
    assert json.loads(listed.stdout)["provinces"] == ["LSN"]
    assert "mot-mat-khau-dai" not in listed.stdout
    assert json.loads(_run(tmp_path, "disable", "thanhtra.lsn").stdout)["disabled"] is True


def test_account_create_refused_when_council_has_two_provinces(tmp_path: Path) -> None:
    done = _run(
        tmp_path,
        "create",
        "--username",
        "hoidong",
        "--role",
        "council",
        "--province",
        "LSN",
        "--province",
        "VLG",
        "--password-stdin",
        stdin="mot-mat-khau-dai\n",
    )
    assert done.returncode == 2
    assert "exactly one province" in done.stderr + done.stdout
