"""What the benchmark ran on: the machine, the database, the code (printed in RESULTS.md)."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent.parent,
        )
        return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def machine_info(pg_conn: Any | None = None) -> dict[str, Any]:
    """nproc, memory, CPU model, Python, PostgreSQL version and settings, date, commit."""
    info: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "load_average_at_start": load_average(),
    }
    if pg_conn is not None:
        info["postgres"] = pg_conn.execute("SHOW server_version").fetchone()[0]
        settings = pg_conn.execute(
            "SELECT name, setting, unit FROM pg_settings WHERE name IN ('fsync', "
            "'synchronous_commit', 'shared_buffers', 'max_wal_size', 'full_page_writes')"
        ).fetchall()
        info["postgres_settings"] = {
            name: f"{value}{' x ' + unit if unit and unit not in ('MB', 's') else unit or ''}"
            for name, value, unit in settings
        }
    return info
