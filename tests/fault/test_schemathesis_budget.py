"""Schemathesis against a running `referrals serve` with a larger budget than
tests/e2e/test_openapi_schemathesis.py (MAX_EXAMPLES per operation instead of 25), a fixed
seed and one worker, so a run sends the same requests every time.

Proves: no operation answers 5xx, and every answer conforms to the OpenAPI document (status
code documented, content type, headers, body schema), for an agency (which may post, so the
write paths are exercised with generated bodies), an inspector (reads of a real case answer
200, so their bodies are checked too) and an administrator.
"""

from __future__ import annotations

import os
import subprocess
import time
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
from tests.e2e.test_openapi_schemathesis import run_schemathesis

pytestmark = [pytest.mark.fault, pytest.mark.postgres, pytest.mark.slow]

MAX_EXAMPLES = 150
SEED = 20260707
# (token, options): every operation as an agency (fuzzing); every read as an inspector
# (coverage: boundary and negative values, then fuzzing); the reads an admin may make.
RUNS = (
    ("agency", ("--phases", "fuzzing")),
    ("inspector", ("--phases", "coverage,fuzzing", "--include-method", "GET")),
    ("admin", ("--phases", "fuzzing", "--include-path-regex",
               "^/v1/(access-log|projections/status|log/.*)$")),
)


def _schemathesis(base_url: str, token: str, config: Path, *options: str
                  ) -> subprocess.CompletedProcess[str]:
    return run_schemathesis(
        base_url, token, config, *options, max_examples=MAX_EXAMPLES, seed=SEED, timeout=240,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # same generation whatever the interpreter
    )


def test_schemathesis_with_a_large_budget_finds_no_5xx_nor_undocumented_answer(
    pg_database: str, tmp_path: Path
) -> None:
    with live_server(pg_database, tmp_path) as server:
        tokens = {"agency": mint_token(server.settings, "agency", agency_id=POLICE),
                  "inspector": mint_token(server.settings, "inspector", provinces=["LSN"]),
                  "admin": mint_token(server.settings, "admin")}
        case_id = new_case_id()
        t = now() - timedelta(hours=2)
        with httpx.Client(base_url=server.base_url, headers=auth(tokens["agency"])) as client:
            for event in (opening(case_id, t), request_aid(case_id, t + timedelta(minutes=5)),
                          transfer(case_id, t + timedelta(minutes=10))):
                assert client.post("/v1/events", json=event).status_code == 201
        config = tmp_path / "schemathesis.toml"
        config.write_text(f'[parameters]\n"path.case_id" = "{case_id}"\n'
                          f'"path.province" = "LSN"\n')
        timings = []
        for name, options in RUNS:
            started = time.monotonic()
            result = _schemathesis(server.base_url, tokens[name], config, *options)
            timings.append((name, round(time.monotonic() - started, 1)))
            assert result.returncode == 0, (
                f"schemathesis ({name} token, {' '.join(options)}) failed:\n"
                f"{result.stdout[-8000:]}\n{result.stderr[-2000:]}\n"
                f"server log tail:\n{server.log()[-4000:]}")
        assert server.process.poll() is None
        assert httpx.get(server.base_url + "/ready", timeout=10).status_code == 200
        print(f"\nschemathesis runs (s): {timings}")
