"""Schemathesis against the running service's `/openapi.json`: no 5xx, and every response
conforms to what the document says (status, content type, headers, body schema).

Deterministic (fixed seed) and bounded (examples per operation); run once with an agency token
(so posting is exercised) and once with an inspector token (so reads of a real case answer 200).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    POLICE,
    auth,
    live_server,
    mint_token,
    new_case_id,
    now,
    opening,
    request_aid,
    transfer,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance")
MAX_EXAMPLES = 25
SEED = 20260101


def run_schemathesis(
    base_url: str, token: str, config: Path, *options: str,
    max_examples: int = MAX_EXAMPLES, seed: int = SEED, timeout: float = 120,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The schemathesis CLI against a live service (also used by the fault suite's budget)."""
    executable = shutil.which("schemathesis")
    command = [executable] if executable else [sys.executable, "-m", "schemathesis.cli"]
    return subprocess.run(
        [*command, "--no-color", "--config-file", str(config), "run",
         f"{base_url}/openapi.json",
         "-H", f"Authorization: Bearer {token}",
         "--checks", CHECKS,
         "--max-examples", str(max_examples),
         "--seed", str(seed),
         "--no-shrink",
         "--workers", "1",  # CPython 3.11 ast.parse is not thread-safe under hypothesis
         "--request-timeout", "10",
         *options],
        capture_output=True, text=True, timeout=timeout, check=False, env=env,
    )



# (token, options): fuzzing of every operation as an agency; the coverage phase (boundary and
# negative values of every field, deterministic) on single posts and on every read.
RUNS = (
    ("agency", ("--phases", "fuzzing")),
    ("agency", ("--phases", "coverage", "--include-path", "/v1/events")),
    ("inspector", ("--phases", "coverage,fuzzing", "--include-method", "GET")),
)


def test_schemathesis_finds_no_server_error_nor_undocumented_response(
    pg_database: str, tmp_path: Path
) -> None:
    with live_server(pg_database, tmp_path) as server:
        police = mint_token(server.settings, "agency", agency_id=POLICE)
        inspector = mint_token(server.settings, "inspector", provinces=["LSN"])
        case_id = new_case_id()
        t = now() - timedelta(hours=2)
        with httpx.Client(base_url=server.base_url, headers=auth(police)) as client:
            for event in (opening(case_id, t), request_aid(case_id, t + timedelta(minutes=5)),
                          transfer(case_id, t + timedelta(minutes=10))):
                assert client.post("/v1/events", json=event).status_code == 201
        config = tmp_path / "schemathesis.toml"
        config.write_text(f'[parameters]\n"path.case_id" = "{case_id}"\n')
        tokens = {"agency": police, "inspector": inspector}
        for name, options in RUNS:
            result = run_schemathesis(server.base_url, tokens[name], config, *options)
            assert result.returncode == 0, (
                f"schemathesis ({name} token, {' '.join(options)}) failed:\n"
                f"{result.stdout[-8000:]}\n"
                f"{result.stderr[-2000:]}\nserver log tail:\n{server.log()[-4000:]}")
