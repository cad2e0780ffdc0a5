"""Schemathesis against a running `referrals serve` with a larger budget than
tests/e2e/test_openapi_schemathesis.py (MAX_EXAMPLES per operation instead of 25), a fixed
seed and one worker, so a run sends the same requests every time; every check (`--checks all`,
with the same configuration as the e2e test: docs/api.md "What the schema cannot say") and the
stateful phase.

Proves: no operation answers 5xx, every answer conforms to the OpenAPI document (status code
documented, content type, headers, body schema), schema-valid requests are accepted and
schema-invalid ones refused, for an agency (which may post, so the write paths are exercised
with generated bodies), an inspector (reads of a real case answer 200, so their bodies are
checked too) and an administrator.

Bounded for a busy shared machine: 60 examples per operation (the three runs took 44 s, 54 s
and 5 s on two shared cores; 150 examples hit the old 300 s pytest timeout), each run at most
300 s, the test at most 1,200 s.
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
from tests.e2e.test_openapi_schemathesis import run_schemathesis, schemathesis_config

pytestmark = [pytest.mark.fault, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(1200)]

MAX_EXAMPLES = 60
SEED = 20260707
# (token, options): every operation as an agency (fuzzing); every read as an inspector
# (coverage: boundary and negative values, then fuzzing); the reads an admin may make.
RUNS = (
    ("agency", ("--phases", "fuzzing,stateful")),
    ("inspector", ("--phases", "coverage,fuzzing,stateful", "--include-method", "GET")),
    (
        "admin",
        (
            "--phases",
            "fuzzing",
            "--include-path-regex",
            "^/v1/(access-log|projections/status|log/.*)$",
        ),
    ),
)


def _schemathesis(
    base_url: str, token: str, config: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    return run_schemathesis(
        base_url,
        token,
        config,
        *options,
        max_examples=MAX_EXAMPLES,
        seed=SEED,
        timeout=300,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # same generation whatever the interpreter
    )


def test_schemathesis_with_a_large_budget_finds_no_5xx_nor_undocumented_answer(
    pg_database: str, tmp_path: Path
) -> None:
    with live_server(pg_database, tmp_path) as server:
        tokens = {
            "agency": mint_token(server.settings, "agency", agency_id=POLICE),
            "inspector": mint_token(server.settings, "inspector", provinces=["LSN"]),
            "admin": mint_token(server.settings, "admin"),
        }
        case_id = new_case_id()
        t = now() - timedelta(hours=2)
        with httpx.Client(base_url=server.base_url, headers=auth(tokens["agency"])) as client:
            for event in (
                opening(case_id, t),
                request_aid(case_id, t + timedelta(minutes=5)),
                transfer(case_id, t + timedelta(minutes=10)),
            ):
                assert client.post("/v1/events", json=event).status_code == 201
        config = schemathesis_config(tmp_path / "schemathesis.toml", case_id, "LSN")
        timings = []
        for name, options in RUNS:
            started = time.monotonic()
            result = _schemathesis(server.base_url, tokens[name], config, *options)
            timings.append((name, round(time.monotonic() - started, 1)))
            assert result.returncode == 0, (
                f"schemathesis ({name} token, {' '.join(options)}) failed:\n"
                f"{result.stdout[-8000:]}\n{result.stderr[-2000:]}\n"
                f"server log tail:\n{server.log()[-4000:]}"
            )
        assert server.process.poll() is None
        assert httpx.get(server.base_url + "/ready", timeout=10).status_code == 200
        print(f"\nschemathesis runs (s): {timings}")
