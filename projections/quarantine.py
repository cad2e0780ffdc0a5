"""Quarantine: what a projection does with an event it cannot apply (issue 12).

A page that fails because of the *data* of an event (a value the view's store cannot hold, an
overflow, a bug that only this event reaches) is isolated by bisection: the events that do
apply are applied, each event that fails alone is recorded in `projection_quarantine` (view,
log position, case, event type, error class/code and message, first seen, attempts) and
skipped, and the view's position still moves past the page. For a view that folds per case
(`Projection.quarantine_scope == "case"`) the case's later events are recorded too, as
`held`, and are not applied either: re-applying the case's quarantined events in log order
later gives the rows the view would have had if the event had applied first time.

A failure that is not an event's — the database is unreachable, a lock timed out, the
view's SQL is wrong (`transient` / `systemic` below) — is never quarantined: it propagates
(the worker's reconnect logic retries it) and is shown by the status.

This module holds what needs no framework: the row, the table and the error classes. The
follower's isolation is `projections.framework.LogFollower._isolate`; re-applying is
`infra.projection_runtime.Projections.retry_quarantined`. See docs/projections.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

QUARANTINE_TABLE = "projection_quarantine"
HEALTH_TABLE = "projection_health"

FAILED = "failed"
"""The event itself could not be applied (its error is recorded)."""
HELD = "held"
"""The event was not tried: an earlier event of its case is quarantined."""

PAGE_LIMIT = 100
"""More events than this failing alone in one page is not bad data but a broken view: the
follower stops (and reports) instead of quarantining the whole log."""

DDL = (
    "CREATE TABLE IF NOT EXISTS {schema}projection_quarantine ("
    " view_name TEXT NOT NULL, position BIGINT NOT NULL, originator_id TEXT NOT NULL,"
    " case_id TEXT, event_type TEXT, agency_id TEXT, reason TEXT NOT NULL,"
    " error_code TEXT, error_class TEXT, message TEXT,"
    " first_seen %(ts)s NOT NULL, last_attempt %(ts)s NOT NULL, attempts INTEGER NOT NULL,"
    " resolved_at %(ts)s, PRIMARY KEY (view_name, position))",
    "CREATE INDEX IF NOT EXISTS projection_quarantine_open ON {schema}projection_quarantine"
    " (view_name, resolved_at, originator_id)",
    "CREATE TABLE IF NOT EXISTS {schema}projection_health ("
    " view_name TEXT PRIMARY KEY, error_class TEXT, error_code TEXT, message TEXT,"
    " error_at %(ts)s, failures INTEGER NOT NULL)",
)

COLUMNS = (
    "view_name",
    "position",
    "originator_id",
    "case_id",
    "event_type",
    "agency_id",
    "reason",
    "error_code",
    "error_class",
    "message",
    "first_seen",
    "last_attempt",
    "attempts",
    "resolved_at",
)


@dataclass(frozen=True)
class QuarantineEntry:
    """One event a view records instead of applying it."""

    position: int
    originator_id: str
    case_id: str | None
    event_type: str | None
    agency_id: str | None
    reason: str  # FAILED | HELD
    error_code: str | None = None
    error_class: str | None = None
    message: str | None = None

    @classmethod
    def of(cls, item: Any, reason: str, error: BaseException | None = None) -> QuarantineEntry:
        event = item.event
        code, name, message = describe(error) if error is not None else (None, None, None)
        return cls(
            position=item.position,
            originator_id=str(getattr(event, "originator_id", "")),
            case_id=getattr(event, "case_id", None),
            event_type=getattr(event, "WIRE_TYPE", None) or item.topic,
            agency_id=getattr(event, "agency_id", None),
            reason=reason,
            error_code=code,
            error_class=name,
            message=message,
        )


def case_key(item: Any) -> str:
    """What `held` groups by: the event's aggregate (a case, or a person record)."""
    return str(getattr(item.event, "originator_id", ""))


def _root(error: BaseException) -> BaseException:
    """The driver's error behind the library's wrapper (eventsourcing re-raises psycopg's)."""
    seen = 0
    while error.__cause__ is not None and seen < 5:
        error = error.__cause__
        seen += 1
    return error


def describe(error: BaseException) -> tuple[str, str, str]:
    """(code, class, message) of an error: the SQLSTATE when the database refused a value."""
    root = _root(error)
    name = f"{type(root).__module__}.{type(root).__qualname__}"
    code = getattr(root, "sqlstate", None) or type(root).__name__
    message = str(root).strip().splitlines()[0] if str(root).strip() else repr(root)
    return str(code), name, message[:1000]


_DRIVER_MODULES = ("psycopg", "psycopg_pool", "sqlite3", "eventsourcing")


def _is_driver_error(error: BaseException, *names: str) -> bool:
    """Whether `error` is (a subclass of) one of the drivers' or the library's exception classes
    of these names. Matched by class name and module along its MRO, so that this module needs
    no import of the PostgreSQL driver (only infra/ and the view base class import it)."""
    return any(
        cls.__name__ in names and cls.__module__.split(".")[0] in _DRIVER_MODULES
        for cls in type(error).__mro__
    )


def is_transient(error: BaseException) -> bool:
    """The database is unreachable or busy (connection lost, lock timeout, shutdown): retry
    the page later, never blame an event."""
    from eventsourcing.persistence import ConnectionNotFromPoolError, ConnectionPoolClosedError

    from projections.framework import PositionMismatchError

    if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit, ...
        return True
    return _is_driver_error(error, "OperationalError", "InterfaceError") or isinstance(
        error,
        (
            ConnectionError,
            TimeoutError,
            PositionMismatchError,
            ConnectionNotFromPoolError,
            ConnectionPoolClosedError,
        ),
    )


def is_systemic(error: BaseException) -> bool:
    """The view itself is broken (bad SQL, a missing table, an internal error): every event
    would fail, so none is quarantined."""
    return _is_driver_error(
        error, "ProgrammingError", "InternalError", "NotSupportedError"
    ) or isinstance(error, (MemoryError, RecursionError, NotImplementedError))


def is_event_error(error: BaseException) -> bool:
    """Whether a failed page may be blamed on one of its events (and bisected)."""
    return not is_transient(error) and not is_systemic(error)
