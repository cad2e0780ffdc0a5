"""`python -m bench.workers [--events 60000]`: one projection worker against two on the same
backlog (issue 19: views leased to workers, so N workers apply N views in parallel).

Records a backlog into a fresh schema of the test database, then times `referrals project
--until-caught-up` from process start until it exits (every view at the log's end): once with
one worker, once with two started together (the views reset in between). Prints one JSON line
and, with `--write`, adds the row to bench/RESULTS.md (below the generated table).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _settings(database: str, schema: str, data_dir: Path) -> Any:
    from infra.settings import Settings

    return Settings(
        _env_file=None,
        store="postgres",  # type: ignore[call-arg]
        pg_host=os.environ.get("TEST_PG_HOST", "127.0.0.1"),
        pg_port=int(os.environ.get("TEST_PG_PORT", "5432")),
        pg_user=os.environ.get("TEST_PG_USER", "postgres"),
        pg_dbname=database,
        pg_schema=schema,
        data_dir=data_dir,
        service="project",
        projection_lease_seconds=3.0,
    )


def _env(settings: Any, instance: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFERRALS_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"REFERRALS_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    env["REFERRALS_INSTANCE"] = instance
    env["PYTHONPATH"] = str(ROOT)
    return env


def _run_workers(settings: Any, count: int, batch: int, log_dir: Path) -> float:
    started = time.perf_counter()
    procs = []
    for n in range(count):
        log = open(log_dir / f"worker-{count}-{n}.log", "wb")  # noqa: SIM115 - closed below
        procs.append(
            (
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        "from infra.cli import main; main()",
                        "project",
                        "--until-caught-up",
                        "--batch-size",
                        str(batch),
                    ],
                    env=_env(settings, f"bench-{n}"),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=str(settings.data_dir),
                ),
                log,
            )
        )
    try:
        for proc, _ in procs:
            code = proc.wait(timeout=1800)
            if code != 0:
                raise RuntimeError(f"a worker exited {code}; see {log_dir}")
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
            log.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--database", default="referrals_test")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--write", action="store_true", help="add the row to RESULTS.md")
    args = parser.parse_args()

    import psycopg

    from infra.bootstrap import build_container
    from infra.sample_data import generate_events

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    data_dir = Path(f"/tmp/{schema}")
    data_dir.mkdir()
    settings = _settings(args.database, schema, data_dir)
    admin = (
        f"host={settings.pg_host} port={settings.pg_port} user={settings.pg_user} "
        f"dbname={args.database}"
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    container = build_container(settings.model_copy(update={"service": "cli"}))
    try:
        now = datetime.now(timezone.utc)
        cases = max(1, args.events // 9)
        batch: list[dict[str, Any]] = []
        recorded = 0
        for event in generate_events(
            2026, cases, container.reference, now - timedelta(days=700), now - timedelta(minutes=10)
        ):
            batch.append(event)
            if len(batch) == 1000:
                container.referrals.record_batch(batch)
                recorded += len(batch)
                batch = []
        if batch:
            container.referrals.record_batch(batch)
        top = container.projections.max_notification_id()
        projections = container.projections
        views = list(projections.projections)

        def reset() -> None:
            for name in views:
                projections.projections[name].view.reset()

        seconds = {}
        for count in (1, 2):
            reset()
            seconds[count] = _run_workers(settings, count, args.batch_size, data_dir)
            assert min(projections.positions().values()) >= top
        ratio = seconds[1] / seconds[2]
        load = os.getloadavg()
        result = {
            "events": top,
            "views": views,
            "one_worker_s": round(seconds[1], 2),
            "two_workers_s": round(seconds[2], 2),
            "ratio": round(ratio, 2),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in load],
            "at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        }
        print(json.dumps(result))
        if args.write:
            _write(result)
    finally:
        container.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)


def _write(result: dict[str, Any]) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text(encoding="utf-8")
    heading = "## Projection workers sharing the views (issue 19)"
    row = (
        f"| {result['at']} | {result['events']:,} | {len(result['views'])} | "
        f"{result['one_worker_s']:.1f} s | {result['two_workers_s']:.1f} s | "
        f"**{result['ratio']:.2f}×** | ≥ 1.5× | "
        f"{'met' if result['ratio'] >= 1.5 else '**missed**'} | "
        f"{' '.join(str(x) for x in result['load_average'])} |\n"
    )
    if heading not in text:
        text = text.rstrip("\n") + (
            f"\n\n{heading}\n\n`python -m bench.workers --events N --write`: a backlog of N "
            "events in a fresh schema, `referrals project --until-caught-up` timed from process "
            "start to exit, one worker then two started together (views reset in between; "
            f"{result['cpus']} CPUs, shared machine: load average at the end in the last "
            "column).\n\n| run | events | views | 1 worker | 2 workers | speed-up | target | | "
            "load |\n|---|---|---|---|---|---|---|---|---|\n"
        )
    path.write_text(
        text.rstrip("\n") + "\n" + row if heading in text else text + row, encoding="utf-8"
    )


if __name__ == "__main__":
    main()
