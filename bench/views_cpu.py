"""CPU of the views' own Python per event, without the database's share (issue 13/16).

`python -m bench.views_cpu DATABASE SCHEMA GROUPS [REPEATS]`: the log of a bench dataset
(`bench.store`, e.g. `perf_s3 dataset_100000`) is read and decoded once (not timed); then each
group of views (`case_index`, `compliance+agency_counts`, …) applies it in pages of 5,000 as
one process's follower does (`prepare`, then `process_batch` of each view), against views that
write nothing. Prints µs of process CPU per event for each group. Runs on any checkout with the
same projection API (compare commits by running it with their `PYTHONPATH`, alternated).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class NullView:
    """A view that stores nothing (the compliance queue kept in memory)."""

    dialect = "postgres"

    def __init__(self) -> None:
        self.dirty: dict[str, None] = {}

    @contextlib.contextmanager
    def transaction(self, batch: Any) -> Iterator[None]:
        yield None

    def load(self, tx: Any, ids: Any) -> dict[str, Any]:
        return {}

    def settled(self, tx: Any) -> None:
        return None

    def mark_dirty(self, tx: Any, ids: Any) -> None:
        self.dirty.update(dict.fromkeys(ids))

    def take_dirty(self, tx: Any) -> list[str]:
        out = list(self.dirty)
        self.dirty.clear()
        return out

    def load_facts(self, tx: Any, ids: Any) -> dict[str, list[Any]]:
        return {c: [] for c in ids}

    def p_ts(self, value: Any) -> Any:
        return value

    p_date = v_ts = p_ts

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def main(argv: list[str]) -> None:
    from eventsourcing.persistence import Tracking

    from bench.store import Target
    from infra.bootstrap import build_container
    from infra.process_tuning import tune_for_throughput
    from projections.framework import Batch, EventDecoder, Item

    database, schema, groups = argv[0], argv[1], [g.split("+") for g in argv[2].split(",")]
    repeats = int(argv[3]) if len(argv) > 3 else 1
    target = Target(database=database, dataset=schema, data_dir=Path("var/bench"))
    container = build_container(target.settings(schema))
    tune_for_throughput()
    projections = container.projections.projections
    app = container.referrals
    decoder = EventDecoder(app.mapper)
    items = [
        Item(n.id, n.topic, decoder.decode(n), n)
        for n in app.recorder.select_notifications(start=1, limit=10**8)
        if n.topic.startswith("referral.")
    ]
    pages = [items[k : k + 5000] for k in range(0, len(items), 5000)]
    gc.collect()
    gc.freeze()
    result: dict[str, list[float]] = {}
    for group in groups:
        for _ in range(repeats):
            context = projections[group[0]].context
            if hasattr(context, "shared"):  # a process of its own: nothing shared yet
                context = dataclasses.replace(context, shared={})
            views = []
            for name in group:
                cls = type(projections[name])
                views.append(cls(NullView(), context))  # type: ignore[arg-type]
            after = None
            started = time.process_time()
            for number, page in enumerate(pages):
                tracking = Tracking(app.name, page[-1].position)
                batch = Batch(after, page, tracking, more=number < len(pages) - 1)
                for view in views:
                    getattr(view, "prepare", lambda items: None)(page)
                for view in views:
                    view.process_batch(batch)
                after = page[-1].position
            spent = time.process_time() - started
            result.setdefault("+".join(group), []).append(round(spent / len(items) * 1e6, 2))
    container.close()
    print(json.dumps({"events": len(items), "us_per_event": result, "load": os.getloadavg()}))


if __name__ == "__main__":
    main(sys.argv[1:])
