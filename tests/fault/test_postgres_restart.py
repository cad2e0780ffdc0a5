"""PostgreSQL restarted under the API while four agency clients post.

A `referrals serve` subprocess on a PRIVATE PostgreSQL cluster the test starts itself
(tests/private_postgres.py: the machine's shared cluster is never stopped) and a free loopback
port; four clients (three agencies, tokens made with `referrals token create`) post cases event
by event. The private cluster is restarted twice: once with `restart` (fast mode), once stopped for OUTAGE_S seconds and started
again, longer than the library's own 2 s of insert retries, so that clients do see failures.

Proves: every acknowledged event (201/200) is stored exactly once, at the position and version
its answer named; every unacknowledged attempt (connection error, 503, or 409 CONCURRENT_WRITE,
the ADR 0002 "retry with the same id" answer) succeeds when retried with the same `event_id`
(201, or 200 duplicate if the lost attempt had committed); 5xx answers are the documented 503
in the error shape; `/ready` says 503 while the store is down and 200 once it is back.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import auth, live_server, new_case_id, now, opening, request_aid, transfer
from tests.fault.support import (
    assert_error_body,
    cli_token,
    copies,
    stored_events,
    wait_until,
)
from tests.private_postgres import PrivateCluster, private_pg  # noqa: F401 - the fixture

pytestmark = [pytest.mark.fault, pytest.mark.postgres, pytest.mark.slow]

# (agency, its centre): four clients, three agencies (two clients share the provincial police)
CLIENTS = (
    ("lsn-police-investigation", "lsn-centre"),
    ("lsn-police-investigation", "lsn-centre"),
    ("lsn-police-commune-1", "lsn-centre"),
    ("vlg-police-investigation", "vlg-centre"),
)
MAX_CASES_PER_CLIENT = 400  # bound; the clients stop long before (when told to)
MAX_ATTEMPTS = 200  # per event
EVENT_DEADLINE_S = 60.0  # per event: from its first attempt to its acknowledgement
OUTAGE_S = 3.0  # > eventsourcing's own insert retries (10 × 0.2 s)
PAUSE_S = 0.005  # between posts, so that the 2-core machine can also restart PostgreSQL


@dataclass
class Posted:
    event: dict[str, Any]
    status: int  # the acknowledging answer's status: 201 or 200
    body: dict[str, Any]
    failures: list[str] = field(default_factory=list)  # what the earlier attempts met


@dataclass
class Client:
    agency: str
    centre: str
    token: str
    base_url: str
    stop: threading.Event
    posted: list[Posted] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acknowledged(self) -> int:
        with self.lock:
            return len(self.posted)

    def run(self) -> list[Posted]:
        with httpx.Client(base_url=self.base_url, headers=auth(self.token), timeout=15) as http:
            for _ in range(MAX_CASES_PER_CLIENT):
                if self.stop.is_set():
                    break
                case_id = new_case_id(self.agency.split("-")[0].upper())
                t = now() - timedelta(hours=2)
                for event in (
                    opening(case_id, t, agency=self.agency),
                    request_aid(case_id, t + timedelta(minutes=5), agency=self.agency),
                    transfer(
                        case_id, t + timedelta(minutes=10), agency=self.agency, centre=self.centre
                    ),
                ):
                    posted = self.post_until_acknowledged(http, event)
                    with self.lock:
                        self.posted.append(posted)
                    time.sleep(PAUSE_S)
        return self.posted

    def post_until_acknowledged(self, http: httpx.Client, event: dict[str, Any]) -> Posted:
        failures: list[str] = []
        deadline = time.monotonic() + EVENT_DEADLINE_S
        for _ in range(MAX_ATTEMPTS):
            try:
                response = http.post("/v1/events", json=event)
            except httpx.TransportError as error:
                failures.append(type(error).__name__)
            else:
                if response.status_code in (200, 201):
                    body = response.json()
                    assert body["duplicate"] is (response.status_code == 200), body
                    return Posted(event, response.status_code, body, failures)
                error_body = assert_error_body(response)
                retryable = (
                    response.status_code == 503 and error_body["code"] == "STORE_UNAVAILABLE"
                ) or (response.status_code == 409 and error_body["code"] == "CONCURRENT_WRITE")
                assert retryable, (event["event_id"], response.status_code, error_body, failures)
                failures.append(f"{response.status_code} {error_body['code']}")
            assert time.monotonic() < deadline, (event["event_id"], failures[-5:])
            time.sleep(0.1)
        raise AssertionError(f"{event['event_id']} not acknowledged in {MAX_ATTEMPTS} attempts")


def test_acknowledged_events_survive_a_postgres_restart_exactly_once_and_retries_succeed(
    private_pg: PrivateCluster,
    tmp_path: Path,  # noqa: F811
) -> None:
    settings = private_pg.settings(tmp_path)
    with live_server(settings.pg_dbname, tmp_path, settings=settings) as server:
        tokens = [cli_token(server.settings, "agency", "--agency", agency) for agency, _ in CLIENTS]
        stop = threading.Event()
        clients = [
            Client(agency, centre, token, server.base_url, stop)
            for (agency, centre), token in zip(CLIENTS, tokens, strict=True)
        ]

        def acknowledged() -> int:
            return sum(c.acknowledged() for c in clients)

        ready_during_outage: httpx.Response | None = None
        with ThreadPoolExecutor(len(clients)) as pool:
            futures = [pool.submit(c.run) for c in clients]
            try:
                wait_until(lambda: acknowledged() >= 40, 60, message="40 events posted")
                private_pg.restart()
                mark = acknowledged()
                wait_until(
                    lambda: acknowledged() >= mark + 40,
                    90,
                    message="posting resumed after the restart",
                )
                private_pg.stop()
                try:
                    with httpx.Client(base_url=server.base_url, timeout=30) as http:
                        ready_during_outage = http.get("/ready")
                    time.sleep(max(0.0, OUTAGE_S - 0.5))
                finally:
                    private_pg.start()
                mark = acknowledged()
                wait_until(
                    lambda: acknowledged() >= mark + 40,
                    90,
                    message="posting resumed after the outage",
                )
            finally:
                stop.set()
            posted = [p for f in futures for p in f.result(timeout=120)]

        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            ready = wait_until(
                lambda: (r := http.get("/ready")).status_code == 200 and r,
                10,
                interval=0.2,
                message="/ready 200 after the restarts",
            )
        assert ready.json() == {"status": "ready", "store": "postgres"}
        assert ready_during_outage is not None
        assert ready_during_outage.status_code == 503, ready_during_outage.text
        assert assert_error_body(ready_during_outage)["code"] == "STORE_UNAVAILABLE"

        stored = stored_events(server.settings)
        stored_copies = copies(stored)
        by_key = {(e.case_id, e.event_id): e for e in stored}
        sent = [(p.event["case_id"], p.event["event_id"]) for p in posted]
        assert len(set(sent)) == len(sent)
        # every acknowledged event is stored exactly once, and nothing else is stored
        assert {k: n for k, n in stored_copies.items() if n != 1} == {}
        assert set(stored_copies) == set(sent)
        for p in posted:
            row = by_key[(p.event["case_id"], p.event["event_id"])]
            assert p.body["version"] == row.version, (p.body, row)
            if p.status == 201:
                assert p.body["position"] == row.position, (p.body, row)
        # the unacknowledged attempts did happen, and their retries were answered 201 or 200
        retried = [p for p in posted if p.failures]
        assert retried, "the outage was not seen by any client"
        assert all(p.status in (200, 201) for p in retried)
        kinds = Counter(f for p in retried for f in p.failures)
        statuses = Counter(p.status for p in retried)
        print(
            f"\n{len(posted)} events acknowledged; {len(retried)} needed retries "
            f"({dict(kinds)}); retries answered {dict(statuses)}"
        )
