"""The `Projections` facade (what `Container.projections` holds): builds every registered
projection and its view for the configured store, runs them in process or as the worker, and
answers status, catch-up and rebuild.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib import import_module
from importlib.util import find_spec
from typing import Any

from eventsourcing.persistence import Tracking

from projections import quarantine
from projections.framework import (
    BackgroundRunner,
    Batch,
    EventDecoder,
    Item,
    LogFollower,
    LogReader,
    PostgresLogReader,
    Projection,
    ProjectionContext,
    ProjectionError,
    ProjectionStatus,
    ProjectionView,
    SQLiteLogReader,
    ViewBusyError,
)
from projections.framework import (
    PositionMismatchError as _PositionMismatch,
)
from projections.leases import VIEW_COST, balanced_groups
from projections.quarantine import QuarantineEntry
from services.worker_health import (
    ConnectionWatch,
    describe,
    is_connection_error,
    read_worker_status,
    status_path,
)

log = logging.getLogger(__name__)

PROJECTION_CLASSES = (
    "projections.case_index:CaseIndex",
    "projections.agency_counts:AgencyCounts",
    "projections.compliance:Compliance",
    "projections.audit_trail:AuditTrail",  # the transparency area's, when present
)
"""Registered projections, in the order each page is applied. A missing module is skipped."""

REBUILD_BATCH_SIZE = 5000
PARTIAL_BATCH_SIZE = 500
"""Page size of `process_pending(names=…)` (the API's own catch-up): bounds how far past its
timeout a read applying pages can run."""
UNSETTLED_REFRESH = 0.25
"""Seconds between lease refreshes while a worker does not hold exactly its share of the
views (workers joining or leaving); otherwise a third of the lease time."""
REBUILD_COST = VIEW_COST
"""CPU µs per event of each view's rebuild, read and decode included (measured on 50,000
events, issue 16): how `rebuild(processes=True)` shares the views between its processes, and
how leases share them between workers (projections.leases)."""


def registered_projection_classes(paths: Sequence[str] = PROJECTION_CLASSES) -> list[type]:
    """The projection classes whose modules exist."""
    classes = []
    for path in paths:
        module_name, _, class_name = path.partition(":")
        try:
            present = find_spec(module_name) is not None
        except ModuleNotFoundError:
            present = False
        if present:
            classes.append(getattr(import_module(module_name), class_name))
    return classes


class Projections:
    """Every read model of one process, with its runner."""

    def __init__(
        self,
        app: Any,
        settings: Any,
        context: ProjectionContext,
        projection_classes: Sequence[type] | None = None,
        batch_size: int = 2000,
        poll_interval: float = 0.1,
    ) -> None:
        self.app = app
        self.settings = settings
        self.context = context
        self.store = settings.store
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.datastore = self._open_datastore(settings)
        classes = list(projection_classes or registered_projection_classes())
        self.projections: dict[str, Projection[Any]] = {}
        for cls in classes:
            view_class = cls.views[self.store]
            view = view_class(self.datastore, name=cls.name)
            view.create_table()
            self.projections[cls.name] = cls(view=view, context=context)
        self._lock = threading.Lock()
        self.worker_watch: ConnectionWatch | None = None  # set by run_forever (the worker)
        self.follower = self._new_follower()
        self.runner = BackgroundRunner(
            self.follower,
            poll_interval=poll_interval,
            listen=self._listener() if self.store == "postgres" else None,
        )

    # -- construction ---------------------------------------------------------------------
    @staticmethod
    def _open_datastore(settings: Any) -> Any:
        if settings.store == "postgres":
            from eventsourcing.postgres import PostgresDatastore

            budget = settings.pool_budget()["projections"]
            datastore = PostgresDatastore(
                dbname=settings.pg_dbname,
                host=settings.pg_host,
                port=settings.pg_port,
                user=settings.pg_user,
                password=settings.pg_password.get_secret_value(),
                pool_size=1,
                max_overflow=budget - 1,
                schema=settings.pg_schema,
                lock_timeout=10,
                pre_ping=True,
                idle_in_transaction_session_timeout=max(
                    1, settings.pg_idle_in_transaction_timeout_ms // 1000
                ),
            )
            # named, keepalives, session timeouts (set before the pool opens; issue 19)
            datastore.pool.kwargs.update(settings.pg_session_kwargs())
            return datastore
        from eventsourcing.sqlite import SQLiteDatastore

        from infra.private_files import private_file

        path = private_file(settings.data_dir / "projections.sqlite")  # 0600 in a 0700 dir
        return SQLiteDatastore(str(path), lock_timeout=10)

    def _reader(self) -> LogReader:
        if self.store == "postgres":
            return PostgresLogReader(self.app)
        return SQLiteLogReader(self.app)

    def _new_follower(self, batch_size: int | None = None) -> LogFollower:
        return LogFollower(
            self.app,
            list(self.projections.values()),
            self._reader(),
            batch_size or self.batch_size,
            busy_backoff=self._busy_backoff,
        )

    @property
    def _busy_backoff(self) -> float:
        return float(getattr(self.settings, "projection_busy_backoff_seconds", 1.0))

    def _listener(self) -> Callable[[threading.Event, float], None]:
        """Waits for the event store's NOTIFY (or the timeout, or a wake-up)."""
        state: dict[str, Any] = {}
        channel = self.app.recorder.channel_name
        conninfo = self.settings.pg_service_conninfo()

        def wait(wake: threading.Event, timeout: float) -> None:
            import psycopg

            conn = state.get("conn")
            try:
                if conn is None or conn.closed or conn.broken:
                    if conn is not None:
                        conn.close()
                    conn = state["conn"] = None  # (closed above: not closed again below)
                    conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
                    conn.execute(f'LISTEN "{channel}"')
                    state["conn"] = conn
                deadline = time.monotonic() + max(timeout, 0.5)
                while not wake.is_set() and time.monotonic() < deadline:
                    for _ in conn.notifies(timeout=0.1, stop_after=1):
                        return
            except Exception:
                # a lost LISTEN connection is dropped, and LISTEN is issued again on the next
                # connection; the caller reads the log before waiting again, so a NOTIFY sent
                # meanwhile is never needed
                state["conn"] = None
                if conn is not None:
                    conn.close()
                raise

        self._listen_state = state
        return wait

    # -- views ------------------------------------------------------------------------------
    def view(self, name: str) -> Any:
        """A projection's view (its query functions), by projection name."""
        return self.projections[name].view

    @property
    def case_index(self) -> Any:
        return self.view("case_index")

    @property
    def agency_counts(self) -> Any:
        return self.view("agency_counts")

    @property
    def compliance(self) -> Any:
        return self.view("compliance")

    def __contains__(self, name: str) -> bool:
        return name in self.projections

    # -- running ---------------------------------------------------------------------------
    def start(self, pause: float = 0.0) -> None:
        """Starts the in-process runner (a daemon thread), after re-applying what is in
        quarantine (a new release may apply it now)."""
        self.runner.pause = pause
        if not self.runner.running:
            self._retry_at_start()
        self.runner.start()

    def _retry_at_start(self) -> None:
        try:
            if any(self.excluded_events().values()):
                log.info("re-applying quarantined events: %s", self.retry_quarantined())
        except Exception:  # noqa: BLE001 - the follower reports a store that is down
            log.warning("could not re-apply quarantined events at start", exc_info=True)

    def stop(self) -> None:
        """Stops the in-process runner (the current page commits or rolls back first)."""
        self.runner.stop()

    @property
    def running(self) -> bool:
        return self.runner.running

    def close(self) -> None:
        self.stop()
        self.follower.close()
        conn = getattr(self, "_listen_state", {}).get("conn")
        if conn is not None:
            conn.close()
        self.datastore.close()

    def max_notification_id(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def positions(self) -> dict[str, int]:
        return {name: p.view.visible_position() or 0 for name, p in self.projections.items()}

    def process_pending(
        self,
        progress: Callable[[int], None] | None = None,
        batch_size: int | None = None,
        pause: float = 0.0,
        until: int | None = None,
        stop: threading.Event | None = None,
        timeout: float = 60.0,
        names: Sequence[str] | None = None,
    ) -> int:
        """Applies what is pending in the calling thread until every view (or `names`)
        reaches `until` (default: the log's end now); returns the events read. If the
        in-process runner is running, waits for it instead.

        Never waits on another runner (a worker) beyond `timeout`: a view whose position row
        it holds is left to it (NOWAIT), and TimeoutError says the view has not got there.
        With `names` (the API's catch-up of the audit trail) pages are of at most
        `PARTIAL_BATCH_SIZE` events and no page starts after `timeout`: the caller is back
        within about its timeout even when it applies the backlog itself."""
        target = self.max_notification_id() if until is None else until
        if self.runner.running:
            self.wait_for(target, timeout)
            return 0
        total = 0
        deadline = time.monotonic() + timeout
        chosen = list(names or self.projections)

        def reached() -> bool:
            return (
                min(
                    (self.projections[n].view.visible_position() or 0 for n in chosen),
                    default=target,
                )
                >= target
            )

        if not self._lock.acquire(timeout=max(timeout, 0.001)):
            raise TimeoutError(f"projections did not reach {target} in {timeout}s")
        try:
            follower = (
                self.follower
                if names is None
                else LogFollower(
                    self.app,
                    [self.projections[n] for n in chosen],
                    self._reader(),
                    min(self.batch_size, PARTIAL_BATCH_SIZE),
                    busy_backoff=min(self._busy_backoff, 0.2),
                )
            )
            follower.reload_positions()
            try:
                while stop is None or not stop.is_set():
                    total += follower.run_until_caught_up(
                        stop,
                        progress,
                        batch_size,
                        pause,
                        deadline=deadline if names is not None else None,
                    )
                    if reached():
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"projections did not reach {target} in {timeout}s")
                    time.sleep(0.05)  # an unsettled gap, or a view another runner holds
            finally:
                if follower is not self.follower:
                    follower.close()
        finally:
            self._lock.release()
        return total

    def run_forever(
        self,
        stop: threading.Event,
        batch_size: int | None = None,
        pause: float = 0.0,
        until_caught_up: bool = False,
    ) -> None:
        """The worker loop (`referrals project`): follows the log until `stop` is set.

        A lost database connection is retried with backoff (the outage is logged once, kept
        in `worker_watch` and written to the worker's status file, see services.worker_health);
        after it, positions are read again from the views' tracking rows, which commit with
        the view rows, so nothing is skipped or applied twice. Any other error is raised: a
        restart resumes from the stored positions.
        """
        watch = self.worker_watch = ConnectionWatch(
            "projections", status_path(self.settings.data_dir, "projections"), logger=log
        )
        with self._lock:
            follower = self.follower
            if batch_size:
                follower.batch_size = batch_size
        self._retry_at_start()  # swallows a store that is down: the loop below reports it
        leases = self._leases() if self.store == "postgres" else None
        if leases is not None:
            leases.start_heartbeat()  # a long page keeps its leases (a frozen process does not)
        with self._lock:
            listen = self._listener() if self.store == "postgres" else None
            wake = threading.Event()
            reload = True
            renew_every = (leases.seconds / 3) if leases is not None else 0.0

            def refresh_every() -> float:
                # until this worker holds exactly its share, between every page (0.25 s at most)
                if leases is None:
                    return 0.0
                return renew_every if leases.settled else min(renew_every, UNSETTLED_REFRESH)

            renewed = 0.0
            try:
                while not stop.is_set():
                    try:
                        if reload:
                            follower.reload_positions()
                            reload = False
                        if leases is not None and time.monotonic() - renewed >= refresh_every():
                            follower.only = leases.refresh()  # between pages, never inside one
                            renewed = time.monotonic()
                        read = follower.run_until_caught_up(
                            stop,
                            pause=pause,
                            deadline=renewed + refresh_every() if leases else None,
                        )
                        if until_caught_up and min(self.positions().values(), default=0) >= (
                            self.max_notification_id()
                        ):
                            watch.restored()
                            return
                        watch.restored()
                        if read:
                            continue
                        if listen is not None:
                            listen(wake, min(1.0, refresh_every()) if leases else 1.0)
                        else:
                            stop.wait(self.poll_interval)
                    except Exception as error:
                        if not is_connection_error(error):
                            raise
                        reload = True
                        renewed = 0.0  # leases are taken again once the database is back
                        stop.wait(watch.lost(error))
            finally:
                follower.only = None
                if leases is not None:
                    try:
                        leases.release()
                    except Exception as error:  # noqa: BLE001 - expiry releases them anyway
                        if not is_connection_error(error):
                            raise

    def _leases(self) -> Any:
        """This worker's view leases (PostgreSQL; `projection_lease_seconds`)."""
        from projections.leases import ViewLeases

        seconds = float(getattr(self.settings, "projection_lease_seconds", 10.0))
        name = getattr(self.settings, "application_name", "referrals-project")
        return ViewLeases(self.datastore, list(self.projections), name, seconds, REBUILD_COST)

    def wait_for(self, position: int | None, timeout: float = 5.0) -> None:
        """Blocks until every view has applied the log up to `position`.

        Raises TimeoutError, or ProjectionError if the in-process runner failed.
        """
        if position is None:
            return
        self.runner.wake()
        deadline = time.monotonic() + timeout
        interval = 0.005
        while True:
            self._raise_runner_error()
            if min(self.positions().values(), default=position) >= position:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"projections did not reach notification {position} within {timeout}s "
                    f"(positions {self.positions()})"
                )
            time.sleep(interval)
            interval = min(interval * 2, 0.1)

    def catch_up(self, timeout: float = 5.0) -> int:
        """Waits until every view has applied everything recorded so far; returns that id."""
        target = self.max_notification_id()
        self.wait_for(target, timeout)
        return target

    def _raise_runner_error(self) -> None:
        error = self.runner.error
        if error is not None:
            raise ProjectionError(f"projection runner failed: {error!r}") from error

    def connection_status(self) -> dict[str, Any]:
        """`connection` ("ok" | "lost since <instant>") and `last_error` of whichever runner
        applies the views: this process's worker loop or in-process runner, else the
        `referrals project` worker running on this machine (its status file)."""
        watch = self.worker_watch
        if watch is None and (self.runner.running or self.runner.watch.outages):
            watch = self.runner.watch
        if watch is not None:
            return {"connection": watch.connection, "last_error": watch.last_error}
        worker = read_worker_status(self.settings.data_dir, "projections")
        if worker is not None:
            return {
                "connection": worker.get("connection") or "ok",
                "last_error": worker.get("last_error"),
            }
        return {"connection": "ok", "last_error": None}

    def _probe(self) -> None:
        """A fresh connection with a short timeout: raises at once when the database is down
        (the event store's pool would wait, and the library retry, for minutes)."""
        if self.store == "postgres":
            import psycopg

            psycopg.connect(self.settings.pg_conninfo(), connect_timeout=2).close()

    def status(self) -> list[ProjectionStatus]:
        """Per projection: position, log head, lag (log end − position), the error that
        stopped it (this process's runner, or the one a worker kept in the store) with its
        time, its quarantined events, and the database connection of the runner (while the
        database is unreachable: no positions)."""
        connection = self.connection_status()
        own = self.worker_watch or (self.runner.watch if self.runner.running else None)
        try:
            if own is not None and not own.ok:  # this process's runner knows: do not wait
                raise _Unreachable(own.last_error or "database connection lost")
            self._probe()
            top: int | None = self.max_notification_id()
            positions: dict[str, int | None] = {
                name: projection.view.visible_position() or 0
                for name, projection in self.projections.items()
            }
            reachable = True
        except Exception as error:
            if not isinstance(error, _Unreachable) and not is_connection_error(error):
                raise
            top, positions = None, dict.fromkeys(self.projections)
            reachable = False
            if connection["connection"] == "ok":
                connection = lost_now(error)
        states = {s.projection.name: s for s in self.follower.states}
        error = self.runner.error
        out = []
        for name, position in positions.items():
            view = self.projections[name].view
            state = states.get(name)
            if reachable:
                counts, kept = view.quarantine_counts(), view.last_failure()
            else:  # nothing to read while the database is down
                counts, kept = {quarantine.FAILED: 0, quarantine.HELD: 0, "resolved": 0}, None
            message, code, at = None, None, None
            if state is not None and state.error is not None:
                message, at = repr(state.error), state.error_at
                code = quarantine.describe(state.error)[0]
            elif kept is not None:
                message = f"{kept['error_class']}: {kept['message']}"
                code, at = kept["error_code"], kept["error_at"]
            elif error is not None:
                message = repr(error)
            out.append(
                ProjectionStatus(
                    name=name,
                    position=position,
                    max_notification_id=top,
                    lag=max(0, top - position)
                    if top is not None and position is not None
                    else None,
                    running=self.runner.running,
                    error=message,
                    applied_events=state.applied_events if state else 0,
                    last_batch_at=state.last_batch_at if state else None,
                    error_at=at,
                    error_code=code,
                    quarantined=counts[quarantine.FAILED],
                    held=counts[quarantine.HELD],
                    resolved=counts["resolved"],
                    **connection,
                )
            )
        return out

    def quarantine(
        self, names: Sequence[str] | None = None, include_resolved: bool = False, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Quarantine rows of every view (or `names`), by view then log position."""
        rows: list[dict[str, Any]] = []
        for name in names or self.projections:
            rows.extend(self.projections[name].view.quarantined(include_resolved, limit))
        return rows

    def excluded_events(self, names: Sequence[str] | None = None) -> dict[str, int]:
        """Unresolved quarantined (and held) events per view: what its figures leave out."""
        out = {}
        for name in names or self.projections:
            counts = self.projections[name].view.quarantine_counts()
            out[name] = counts[quarantine.FAILED] + counts[quarantine.HELD]
        return out

    def retry_quarantined(self, names: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        """Re-applies every unresolved quarantined event (after a fix: reference data, a new
        release), case by case in log order; an event that applies is marked resolved (its
        row is kept), one that still fails stays quarantined with its new error, and its
        case's later events stay held. Returns {view: {"resolved": n, "open": m}}."""
        was_running = self.runner.running
        self.stop()
        try:
            with self._lock:
                out = {
                    name: _retry_view(self.app, self.projections[name], self.follower.decoder)
                    for name in (names or self.projections)
                }
                self.follower.reload_positions()
        finally:
            if was_running:
                self.runner.start()
        return out

    def rebuild(
        self,
        progress: Callable[[int, int], None] | None = None,
        names: Sequence[str] | None = None,
        batch_size: int = REBUILD_BATCH_SIZE,
        processes: bool = False,
        workers: int | None = None,
    ) -> dict[str, Any]:
        """Drops the views (all, or `names`) and rebuilds them from event zero.

        `progress(done, total)` is called after every page. The in-process runner is stopped
        during the rebuild and restarted after it.

        With `processes` (PostgreSQL, more than one view), the views are shared between
        `workers` processes (default: one per core, at most one per view; by their measured
        cost, REBUILD_COST), so the views' Python work runs on every core instead of sharing
        one interpreter. Each process reads and decodes every page once and applies it to
        each of its views (the same follower, the same transactions, each view through its
        own position, exactly once).
        """
        was_running = self.runner.running
        self.stop()
        chosen = list(names or self.projections)
        for name in chosen:
            view: ProjectionView = self.projections[name].view
            view.reset()
            self.projections[name].forget()
        target = self.max_notification_id()
        if processes and self.store == "postgres" and len(chosen) > 1:
            try:
                return self._rebuild_in_processes(chosen, target, batch_size, progress, workers)
            finally:
                self.follower.reload_positions()
                if was_running:
                    self.start()
        done = 0
        started = time.perf_counter()

        def advance(read: int) -> None:
            nonlocal done
            done += read
            if progress is not None:
                progress(min(done, target), target)

        with self._lock:
            follower = LogFollower(
                self.app, [self.projections[n] for n in chosen], self._reader(), batch_size
            )
            try:
                while min(self.projections[n].view.visible_position() or 0 for n in chosen) < (
                    target
                ):
                    if not follower.run_until_caught_up(progress=advance):
                        time.sleep(0.05)  # an unsettled gap in the log
            finally:
                follower.close()
        elapsed = time.perf_counter() - started
        if was_running:
            self.start()
        return {
            "projections": chosen,
            "events": done,
            "seconds": elapsed,
            "events_per_second": done / elapsed if elapsed else 0.0,
        }

    def _rebuild_in_processes(
        self,
        chosen: list[str],
        target: int,
        batch_size: int,
        progress: Callable[[int, int], None] | None,
        workers: int | None = None,
    ) -> dict[str, Any]:
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor

        started = time.perf_counter()
        groups = rebuild_groups(chosen, workers or os.cpu_count() or 1)
        context = multiprocessing.get_context("spawn")  # no threads or pools carried over
        settings = self.settings.model_copy(update={"projections_in_process": False})
        with ProcessPoolExecutor(len(groups), mp_context=context) as pool:
            futures = {
                group: pool.submit(_rebuild_views, settings, group, target, batch_size)
                for group in groups
            }
            for _ in range(1_000_000):  # bounded: every wait is a second or the futures end
                pending = [f for f in futures.values() if not f.done()]
                if not pending:
                    break
                if progress is not None:
                    position = min(self.projections[n].view.visible_position() or 0 for n in chosen)
                    progress(min(position, target), target)
                _wait_any(pending, 1.0)
            by_group = {group: f.result() for group, f in futures.items()}
        elapsed = time.perf_counter() - started
        if progress is not None:
            progress(target, target)
        done = max((r["events"] for r in by_group.values()), default=0)
        return {
            "projections": chosen,
            "events": done,
            "seconds": elapsed,
            "events_per_second": done / elapsed if elapsed else 0.0,
            "processes": len(groups),
            "groups": [list(g) for g in groups],
            "by_view": {name: r for group, r in by_group.items() for name in group},
        }


def rebuild_groups(names: Sequence[str], workers: int) -> list[tuple[str, ...]]:
    """`names` shared between at most `workers` groups of about equal cost (REBUILD_COST;
    20 for a view not measured): the costliest first, each to the cheapest group so far."""
    count = max(1, min(workers, len(names)))
    return [g for g in balanced_groups(names, count, REBUILD_COST) if g]


def _wait_any(futures: Sequence[Any], timeout: float) -> None:
    from concurrent.futures import FIRST_COMPLETED, wait

    wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)


def _rebuild_views(
    settings: Any, names: Sequence[str], target: int, batch_size: int
) -> dict[str, Any]:
    """Some views' rebuild, in a process of their own: one follower reads and decodes each
    page once and applies it to every one of `names`, until each has applied everything up to
    `target` (the log's end when the rebuild started)."""
    from infra.bootstrap import build_container
    from infra.process_tuning import tune_for_throughput

    container = build_container(settings)
    tune_for_throughput()
    try:
        projections = container.projections
        chosen = [projections.projections[name] for name in names]
        follower = LogFollower(container.referrals, chosen, projections._reader(), batch_size)
        started = time.perf_counter()
        read = 0
        try:
            for _ in range(100_000_000):  # bounded by the target (an unsettled gap waits)
                if min(p.view.visible_position() or 0 for p in chosen) >= target:
                    break
                got = follower.run_until_caught_up()
                read += got
                if not got:
                    time.sleep(0.05)
        finally:
            follower.close()
        seconds = time.perf_counter() - started
    finally:
        container.close()
    return {
        "views": list(names),
        "events": read,
        "seconds": seconds,
        "events_per_second": read / seconds if seconds else 0.0,
    }


class _Unreachable(Exception):
    """The runner already knows the database is unreachable."""


def lost_now(error: BaseException) -> dict[str, Any]:
    """The connection fields of a status read that could not reach the database."""
    instant = datetime.now(timezone.utc).isoformat()
    return {"connection": f"lost since {instant}", "last_error": describe(error)}


def offline_status(settings: Any, error: BaseException) -> list[ProjectionStatus]:
    """The status when the database cannot be reached at all (`referrals projections status`
    during an outage): no positions; the worker's own account of the outage if it runs on
    this machine, else this read's failure."""
    worker = read_worker_status(settings.data_dir, "projections")
    if worker is not None and worker.get("connection", "ok") != "ok":
        connection = {"connection": worker["connection"], "last_error": worker.get("last_error")}
    else:
        connection = lost_now(error)
    return [
        ProjectionStatus(
            name=cls.name,
            position=None,
            max_notification_id=None,
            lag=None,
            running=worker is not None,
            **connection,
        )
        for cls in registered_projection_classes()
    ]


def open_projections(container: Any, **kwargs: Any) -> Projections:
    """Builds the facade for a container (called by `infra.bootstrap`)."""
    context = ProjectionContext(
        container.reference,
        container.rules,
        container.calendar,
        getattr(container, "reference_state", None),
        history=container.referrals.case_history,
    )
    return Projections(container.referrals, container.settings, context, **kwargs)


def _retry_view(app: Any, projection: Projection[Any], decoder: EventDecoder) -> dict[str, int]:
    """Re-applies one view's quarantined events, case by case in log order (each event in its
    own transaction, which marks it resolved); stops a case at its first event that still
    fails. The view's position does not move."""
    view = projection.view
    rows = view.quarantined(limit=10_000_000)
    cases: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        cases.setdefault(row["originator_id"], []).append(row)
    projection.forget()  # another process may have written the view
    resolved = 0
    for entries in cases.values():
        for row in entries:
            notification = _notification(app, int(row["position"]))
            if notification is None:
                break
            item = Item(
                notification.id, notification.topic, decoder.decode(notification), notification
            )
            applied = _apply_in_place(app, projection, item, resolve=(item.position,))
            if applied is not None:  # still fails: record why; the case's later events wait
                _apply_in_place(
                    app,
                    projection,
                    None,
                    entries=(QuarantineEntry.of(item, quarantine.FAILED, applied),),
                )
                break
            resolved += 1
    return {"resolved": resolved, "open": len(rows) - resolved}


def _notification(app: Any, position: int) -> Any:
    found = list(app.recorder.select_notifications(start=position, limit=1, stop=position))
    return found[0] if found else None


def _apply_in_place(
    app: Any,
    projection: Projection[Any],
    item: Item | None,
    resolve: Sequence[int] = (),
    entries: Sequence[QuarantineEntry] = (),
) -> BaseException | None:
    """One transaction at the view's current position (which it keeps): applies `item` and
    marks `resolve` resolved, or records `entries`. Returns the event's error, if any (an
    error that is not the event's is raised)."""
    for _ in range(100):  # bounded: a rival runner moving the position makes us re-read it
        after = projection.view.position()
        batch = Batch(
            after,
            [item] if item is not None else [],
            Tracking(app.name, after or 0),
            more=False,
            quarantine=tuple(entries),
            resolve=tuple(resolve),
        )
        try:
            projection.process_batch(batch)
            return None
        except _PositionMismatch as error:
            projection.forget()
            if isinstance(error, ViewBusyError):  # a worker is applying a page: let it finish
                time.sleep(0.1)
            continue
        except Exception as error:
            projection.forget()
            if item is None or not quarantine.is_event_error(error):
                raise
            return error
    raise RuntimeError(f"{projection.name}: its position kept moving during the retry")
