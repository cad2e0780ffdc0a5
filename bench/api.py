"""HTTP rows: single-event posts (wrk, 16 connections) against a FastAPI hello-world POST of
the same body size, and batch posts (1,000 events a request) against `eventsourcing` saving
the same events directly. Both write to the `writes` schema, created afresh for the run.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import orjson

from bench.measure import Figure
from bench.servers import (
    HELLO_SCRIPT,
    HOST,
    WRK_SCRIPT,
    free_port,
    ledger_command,
    run_wrk,
    server,
    uvicorn_command,
)
from bench.store import WRITES_SCHEMA, Target

SINGLE_AGENCY = "lsn-police-investigation"


def _agency_tokens(target: Target, agencies: list[str]) -> dict[str, str]:
    """A fresh agency token per agency in the writes schema (created through the ledger)."""
    from infra.bootstrap import build_container

    container = build_container(target.settings(WRITES_SCHEMA))
    try:
        return {
            a: container.tokens.create(  # type: ignore[union-attr]
                "agency", f"bench {a}", agency_id=a, reference=container.reference
            )[0]
            for a in agencies
        }
    finally:
        container.close()


def _ledger_body_size() -> int:
    """Mean size of the wrk script's two bodies (with and without identity)."""
    base = (
        '{"event_id":"LSN-P-1-00000001-01","case_id":"LSN-P-1-00000001","type":"NOTIFICATION_ISSUED",'
        f'"agency_id":"{SINGLE_AGENCY}","occurred_at":"2026-03-03T09:00:00+07:00","data":'
        '{"person_id":"00000001-0001-4001-8001-000000000001","proceedings_kind":"criminal",'
        '"procedural_role":"ARRESTED","stage":"INVESTIGATION","eligible_category":'
        '"POOR_HOUSEHOLD","sex":"MALE","channel":"PAPER","form":"MAU_03","trigger":"ARREST"}}'
    )
    identity = ',"identity":{"full_name":"Nguyễn Văn An","date_of_birth":"1990-05-01"}'
    return len(base.encode()) + len(identity.encode()) // 2


def single_posts(
    target: Target,
    workers: int,
    seconds: float,
    log: Callable[[str], None],
    connections: int = 16,
    log_level: str = "warning",
) -> list[Figure]:
    """wrk with 16 connections: the ledger's POST /v1/events (durable: every 201 is committed
    with fsync on) against the hello-world POST of the same body size, same uvicorn workers."""
    work = target.data_dir / "http"
    size = _ledger_body_size()
    hello_body = json.dumps({"pad": "x" * max(1, size - 11)})
    port = free_port()
    with server(
        uvicorn_command("bench.hello:app", port, workers),
        f"http://{HOST}:{port}/docs",
        work / "hello.log",
    ):
        run_wrk(
            f"http://{HOST}:{port}/hello", HELLO_SCRIPT, [hello_body], 3, connections, 2, work
        )  # warm-up
        hello = run_wrk(
            f"http://{HOST}:{port}/hello", HELLO_SCRIPT, [hello_body], seconds, connections, 2, work
        )
    log(f"single posts: hello-world {hello['rate']:,.0f}/s (p99 {hello['p99_ms']:.1f} ms)")
    target.fresh_schema(WRITES_SCHEMA)
    token = _agency_tokens(target, [SINGLE_AGENCY])[SINGLE_AGENCY]
    port = free_port()
    prefix = f"LSN-W{datetime.now(timezone.utc):%H%M%S}"  # case ids follow LSN numbering
    env = target.env(WRITES_SCHEMA)
    with server(
        ledger_command(port, workers, log_level),
        f"http://{HOST}:{port}/health",
        work / "ledger.log",
        env=env,
    ):
        run_wrk(
            f"http://{HOST}:{port}/v1/events",
            WRK_SCRIPT,
            [prefix + "w", SINGLE_AGENCY, token, "/v1/events"],
            3,
            connections,
            2,
            work,
        )
        ledger = run_wrk(
            f"http://{HOST}:{port}/v1/events",
            WRK_SCRIPT,
            [prefix, SINGLE_AGENCY, token, "/v1/events"],
            seconds,
            connections,
            2,
            work,
        )
    log(
        f"single posts: ledger {ledger['rate']:,.0f}/s (p99 {ledger['p99_ms']:.1f} ms, "
        f"{ledger['bad']} not 201) {ledger['sample']}"
    )
    ratio = ledger["rate"] / hello["rate"] if hello["rate"] else 0.0
    met = ledger["rate"] >= 1000 and ratio >= 0.45 and ledger["bad"] == 0
    return [
        Figure(
            row="single-event HTTP posts",
            store="postgres",
            what=f"POST /v1/events, {connections} connections, {workers} uvicorn worker(s)",
            value=ledger["rate"],
            unit="events/s",
            baseline_what=f"FastAPI hello-world POST, same body ({size} B), same workers",
            baseline=hello["rate"],
            target="≥ 1,000 events/s and ≥ 0.45 × baseline",
            met=met,
            details={"ledger": ledger, "hello": hello, "seconds": seconds, "log_level": log_level},
        )
    ]


# ------------------------------------------------------------------------------ batch posts
def opening_phases(seed: int, cases: int, reference: Any, prefix: str) -> list[dict[str, Any]]:
    """Each case's events up to the first one another agency records (notification, request,
    transfer to the Centre: all by the opening police agency), in time order. One agency per
    token, and a case's events all from it, so concurrent clients never race on a case."""
    from bench.data import stream_events

    out = []
    opener: dict[str, str | None] = {}
    for event in stream_events(seed, cases, reference, case_prefix=prefix):
        case = event["case_id"]
        if case not in opener:
            opener[case] = event["agency_id"]
        if opener[case] != event["agency_id"]:
            opener[case] = None
        if opener[case] is not None:
            out.append(event)
    return out


def _post(port: int, path: str, token: str, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def batch_posts(
    target: Target,
    workers: int,
    events: int,
    clients: int,
    seed: int,
    log: Callable[[str], None],
    log_level: str = "warning",
) -> list[Figure]:
    """POST /v1/events/batch with 1,000 events a request, `clients` concurrent clients (one
    agency each), against the same events saved by a plain `eventsourcing` application."""
    from bench.baseline import library_save_rate
    from bench.data import cases_for
    from infra.reference_data import load_reference

    reference = load_reference(None)
    wires = opening_phases(seed, cases_for(events) * 3, reference, "BP")[:events]
    by_agency: dict[str, list[dict[str, Any]]] = {}
    for wire in wires:
        by_agency.setdefault(wire["agency_id"], []).append(wire)
    agencies = sorted(by_agency, key=lambda a: -len(by_agency[a]))
    lanes: list[list[tuple[str, bytes, int]]] = [[] for _ in range(clients)]
    target.fresh_schema(WRITES_SCHEMA)
    tokens = _agency_tokens(target, agencies)
    for i, agency in enumerate(agencies):
        items = by_agency[agency]
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            lanes[i % clients].append((tokens[agency], orjson.dumps({"events": chunk}), len(chunk)))
    baseline = library_save_rate(target, wires, log)
    port = free_port()
    totals = {"recorded": 0, "duplicates": 0, "rejected": 0, "requests": 0, "errors": 0}
    codes: dict[str, int] = {}
    lock = threading.Lock()

    def client(lane: list[tuple[str, bytes, int]]) -> None:
        for token, body, _ in lane:
            status, answer = _post(port, "/v1/events/batch", token, body)
            with lock:
                totals["requests"] += 1
                if status != 200:
                    totals["errors"] += 1
                    continue
                result = orjson.loads(answer)
                for key in ("recorded", "duplicates", "rejected"):
                    totals[key] += result[key]
                for item in result["items"]:
                    if item["status"] == "rejected":
                        code = item["error"]["code"]
                        codes[code] = codes.get(code, 0) + 1

    with server(
        ledger_command(port, workers, log_level),
        f"http://{HOST}:{port}/health",
        target.data_dir / "http" / "ledger-batch.log",
        env=target.env(WRITES_SCHEMA),
    ):
        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(lane,)) for lane in lanes if lane]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
        seconds = time.perf_counter() - started
    rate = totals["recorded"] / seconds if seconds else 0.0
    log(
        f"batch posts: {totals['recorded']:,} recorded in {seconds:.1f}s = {rate:,.0f}/s "
        f"({totals}, {codes}); library save {baseline:,.0f}/s"
    )
    return [
        Figure(
            row="batch posts (1,000 per request)",
            store="postgres",
            what=f"POST /v1/events/batch, {clients} clients, {workers} uvicorn worker(s), "
            f"{totals['recorded']:,} events",
            value=rate,
            unit="events/s",
            baseline_what="eventsourcing `Application.save` of the same events, 1,000 a save",
            baseline=baseline,
            target="≥ 30,000 events/s",
            met=rate >= 30_000 and not codes,
            details={"totals": totals, "codes": codes, "seconds": seconds},
        )
    ]
