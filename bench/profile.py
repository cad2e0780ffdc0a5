"""`python -m bench.profile [--store sqlite|postgres] [--events N]`: where a post's CPU goes.

The per-row explanations of bench/RESULTS.md (issue 16: "the profile that explains the remaining
cost") come from here. Runs in one process, no sockets: the ASGI app is driven by httpx's
ASGITransport with 16 concurrent clients (as wrk's 16 connections), under yappi's CPU clock (all
threads: the sync routes run in the thread pool), first for the FastAPI hello-world POST of the
same body size (the single-post row's baseline), then for the ledger's POST /v1/events, then for
POST /v1/events/batch (1,000 a request). Prints, per event, the CPU of the whole request and
of the parts the ledger adds (µs, inclusive; parts overlap where one calls another), as JSON.

CPU time, not wall time: on the shared 2-core machine the figures hold under load (the
profiler's own overhead inflates Python-heavy parts alike; compare parts, not totals, with wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

# what the ledger adds to a request, by the functions that do it (name, module suffix)
PARTS: dict[str, tuple[str, str]] = {
    "request validation (pydantic, wire model)": (
        "request_body_to_args",
        "fastapi/dependencies/utils.py",
    ),
    "authentication (token lookup)": ("current_principal", "infra/http/deps.py"),
    "group commit (whole record path)": ("GroupRecorder.record", "services/group_recording.py"),
    "record_batch (whole record path)": ("Referrals.record_batch", "services/referrals.py"),
    "rules (judge a case's next events)": ("Referrals._judge", "services/referrals.py"),
    "identity sealing (AES-GCM, data keys)": (
        "Referrals._decide.<locals>.seal",
        "services/referrals.py",
    ),
    "key store writes": ("KeySession.flush", "services/personal_data.py"),
    "cases read (cache misses)": ("Referrals._load_cases", "services/referrals.py"),
    "events insert + commit": ("Referrals._save_cases", "services/referrals.py"),
    "receipts (leaf, note, Ed25519)": (
        "TransparencyLog.receipts_for",
        "infra/transparency/service.py",
    ),
    "response body (pydantic dump)": ("BaseModel.model_dump_json", "pydantic/main.py"),
}

BODY = {
    "type": "NOTIFICATION_ISSUED",
    "agency_id": "lsn-police-investigation",
    "occurred_at": "2026-03-03T09:00:00+07:00",
    "data": {
        "person_id": "00000001-0001-4001-8001-000000000001",
        "proceedings_kind": "criminal",
        "procedural_role": "ARRESTED",
        "stage": "INVESTIGATION",
        "eligible_category": "POOR_HOUSEHOLD",
        "sex": "MALE",
        "channel": "PAPER",
        "form": "MAU_03",
        "trigger": "ARREST",
    },
}
IDENTITY = {"full_name": "Nguyễn Văn An", "date_of_birth": "1990-05-01"}


def _event(prefix: str, i: int) -> dict[str, Any]:
    case = f"LSN-{prefix}-{i:08d}"
    body = dict(BODY, case_id=case, event_id=f"{case}-01")
    data = dict(BODY["data"], person_id=str(uuid.UUID(int=(hash(prefix) & 0xFFFF) << 64 | i)))  # type: ignore[arg-type]
    body["data"] = data
    if i % 2:
        body["identity"] = IDENTITY  # half with an identity block, as the wrk script
    return body


async def _drive(app: Any, path: str, bodies: list[Any], token: str | None, clients: int) -> None:
    import httpx

    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def client() -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            while not queue.empty():
                body = queue.get_nowait()
                answer = await http.post(path, json=body, headers=headers)
                if answer.status_code not in (200, 201, 202):
                    raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:300]}")

    await asyncio.gather(*(client() for _ in range(clients)))


def _busy(stack: list[str]) -> bool:
    """A sample where the thread runs Python or waits on the database/disk, not an idle wait
    for work (the event loop's selector, the thread pool's queue, a lock)."""
    leaf = stack[-1] if stack else ""
    return not any(
        w in leaf for w in ("select (", "_worker (concurrent", "wait (threading", "acquire")
    )


def _profiled(
    app: Any, path: str, bodies: list[Any], token: str | None, clients: int, events: int
) -> dict[str, Any]:
    """Runs the requests while py-spy samples this process (all threads, 250 Hz): the share of
    busy samples in each part, times the measured CPU per event."""
    import re
    import subprocess

    raw = Path(tempfile.mkdtemp(prefix="bench-profile-")) / "samples.txt"
    spy = subprocess.Popen(
        [
            "py-spy",
            "record",
            "--pid",
            str(os.getpid()),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--nonblocking",
            "--threads",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches
    started_cpu, started = time.process_time(), time.perf_counter()
    try:
        asyncio.run(_drive(app, path, bodies, token, clients))
    finally:
        cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
        spy.send_signal(2)  # SIGINT: py-spy writes what it has
        spy.wait(60)
    total = 0
    counts = dict.fromkeys(PARTS, 0)
    for line in raw.read_text().splitlines():
        stack_text, _, n = line.rpartition(" ")
        if not stack_text or not n.isdigit():
            continue
        stack = [re.sub(r":\d+\)$", ")", f) for f in stack_text.split(";")]
        if not _busy(stack) or not any(
            "_drive" in f or "run_sync" in f or "_worker" in f for f in stack
        ):
            continue
        total += int(n)
        for label, (name, module) in PARTS.items():
            if any(f.startswith(name + " (") and module in f for f in stack):
                counts[label] += int(n)
    per_event = cpu / events * 1e6
    return {
        "events": events,
        "cpu_us_per_event": round(per_event, 1),
        "wall_s": round(wall, 2),
        "busy_samples": total,
        "parts_us_per_event": {
            k: round(per_event * v / total, 1) for k, v in counts.items() if total and v
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--database", default="test")
    args = parser.parse_args()

    from bench.hello import app as hello_app
    from infra.bootstrap import build_container
    from infra.http.app import create_app
    from infra.settings import Settings

    data = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    values: dict[str, Any] = {"data_dir": data, "projections_in_process": False}
    schema = None
    if args.store == "postgres":
        import psycopg

        schema = f"profile_{uuid.uuid4().hex[:8]}"
        host = os.environ.get("TEST_PG_HOST", "127.0.0.1")
        with psycopg.connect(
            host=host, user="postgres", dbname=args.database, autocommit=True
        ) as c:
            c.execute(f'CREATE SCHEMA "{schema}"')
        values.update(
            store="postgres",
            pg_host=host,
            pg_user="postgres",
            pg_dbname=args.database,
            pg_schema=schema,
        )
    container = build_container(Settings(_env_file=None, **values))  # type: ignore[arg-type]
    try:
        token = container.tokens.create(  # type: ignore[union-attr]
            "agency", "profile", agency_id="lsn-police-investigation", reference=container.reference
        )[0]
        app = create_app(container)
        n = args.events
        pad = len(json.dumps(_event("X", 1)).encode())
        out: dict[str, Any] = {"store": args.store, "clients": 16}
        out["hello"] = _profiled(hello_app, "/hello", [{"pad": "x" * pad}] * n, None, 16, n)
        run = uuid.uuid4().hex[:6].upper()
        out["single"] = _profiled(
            app, "/v1/events", [_event("S" + run, i) for i in range(n)], token, 16, n
        )
        batches = [
            {"events": [_event(f"B{run}{b}", i) for i in range(1000)]}
            for b in range(max(1, n // 1000) * 2)
        ]
        out["batch"] = _profiled(app, "/v1/events/batch", batches, token, 2, len(batches) * 1000)
        print(json.dumps(out, ensure_ascii=False, indent=1))
    finally:
        container.close()
        if schema is not None:
            import psycopg

            with psycopg.connect(
                host=values["pg_host"], user="postgres", dbname=args.database, autocommit=True
            ) as c:
                c.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
