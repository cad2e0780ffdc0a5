"""Published council reports, reproducible from their checkpoint (issue 13 item 4, issue 14).

Publishing a report (`referrals report --publish`, `POST /v1/reports/{province}/published`)
stores what regenerating it needs (table `published_reports`): province and period, the signed
checkpoint it names (size, root, note, and the log position the views had reached), the
generation and judging instants, the views' positions, the submission date, the labels of the
reference versions the process held, and the sha256 of every output (XLSX, one CSV per
table, JSON).

Regenerating "as published" never reads the live views: the log prefix (events at positions
≤ the checkpoint's position) is folded through the same projections (`AgencyCounts`,
`Compliance`, through the same `LogFollower`) into throw-away views on the same store
(a temporary SQLite file, or a temporary PostgreSQL schema dropped afterwards), judged with
the reference versions recorded at publication, and written with the same writers (the XLSX
writer's dates come from the report's generation instant). The bytes are checked against the
stored sha256.

Which reference versions: those the publishing process held when it generated the report —
every version published up to that instant (`ReferenceSet.as_of(generated_at)`); their labels
are stored, and regeneration selects exactly those records, whatever was published since.

"As corrected now" is the report from today's views, judged at the published report's judging
instant (so only facts and reference data move figures, not the clock; `judge_at="now"`
judges at now). The difference lists each moved figure (agency × event type, rule × agency ×
status, C2 per agency) with the late entries (events recorded after the checkpoint that
occurred in the period, or belong to a case whose verdict moved) and the reference
publications (after the generation instant) that moved it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from domain.calendar import VIETNAM_TZ
from domain.errors import ConflictError, NotFoundError
from domain.reference_versions import ReferenceSet
from infra.sql_tables import PostgresTables, SqliteTables, SqlTables, parse_ts
from projections.framework import (
    LogFollower,
    LogReader,
    Page,
    PostgresLogReader,
    ProjectionContext,
    SQLiteLogReader,
)
from projections.reports import (
    REPORT_VIEWS,
    TABLES,
    Report,
    quarantine_warnings,
    report_csv_bytes,
    report_figures,
    report_json_bytes,
    report_tables,
    report_timeliness,
    report_xlsx_bytes,
)

OUTPUTS = ("xlsx", *(f"csv:{t}" for t in TABLES), "json")
"""The outputs whose sha256 a publication records (charts are not published)."""

_DDL = (
    """CREATE TABLE IF NOT EXISTS published_reports (
        report_id TEXT PRIMARY KEY,
        province TEXT NOT NULL,
        period_start TEXT NOT NULL,
        period_end TEXT NOT NULL,
        checkpoint_size BIGINT NOT NULL,
        published_at TEXT NOT NULL,
        record TEXT NOT NULL
    )""",
)
_LOCK_ID = 726_357
_OPENING = threading.Lock()


# ------------------------------------------------------------------------------------ store
class _Store(SqlTables):
    """Append-only: a publication is never changed or deleted."""

    def add(self, record: dict[str, Any]) -> None:
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO published_reports (report_id, province, period_start, period_end, "
                    "checkpoint_size, published_at, record) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                ),
                (
                    record["id"],
                    record["province"],
                    record["start"],
                    record["end"],
                    record["checkpoint"]["size"],
                    record["published_at"],
                    json.dumps(record, ensure_ascii=False),
                ),
            )

    def find(
        self, province: str, report_id: str | None = None, checkpoint_size: int | None = None
    ) -> list[dict[str, Any]]:
        where, params = ["province = %s"], [province]
        if report_id is not None:
            where.append("report_id = %s")
            params.append(report_id)
        if checkpoint_size is not None:
            where.append("checkpoint_size = %s")
            params.append(checkpoint_size)
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    f"SELECT record FROM published_reports WHERE {' AND '.join(where)} "
                    "ORDER BY published_at, report_id"
                ),
                tuple(params),
            )
            rows = cur.fetchall()
        return [json.loads(row[0]) for row in rows]


class _SqliteStore(_Store, SqliteTables):
    def __init__(self, path: Path) -> None:
        self._open_sqlite(path, _DDL)


class _PostgresStore(_Store, PostgresTables):
    def __init__(self, pool: Any) -> None:
        self._open_postgres(pool, _LOCK_ID, _DDL)


def store_of(container: Any) -> _Store:
    """The container's published-reports table (opened once, closed with the container)."""
    with _OPENING:
        store = container.published_reports
        if store is None:
            store = (
                _PostgresStore(container.pg_pool)
                if container.pg_pool is not None
                else _SqliteStore(container.settings.data_dir / "published-reports.sqlite")
            )
            container.published_reports = store
        return store


def find_published(
    container: Any, province: str, report_id: str | None = None, checkpoint_size: int | None = None
) -> dict[str, Any]:
    """The one publication named by id (or the latest at a checkpoint size); 404 if none."""
    rows = store_of(container).find(province, report_id, checkpoint_size)
    if not rows:
        raise NotFoundError(
            "PUBLISHED_REPORT_NOT_FOUND",
            "id" if report_id else "checkpoint",
            value=report_id or f"checkpoint {checkpoint_size}",
            province=province,
        )
    return rows[-1]


# ------------------------------------------------------------------------------- outputs
def outputs_of(report: Report) -> dict[str, bytes]:
    """Every published output's bytes, by name (`xlsx`, `csv:<table>`, `json`)."""
    out = {"xlsx": report_xlsx_bytes(report)}
    for table in report_tables(report):
        out[f"csv:{table}"] = report_csv_bytes(report, table)
    out["json"] = report_json_bytes(report)
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def output_filename(report: Report, name: str) -> str:
    if name == "xlsx":
        return f"{report.slug()}.xlsx"
    if name == "json":
        return f"{report.slug()}.json"
    return f"{report.slug()}-{name.split(':', 1)[1]}.csv"


def publish(container: Any, report: Report, published_by: str) -> dict[str, Any]:
    """Stores what regenerating `report` needs and the sha256 of its outputs; the record."""
    if report.checkpoint is None:
        raise ConflictError(
            "FIELD_INVALID",
            "checkpoint",
            rule_vi="báo cáo chưa gắn với điểm kiểm nào của sổ (sổ trống)",
            rule_en="the report names no checkpoint (the log is empty)",
        )
    state = container.reference_state
    labels = sorted(r.label for r in state.refs.records) if state is not None else []
    record = {
        "id": f"{report.province.lower()}-{report.start:%Y%m%d}-{report.end:%Y%m%d}-"
        f"n{report.checkpoint['size']}-{uuid.uuid4().hex[:8]}",
        "province": report.province,
        "start": report.start.isoformat(),
        "end": report.end.isoformat(),
        "generated_at": report.generated_at.isoformat(),
        "judged_at": report.judged_at.isoformat(),
        "published_at": datetime.now(timezone.utc).isoformat(),
        "published_by": published_by,
        "checkpoint": report.checkpoint,
        "positions": report.positions,
        "due": report.due.isoformat() if report.due else None,
        "due_source": report.due_source,
        "reference_labels": labels,
        "reference_versions": report.reference_versions,
        "late_entry_hours": report.late_entry_hours,
        # held is derived state (what the case index listed then): kept, not re-derived
        "held_counts": {t.agency_id: t.held for t in report.timeliness or () if t.held},
        "sha256": {name: sha256(data) for name, data in outputs_of(report).items()},
    }
    store_of(container).add(record)
    return record


# -------------------------------------------------------------------------------- replay
class _PrefixReader(LogReader):
    """The log as it stood at `position`: nothing after it is ever read."""

    def __init__(self, inner: LogReader, position: int) -> None:
        super().__init__(inner.app)
        self.inner = inner
        self.position = position

    def read(self, after: int, limit: int) -> Page:
        if after >= self.position:
            return Page([], self.position)
        page = self.inner.read(after, limit)
        kept = [n for n in page.notifications if n.id <= self.position]
        if len(kept) < len(page.notifications):
            return Page(kept, kept[-1].id if kept else after)
        return Page(kept, min(page.head, self.position))


@dataclass
class _FixedReferences:
    """What `Compliance` reads of `ReferenceState`: a fixed set, never refreshed."""

    refs: ReferenceSet
    container: Any

    def maybe_refresh(self) -> None:
        return None


@dataclass
class ReplayedViews:
    """The report views folded from a log prefix (what `report_figures` reads)."""

    projections: dict[str, Any]
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def agency_counts(self) -> Any:
        return self.projections["agency_counts"].view

    @property
    def compliance(self) -> Any:
        return self.projections["compliance"].view

    def __contains__(self, name: str) -> bool:
        return name in self.projections

    def excluded_events(self, names: Sequence[str] | None = None) -> dict[str, int]:
        from projections import quarantine

        out = {}
        for name in names or self.projections:
            counts = self.projections[name].view.quarantine_counts()
            out[name] = counts[quarantine.FAILED] + counts[quarantine.HELD]
        return out


def reference_set_of(container: Any, labels: Sequence[str]) -> ReferenceSet:
    """The recorded versions named by `labels` (a publication's), read from the store."""
    state = container.reference_state
    state.refresh(force=True)
    wanted = set(labels)
    records = [r for r in state.refs.records if r.label in wanted]
    missing = wanted - {r.label for r in records}
    if missing:
        raise RuntimeError(f"reference versions not recorded: {sorted(missing)}")
    return ReferenceSet(records)


@contextlib.contextmanager
def replay_prefix(
    container: Any, position: int, refs: ReferenceSet, day: date
) -> Iterator[ReplayedViews]:
    """The report views as the log prefix up to `position` makes them, judged with `refs`
    (the register and tables in force on `day`), in throw-away views on the same store."""
    from projections.agency_counts import AgencyCounts
    from projections.compliance import Compliance

    reference = refs.reference_data(day)
    context = ProjectionContext(
        reference=reference,
        rules=refs.rules(day),
        calendar=refs.calendar(),
        references=_FixedReferences(refs, SimpleNamespace(reference=reference)),
    )
    app = container.referrals
    with _scratch_datastore(container) as (datastore, store):
        projections = {}
        for cls in (AgencyCounts, Compliance):
            view = cls.views[store](datastore, name=cls.name)
            view.create_table()
            projections[cls.name] = cls(view=view, context=context)
        reader = PostgresLogReader(app) if store == "postgres" else SQLiteLogReader(app)
        follower = LogFollower(
            app, list(projections.values()), _PrefixReader(reader, position), batch_size=5000
        )
        try:
            for _ in range(10_000_000):  # bounded by the prefix (each step reads ≥ 1 event)
                if not follower.run_until_caught_up():
                    break
        finally:
            follower.close()
        yield ReplayedViews(projections)


@contextlib.contextmanager
def _scratch_datastore(container: Any) -> Iterator[tuple[Any, str]]:
    settings = container.settings
    if settings.store == "postgres":
        from eventsourcing.postgres import PostgresDatastore

        schema = f"replay_{uuid.uuid4().hex[:12]}"
        with container.pg_pool.connection() as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
            conn.commit()
        datastore = PostgresDatastore(
            dbname=settings.pg_dbname,
            host=settings.pg_host,
            port=settings.pg_port,
            user=settings.pg_user,
            password=settings.pg_password.get_secret_value(),
            pool_size=1,
            max_overflow=2,
            schema=schema,
            lock_timeout=10,
        )
        try:
            yield datastore, "postgres"
        finally:
            datastore.close()
            with container.pg_pool.connection() as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                conn.commit()
        return
    from eventsourcing.sqlite import SQLiteDatastore

    folder = Path(tempfile.mkdtemp(prefix="replay-", dir=settings.data_dir))
    datastore = SQLiteDatastore(str(folder / "views.sqlite"), lock_timeout=10)
    try:
        yield datastore, "sqlite"
    finally:
        datastore.close()
        shutil.rmtree(folder, ignore_errors=True)


def regenerate(container: Any, record: dict[str, Any]) -> Report:
    """The published report rebuilt from its checkpoint's log prefix (see the module doc)."""
    province = record["province"]
    generated = datetime.fromisoformat(record["generated_at"])
    judged = datetime.fromisoformat(record["judged_at"])
    start, end = date.fromisoformat(record["start"]), date.fromisoformat(record["end"])
    day = generated.astimezone(VIETNAM_TZ).date()
    checkpoint = record["checkpoint"]
    _check_checkpoint(container, checkpoint)
    refs = reference_set_of(container, record["reference_labels"])
    reference = refs.reference_data(day)
    with replay_prefix(container, int(checkpoint["position"]), refs, day) as views:
        agencies, compliance, contacts = report_figures(
            reference, refs.rules(day), views, province, start, end, judged
        )
        overdue = views.compliance.overdue(province, now=judged)
        warnings = quarantine_warnings(views, REPORT_VIEWS)
    timeliness = None
    late_hours = float(record.get("late_entry_hours", 24.0))
    if "csv:timeliness" in record["sha256"]:  # published with the timeliness table
        # the audit trail is append-only in log order: its rows up to the checkpoint's
        # position are the same today as at publication
        timeliness = report_timeliness(
            container.projections,
            agencies,
            start,
            end,
            late_hours,
            int(checkpoint["position"]),
            # as published (none held in a record from before held counts: the hook gave 0)
            held=record.get("held_counts") or {},
        )
    return Report(
        province=province,
        province_name_vi=reference.provinces[province].name_vi,
        start=start,
        end=end,
        generated_at=generated,
        judged_at=judged,
        reference_versions={
            r.ref: f"v{r.version} sha256:{r.sha256[:16]}" for r in refs.current(day)
        },
        positions=record["positions"],
        agencies=agencies,
        compliance=compliance,
        overdue=overdue,
        checkpoint=checkpoint,
        due=date.fromisoformat(record["due"]) if record.get("due") else None,
        due_source=record.get("due_source", ""),
        warnings=warnings,
        contacts=contacts,
        timeliness=timeliness,
        late_entry_hours=late_hours,
    )


def _check_checkpoint(container: Any, checkpoint: dict[str, Any]) -> None:
    """The audit trail still has the named root at the named size (else the log changed)."""
    if "audit_trail" not in container.projections:
        return
    view = container.projections.view("audit_trail")
    size = int(checkpoint["size"])
    root = base64.b64encode(view.root(size)).decode() if size else ""
    if root != checkpoint["root"]:
        from domain.errors import LogIntegrityError

        raise LogIntegrityError(
            "checkpoint",
            f"gốc cây ở kích thước {size} không còn là {checkpoint['root']}",
            f"the tree root at size {size} is no longer {checkpoint['root']}",
        )


def regenerated_outputs(
    container: Any, record: dict[str, Any]
) -> tuple[Report, dict[str, bytes], dict[str, bool]]:
    """The regenerated report, its outputs, and per output whether its sha256 is the one
    recorded at publication."""
    report = regenerate(container, record)
    outputs = outputs_of(report)
    same = {name: sha256(data) == record["sha256"].get(name) for name, data in outputs.items()}
    return report, outputs, same


def not_reproduced(record: dict[str, Any], name: str, data: bytes) -> ConflictError:
    return ConflictError(
        "REPORT_NOT_REPRODUCED",
        "checkpoint",
        size=record["checkpoint"]["size"],
        output=name,
        published=record["sha256"].get(name, "-")[:16],
        regenerated=sha256(data)[:16],
    )


# --------------------------------------------------------------------------- corrections
def corrected(container: Any, record: dict[str, Any], judge_at: str = "published") -> Report:
    """The report of the same province and period from today's views, judged at the
    published report's judging instant (or at now)."""
    from projections.reports import build_report

    judged = (
        datetime.fromisoformat(record["judged_at"])
        if judge_at == "published"
        else datetime.now(timezone.utc)
    )
    return build_report(
        container,
        record["province"],
        date.fromisoformat(record["start"]),
        date.fromisoformat(record["end"]),
        now=judged,
    )


def _cells(report: Report) -> dict[tuple[str, ...], tuple[int, list[str]]]:
    """Every figure of the report, keyed, with the cases behind it where it has them."""
    cells: dict[tuple[str, ...], tuple[int, list[str]]] = {}
    for a in report.agencies:
        for event_type, n in a.counts.items():
            cells[("agencies", a.agency_id, event_type)] = (n, [])
    for c in report.compliance:
        agency = c.agency_id or ""
        for status in ("met", "missed", "running", "cancelled"):
            cells[("compliance", c.rule_id, agency, status)] = (
                getattr(c, status),
                list(c.cases.get(status, [])),
            )
        for kind in ("late", "never"):
            cells[("compliance", c.rule_id, agency, kind)] = (
                getattr(c, kind),
                list(c.missed_cases.get(kind, [])),
            )
    for row in report.contacts:
        for name in ("contacts", "met", "late", "running", "never", "cancelled"):
            cells[("contacts", row.agency_id, name)] = (
                getattr(row, name),
                list(row.cases.get(name, [])),
            )
    for t in report.timeliness or ():  # issue 13 item 5 (none in earlier publications)
        cells[("timeliness", t.agency_id, "events")] = (t.events, [])
        cells[("timeliness", t.agency_id, "late")] = (t.late, list(t.late_cases))
        for name in ("corrections", "withdrawals", "held"):
            cells[("timeliness", t.agency_id, name)] = (getattr(t, name), [])
    return cells


def late_entries(
    container: Any, record: dict[str, Any], cases: set[str], limit: int = 1_000_000
) -> list[dict[str, Any]]:
    """Events recorded after the checkpoint's position that occurred in the period (by their
    Vietnam-local day) at an agency of the province, or belong to one of `cases`."""
    from projections.case_index import REFERRAL_TOPICS
    from projections.framework import EventDecoder

    app = container.referrals
    decoder = EventDecoder(app.mapper)
    start, end = date.fromisoformat(record["start"]), date.fromisoformat(record["end"])
    agencies = container.reference.agencies
    province = record["province"]
    after = int(record["checkpoint"]["position"])
    topics = set(REFERRAL_TOPICS)
    out: list[dict[str, Any]] = []
    read = 0
    while read < limit:
        page = list(
            app.recorder.select_notifications(start=after, limit=1000, inclusive_of_start=False)
        )
        if not page:
            break
        read += len(page)
        after = page[-1].id
        for n in page:
            if n.topic not in topics:
                continue
            event = decoder.decode(n)
            day = event.occurred_at.astimezone(VIETNAM_TZ).date()
            agency = agencies.get(event.agency_id)
            in_period = start <= day <= end and agency is not None and agency.province == province
            if in_period or event.case_id in cases:
                out.append(
                    {
                        "position": n.id,
                        "case_id": event.case_id,
                        "version": n.originator_version,
                        "event_id": event.event_id,
                        "type": event.WIRE_TYPE,
                        "agency_id": event.agency_id,
                        "occurred_at": event.occurred_at.isoformat(),
                        "recorded_at": event.timestamp.isoformat(),
                        "in_period": in_period,
                    }
                )
    return out


def difference(
    container: Any, record: dict[str, Any], published: Report, now_report: Report
) -> dict[str, Any]:
    """Which figures moved between the published report and the corrected one, and which
    late entries and reference publications moved them."""
    before, after = _cells(published), _cells(now_report)
    if published.timeliness is None:  # published before the table: nothing to compare with
        after = {k: v for k, v in after.items() if k[0] != "timeliness"}
    moved_cells = []
    moved_cases: set[str] = set()
    for key in sorted(set(before) | set(after)):
        n0, cases0 = before.get(key, (0, []))
        n1, cases1 = after.get(key, (0, []))
        if n0 == n1 and cases0 == cases1:
            continue
        entered = sorted(set(cases1) - set(cases0))
        left = sorted(set(cases0) - set(cases1))
        moved_cases.update(entered)
        moved_cases.update(left)
        moved_cells.append(
            {
                "figure": _figure(key),
                "key": list(key),
                "published": n0,
                "corrected": n1,
                "cases_in": entered,
                "cases_out": left,
            }
        )
    late = late_entries(container, record, moved_cases)
    generated = datetime.fromisoformat(record["generated_at"])
    state = container.reference_state
    state.refresh(force=True)
    publications = [r for r in state.refs.records if r.published_at > generated]
    moved_by_publication: dict[str, set[str]] = {}
    if publications and "compliance" in container.projections:
        for row in container.projections.compliance.moved(province=record["province"]):
            if row["moved_at"] is not None and row["moved_at"] > generated:
                moved_by_publication.setdefault(row["case_id"], set()).add(row["published"])
    for cell in moved_cells:
        key = cell["key"]
        cases = set(cell["cases_in"]) | set(cell["cases_out"])
        if key[0] == "agencies":
            cell["late_entries"] = [
                e["position"]
                for e in late
                if e["in_period"] and e["agency_id"] == key[1] and e["type"] == key[2]
            ]
        elif key[0] == "timeliness":
            cell["late_entries"] = [
                e["position"] for e in late if e["in_period"] and e["agency_id"] == key[1]
            ]
        else:
            cell["late_entries"] = [e["position"] for e in late if e["case_id"] in cases]
        cell["reference_publications"] = sorted(
            {label for case in cases for label in moved_by_publication.get(case, ())}
        )
    return {
        "id": record["id"],
        "province": record["province"],
        "start": record["start"],
        "end": record["end"],
        "published_checkpoint": {k: record["checkpoint"][k] for k in ("size", "root", "position")},
        "corrected_checkpoint": (
            {k: now_report.checkpoint[k] for k in ("size", "root", "position")}
            if now_report.checkpoint
            else None
        ),
        "judged_at": now_report.judged_at.isoformat(),
        "moved": moved_cells,
        "late_entries": late,
        "reference_publications": [
            r.as_dict(content=False) | {"label": r.label} for r in publications
        ],
    }


def _figure(key: tuple[str, ...]) -> str:
    """A moved figure in words (English, for logs and the diff)."""
    if key[0] == "agencies":
        return f"agency {key[1]}: {key[2]} events"
    if key[0] == "compliance":
        return f"{key[1]} of agency {key[2] or '(none)'}: {key[3]}"
    if key[0] == "timeliness":
        return f"timeliness of agency {key[1]}: {key[2]}"
    return f"C2 of agency {key[1]}: {key[2]}"


def record_public(record: dict[str, Any]) -> dict[str, Any]:
    """A publication as the API lists it (the note kept: it is what an inspector checks)."""
    return {**record, "published_at": parse_ts(record["published_at"]).isoformat()}
