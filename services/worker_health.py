"""How a long-running worker lives through a lost database connection.

Every worker (`referrals project` and its checkpointer, `referrals relay`, `referrals ingest`,
the API's in-process projection runner) follows the same rules:

- `is_connection_error(error)` says whether an error means "the database is unreachable now"
  (psycopg's OperationalError family, which includes AdminShutdown and the pool's PoolTimeout;
  psycopg's InterfaceError, e.g. a closed connection; eventsourcing's OperationalError /
  InterfaceError wrapping one of these). Anything else is a programming or data error: the
  worker does not retry it.
- A `ConnectionWatch` keeps the outage: when it began, the last error, how many retries. It
  logs one line when the connection is lost and one when it is back (never one per retry),
  hands out the next delay of a bounded exponential backoff with jitter (0.2 s doubling to
  10 s), and, if given a path, writes the worker's status as a small JSON file on every change
  of state, so that `referrals projections status` and an operator can read it while the
  database itself cannot be asked.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATUS_DIR = "worker-status"
"""Folder of the data directory holding each worker's status file (`<worker>.json`)."""


def _is_driver_connection_error(error: BaseException) -> bool:
    """psycopg's OperationalError or InterfaceError (AdminShutdown, PoolTimeout … are
    subclasses), matched along the MRO by module and name: no import of the driver, so the
    projection framework can use this module without depending on infra's driver choice."""
    return any(
        cls.__name__ in ("OperationalError", "InterfaceError")
        and cls.__module__.split(".")[0] in ("psycopg", "psycopg_pool")
        for cls in type(error).__mro__
    )


def is_connection_error(error: BaseException) -> bool:
    """True if `error` (or an error it was raised from) means the database is unreachable.

    eventsourcing wraps driver errors in its own OperationalError / InterfaceError; those count
    only when they wrap a psycopg error (a wrapped sqlite3 "no such table" is a bug, not an
    outage).
    """
    seen: set[int] = set()
    current: BaseException | None = error
    for _ in range(16):  # bounded walk down the cause chain
        if current is None or id(current) in seen:
            break
        seen.add(id(current))
        if _is_driver_connection_error(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def describe(error: BaseException) -> str:
    """One line naming the error (the first line of its message)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


@dataclass
class Backoff:
    """Exponential backoff with jitter: `initial` doubling up to `cap` seconds; each delay is
    drawn uniformly between half and all of the current step."""

    initial: float = 0.2
    cap: float = 10.0
    factor: float = 2.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next(self) -> float:
        step = min(self.cap, self.initial * self.factor ** min(self.attempt, 32))
        self.attempt += 1
        return self.rng.uniform(step / 2, step)

    def reset(self) -> None:
        self.attempt = 0


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ConnectionWatch:
    """The database connection state of one worker (thread-safe)."""

    def __init__(
        self,
        worker: str,
        status_path: Path | None = None,
        backoff: Backoff | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.worker = worker
        self.status_path = status_path
        self.backoff = backoff or Backoff()
        self.log = logger or log
        self.lost_since: datetime | None = None
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self.outages = 0
        self.retries = 0
        self.extra: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._write()

    # -- state ------------------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return self.lost_since is None

    @property
    def connection(self) -> str:
        """`ok`, or `lost since <instant>` (UTC, ISO 8601)."""
        lost = self.lost_since
        return "ok" if lost is None else f"lost since {lost.isoformat()}"

    def lost(self, error: BaseException) -> float:
        """Records a connection error; the seconds to wait before the next attempt. Logs
        only when the connection goes from ok to lost."""
        with self._lock:
            self.last_error = describe(error)
            self.last_error_at = _now()
            self.retries += 1
            first = self.lost_since is None
            if first:
                self.lost_since = self.last_error_at
                self.outages += 1
            delay = self.backoff.next()
        if first:
            self.log.warning(
                "%s: database connection lost (%s); retrying with backoff (%.1f s to %.0f s)",
                self.worker,
                self.last_error,
                self.backoff.initial,
                self.backoff.cap,
            )
            self._write()
        return delay

    def restored(self) -> None:
        """Records a successful round trip; logs once when an outage ends."""
        if self.lost_since is None:
            return
        with self._lock:
            since, self.lost_since = self.lost_since, None
            retries, self.retries = self.retries, 0
            self.backoff.reset()
        if since is not None:
            seconds = (_now() - since).total_seconds()
            self.log.warning(
                "%s: database connection restored after %.1f s (%d attempts failed)",
                self.worker,
                seconds,
                retries,
            )
            self._write()

    def as_dict(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "outages": self.outages,
        }

    # -- the status file ---------------------------------------------------------------------
    def _write(self) -> None:
        if self.status_path is None:
            return
        body = {
            "worker": self.worker,
            "pid": os.getpid(),
            "updated_at": _now().isoformat(),
            **self.as_dict(),
            **self.extra,
        }
        try:
            self.status_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.status_path.with_name(f".{self.status_path.name}.{os.getpid()}")
            temporary.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
            os.replace(temporary, self.status_path)
        except OSError as error:  # a status file must never stop a worker
            self.log.warning("%s: cannot write %s: %s", self.worker, self.status_path, error)


def status_path(data_dir: Path | str, worker: str) -> Path:
    """Where a worker of this data directory writes its status."""
    return Path(data_dir) / STATUS_DIR / f"{worker}.json"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_worker_status(data_dir: Path | str, worker: str) -> dict[str, Any] | None:
    """The status a running worker of this data directory last wrote (None: no such worker
    is running on this machine)."""
    path = status_path(data_dir, worker)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict) or not _alive(int(body.get("pid") or 0)):
        return None
    return body
