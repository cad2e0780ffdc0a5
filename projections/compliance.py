"""Compliance with the legal time limits (the rules table `time_limits.json`; domain.md §4).

When a case's events arrive, the case is judged again with `services.referrals.case_facts` and
`domain.deadlines.evaluate_time_limits` and its verdict rows are replaced. A limit whose target
has not come yet is stored as *open* with its deadline; whether it is *running* or *missed*
(overdue, "outstanding") is decided when the view is asked, against the asker's `now`, so the
figures are right whenever they are read without re-processing anything.

Attribution:
- period: a verdict belongs to the period containing its trigger's Vietnam-local date (the
  day the limit started: e.g. the request's day for C1, the notice's day for C3 — or the
  Centre's receipt of it when recorded (`start_from`) —, the day the documents were complete
  for C4);
- agency: the responsible agency of the verdict (the agency that met the limit; otherwise the
  holder — or the addressed Centre for Centre rules — as of the deadline, or as of now while
  it is running: a case transferred mid-limit is charged to the agency holding it when the
  limit ran out);
- province: the responsible agency's province; the opening agency's when there is none.

The view keeps, per case, the compact facts the rules need (types, instants, agencies and the
non-identifying fields the rules read) — never identity data. Facts are appended as events
arrive; judging is done for every page when the follower is current, and deferred while it is
behind (`Batch.more`: a rebuild, a catch-up) to the first page that reaches the log's end (or
after `SETTLE_EVERY` events), so that a case is judged once per catch-up instead of once per
page. `visible_position()` is the position of the last judged page, so `wait_for` never
returns before a case's verdicts are current.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, ClassVar

import orjson

from domain.calendar import VIETNAM_TZ
from domain.catalogue import AMENDMENT_TYPES, OPENING_TYPES
from domain.deadlines import evaluate_time_limits
from domain.reference_versions import judge_with_basis
from domain.referral import Referral, effective_facts
from projections.case_index import REFERRAL_TOPICS
from projections.derived import PageDerivation
from projections.framework import (
    Batch,
    Item,
    Projection,
    ProjectionView,
    StateCache,
    Tx,
    store_views,
)
from services.referrals import case_facts

FAR_FUTURE = datetime(9000, 1, 1, tzinfo=timezone.utc)
SETTLE_EVERY = 200_000  # events: the most a deferred judging may lag behind
_FACT_FIELDS = (
    "procedural_role",
    "stage",
    "proceedings_kind",
    "centre_id",
    "to_agency_id",
    "to_stage",
    "immediate",
    "eligible_category",
    # what the lifecycle derivation reads (ADR 0008: held facts are not judged)
    "person_id",
    "provider_id",
    "provider_type",
    "aid_form",
    "documents_complete_at",
    "notice_received_at",
)
VERDICT_COLUMNS = (
    "case_id",
    "rule_id",
    "trigger_version",
    "trigger_at",
    "trigger_day",
    "deadline",
    "status",
    "target_version",
    "met_at",
    "responsible_agency_id",
    "province",
    "basis",
)
MOVED_COLUMNS = (
    "published",
    "sha256",
    "reason",
    "province",
    "period_year",
    "periods",
    "case_id",
    "rule_id",
    "trigger_version",
    "responsible_agency_id",
    "status_before",
    "status_after",
    "deadline_before",
    "deadline_after",
    "basis_before",
    "basis_after",
    "moved_at",
)
STATUSES = ("met", "missed", "running", "cancelled")
# how a missed limit stands: its target came late (decided), or never came (outstanding)
MISSED_KINDS = ("late", "never")


@dataclass(frozen=True)
class StoredFact:
    """One event of a case as kept for re-judging (what `case_facts` reads)."""

    originator_version: int
    WIRE_TYPE: str  # noqa: N815 - the attribute name `case_facts` reads
    occurred_at: datetime
    agency_id: str
    data: dict[str, Any]

    def encode(self) -> list[Any]:
        return [
            self.originator_version,
            self.WIRE_TYPE,
            self.occurred_at.isoformat(),
            self.agency_id,
            self.data,
        ]

    @classmethod
    def decode(cls, value: list[Any]) -> StoredFact:
        version, wire, at, agency, data = value
        return cls(version, wire, datetime.fromisoformat(at), agency, data)


def _in_effect(
    case_id: str, facts: list[StoredFact], derived: Referral | None = None
) -> list[StoredFact]:
    """The facts in effect, in occurred order (ADR 0008): a held fact is judged only once it
    takes effect. Facts stored before the view kept the lifecycle fields (no `person_id` on
    an opening) are judged as recorded, in version order, until `referrals rebuild`.

    `derived`: the case as the process's shared derivation left it (`PageDerivation`); when
    it was derived from exactly these facts' events and none is an amendment, its held facts
    say which are in effect, and the facts are not derived a second time."""
    facts = sorted(facts, key=lambda f: f.originator_version)
    if (
        facts
        and facts[0].WIRE_TYPE in OPENING_TYPES
        and not any("person_id" in f.data for f in facts)
    ):
        return facts
    if (
        derived is not None
        and facts
        and derived.version == len(facts) == facts[-1].originator_version
        and derived.facts is not None
        and len(derived.facts) == len(facts)
        and not any(f.WIRE_TYPE in AMENDMENT_TYPES for f in facts)
    ):
        held = {int(h["version"]) for h in derived.held.values()}
        return sorted(
            (f for f in facts if f.originator_version not in held),
            key=lambda f: (f.occurred_at, f.originator_version),
        )
    return effective_facts(facts, case_id)


def _fact_json(value: list[Any]) -> str:
    """A fact as stored: compact JSON with sorted keys (read back with `json.loads`)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def status_now(stored: str, deadline: datetime, now: datetime) -> str:
    """The verdict as it stands at `now`: an open limit runs until its deadline, then is missed."""
    if stored != "open":
        return stored
    return "running" if now <= deadline else "missed"


class ComplianceView(ProjectionView):
    """Verdict rows per case and rule trigger; the compliance and overdue queries."""

    TABLES: ClassVar[tuple[str, ...]] = (
        "compliance_fact",
        "compliance_dirty",
        "compliance_settled",
        "compliance_verdict",
        "compliance_moved",
    )

    def _create_view_tables(self) -> None:
        super()._create_view_tables()  # type: ignore[misc]  # the store's base (PostgreSQL/SQLite)
        # a view made before issue 14 gains the `basis` column (its rows: basis unknown, NULL)
        self._add_column_if_missing("compliance_verdict", "basis", "TEXT")

    # -- writes -------------------------------------------------------------------------------
    def add_facts(self, tx: Any, facts: list[tuple[str, StoredFact]]) -> None:
        tx.insert(
            "compliance_fact",
            ("case_id", "version", "facts"),
            [(case_id, f.originator_version, _fact_json(f.encode())) for case_id, f in facts],
        )

    def mark_dirty(self, tx: Any, case_ids: Sequence[str]) -> None:
        tx.upsert(
            "compliance_dirty",
            ("case_id",),
            [(c,) for c in case_ids],
            key=("case_id",),
            mode="ignore",
        )

    def take_dirty(self, tx: Any) -> list[str]:
        rows = tx.execute(f"SELECT case_id FROM {self.t('compliance_dirty')}")
        if rows:
            tx.execute(f"DELETE FROM {self.t('compliance_dirty')}")
        return [r["case_id"] for r in rows]

    def load_facts(self, tx: Any, case_ids: Sequence[str]) -> dict[str, list[StoredFact]]:
        out: dict[str, list[StoredFact]] = {c: [] for c in case_ids}
        for start in range(0, len(case_ids), 1000):
            cond, params = self.in_list("case_id", list(case_ids[start : start + 1000]))
            for row in tx.execute(
                f"SELECT case_id, facts FROM {self.t('compliance_fact')} WHERE {cond} "
                "ORDER BY case_id, version",
                params,
            ):
                out[row["case_id"]].append(StoredFact.decode(json.loads(row["facts"])))
        return out

    def replace_verdicts(self, tx: Any, case_ids: Sequence[str], verdicts: list[tuple]) -> None:
        tx.delete_in("compliance_verdict", "case_id", list(case_ids))
        tx.insert("compliance_verdict", VERDICT_COLUMNS, verdicts)

    def settled(self, tx: Any) -> int | None:
        rows = tx.execute(f"SELECT position FROM {self.t('compliance_settled')} WHERE id = 1")
        return rows[0]["position"] if rows else None

    def set_settled(self, tx: Any, position: int) -> None:
        tx.upsert("compliance_settled", ("id", "position"), [(1, position)], key=("id",))

    def visible_position(self) -> int | None:
        with self.read() as tx:
            return self.settled(tx)

    # -- queries ------------------------------------------------------------------------------
    def _where(
        self,
        province: str | None,
        date_from: date | None,
        date_to: date | None,
        rule_id: str | None,
        agency_id: str | None,
        case_id: str | None = None,
        open_only: bool = False,
    ) -> tuple[str, list[Any]]:
        """The WHERE clause (with its parameters) of the verdict queries."""
        where, params = [], []
        for column, value in (
            ("province", province),
            ("rule_id", rule_id),
            ("responsible_agency_id", agency_id),
            ("case_id", case_id),
        ):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if date_from is not None:
            where.append("trigger_day >= %s")
            params.append(self.p_date(date_from))
        if date_to is not None:
            where.append("trigger_day <= %s")
            params.append(self.p_date(date_to))
        if open_only:
            where.append("status = 'open'")
        return (f" WHERE {' AND '.join(where)}" if where else ""), params

    def _select(
        self,
        province: str | None,
        date_from: date | None,
        date_to: date | None,
        rule_id: str | None = None,
        agency_id: str | None = None,
        open_only: bool = False,
        case_id: str | None = None,
    ) -> list[dict[str, Any]]:
        clause, params = self._where(
            province, date_from, date_to, rule_id, agency_id, case_id=case_id, open_only=open_only
        )
        with self.read() as tx:
            rows = tx.execute(
                f"SELECT {', '.join(VERDICT_COLUMNS)} FROM {self.t('compliance_verdict')}"
                f"{clause} ORDER BY rule_id, responsible_agency_id, trigger_at, case_id",
                params,
            )
        for row in rows:
            for name in ("trigger_at", "deadline", "met_at"):
                row[name] = self.v_ts(row[name])
            row["trigger_day"] = self.v_date(row["trigger_day"])
            row["basis"] = row["basis"].split() if row.get("basis") else []
        return rows

    def moved(
        self, province: str | None = None, year: int | None = None, published: str | None = None
    ) -> list[dict[str, Any]]:
        """The verdicts a reference publication moved (issue 14), per report period: what
        moved (case, rule, status and deadline before and after) and why (the publication)."""
        where, params = [], []
        for column, value in (
            ("province", province),
            ("period_year", year),
            ("published", published),
        ):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self.read() as tx:
            rows = tx.execute(
                f"SELECT {', '.join(MOVED_COLUMNS)} FROM {self.t('compliance_moved')}{clause} "
                "ORDER BY moved_at, province, period_year, rule_id, case_id, trigger_version",
                params,
            )
        for row in rows:
            for name in ("deadline_before", "deadline_after", "moved_at"):
                row[name] = self.v_ts(row[name])
            row["periods"] = row["periods"].split(",") if row["periods"] else []
        return rows

    def _select_for_summary(
        self,
        province: str | None,
        date_from: date | None,
        date_to: date | None,
        rule_id: str | None,
        agency_id: str | None,
    ) -> list[tuple[Any, ...]]:
        """What `summary` needs of the rows `_select` gives, in the same order, unconverted,
        as tuples (a province-year holds hundreds of thousands of verdicts): rule id,
        responsible agency, stored status, deadline, case id."""
        clause, params = self._where(province, date_from, date_to, rule_id, agency_id)
        with self.read() as tx:
            return tx.rows(
                f"SELECT rule_id, responsible_agency_id, status, deadline, case_id FROM "
                f"{self.t('compliance_verdict')}{clause} "
                "ORDER BY rule_id, responsible_agency_id, trigger_at, case_id",
                params,
            )

    def summary(
        self,
        province: str | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        now: datetime | None = None,
        rule_id: str | None = None,
        agency_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Per rule and responsible agency: how many limits were met, missed, cancelled or
        are still running at `now`, with the cases behind each number. The missed ones are
        also split into `late` (the target came after the deadline) and `never` (no target
        yet, deadline passed: outstanding), with their cases under `missed_cases`.

        Verdicts count in the period holding their trigger's Vietnam-local date
        (`date_from`..`date_to` inclusive).
        """
        now = now or datetime.now(timezone.utc)
        groups: dict[tuple[str, str | None], dict[str, Any]] = {}
        cases: dict[tuple[str, str | None], dict[str, dict[str, None]]] = {}
        rows = self._select_for_summary(province, date_from, date_to, rule_id, agency_id)
        for rule, agency, stored, deadline, case_id in rows:
            key = (rule, agency)
            group = groups.get(key)
            if group is None:
                group = groups[key] = {
                    "rule_id": key[0],
                    "responsible_agency_id": key[1],
                    **dict.fromkeys(STATUSES, 0),
                    **dict.fromkeys(MISSED_KINDS, 0),
                    "total": 0,
                }
                # ordered sets: first seen first
                cases[key] = {s: {} for s in (*STATUSES, *MISSED_KINDS)}
            status = stored if stored != "open" else status_now(stored, self.v_ts(deadline), now)
            group[status] += 1
            group["total"] += 1
            cases[key][status][case_id] = None
            if status == "missed":
                kind = "late" if stored == "missed" else "never"
                group[kind] += 1
                cases[key][kind][case_id] = None
        for key, group in groups.items():
            group["cases"] = {s: list(cases[key][s]) for s in STATUSES}
            group["missed_cases"] = {k: list(cases[key][k]) for k in MISSED_KINDS}
        return [groups[k] for k in sorted(groups, key=lambda k: (k[0], k[1] or ""))]

    def overdue(
        self,
        province: str | None = None,
        agency_id: str | None = None,
        now: datetime | None = None,
        rule_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Limits past their deadline at `now` with neither target nor cancellation yet
        ("outstanding"), most overdue first."""
        now = now or datetime.now(timezone.utc)
        rows = [
            {**row, "overdue_hours": round((now - row["deadline"]).total_seconds() / 3600, 1)}
            for row in self._select(province, None, None, rule_id, agency_id, open_only=True)
            if row["deadline"] < now
        ]
        rows.sort(key=lambda r: (r["deadline"], r["case_id"], r["rule_id"]))
        return rows

    def verdicts(self, case_id: str, now: datetime | None = None) -> list[dict[str, Any]]:
        """One case's verdicts as they stand at `now`."""
        now = now or datetime.now(timezone.utc)
        rows = self._select(None, None, None, case_id=case_id)
        for row in rows:
            row["status"] = status_now(row["status"], row["deadline"], now)
        rows.sort(key=lambda r: (r["trigger_version"], r["rule_id"]))
        return rows


_DDL = (
    "CREATE TABLE IF NOT EXISTS {schema}compliance_fact ("
    " case_id TEXT NOT NULL, version INTEGER NOT NULL, facts TEXT NOT NULL,"
    " PRIMARY KEY (case_id, version))",
    "CREATE TABLE IF NOT EXISTS {schema}compliance_dirty (case_id TEXT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS {schema}compliance_settled ("
    " id INTEGER PRIMARY KEY, position BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {schema}compliance_verdict ("
    " case_id TEXT NOT NULL, rule_id TEXT NOT NULL, trigger_version INTEGER NOT NULL,"
    " trigger_at %(ts)s NOT NULL, trigger_day %(date)s NOT NULL, deadline %(ts)s NOT NULL,"
    " status TEXT NOT NULL, target_version INTEGER, met_at %(ts)s,"
    " responsible_agency_id TEXT, province TEXT, basis TEXT,"
    " PRIMARY KEY (case_id, rule_id, trigger_version))",
    "CREATE TABLE IF NOT EXISTS {schema}compliance_moved ("
    " published TEXT NOT NULL, sha256 TEXT NOT NULL, reason TEXT NOT NULL, province TEXT,"
    " period_year INTEGER NOT NULL, periods TEXT NOT NULL, case_id TEXT NOT NULL,"
    " rule_id TEXT NOT NULL, trigger_version INTEGER NOT NULL, responsible_agency_id TEXT,"
    " status_before TEXT, status_after TEXT, deadline_before %(ts)s, deadline_after %(ts)s,"
    " basis_before TEXT, basis_after TEXT, moved_at %(ts)s NOT NULL)",
    "CREATE INDEX IF NOT EXISTS compliance_verdict_period ON {schema}compliance_verdict"
    " (province, trigger_day)",
    "CREATE INDEX IF NOT EXISTS compliance_verdict_open ON {schema}compliance_verdict"
    " (deadline) WHERE status = 'open'",
)


class Compliance(Projection[ComplianceView]):
    """Time-limit verdicts per case (projection `compliance`)."""

    name = "compliance"
    topics = REFERRAL_TOPICS
    views: ClassVar[dict[str, type[ProjectionView]]] = store_views(ComplianceView, _DDL)

    def __init__(self, view: ComplianceView, context: Any = None) -> None:
        super().__init__(view, context)
        rules = tuple(context.rules) if context is not None else ()
        self.rules = rules
        self.calendar = context.calendar if context is not None else None
        self.agencies = context.reference.agencies if context is not None else {}
        self.fields = tuple(
            sorted(
                set(_FACT_FIELDS)
                | {r.trigger_field for r in rules if r.trigger_field}
                | {r.start_from.field for r in rules if r.start_from and r.start_from.field}
            )
        )
        self.known = StateCache()  # case id -> its complete facts, as committed
        self.shared = PageDerivation.of(context)  # the derived cases of the process's views
        self.references = getattr(context, "references", None)  # the recorded versions

    def forget(self) -> None:
        self.known.clear()

    def prepare(self, items: Sequence[Item]) -> None:
        if self.shared is not None:
            self.shared.prepare(items)

    def process_batch(self, batch: Batch) -> None:
        if self.references is not None:
            self.references.maybe_refresh()  # a version published by another process
        view = self.view
        fields = self.fields
        new: dict[str, list[StoredFact]] = {}
        for item in batch.items:
            event = item.event
            data = event.data
            kept = (
                dict(data)
                if event.WIRE_TYPE in AMENDMENT_TYPES  # what they change
                else {k: data[k] for k in fields if k in data}
            )
            new.setdefault(event.case_id, []).append(
                StoredFact(
                    event.originator_version,
                    event.WIRE_TYPE,
                    event.occurred_at,
                    event.agency_id,
                    kept,
                )
            )
        # complete histories known in memory (first seen from version 1, or loaded once)
        cached, _ = self.known.split(list(new))
        updated: dict[str, tuple[StoredFact, ...]] = {}
        for case_id, facts in new.items():
            before = cached.get(case_id)
            if before is not None:
                updated[case_id] = before + tuple(facts)
            elif facts[0].originator_version == 1:
                updated[case_id] = tuple(facts)
        with view.transaction(batch) as tx:
            view.add_facts(tx, [(c, f) for c, facts in new.items() for f in facts])
            settled = view.settled(tx)
            if batch.more and batch.position - (settled or 0) < SETTLE_EVERY:
                view.mark_dirty(tx, list(new))
            else:
                cases = list(dict.fromkeys([*view.take_dirty(tx), *new]))
                histories, _ = self.known.split(cases)
                histories.update(updated)
                missing = [c for c in cases if c not in histories]
                if missing:
                    loaded = {c: tuple(f) for c, f in view.load_facts(tx, missing).items()}
                    histories.update(loaded)
                    updated.update(loaded)
                verdicts = []
                for case_id in cases:
                    verdicts.extend(self.judge(case_id, list(histories[case_id])))
                view.replace_verdicts(tx, cases, verdicts)
                view.set_settled(tx, batch.position)
        self.known.update(updated)

    def judge(self, case_id: str, facts: list[StoredFact], shared: bool = True) -> list[tuple]:
        """The case's verdict rows: decided ones with their status, undecided as 'open'.

        `shared`: the held facts may be taken from the process's shared fold (only from the
        follower's own page, when no other thread folds the next one)."""
        rows = []
        if not facts:
            return rows
        refs = self.references.refs if self.references is not None else None
        agencies = (
            self.references.container.reference.agencies
            if refs is not None and refs.records
            else self.agencies
        )
        opening = agencies.get(facts[0].agency_id)
        province = opening.province if opening is not None else None
        derived = self.shared.case(case_id) if shared and self.shared is not None else None
        facts = _in_effect(case_id, facts, derived)
        if refs is not None and refs.records:
            judged = judge_with_basis(case_facts(facts), refs, FAR_FUTURE)
        else:
            judged = [
                (v, ())
                for v in evaluate_time_limits(
                    case_facts(facts), self.rules, self.calendar, FAR_FUTURE
                )
            ]
        for v, basis in judged:
            agency = agencies.get(v.responsible_agency_id or "")
            rows.append(
                (
                    case_id,
                    v.rule_id,
                    v.trigger_version,
                    self.view.p_ts(v.trigger_at),
                    self.view.p_date(v.trigger_at.astimezone(VIETNAM_TZ).date()),
                    self.view.p_ts(v.deadline),
                    "open" if v.outstanding else v.status,
                    v.target_version,
                    self.view.p_ts(v.met_at),
                    v.responsible_agency_id,
                    (agency.province if agency is not None else None) or province,
                    " ".join(basis) or None,
                )
            )
        return rows

    # -- re-judging after a reference publication (issue 14) --------------------------------
    def touched_cases(self, tx: Any, record: Any, before: Any) -> list[str]:
        """The cases a new version can change: a calendar year's verdicts that read that
        year (or whose basis is unknown); for the time-limit table, cases judged in its window
        and cases with no verdict yet; for the agency register, cases naming a changed
        agency. Other documents judge nothing here."""
        view = self.view
        verdicts, facts = view.t("compliance_verdict"), view.t("compliance_fact")
        if record.kind == "holidays":
            rows = tx.execute(
                f"SELECT DISTINCT case_id FROM {verdicts} WHERE basis LIKE %s OR basis IS NULL",
                (f"%holidays/{record.key}@%",),
            )
            return sorted(r["case_id"] for r in rows)
        if record.kind == "time_limits":
            params: list[Any] = []
            cond = ""
            if record.effective_from is not None:
                cond = " WHERE trigger_day >= %s"
                params.append(view.p_date(record.effective_from))
            rows = tx.execute(f"SELECT DISTINCT case_id FROM {verdicts}{cond}", params)
            unjudged = tx.execute(
                f"SELECT DISTINCT case_id FROM {facts} WHERE case_id NOT IN "
                f"(SELECT case_id FROM {verdicts})"
            )
            return sorted({r["case_id"] for r in (*rows, *unjudged)})
        if record.kind == "agencies":
            old = before.latest("agencies")
            old_items = {a["agency_id"]: a for a in (old.content["items"] if old else [])}
            new_items = {a["agency_id"]: a for a in record.content["items"]}
            changed = sorted(
                k for k in set(old_items) | set(new_items) if old_items.get(k) != new_items.get(k)
            )
            cases: set[str] = set()
            for agency_id in changed:
                pattern = f'%"{agency_id}"%'
                rows = tx.execute(
                    f"SELECT DISTINCT case_id FROM {facts} WHERE facts LIKE %s", (pattern,)
                )
                cases.update(r["case_id"] for r in rows)
            return sorted(cases)
        return []

    def rejudge_after(self, record: Any, before: Any, after: Any) -> list[dict[str, Any]]:
        """Judges again the cases `record` can touch, replaces their verdicts and records, per
        report period, every verdict that moved and why (`compliance_moved`)."""
        view = self.view
        moved: list[dict[str, Any]] = []
        now = datetime.now(timezone.utc)
        with view._write() as cursor:  # noqa: SLF001 - a write outside a batch
            tx = Tx(view, cursor)
            # serialise with the runner's pages (they lock the same tracking row)
            tx.execute(
                f"SELECT notification_id FROM {view.t(view.tracking_table)} "
                f"WHERE application_name = %s{view._for_update}",  # noqa: SLF001
                (view.application_name,),
            )
            cases = self.touched_cases(tx, record, before)
            if not cases:
                return []
            old: dict[tuple[str, str, int], dict[str, Any]] = {}
            for start in range(0, len(cases), 1000):
                cond, params = view.in_list("case_id", cases[start : start + 1000])
                for row in tx.execute(
                    f"SELECT {', '.join(VERDICT_COLUMNS)} FROM "
                    f"{view.t('compliance_verdict')} WHERE {cond}",
                    params,
                ):
                    old[(row["case_id"], row["rule_id"], row["trigger_version"])] = row
            histories = view.load_facts(tx, cases)
            rows: list[tuple] = []
            for case_id in cases:
                rows.extend(self.judge(case_id, histories[case_id], shared=False))
            view.replace_verdicts(tx, cases, rows)
            new = {(r[0], r[1], r[2]): dict(zip(VERDICT_COLUMNS, r, strict=True)) for r in rows}
            for key in sorted(set(old) | set(new)):
                a, b = old.get(key), new.get(key)
                if (
                    a is not None
                    and b is not None
                    and all(
                        _same(a[c], b[c], view)
                        for c in ("status", "deadline", "responsible_agency_id", "province")
                    )
                ):
                    continue
                either = b or a
                day = view.v_date(either["trigger_day"])
                periods = "jan-oct,full-year" if (day.month, day.day) <= (10, 31) else "full-year"
                moved.append(
                    {
                        "published": record.label,
                        "sha256": record.sha256,
                        "reason": record.source,
                        "province": either["province"],
                        "period_year": day.year,
                        "periods": periods,
                        "case_id": key[0],
                        "rule_id": key[1],
                        "trigger_version": key[2],
                        "responsible_agency_id": either["responsible_agency_id"],
                        "status_before": a["status"] if a else None,
                        "status_after": b["status"] if b else None,
                        "deadline_before": view.v_ts(a["deadline"]) if a else None,
                        "deadline_after": view.v_ts(b["deadline"]) if b else None,
                        "basis_before": a["basis"] if a else None,
                        "basis_after": b["basis"] if b else None,
                        "moved_at": now,
                    }
                )
            if moved:
                tx.insert(
                    "compliance_moved",
                    MOVED_COLUMNS,
                    [
                        tuple(
                            view.p_ts(m[c])
                            if c in ("deadline_before", "deadline_after", "moved_at")
                            else m[c]
                            for c in MOVED_COLUMNS
                        )
                        for m in moved
                    ],
                )
        self.known.clear()  # nothing cached is stale (facts), but keep memory honest
        for m in moved:
            m["periods"] = m["periods"].split(",")
            for name in ("deadline_before", "deadline_after", "moved_at"):
                m[name] = m[name].isoformat() if m[name] is not None else None
        return moved


def _same(a: Any, b: Any, view: Any) -> bool:
    """Stored and freshly judged values compare equal (timestamps read back on SQLite)."""
    if a == b:
        return True
    try:
        return view.v_ts(a) == view.v_ts(b)
    except (TypeError, ValueError, AttributeError):
        return False
