"""Views shared among projection workers (issue 19): each view is leased to one worker at a
time, so N workers apply N views in parallel, and a view whose worker stopped renewing is
taken over once its lease expires.

Two small tables in the event store's schema (PostgreSQL only; the embedded SQLite store has
one process):

- `projection_workers`: one row per live worker, renewed every refresh (expires after the
  lease time) — how many workers share the views;
- `projection_leases`: per view, its holder, when the lease expires, and a token raised on
  each take-over.

Every refresh a worker renews its heartbeat and its leases, keeps at most its share
(⌈views / live workers⌉, releasing the rest), and claims free or expired views up to it.
Leases only spread the work: exactness still rests on each page's position check (a worker
that lost a lease while frozen fails its next page's check and drops the view).
"""

from __future__ import annotations

import logging
import math
import os
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


class ViewLeases:
    """One worker's leases on the views it applies."""

    def __init__(
        self, datastore: Any, views: Sequence[str], name: str, seconds: float = 10.0
    ) -> None:
        self.datastore = datastore
        self.views = sorted(views)
        self.seconds = float(seconds)
        self.worker_id = f"{name}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        schema = f'"{datastore.schema}".'
        self.workers = f"{schema}projection_workers"
        self.leases = f"{schema}projection_leases"
        self.held: set[str] = set()
        with datastore.transaction(commit=True) as cursor:
            for statement in DDL:
                cursor.execute(statement.replace("{schema}", schema))

    def refresh(self) -> set[str]:
        """Renews, releases beyond this worker's share, claims up to it; the views held.

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
            cursor.execute(f"SELECT count(*) AS n FROM {self.workers} WHERE expires_at > now()")
            live = max(1, int(cursor.fetchone()["n"]))
            share = math.ceil(len(self.views) / live)
            cursor.execute(
                f"UPDATE {self.leases} SET expires_at = now() + %s::interval "
                "WHERE holder = %s AND expires_at > now() RETURNING view_name",
                (ttl, self.worker_id),
            )
            mine = sorted(r["view_name"] for r in cursor.fetchall() if r["view_name"] in self.views)
            if len(mine) > share:  # another worker joined: hand the rest over
                extra = mine[share:]
                cursor.execute(
                    f"UPDATE {self.leases} SET expires_at = now() "
                    "WHERE holder = %s AND view_name = ANY(%s)",
                    (self.worker_id, extra),
                )
                mine = mine[:share]
            # claim free or expired views, starting at a point of our own (spreads claims)
            start = int(self.worker_id.encode().hex()[-6:], 16) % max(1, len(self.views))
            for view in self.views[start:] + self.views[:start]:
                if len(mine) >= share:
                    break
                if view in mine:
                    continue
                cursor.execute(
                    f"INSERT INTO {self.leases} AS t (view_name, holder, expires_at) VALUES "
                    "(%s, %s, now() + %s::interval) ON CONFLICT (view_name) DO UPDATE SET "
                    "holder = excluded.holder, expires_at = excluded.expires_at, "
                    "token = t.token + 1 WHERE t.expires_at <= now() RETURNING view_name",
                    (view, self.worker_id, ttl),
                )
                if cursor.fetchone() is not None:
                    mine.append(view)
        if set(mine) != self.held:
            log.info("projection leases of %s: %s", self.worker_id, sorted(mine))
        self.held = set(mine)
        return self.held

    def release(self) -> None:
        """Gives every lease back at once (a clean stop: the others take them now)."""
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
