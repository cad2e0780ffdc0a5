"""Processes the benchmark starts and always stops: uvicorn servers and the wrk load generator.

Every process is started by us, waited for with a deadline, and stopped by its own process
id (SIGINT, then SIGKILL after a grace period), never by name.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(
    command: Sequence[str],
    ready_url: str,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 60.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Runs `command` until the block ends; waits until `ready_url` answers 200."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=log,
            env=full_env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + ready_timeout
        for _ in range(10_000):  # bounded by the deadline too
            if proc.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {proc.returncode}; see {log_file}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready_url} not ready in {ready_timeout:.0f}s; see {log_file}")
            time.sleep(0.2)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[Any], grace: float = 15.0) -> None:
    """Stops a process we started (and its children: it leads its own session)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def uvicorn_command(app: str, port: int, workers: int, factory: bool = False) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    if factory:
        command.append("--factory")
    return command


def ledger_command(port: int, workers: int, log_level: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "infra.cli",
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        log_level,
    ]


# ---------------------------------------------------------------------------------- wrk
WRK_SCRIPT = r"""
-- one request = one new event: a case opened by a Form 03 notification, half of them
-- carrying an identity block (encrypted by the ledger); ids unique per thread and run
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args)
  prefix = args[1]
  agency = args[2]
  token = args[3]
  path = args[4]
  n = 0
  bad = 0
  statuses = ""
end
function request()
  n = n + 1
  local case = string.format("%s-%d-%08d", prefix, tid, n)
  local person = string.format("%08x-%04x-4%03x-8%03x-%012x", tid, n % 65536, n % 4096, tid % 4096, n)
  local identity = ""
  if n % 2 == 0 then
    identity = ',"identity":{"full_name":"Nguyễn Văn An","date_of_birth":"1990-05-01"}'
  end
  local body = '{"event_id":"' .. case .. '-01","case_id":"' .. case ..
    '","type":"NOTIFICATION_ISSUED","agency_id":"' .. agency ..
    '","occurred_at":"2026-03-03T09:00:00+07:00","data":{"person_id":"' .. person ..
    '","proceedings_kind":"criminal","procedural_role":"ARRESTED","stage":"INVESTIGATION",' ..
    '"eligible_category":"POOR_HOUSEHOLD","sex":"MALE","channel":"PAPER","form":"MAU_03",' ..
    '"trigger":"ARREST"}' .. identity .. '}'
  return wrk.format("POST", path, {["Content-Type"] = "application/json",
                                   ["Authorization"] = "Bearer " .. token}, body)
end
function response(status, headers, body)
  if status ~= 201 then
    bad = bad + 1
    if #statuses < 400 then statuses = statuses .. status .. ":" .. string.sub(body, 1, 80) .. " " end
  end
end
function done(summary, latency, requests)
  local total_bad = 0
  local sample = ""
  for _, thread in ipairs(threads) do
    total_bad = total_bad + (thread:get("bad") or 0)
    sample = sample .. (thread:get("statuses") or "")
  end
  io.write(string.format("BENCH bad=%d p50_us=%d p99_us=%d requests=%d\n", total_bad,
    latency:percentile(50), latency:percentile(99), summary.requests))
  io.write("BENCH sample=" .. string.sub(sample, 1, 400) .. "\n")
end
"""

HELLO_SCRIPT = r"""
-- the same body size as the ledger's posts, to the hello-world route
function init(args)
  body = args[1]
  n = 0
end
function request()
  return wrk.format("POST", "/hello", {["Content-Type"] = "application/json"}, body)
end
function done(summary, latency, requests)
  io.write(string.format("BENCH bad=%d p50_us=%d p99_us=%d requests=%d\n",
    summary.errors.status, latency:percentile(50), latency:percentile(99), summary.requests))
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    url: str,
    script: str,
    args: Sequence[str],
    seconds: float,
    connections: int,
    threads: int,
    work_dir: Path,
) -> dict[str, Any]:
    """Runs wrk for `seconds` (bounded: wrk stops itself; we kill it after twice that)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    script_file = work_dir / f"wrk-{abs(hash(script))}.lua"
    script_file.write_text(script)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, int(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script_file),
        url,
        "--",
        *args,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=max(30.0, seconds * 2 + 20)
    )
    text = done.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    stats = re.search(r"BENCH bad=(\d+) p50_us=(\d+) p99_us=(\d+) requests=(\d+)", text)
    sample = re.search(r"BENCH sample=(.*)", text)
    socket_errors = re.search(r"Socket errors: (.*)", text)
    if rate is None or stats is None:
        raise RuntimeError(f"wrk output not understood:\n{text}\n{done.stderr}")
    return {
        "rate": float(rate.group(1)),
        "bad": int(stats.group(1)),
        "p50_ms": int(stats.group(2)) / 1000,
        "p99_ms": int(stats.group(3)) / 1000,
        "requests": int(stats.group(4)),
        "sample": sample.group(1).strip() if sample else "",
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }
