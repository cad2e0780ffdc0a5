"""Per-agency counts: how many events of each type each agency recorded, by province, eligible
category, procedural role, stage and day — the figures of the council's half-yearly report
(JC 10/2018 Art. 20(5); Forms 06A–06C: explanations of the right, requests received and
notified to the Centre (Form 03), appointments requested, assignments, registrations, refusals, …).

Attribution:
- agency: the agency that recorded the event; province: that agency's province (reference
  data), or '' for a central agency;
- category, role, stage: the case's values as they stand after the event (an event may carry
  new values; a transfer's `to_stage` counts from that transfer on); '' when not known yet;
- day: the Vietnam-local date (UTC+7) of `occurred_at`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any, ClassVar

from domain.calendar import VIETNAM_TZ
from projections.case_index import REFERRAL_TOPICS
from projections.derived import DerivedCases, PageDerivation, effective_facts_of
from projections.framework import (
    Batch,
    Item,
    Projection,
    ProjectionView,
    StateCache,
    store_views,
)

DIMENSIONS = ("agency_id", "event_type", "province", "category", "procedural_role", "stage", "day")
_STATE = ("case_id", "category", "procedural_role", "stage")


class AgencyCountsView(ProjectionView):
    """The counts table, the per-case attributes it folds, and the report queries."""

    TABLES: ClassVar[tuple[str, ...]] = ("agency_counts", "agency_counts_case")

    def load(self, tx: Any, case_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out = {}
        for start in range(0, len(case_ids), 500):
            cond, params = self.in_list("case_id", list(case_ids[start : start + 500]))
            for row in tx.execute(
                f"SELECT {', '.join(_STATE)} FROM {self.t('agency_counts_case')} WHERE {cond}",
                params,
            ):
                out[row["case_id"]] = row
        return out

    def save(self, tx: Any, states: Iterable[dict[str, Any]], counts: Counter[tuple]) -> None:
        tx.upsert(
            "agency_counts_case",
            _STATE,
            [tuple(s[c] for c in _STATE) for s in states],
            key=("case_id",),
        )
        tx.upsert(
            "agency_counts",
            (*DIMENSIONS, "n"),
            [(*key[:-1], self.p_date(key[-1]), n) for key, n in sorted(counts.items())],
            key=DIMENSIONS,
            mode="add",
        )
        # a fact that left (withdrawn, corrected to another day, back to held) leaves no row
        # counting 0 behind: the views stay what a rebuild from the log makes them
        cond = " AND ".join(f"{c} = %s" for c in DIMENSIONS)
        for key, n in sorted(counts.items()):
            if n < 0:
                tx.execute(
                    f"DELETE FROM {self.t('agency_counts')} WHERE {cond} AND n = 0",
                    [*key[:-1], self.p_date(key[-1])],
                )

    def counts(
        self,
        province: str | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        group_by: Sequence[str] = ("agency_id", "event_type"),
        agency_id: str | None = None,
        event_types: Sequence[str] | None = None,
        provinces: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Sums of events grouped by `group_by` (any of DIMENSIONS), for the days
        `date_from`..`date_to` inclusive (Vietnam-local), sorted by the groups."""
        for column in group_by:
            if column not in DIMENSIONS:
                raise ValueError(f"cannot group by {column!r}; choose from {DIMENSIONS}")
        where, params = [], []
        if province is not None:
            where.append("province = %s")
            params.append(province)
        if provinces is not None:
            cond, more = self.in_list("province", list(provinces))
            where.append(cond)
            params.extend(more)
        if agency_id is not None:
            where.append("agency_id = %s")
            params.append(agency_id)
        if event_types is not None:
            cond, more = self.in_list("event_type", list(event_types))
            where.append(cond)
            params.extend(more)
        if date_from is not None:
            where.append("day >= %s")
            params.append(self.p_date(date_from))
        if date_to is not None:
            where.append("day <= %s")
            params.append(self.p_date(date_to))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        groups = ", ".join(group_by)
        select = f"{groups}, " if group_by else ""
        grouping = f" GROUP BY {groups} ORDER BY {groups}" if group_by else ""
        with self.read() as tx:
            rows = tx.execute(
                f"SELECT {select}SUM(n) AS n FROM {self.t('agency_counts')}{clause}{grouping}",
                params,
            )
        out = []
        for row in rows:
            if not row["n"]:  # none, or counted and taken back (a fact sent back to held)
                continue
            row["n"] = int(row["n"])
            if "day" in row:
                row["day"] = self.v_date(row["day"])
            out.append(row)
        return out

    def agency_table(
        self, province: str, date_from: date | None, date_to: date | None
    ) -> dict[str, dict[str, int]]:
        """{agency_id: {event_type: n}} for the agencies of a province over a period."""
        table: dict[str, dict[str, int]] = {}
        for row in self.counts(province, date_from, date_to, ("agency_id", "event_type")):
            table.setdefault(row["agency_id"], {})[row["event_type"]] = row["n"]
        return table


_DDL = (
    "CREATE TABLE IF NOT EXISTS {schema}agency_counts ("
    " agency_id TEXT NOT NULL, event_type TEXT NOT NULL, province TEXT NOT NULL,"
    " category TEXT NOT NULL, procedural_role TEXT NOT NULL, stage TEXT NOT NULL,"
    " day %(date)s NOT NULL, n BIGINT NOT NULL,"
    " PRIMARY KEY (agency_id, event_type, province, category, procedural_role, stage, day))",
    "CREATE INDEX IF NOT EXISTS agency_counts_by_province ON {schema}agency_counts (province, day)",
    "CREATE TABLE IF NOT EXISTS {schema}agency_counts_case ("
    " case_id TEXT PRIMARY KEY, category TEXT NOT NULL, procedural_role TEXT NOT NULL,"
    " stage TEXT NOT NULL)",
)


class AgencyCounts(Projection[AgencyCountsView]):
    """Counts of events per agency and dimension (projection `agency_counts`)."""

    name = "agency_counts"
    topics = REFERRAL_TOPICS
    views: ClassVar[dict[str, type[ProjectionView]]] = store_views(AgencyCountsView, _DDL)

    def __init__(self, view: AgencyCountsView, context: Any = None) -> None:
        super().__init__(view, context)
        self.cache = StateCache()
        self.derived = DerivedCases(context)  # ADR 0008: held events count once in effect
        self.shared = PageDerivation.of(context)  # the same, folded once for the process's views

    def forget(self) -> None:
        self.cache.clear()
        self.derived.forget()

    def prepare(self, items: Sequence[Item]) -> None:
        if self.shared is not None:
            self.shared.prepare(items)

    def process_batch(self, batch: Batch) -> None:
        try:
            self._process_batch(batch)
        except BaseException:
            self.derived.forget()  # folded in place before the transaction failed
            raise

    def _process_batch(self, batch: Batch) -> None:
        reference = self.context.reference if self.context is not None else None
        agencies = reference.agencies if reference is not None else {}
        provinces = {a: (x.province or "") for a, x in agencies.items()}
        view = self.view
        shared = self.shared
        with view.transaction(batch) as tx:
            case_ids = list(dict.fromkeys(item.event.case_id for item in batch.items))
            states, missing = self.cache.split(case_ids)
            loaded = view.load(tx, missing) if missing else {}
            for case_id in missing:  # never stored: nothing known yet
                loaded.setdefault(
                    case_id,
                    {"case_id": case_id, "category": "", "procedural_role": "", "stage": ""},
                )
            states.update(loaded)
            changed: dict[str, dict[str, Any]] = {}
            counts: Counter[tuple] = Counter()
            for item in batch.items:
                event = item.event
                case_id = event.case_id
                state = (
                    changed.get(case_id)
                    or states.get(case_id)
                    or {"case_id": case_id, "category": "", "procedural_role": "", "stage": ""}
                )
                step = shared.step(item.position) if shared is not None else None
                if step is None:
                    step = self.derived.step(event)
                if step.simple:
                    if step.held:  # the new fact is held: nothing counts until it takes effect
                        continue
                    new = _updated(state, event.data)
                    if new is not state:
                        changed[case_id] = state = new
                    counts[
                        (
                            event.agency_id,
                            event.WIRE_TYPE,
                            provinces.get(event.agency_id, ""),
                            state["category"],
                            state["procedural_role"],
                            state["stage"],
                            event.occurred_at.astimezone(VIETNAM_TZ).date(),
                        )
                    ] += 1
                    continue
                # a late fact, or one on a case with held facts: the case is counted again as
                # a whole, its facts in effect in occurred order (what moved, moves)
                old, _ = _contribution(case_id, step.before_facts or [], provinces)
                now, final = _contribution(case_id, effective_facts_of(step.state), provinces)
                counts.update(now)
                counts.subtract(old)
                if final != state:
                    changed[case_id] = final
            counts = Counter({k: n for k, n in counts.items() if n})
            if counts or changed:
                view.save(tx, changed.values(), counts)
        self.cache.update({**loaded, **changed})


def _contribution(
    case_id: str, facts: list[dict[str, Any]], provinces: dict[str, str]
) -> tuple[Counter[tuple], dict[str, Any]]:
    """What a case adds to the counts: its facts in effect (`effective_facts_of`, in occurred
    order), each with the case's attributes as they stand after it; and the attributes after
    the last one."""
    state: dict[str, Any] = {"case_id": case_id, "category": "", "procedural_role": "", "stage": ""}
    counts: Counter[tuple] = Counter()
    for fact in facts:
        state = _updated(state, fact["data"])
        counts[
            (
                fact["agency_id"],
                fact["type"],
                provinces.get(fact["agency_id"], ""),
                state["category"],
                state["procedural_role"],
                state["stage"],
                fact["occurred_at"].astimezone(VIETNAM_TZ).date(),
            )
        ] += 1
    return counts, state


def _updated(state: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The case's attributes after an event's data (the same dict when nothing changes)."""
    new = None
    for key, name in (
        ("eligible_category", "category"),
        ("procedural_role", "procedural_role"),
        ("stage", "stage"),
        ("to_stage", "stage"),
    ):
        value = data.get(key)
        if value is not None and value != (new or state)[name]:
            if new is None:
                new = dict(state)
            new[name] = value
    return new if new is not None else state
