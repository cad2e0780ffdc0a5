"""Views shared among projection workers (issue 19): each view is leased to one worker at a
time, so N workers apply N views in parallel, and a view whose worker stopped renewing is
taken over once its lease expires.

Two small tables in the event store's schema (PostgreSQL only; the embedded SQLite store has
one process):

- `projection_workers`: one row per live worker, renewed every refresh (expires after the
  lease time) — how many workers share the views;
- `projection_leases`: per view, its holder, when the lease expires, and a token raised on
  each take-over.

The views are split by cost (`balanced_groups`, VIEW_COST): live workers sorted by id, the
i-th takes the i-th group, so every worker computes the same split without talking to the
others. Between pages a worker refreshes: renews its heartbeat and leases, releases the views
not in its group, claims those in it once free or expired. A heartbeat thread renews (only)
while a long page runs, so a large catch-up page never costs a lease. Leases only spread the
work: exactness still rests on each page's position check (a worker that lost a lease while
frozen fails its next page's check and drops the view).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from projections.framework import is_lock_busy

log = logging.getLogger(__name__)

LOCK_WAIT = 1.0
"""Seconds a refresh waits for a lease row another worker's refresh holds."""

DDL = (
    (
        "CREATE TABLE IF NOT EXISTS {schema}projection_workers ("
        " worker_id TEXT PRIMARY KEY, expires_at TIMESTAMPTZ NOT NULL)"
    ),
    (
        "CREATE TABLE IF NOT EXISTS {schema}projection_leases ("
        " view_name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL,"
        " token BIGINT NOT NULL DEFAULT 1)"
    ),
)


VIEW_COST = {"audit_trail": 47, "compliance": 36, "agency_counts": 20, "case_index": 16}
"""CPU µs per event of each view, read and decode included (measured on 50,000 events,
issue 16; bench/RESULTS.md): how the views are shared, by workers and by rebuild processes.
A view not measured counts 20."""


def balanced_groups(
    names: Sequence[str], count: int, costs: dict[str, int] | None = None
) -> list[tuple[str, ...]]:
    """`names` in `count` groups of about equal cost (`costs`, default VIEW_COST): the
    costliest first, each to the cheapest group so far (ties: the earlier group). Always
    `count` groups (some empty when there are fewer views), the same for the same input."""
    costs = VIEW_COST if costs is None else costs
    count = max(1, count)
    groups: list[list[str]] = [[] for _ in range(count)]
    totals = [0] * count
    order = list(names)
    for name in sorted(order, key=lambda n: (-costs.get(n, 20), order.index(n))):
        cheapest = totals.index(min(totals))
        groups[cheapest].append(name)
        totals[cheapest] += costs.get(name, 20)
    return [tuple(g) for g in groups]


class ViewLeases:
    """One worker's leases on the views it applies.

    The views are shared by cost: every live worker (sorted by id) gets one group of
    `balanced_groups(views, live workers)`, so each computes the same split. `refresh()`
    (between pages) releases what is not in this worker's group and claims what is, once
    free or expired; `renew()` (a heartbeat thread, `start_heartbeat`) keeps the worker and
    its leases alive while a long page runs, so a large catch-up page never loses a lease.
    A frozen process renews nothing: its leases expire after `seconds`.
    """

    def __init__(
        self,
        datastore: Any,
        views: Sequence[str],
        name: str,
        seconds: float = 10.0,
        costs: dict[str, int] | None = None,
    ) -> None:
        self.datastore = datastore
        self.views = sorted(views)
        self.seconds = float(seconds)
        self.costs = costs
        self.worker_id = f"{name}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        schema = f'"{datastore.schema}".'
        self.workers = f"{schema}projection_workers"
        self.leases = f"{schema}projection_leases"
        self.held: set[str] = set()
        self.target: set[str] = set()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        with datastore.transaction(commit=True) as cursor:
            for statement in DDL:
                cursor.execute(statement.replace("{schema}", schema))

    def refresh(self) -> set[str]:
        """Renews, releases what is not this worker's, claims what is; the views held.

        Never waits long on a lease row another worker holds inside its own refresh (it may
        have frozen there, until `idle_in_transaction_session_timeout` ends it): after
        `LOCK_WAIT` the refresh is skipped and the views held so far are kept (each page's
        position check still guards them)."""
        try:
            return self._refresh()
        except Exception as error:
            if not is_lock_busy(error):
                raise
            log.info("projection leases busy (%s); keeping %s for now", error, sorted(self.held))
            return self.held

    def _refresh(self) -> set[str]:
        ttl = f"{self.seconds} seconds"
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{int(LOCK_WAIT * 1000)}ms'")
            cursor.execute(
                f"INSERT INTO {self.workers} (worker_id, expires_at) VALUES "
                "(%s, now() + %s::interval) ON CONFLICT (worker_id) DO UPDATE SET "
                "expires_at = excluded.expires_at",
                (self.worker_id, ttl),
            )
            cursor.execute(
                f"DELETE FROM {self.workers} WHERE expires_at < now() - %s::interval", (ttl,)
            )
            cursor.execute(
                f"SELECT worker_id FROM {self.workers} WHERE expires_at > now() ORDER BY worker_id"
            )
            live = [r["worker_id"] for r in cursor.fetchall()] or [self.worker_id]
            if self.worker_id not in live:  # (our own row expired and was renewed just now)
                live = sorted([*live, self.worker_id])
            groups = balanced_groups(self.views, len(live), self.costs)
            target = set(groups[live.index(self.worker_id)])
            cursor.execute(
                f"UPDATE {self.leases} SET expires_at = now() + %s::interval "
                "WHERE holder = %s AND expires_at > now() RETURNING view_name",
                (ttl, self.worker_id),
            )
            mine = {r["view_name"] for r in cursor.fetchall() if r["view_name"] in self.views}
            extra = sorted(mine - target)
            if extra:  # another worker joined (or the split changed): hand them over now
                cursor.execute(
                    f"UPDATE {self.leases} SET expires_at = now() "
                    "WHERE holder = %s AND view_name = ANY(%s)",
                    (self.worker_id, extra),
                )
                mine -= set(extra)
            for view in sorted(target - mine):  # free or expired: ours
                cursor.execute(
                    f"INSERT INTO {self.leases} AS t (view_name, holder, expires_at) VALUES "
                    "(%s, %s, now() + %s::interval) ON CONFLICT (view_name) DO UPDATE SET "
                    "holder = excluded.holder, expires_at = excluded.expires_at, "
                    "token = t.token + 1 WHERE t.expires_at <= now() RETURNING view_name",
                    (view, self.worker_id, ttl),
                )
                if cursor.fetchone() is not None:
                    mine.add(view)
        if mine != self.held:
            log.info("projection leases of %s: %s", self.worker_id, sorted(mine))
        self.held = mine
        self.target = target
        return set(self.held)

    @property
    def settled(self) -> bool:
        """Whether this worker holds exactly its share (else refresh again soon)."""
        return self.held == self.target

    def renew(self) -> None:
        """Extends this worker's heartbeat and the leases it still holds (nothing else)."""
        ttl = f"{self.seconds} seconds"
        try:
            with self.datastore.transaction(commit=True) as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = '{int(LOCK_WAIT * 1000)}ms'")
                cursor.execute(
                    f"UPDATE {self.workers} SET expires_at = now() + %s::interval "
                    "WHERE worker_id = %s",
                    (ttl, self.worker_id),
                )
                cursor.execute(
                    f"UPDATE {self.leases} SET expires_at = now() + %s::interval "
                    "WHERE holder = %s AND expires_at > now()",
                    (ttl, self.worker_id),
                )
        except Exception as error:  # noqa: BLE001 - the next refresh (or expiry) settles it
            log.info("could not renew the projection leases: %s", error)

    def start_heartbeat(self) -> None:
        """Renews every `seconds / 3` in a daemon thread until `stop_heartbeat()`."""
        if self._heartbeat is not None:
            return
        self._stop.clear()

        def beat() -> None:
            while not self._stop.wait(self.seconds / 3):
                self.renew()

        self._heartbeat = threading.Thread(target=beat, name="projection-leases", daemon=True)
        self._heartbeat.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
            self._heartbeat = None

    def release(self) -> None:
        """Gives every lease back at once (a clean stop: the others take them now)."""
        self.stop_heartbeat()
        try:
            with self.datastore.transaction(commit=True) as cursor:
                cursor.execute(
                    f"UPDATE {self.leases} SET expires_at = now() WHERE holder = %s",
                    (self.worker_id,),
                )
                cursor.execute(
                    f"DELETE FROM {self.workers} WHERE worker_id = %s", (self.worker_id,)
                )
        except Exception:  # noqa: BLE001 - the store may be down: the leases expire anyway
            log.warning("could not release the projection leases", exc_info=True)
        self.held = set()


def holders(datastore: Any) -> dict[str, str]:
    """View -> holder of every unexpired lease (for status and tests)."""
    table = f'"{datastore.schema}".projection_leases'
    with datastore.transaction(commit=False) as cursor:
        cursor.execute("SELECT to_regclass(%s) AS t", (table,))
        if cursor.fetchone()["t"] is None:
            return {}
        cursor.execute(f"SELECT view_name, holder FROM {table} WHERE expires_at > now()")
        return {r["view_name"]: r["holder"] for r in cursor.fetchall()}
