"""The `Projections` facade (what `Container.projections` holds): builds every registered
projection and its view for the configured store, runs them in process or as the worker, and
answers status, catch-up and rebuild.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from importlib import import_module
from importlib.util import find_spec
from typing import Any

from projections.framework import (
    BackgroundRunner,
    LogFollower,
    LogReader,
    PostgresLogReader,
    Projection,
    ProjectionContext,
    ProjectionError,
    ProjectionStatus,
    ProjectionView,
    SQLiteLogReader,
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
        self.follower = self._new_follower()
        self.runner = BackgroundRunner(self.follower, poll_interval=poll_interval,
                                       listen=self._listener() if self.store == "postgres"
                                       else None)

    # -- construction ---------------------------------------------------------------------
    @staticmethod
    def _open_datastore(settings: Any) -> Any:
        if settings.store == "postgres":
            from eventsourcing.postgres import PostgresDatastore

            return PostgresDatastore(
                dbname=settings.pg_dbname, host=settings.pg_host, port=settings.pg_port,
                user=settings.pg_user, password=settings.pg_password.get_secret_value(),
                pool_size=2, max_overflow=6, schema=settings.pg_schema, lock_timeout=10,
                pre_ping=True,
            )
        from eventsourcing.sqlite import SQLiteDatastore

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return SQLiteDatastore(str(settings.data_dir / "projections.sqlite"), lock_timeout=10)

    def _reader(self) -> LogReader:
        if self.store == "postgres":
            return PostgresLogReader(self.app)
        return SQLiteLogReader(self.app)

    def _new_follower(self, batch_size: int | None = None) -> LogFollower:
        return LogFollower(self.app, list(self.projections.values()), self._reader(),
                           batch_size or self.batch_size)

    def _listener(self) -> Callable[[threading.Event, float], None]:
        """Waits for the event store's NOTIFY (or the timeout, or a wake-up)."""
        state: dict[str, Any] = {}
        channel = self.app.recorder.channel_name
        conninfo = self.settings.pg_conninfo()

        def wait(wake: threading.Event, timeout: float) -> None:
            import psycopg

            conn = state.get("conn")
            if conn is None or conn.closed:
                conn = state["conn"] = psycopg.connect(conninfo, autocommit=True)
                conn.execute(f'LISTEN "{channel}"')
            deadline = time.monotonic() + max(timeout, 0.5)
            while not wake.is_set() and time.monotonic() < deadline:
                for _ in conn.notifies(timeout=0.1, stop_after=1):
                    return

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
        """Starts the in-process runner (a daemon thread)."""
        self.runner.pause = pause
        self.runner.start()

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
    ) -> int:
        """Applies what is pending in the calling thread until every view reaches `until`
        (default: the log's end now); returns the events read. If the in-process runner is
        running, waits for it instead."""
        target = self.max_notification_id() if until is None else until
        if self.runner.running:
            self.wait_for(target, timeout)
            return 0
        total = 0
        deadline = time.monotonic() + timeout
        with self._lock:
            follower = self.follower
            follower.reload_positions()
            while stop is None or not stop.is_set():
                total += follower.run_until_caught_up(stop, progress, batch_size, pause)
                if min(self.positions().values(), default=target) >= target:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"projections did not reach {target} in {timeout}s")
                time.sleep(0.05)  # an unsettled gap in the log (see PostgresLogReader)
        return total

    def run_forever(
        self,
        stop: threading.Event,
        batch_size: int | None = None,
        pause: float = 0.0,
        until_caught_up: bool = False,
    ) -> None:
        """The worker loop (`referrals project`): follows the log until `stop` is set.

        Raises the first projection error; a restart resumes from the stored positions.
        """
        with self._lock:
            follower = self.follower
            if batch_size:
                follower.batch_size = batch_size
            follower.reload_positions()
            listen = self._listener() if self.store == "postgres" else None
            wake = threading.Event()
            while not stop.is_set():
                read = follower.run_until_caught_up(stop, pause=pause)
                if until_caught_up and min(self.positions().values(), default=0) >= (
                    self.max_notification_id()
                ):
                    return
                if read:
                    continue
                if listen is not None:
                    listen(wake, 1.0)
                else:
                    stop.wait(self.poll_interval)

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

    def status(self) -> list[ProjectionStatus]:
        """Position and lag (log end − position) of every projection."""
        top = self.max_notification_id()
        states = {s.projection.name: s for s in self.follower.states}
        error = self.runner.error
        out = []
        for name, projection in self.projections.items():
            position = projection.view.visible_position() or 0
            state = states.get(name)
            out.append(ProjectionStatus(
                name=name, position=position, max_notification_id=top,
                lag=max(0, top - position), running=self.runner.running,
                error=repr(error) if error is not None else None,
                applied_events=state.applied_events if state else 0,
                last_batch_at=state.last_batch_at if state else None,
            ))
        return out

    def rebuild(
        self,
        progress: Callable[[int, int], None] | None = None,
        names: Sequence[str] | None = None,
        batch_size: int = REBUILD_BATCH_SIZE,
        processes: bool = False,
    ) -> dict[str, Any]:
        """Drops the views (all, or `names`) and rebuilds them from event zero.

        `progress(done, total)` is called after every page. The in-process runner is stopped
        during the rebuild and restarted after it.

        With `processes` (PostgreSQL, more than one view), each view is rebuilt by its own
        process reading the log itself, so the views' Python work runs on every core instead
        of sharing one interpreter; each still applies pages exactly once through its own
        position (the same follower, the same transactions).
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
                return self._rebuild_in_processes(chosen, target, batch_size, progress)
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
            follower = LogFollower(self.app, [self.projections[n] for n in chosen],
                                   self._reader(), batch_size)
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
        return {"projections": chosen, "events": done, "seconds": elapsed,
                "events_per_second": done / elapsed if elapsed else 0.0}


    def _rebuild_in_processes(
        self, chosen: list[str], target: int, batch_size: int,
        progress: Callable[[int, int], None] | None,
    ) -> dict[str, Any]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        started = time.perf_counter()
        context = multiprocessing.get_context("spawn")  # no threads or pools carried over
        settings = self.settings.model_copy(update={"projections_in_process": False})
        with ProcessPoolExecutor(len(chosen), mp_context=context) as pool:
            futures = {name: pool.submit(_rebuild_view, settings, name, target, batch_size)
                       for name in chosen}
            for _ in range(1_000_000):  # bounded: every wait is a second or the futures end
                pending = [f for f in futures.values() if not f.done()]
                if not pending:
                    break
                if progress is not None:
                    position = min(self.projections[n].view.visible_position() or 0
                                   for n in chosen)
                    progress(min(position, target), target)
                _wait_any(pending, 1.0)
            by_view = {name: f.result() for name, f in futures.items()}
        elapsed = time.perf_counter() - started
        if progress is not None:
            progress(target, target)
        done = max((r["events"] for r in by_view.values()), default=0)
        return {"projections": chosen, "events": done, "seconds": elapsed,
                "events_per_second": done / elapsed if elapsed else 0.0,
                "processes": len(chosen), "by_view": by_view}


def _wait_any(futures: Sequence[Any], timeout: float) -> None:
    from concurrent.futures import FIRST_COMPLETED, wait

    wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)


def _rebuild_view(settings: Any, name: str, target: int, batch_size: int) -> dict[str, Any]:
    """One view's rebuild, in its own process: follows the log until the view has applied
    everything up to `target` (the log's end when the rebuild started)."""
    from infra.bootstrap import build_container
    from infra.process_tuning import tune_for_throughput

    container = build_container(settings)
    tune_for_throughput()
    try:
        projections = container.projections
        projection = projections.projections[name]
        follower = LogFollower(container.referrals, [projection], projections._reader(),
                               batch_size)
        started = time.perf_counter()
        read = 0
        try:
            for _ in range(100_000_000):  # bounded by the target (an unsettled gap waits)
                if (projection.view.visible_position() or 0) >= target:
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
    return {"events": read, "seconds": seconds,
            "events_per_second": read / seconds if seconds else 0.0}


def open_projections(container: Any, **kwargs: Any) -> Projections:
    """Builds the facade for a container (called by `infra.bootstrap`)."""
    context = ProjectionContext(container.reference, container.rules, container.calendar)
    return Projections(container.referrals, container.settings, context, **kwargs)
