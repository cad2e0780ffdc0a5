"""`referrals serve` as a real uvicorn process over PostgreSQL: post and read over HTTP."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    POLICE,
    LiveServer,
    auth,
    live_server,
    mint_token,
    new_case_id,
    now,
    opening,
    request_aid,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_serve_posts_and_reads_over_http_when_run_as_a_process(
    pg_database: str, tmp_path: Path
) -> None:
    with live_server(pg_database, tmp_path) as server:
        police = auth(mint_token(server.settings, "agency", agency_id=POLICE))
        inspector = auth(mint_token(server.settings, "inspector", provinces=["LSN"]))
        case_id = new_case_id()
        t = now() - timedelta(hours=1)
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            assert client.get("/ready").json() == {"status": "ready", "store": "postgres"}
            event = opening(case_id, t)
            first = client.post("/v1/events", json=event, headers=police)
            assert first.status_code == 201, first.text
            retry = client.post("/v1/events", json=event, headers=police)
            assert retry.status_code == 200 and retry.json()["duplicate"] is True
            batch = client.post(
                "/v1/events/batch",
                headers=police,
                json={"events": [request_aid(case_id, t + timedelta(minutes=5))]},
            )
            assert batch.json()["recorded"] == 1
            history = client.get(f"/v1/cases/{case_id}/history", headers=inspector)
            assert [e["type"] for e in history.json()["events"]] == [
                "NOTIFICATION_ISSUED",
                "AID_REQUESTED",
            ]
            unauthenticated = client.get(f"/v1/cases/{case_id}")
            assert unauthenticated.status_code == 401
            assert unauthenticated.headers["www-authenticate"] == "Bearer"
            tagged = client.get("/health", headers={"X-Request-ID": "trace-123"})
            assert tagged.headers["x-request-id"] == "trace-123"
        requests = _request_log_lines(server, until_request_id="trace-123")
        assert any(r["request_id"] == "trace-123" and r["status"] == 200 for r in requests)
        assert any(
            r["path"] == "/v1/events" and r["status"] == 201 and r["principal_id"] for r in requests
        )


def _request_log_lines(server: LiveServer, until_request_id: str) -> list[dict]:
    """The server's JSON request log lines, once the given request's line is written."""
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
        requests = [line for line in lines if line.get("msg") == "request"]
        if any(r["request_id"] == until_request_id for r in requests):
            return requests
        if time.monotonic() > deadline:
            pytest.fail(f"no request log line for {until_request_id}:\n{server.log()}")
        time.sleep(0.05)
