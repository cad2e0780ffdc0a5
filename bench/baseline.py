"""The batch row's baseline: the stock `eventsourcing` application saving the same events.

The events are first decided by the ledger in memory (POPO store, not timed); the very same
domain event objects are then saved by a plain `Application` on PostgreSQL (the library's
recorder with its insert function, its JSON transcoder), 1,000 events a `save()`, timed.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from eventsourcing.application import Application

from bench.store import BASELINE_SCHEMA, Target


class StockApplication(Application[Any]):
    """Nothing but the library: stores whatever events it is given."""

    name = "Baseline"


def decided_events(wires: Sequence[dict[str, Any]]) -> list[Any]:
    """The domain events the ledger records for these wire events (decided in memory)."""
    from infra.keystore import SqliteKeyStore
    from infra.reference_data import load_calendar, load_reference, load_time_limits
    from services.personal_data import MasterKeys, PersonalDataVault
    from services.referrals import Referrals

    with tempfile.TemporaryDirectory() as folder:
        store = SqliteKeyStore(Path(folder) / "keys.sqlite")
        vault = PersonalDataVault(store, MasterKeys({"k": b"\0" * 32}, "k"))
        app = Referrals(
            {"PERSISTENCE_MODULE": "eventsourcing.popo"},
            reference=load_reference(None),
            vault=vault,
            rules=load_time_limits(None),
            calendar=load_calendar(None),
        )
        for start in range(0, len(wires), 1000):
            app.record_batch(wires[start : start + 1000])
        events = []
        position = 1
        while True:
            page = app.recorder.select_notifications(start=position, limit=10_000)
            if not page:
                break
            events.extend(app.mapper.to_domain_event(n) for n in page)
            position = page[-1].id + 1
        store.close()
    return events


def library_save_rate(
    target: Target, wires: Sequence[dict[str, Any]], log: Callable[[str], None]
) -> float:
    """Events per second of `StockApplication.save(*1,000 events)` on PostgreSQL."""
    events = decided_events(wires)
    target.fresh_schema(BASELINE_SCHEMA)
    app = StockApplication(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": target.database,
            "POSTGRES_HOST": target.host,
            "POSTGRES_PORT": str(target.port),
            "POSTGRES_USER": target.user,
            "POSTGRES_PASSWORD": "",
            "POSTGRES_SCHEMA": BASELINE_SCHEMA,
            "POSTGRES_ENABLE_DB_FUNCTIONS": "y",
        }
    )
    try:
        started = time.perf_counter()
        for start in range(0, len(events), 1000):
            app.save(*events[start : start + 1000])
        seconds = time.perf_counter() - started
    finally:
        app.close()
    rate = len(events) / seconds if seconds else 0.0
    log(f"baseline: eventsourcing saved {len(events):,} events in {seconds:.1f}s ({rate:,.0f}/s)")
    return rate
