"""Case index: one row per referral case, for case search and access scoping.

Row: where the case was opened (agency, its province), who holds it now, which Centre it was
addressed to, its lifecycle status, the person's pseudonymous id and non-identifying
attributes (category, role, stage, kind), its first/last/closing instants and version. A
second table lists every agency that touched the case: recorded one of its events, received
it by a transfer (`to_agency_id`) or was addressed as its Centre (`centre_id`).

Never stored: identity ciphertext or anything decrypted from it.

Query API (stable; the HTTP case search uses it):
    view.search(agency_id=None, province=None, provinces=None, status=None, category=None,
                occurred_from=None, occurred_to=None, touched_by=None, limit=50, offset=0)
        -> (rows: list[dict], total: int)
    view.get(case_id) -> dict | None          view.touched_agencies(case_id) -> list[str]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar

from domain.catalogue import AMENDMENT_TYPES
from domain.referral import Referral, next_status
from projections.derived import DerivedCases, PageDerivation
from projections.framework import (
    Batch,
    Item,
    Projection,
    ProjectionView,
    StateCache,
    store_views,
)

REFERRAL_TOPICS = tuple(
    cls.TOPIC
    for cls in vars(Referral).values()
    if isinstance(cls, type) and issubclass(cls, Referral.Event) and getattr(cls, "WIRE_TYPE", "")
)

COLUMNS = (
    "case_id",
    "province",
    "opening_agency_id",
    "holder_agency_id",
    "centre_id",
    "status",
    "eligible_category",
    "procedural_role",
    "stage",
    "proceedings_kind",
    "opened_at",
    "last_occurred_at",
    "closed_at",
    "version",
    "person_id",
)
_TIMES = ("opened_at", "last_occurred_at", "closed_at")
HELD_COLUMNS = (
    "case_id",
    "event_id",
    "version",
    "event_type",
    "agency_id",
    "province",
    "occurred_at",
    "recorded_at",
    "reason",
    "awaiting",
)
_ATTRIBUTES = ("person_id", "eligible_category", "procedural_role", "stage", "proceedings_kind")


def fold_case(row: dict[str, Any] | None, event: Any, reference: Any) -> dict[str, Any]:
    """The case row after one more event (the same state changes as the aggregate's)."""
    data = event.data
    wire = event.WIRE_TYPE
    if wire in AMENDMENT_TYPES and row is not None:  # the case is derived again as a whole
        return {**row, "version": event.originator_version}
    opening = row is None
    if row is None:
        agency = reference.agencies.get(event.agency_id) if reference is not None else None
        row = dict.fromkeys(COLUMNS)
        row.update(
            case_id=event.case_id,
            province=agency.province if agency is not None else None,
            opening_agency_id=event.agency_id,
            holder_agency_id=event.agency_id,
            status="OPEN",
            proceedings_kind="criminal",
            opened_at=event.occurred_at,
        )
    else:
        row = dict(row)
    for name in _ATTRIBUTES:
        if name in data:
            row[name] = data[name]
    if wire in ("REQUEST_TRANSFERRED", "APPOINTMENT_REQUESTED"):
        row["centre_id"] = data["centre_id"]
    elif wire in ("CASE_TRANSFERRED", "REQUEST_FORWARDED"):
        row["holder_agency_id"] = data.get("to_agency_id", row["holder_agency_id"])
        if "to_stage" in data:
            row["stage"] = data["to_stage"]
    elif wire == "CASE_CLOSED":
        row["closed_at"] = event.occurred_at
    elif wire == "NOT_ELIGIBLE_DETERMINED":  # as the aggregate: the category did not hold
        row["eligible_category"] = None
    row["status"] = next_status(None if opening else row["status"], wire)
    row["last_occurred_at"] = event.occurred_at
    row["version"] = event.originator_version
    return row


def derived_row(referral: Referral, reference: Any) -> dict[str, Any] | None:
    """The case row from the derived case (ADR 0008): its facts in effect, in occurred order;
    None while no fact is in effect (every one held)."""
    if referral.status is None:
        return None
    agency = reference.agencies.get(referral.opened_by or "") if reference is not None else None
    person = referral.person
    return {
        "case_id": referral.case_id,
        "province": agency.province if agency is not None else None,
        "opening_agency_id": referral.opened_by,
        "holder_agency_id": referral.holder_agency_id,
        "centre_id": referral.centre_id,
        "status": referral.status,
        "eligible_category": person.get("eligible_category"),
        "procedural_role": person.get("procedural_role"),
        "stage": person.get("stage"),
        "proceedings_kind": person.get("proceedings_kind") or "criminal",
        "opened_at": referral.opened_at,
        "last_occurred_at": referral.last_occurred_at,
        "closed_at": referral.closed_at,
        "version": referral.version,
        "person_id": person.get("person_id"),
    }


def _held_row(
    case_id: str, entry: dict[str, Any], state: Referral, reference: Any
) -> dict[str, Any]:
    agencies = reference.agencies if reference is not None else {}
    opener = agencies.get(state.opened_by or "") or agencies.get(entry["agency_id"])
    recorded = entry.get("recorded_at")
    return {
        "case_id": case_id,
        "event_id": entry["event_id"],
        "version": entry["version"],
        "event_type": entry["type"],
        "agency_id": entry["agency_id"],
        "province": opener.province if opener is not None else None,
        "occurred_at": datetime.fromisoformat(entry["occurred_at"]),
        "recorded_at": recorded,
        "reason": entry["reason"],
        "awaiting": ",".join(entry["awaiting"]),
    }


def touched_by(event: Any) -> set[str]:
    """Agencies an event involves: its recorder, a transfer's receiver, an addressed Centre."""
    agencies = {event.agency_id}
    for key in ("to_agency_id", "centre_id"):
        value = event.data.get(key)
        if value:
            agencies.add(value)
    return agencies


class CaseIndexView(ProjectionView):
    """The case index tables and their queries."""

    TABLES: ClassVar[tuple[str, ...]] = ("case_index", "case_index_agency", "case_index_held")

    # -- writes -------------------------------------------------------------------------------
    def load(self, tx: Any, case_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(list(case_ids), 500):
            cond, params = self.in_list("case_id", chunk)
            for row in tx.execute(
                f"SELECT {', '.join(COLUMNS)} FROM {self.t('case_index')} WHERE {cond}", params
            ):
                for name in _TIMES:
                    row[name] = self.v_ts(row[name])
                out[row["case_id"]] = row
        return out

    def save_held(self, tx: Any, case_ids: Sequence[str], held: list[dict[str, Any]]) -> None:
        """Replaces the held facts of these cases (ADR 0008)."""
        if not case_ids:
            return
        tx.delete_in("case_index_held", "case_id", list(case_ids))
        tx.upsert(
            "case_index_held",
            HELD_COLUMNS,
            [
                tuple(
                    self.p_ts(h[c]) if c in ("occurred_at", "recorded_at") else h[c]
                    for c in HELD_COLUMNS
                )
                for h in held
            ],
            key=("case_id", "event_id"),
        )

    def held(
        self,
        agency_id: str | None = None,
        provinces: Sequence[str] | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """The facts recorded but not in effect (held), oldest recording first: of one agency,
        and/or of cases in these provinces."""
        where, params = [], []
        if agency_id is not None:
            where.append("agency_id = %s")
            params.append(agency_id)
        if provinces is not None:
            if not provinces:
                return []
            cond, more = self.in_list("province", list(provinces))
            where.append(cond)
            params.extend(more)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self.read() as tx:
            rows = tx.execute(
                f"SELECT {', '.join(HELD_COLUMNS)} FROM {self.t('case_index_held')}{clause}"
                f" ORDER BY recorded_at, case_id, version LIMIT %s",
                [*params, int(limit)],
            )
        for row in rows:
            row["occurred_at"] = self.v_ts(row["occurred_at"])
            row["recorded_at"] = self.v_ts(row["recorded_at"])
            row["awaiting"] = [t for t in (row["awaiting"] or "").split(",") if t]
        return rows

    def held_of_agencies(
        self, agency_ids: Sequence[str], occurred_from: datetime, occurred_to: datetime
    ) -> list[tuple[str, str, int]]:
        """(agency, case, version) of the facts these agencies recorded that occurred in
        [from, to) and are held now (the timeliness table's held events)."""
        if not agency_ids:
            return []
        cond, params = self.in_list("agency_id", list(agency_ids))
        with self.read() as tx:
            rows = tx.rows(
                f"SELECT agency_id, case_id, version FROM {self.t('case_index_held')} "
                f"WHERE {cond} AND occurred_at >= %s AND occurred_at < %s",
                [*params, self.p_ts(occurred_from), self.p_ts(occurred_to)],
            )
        return [(str(a), str(c), int(v)) for a, c, v in rows]

    def save(
        self,
        tx: Any,
        rows: Iterable[dict[str, Any]],
        touched: set[tuple[str, str]],
        replaced: Sequence[str] = (),
    ) -> None:
        """Upserts the case rows and adds the agencies in `touched`; the agencies of the cases
        in `replaced` (derived again as a whole) are exactly their pairs in `touched`."""
        if replaced:
            tx.delete_in("case_index_agency", "case_id", list(replaced))
        tx.upsert(
            "case_index",
            COLUMNS,
            [tuple(self.p_ts(r[c]) if c in _TIMES else r[c] for c in COLUMNS) for r in rows],
            key=("case_id",),
        )
        tx.upsert(
            "case_index_agency",
            ("case_id", "agency_id"),
            sorted(touched),
            key=("case_id", "agency_id"),
            mode="ignore",
        )

    # -- queries ------------------------------------------------------------------------------
    def search(
        self,
        agency_id: str | None = None,
        province: str | None = None,
        provinces: Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        category: str | None = None,
        occurred_from: datetime | None = None,
        occurred_to: datetime | None = None,
        touched_by: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Cases matching every given filter, newest activity first; (page, total).

        - agency_id: the case's current holder.
        - province: the province of the opening agency; provinces: a scope (any of them;
          an empty scope matches nothing).
        - status: one status or several; category: the eligible category.
        - occurred_from / occurred_to: the case was active in [from, to): opened before `to`,
          last event at or after `from`.
        - touched_by: an agency that recorded an event, received the case or was its Centre.
        """
        where: list[str] = []
        params: list[Any] = []
        if agency_id is not None:
            where.append("c.holder_agency_id = %s")
            params.append(agency_id)
        if province is not None:
            where.append("c.province = %s")
            params.append(province)
        if provinces is not None:
            cond, more = self.in_list("c.province", list(provinces))
            where.append(cond)
            params.extend(more)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            cond, more = self.in_list("c.status", statuses)
            where.append(cond)
            params.extend(more)
        if category is not None:
            where.append("c.eligible_category = %s")
            params.append(category)
        if occurred_from is not None:
            where.append("c.last_occurred_at >= %s")
            params.append(self.p_ts(occurred_from))
        if occurred_to is not None:
            where.append("c.opened_at < %s")
            params.append(self.p_ts(occurred_to))
        if touched_by is not None:
            where.append(
                f"EXISTS (SELECT 1 FROM {self.t('case_index_agency')} a "
                "WHERE a.case_id = c.case_id AND a.agency_id = %s)"
            )
            params.append(touched_by)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self.read() as tx:
            total = tx.execute(
                f"SELECT count(*) AS n FROM {self.t('case_index')} c{clause}", params
            )[0]["n"]
            rows = tx.execute(
                f"SELECT {', '.join('c.' + c for c in COLUMNS)} FROM {self.t('case_index')} c"
                f"{clause} ORDER BY c.last_occurred_at DESC, c.case_id LIMIT %s OFFSET %s",
                [*params, max(0, int(limit)), max(0, int(offset))],
            )
        return [self._public(r) for r in rows], int(total)

    def get(self, case_id: str) -> dict[str, Any] | None:
        """One case row, or None."""
        with self.read() as tx:
            rows = tx.execute(
                f"SELECT {', '.join(COLUMNS)} FROM {self.t('case_index')} WHERE case_id = %s",
                (case_id,),
            )
        return self._public(rows[0]) if rows else None

    def touched_agencies(self, case_id: str) -> list[str]:
        """Every agency that touched the case, sorted."""
        with self.read() as tx:
            rows = tx.execute(
                f"SELECT agency_id FROM {self.t('case_index_agency')} WHERE case_id = %s "
                "ORDER BY agency_id",
                (case_id,),
            )
        return [r["agency_id"] for r in rows]

    def _public(self, row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for name in _TIMES:
            value = self.v_ts(out[name])
            out[name] = value.isoformat() if value is not None else None
        return out


_DDL = (
    "CREATE TABLE IF NOT EXISTS {schema}case_index ("
    " case_id TEXT PRIMARY KEY, province TEXT, opening_agency_id TEXT NOT NULL,"
    " holder_agency_id TEXT, centre_id TEXT, status TEXT NOT NULL, eligible_category TEXT,"
    " procedural_role TEXT, stage TEXT, proceedings_kind TEXT, opened_at %(ts)s NOT NULL,"
    " last_occurred_at %(ts)s NOT NULL, closed_at %(ts)s, version INTEGER NOT NULL,"
    " person_id TEXT)",
    "CREATE INDEX IF NOT EXISTS case_index_province ON {schema}case_index"
    " (province, last_occurred_at)",
    "CREATE INDEX IF NOT EXISTS case_index_holder ON {schema}case_index (holder_agency_id)",
    "CREATE INDEX IF NOT EXISTS case_index_recent ON {schema}case_index (last_occurred_at)",
    "CREATE TABLE IF NOT EXISTS {schema}case_index_agency ("
    " case_id TEXT NOT NULL, agency_id TEXT NOT NULL, PRIMARY KEY (case_id, agency_id))",
    "CREATE INDEX IF NOT EXISTS case_index_agency_by_agency ON {schema}case_index_agency"
    " (agency_id, case_id)",
    # ADR 0008: facts recorded but not in effect, what they await, since when
    "CREATE TABLE IF NOT EXISTS {schema}case_index_held ("
    " case_id TEXT NOT NULL, event_id TEXT NOT NULL, version INTEGER NOT NULL,"
    " event_type TEXT NOT NULL, agency_id TEXT NOT NULL, province TEXT,"
    " occurred_at %(ts)s NOT NULL, recorded_at %(ts)s, reason TEXT NOT NULL, awaiting TEXT,"
    " PRIMARY KEY (case_id, event_id))",
    "CREATE INDEX IF NOT EXISTS case_index_held_by_agency ON {schema}case_index_held"
    " (agency_id, recorded_at)",
)


class CaseIndex(Projection[CaseIndexView]):
    """One row per case (projection `case_index`)."""

    name = "case_index"
    topics = REFERRAL_TOPICS
    views: ClassVar[dict[str, type[ProjectionView]]] = store_views(CaseIndexView, _DDL)

    def __init__(self, view: CaseIndexView, context: Any = None) -> None:
        super().__init__(view, context)
        self.cache = StateCache()
        self.known_agencies = StateCache()  # case id -> agencies already stored
        self.derived = DerivedCases(context)  # ADR 0008: the case as its facts in effect make it
        self.shared = PageDerivation.of(context)  # the same, folded once for the process's views

    def forget(self) -> None:
        self.cache.clear()
        self.known_agencies.clear()
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
        view = self.view
        shared = self.shared
        with view.transaction(batch) as tx:
            case_ids = list(dict.fromkeys(item.event.case_id for item in batch.items))
            rows, missing = self.cache.split(case_ids)
            if missing:
                rows.update(view.load(tx, missing))
            known, _ = self.known_agencies.split(case_ids)
            agencies: dict[str, frozenset[str]] = {}
            touched: set[tuple[str, str]] = set()
            held_cases: dict[str, Any] = {}  # cases whose held facts are (or were) not none
            replaced: set[str] = set()  # cases whose agencies are derived again as a whole
            for item in batch.items:
                event = item.event
                case_id = event.case_id
                row = fold_case(rows.get(case_id), event, reference)
                step = shared.step(item.position) if shared is not None else None
                if step is None:
                    step = self.derived.step(event)
                before = agencies.get(case_id, known.get(case_id, frozenset()))
                if not step.simple or step.held:  # late, or something held: derived as a whole
                    state = step.state
                    row = derived_row(state, reference)
                    held_cases[case_id] = state
                    new = set(state.posters_in_scope()) - before
                else:  # the next fact, in effect: it adds its own agencies to the case's scope
                    new = touched_by(event) - before
                rows[case_id] = row
                if not step.simple:
                    # a late fact, correction or withdrawal can also take a part away (a
                    # withdrawn transfer's addressee): the agencies are the derived case's, as
                    # a rebuild from zero gives them
                    replaced.add(case_id)
                    scope = step.state.posters_in_scope()
                    touched.difference_update({p for p in touched if p[0] == case_id})
                    touched.update((case_id, a) for a in scope)
                    agencies[case_id] = scope
                    continue
                if new:
                    touched.update((case_id, a) for a in new)
                    agencies[case_id] = before | new
            if case_ids:
                view.save(
                    tx,
                    (rows[c] for c in case_ids if rows[c] is not None),
                    touched,
                    sorted(replaced),
                )
            if held_cases:
                view.save_held(
                    tx,
                    list(held_cases),
                    [
                        _held_row(case_id, h, state, reference)
                        for case_id, state in held_cases.items()
                        for h in state.held.values()
                    ],
                )
        self.cache.update({c: rows[c] for c in case_ids if rows[c] is not None})
        self.known_agencies.update(agencies)


def _chunks(values: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
