"""Audit trail: every recorded event as a leaf of an RFC 6962 Merkle tree, with two hash chains.

Per event, in log order, one row: its tree index (assigned here: notification ids have gaps),
its position in the log, case, version, event id, type, recording agency, when it occurred and
when it was recorded, its leaf hash (services.transparency.leaves), the case chain hash
SHA-256(previous case entry's chain || leaf) and the global chain hash SHA-256(previous global
chain || leaf). The tree's perfect subtrees are kept in a node table, appended in the same
transaction as the rows and the tracking position, so a page of the log is applied exactly once.

Signed checkpoints and their witness cosignatures are stored here as well, in tables a rebuild
keeps (they are signed history: `referrals verify` checks every one of them against the store).

Query API (stable; infra.transparency uses it):
    view.head() -> TreeHead(size, root, chain_hash, last_position)
    view.tree_head(size) -> TreeHead               view.size_at_position(position) -> int
    view.entry(case_id, version) / view.entry_by_event(case_id, event_id) -> dict | None
    view.case_timeline(case_id) -> list[dict]      view.agency_timeline(agency_id, ...) -> list[dict]
    view.recording_delays(agency_ids, occurred_from, occurred_to, max_position) -> list[dict]
    view.inclusion_proof(index, size) / view.consistency_proof(old, new) -> list[bytes]
    view.rows(after_index, limit) -> list[dict]    (for `referrals verify`)
    view.checkpoints() / checkpoint(size) / latest_checkpoint() / add_checkpoint(...)
    view.add_cosignature(size, witness, line) / cosignatures(size)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from projections.framework import (
    Batch,
    Projection,
    ProjectionView,
    Tx,
    store_views,
)
from services.transparency.leaves import CHAIN_SEED, chain_next, leaf_entry
from services.transparency.merkle import EMPTY_ROOT, MerkleTree, NodeKey, leaf_hash

ROW_COLUMNS = (
    "leaf_index",
    "position",
    "originator_id",
    "case_id",
    "version",
    "event_id",
    "type",
    "agency_id",
    "occurred_at",
    "recorded_at",
    "leaf_hash",
    "case_chain_hash",
    "global_chain_hash",
)
WRITE_COLUMNS = (*ROW_COLUMNS, "recording_delay_us")
"""What a page writes: the row and its recording delay (`_delay_micro`, NULL without an
occurred instant the store can hold), which the timeliness figures count and rank instead of
computing `recorded_at - occurred_at` as a numeric for every row of a period."""
_TIMES = ("occurred_at", "recorded_at")
_HASHES = ("leaf_hash", "case_chain_hash", "global_chain_hash")


@dataclass(frozen=True)
class TreeHead:
    """The tree at one size: its root, the global chain after its last leaf, that leaf's position."""

    size: int
    root: bytes
    chain_hash: bytes
    last_position: int | None


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint as stored: its note (log signature only) and the witnesses' lines."""

    size: int
    root: bytes
    chain_hash: bytes
    last_position: int | None
    note: str
    created_at: datetime
    cosignatures: tuple[str, ...] = ()

    @property
    def cosigned_note(self) -> str:
        """The note with every stored cosignature line appended (C2SP signed note)."""
        return self.note + "".join(self.cosignatures)


class _TxNodeStore:
    """The Merkle NodeStore over one transaction of the view (reads and writes in that tx)."""

    def __init__(self, view: AuditTrailView, tx: Any, size: int) -> None:
        self.view = view
        self.tx = tx
        self._size = size

    def get_nodes(self, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        return self.view._get_nodes(self.tx, list(keys))

    def put_nodes(self, nodes: Mapping[NodeKey, bytes]) -> None:
        self.tx.insert(
            "audit_trail_nodes",
            ("level", "idx", "hash"),
            [(level, index, node) for (level, index), node in nodes.items()],
        )

    def size(self) -> int:
        return self._size

    def set_size(self, size: int) -> None:
        self._size = size


CHECKPOINT_LOCK_WAIT_MS = 1000


def p90_rank(count: int) -> int:
    """The nearest rank of the 90th percentile of `count` delays: ⌈0.9 × count⌉ (at least 1)."""
    return max(1, -(-900 * count // 1000))


def delay_ranks(count: int) -> tuple[int, ...]:
    """The 1-based ranks of the sorted delays that the median and the nearest-rank 90th
    percentile of `count` delays read (`projections.reports.delay_percentile`)."""
    if count <= 0:
        return ()
    middle = (count // 2 + 1,) if count % 2 else (count // 2, count // 2 + 1)
    return (*middle, p90_rank(count))


@dataclass
class DelayFigures:
    """`AuditTrailView.recording_delay_figures`: what the timeliness table counts, without a
    row per event. Delays are integer microseconds (negative ones as 0)."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """agency → type → events."""
    judged: dict[str, int] = field(default_factory=dict)
    """agency → events whose delay counts (all but the amendments)."""
    late: dict[str, int] = field(default_factory=dict)
    """agency → events among those whose delay is at least the late bound."""
    ranked: dict[str, dict[int, int]] = field(default_factory=dict)
    """agency → rank (1-based, by delay) → delay, for the ranks of `delay_ranks`."""
    up_to: int | None = None
    """The last log position counted (what `late_entries` reads up to, to list the same)."""
    entries: list[tuple[Any, ...]] | None = None
    """The late entries when they were at hand anyway (SQLite), as `late_entries` gives them."""


def _delay_micro(recorded_at: datetime, occurred_at: datetime) -> int:
    delta = recorded_at - occurred_at
    return max(0, (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


class AuditTrailView(ProjectionView):
    """The audit trail tables, the Merkle node table, the checkpoints, and their queries."""

    TABLES: ClassVar[tuple[str, ...]] = (
        "audit_trail",
        "audit_trail_nodes",
        "audit_trail_head",
        "audit_trail_case_heads",
    )
    """Dropped by a rebuild. Not the checkpoint tables: signed history survives a rebuild."""

    def create_table(self) -> None:
        super().create_table()  # the store's base: tracking and view tables (IF NOT EXISTS)
        # a trail made before the column gains it; its rows (NULL) are reckoned from both clocks
        # (a reset creates the tables again, with the column)
        self._add_column_if_missing("audit_trail", "recording_delay_us", "BIGINT")

    # -- writes (inside the projection's transaction) -------------------------------------------
    def load_head(self, tx: Any) -> tuple[int, bytes, int | None]:
        rows = tx.execute(
            f"SELECT size, chain_hash, last_position FROM {self.t('audit_trail_head')} WHERE id = 1"
        )
        if not rows:
            return 0, CHAIN_SEED, None
        return int(rows[0]["size"]), bytes(rows[0]["chain_hash"]), rows[0]["last_position"]

    def save_head(self, tx: Any, size: int, chain_hash: bytes, last_position: int | None) -> None:
        tx.upsert(
            "audit_trail_head",
            ("id", "size", "chain_hash", "last_position"),
            [(1, size, chain_hash, last_position)],
            key=("id",),
        )

    def load_case_heads(self, tx: Any, originators: Sequence[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for start in range(0, len(originators), 500):
            cond, params = self.in_list("originator_id", list(originators[start : start + 500]))
            for row in tx.execute(
                f"SELECT originator_id, chain_hash FROM "
                f"{self.t('audit_trail_case_heads')} WHERE {cond}",
                params,
            ):
                out[row["originator_id"]] = bytes(row["chain_hash"])
        return out

    def _get_nodes(self, tx: Any, keys: list[NodeKey]) -> dict[NodeKey, bytes]:
        out: dict[NodeKey, bytes] = {}
        for start in range(0, len(keys), 100):
            chunk = keys[start : start + 100]
            cond = " OR ".join("(level = %s AND idx = %s)" for _ in chunk)
            params = [value for key in chunk for value in key]
            for row in tx.execute(
                f"SELECT level, idx, hash FROM {self.t('audit_trail_nodes')} WHERE {cond}", params
            ):
                out[(int(row["level"]), int(row["idx"]))] = bytes(row["hash"])
        return out

    # -- the tree ----------------------------------------------------------------------------------
    def _tree(self, tx: Any, size: int) -> MerkleTree:
        return MerkleTree(_TxNodeStore(self, tx, size))

    def size(self) -> int:
        """The number of leaves in the tree."""
        with self.read() as tx:
            return self.load_head(tx)[0]

    def head(self) -> TreeHead:
        """The tree as it stands now."""
        with self.read() as tx:
            size, chain, last_position = self.load_head(tx)
            root = self._tree(tx, size).root() if size else EMPTY_ROOT
        return TreeHead(size, root, chain, last_position)

    def tree_head(self, size: int) -> TreeHead:
        """The tree at an earlier (or the current) size: root, global chain, last position."""
        with self.read() as tx:
            current = self.load_head(tx)[0]
            if not 0 <= size <= current:
                raise ValueError(f"tree size {size} is outside 0..{current}")
            if size == 0:
                return TreeHead(0, EMPTY_ROOT, CHAIN_SEED, None)
            root = self._tree(tx, current).root(size)
            row = tx.execute(
                f"SELECT global_chain_hash, position FROM {self.t('audit_trail')} "
                "WHERE leaf_index = %s",
                (size - 1,),
            )[0]
        return TreeHead(size, root, bytes(row["global_chain_hash"]), int(row["position"]))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(index, D[0:size])."""
        with self.read() as tx:
            return self._tree(tx, self.load_head(tx)[0]).inclusion_proof(index, size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 PROOF(old_size, D[0:new_size])."""
        with self.read() as tx:
            return self._tree(tx, self.load_head(tx)[0]).consistency_proof(old_size, new_size)

    def root(self, size: int) -> bytes:
        """MTH(D[0:size])."""
        with self.read() as tx:
            return self._tree(tx, self.load_head(tx)[0]).root(size)

    def size_at_position(self, position: int) -> int:
        """How many leaves the tree had once the log reached `position` (events at or before it)."""
        with self.read() as tx:
            rows = tx.execute(
                f"SELECT max(leaf_index) AS top FROM {self.t('audit_trail')} WHERE position <= %s",
                (position,),
            )
        top = rows[0]["top"] if rows else None
        return 0 if top is None else int(top) + 1

    # -- rows ----------------------------------------------------------------------------------------
    def entry(self, case_id: str, version: int) -> dict[str, Any] | None:
        """The row of one case event, by case and version."""
        return self._one("case_id = %s AND version = %s", (case_id, version))

    def entry_by_event(self, case_id: str, event_id: str) -> dict[str, Any] | None:
        """The row of one case event, by case and the client's event id."""
        return self._one("case_id = %s AND event_id = %s", (case_id, event_id))

    def entry_at(self, leaf_index: int) -> dict[str, Any] | None:
        """The row of one tree index."""
        return self._one("leaf_index = %s", (leaf_index,))

    def _one(self, where: str, params: Sequence[Any]) -> dict[str, Any] | None:
        with self.read() as tx:
            rows = tx.execute(
                f"SELECT {', '.join(ROW_COLUMNS)} FROM {self.t('audit_trail')} "
                f"WHERE {where} ORDER BY leaf_index LIMIT 1",
                params,
            )
        return self._row(rows[0]) if rows else None

    def case_timeline(self, case_id: str) -> list[dict[str, Any]]:
        """A case's events in order: who recorded each, when it occurred and when it was recorded."""
        with self.read() as tx:
            rows = tx.execute(
                f"SELECT {', '.join(ROW_COLUMNS)} FROM {self.t('audit_trail')} "
                "WHERE case_id = %s ORDER BY version",
                (case_id,),
            )
        return [self._row(r) for r in rows]

    def agency_timeline(
        self,
        agency_id: str,
        recorded_from: datetime | None = None,
        recorded_to: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """What one agency recorded, in log order, optionally within [from, to) of recording time."""
        where = ["agency_id = %s"]
        params: list[Any] = [agency_id]
        if recorded_from is not None:
            where.append("recorded_at >= %s")
            params.append(self.p_ts(recorded_from))
        if recorded_to is not None:
            where.append("recorded_at < %s")
            params.append(self.p_ts(recorded_to))
        with self.read() as tx:
            rows = tx.execute(
                f"SELECT {', '.join(ROW_COLUMNS)} FROM {self.t('audit_trail')} "
                f"WHERE {' AND '.join(where)} ORDER BY leaf_index LIMIT %s OFFSET %s",
                [*params, max(0, int(limit)), max(0, int(offset))],
            )
        return [self._row(r) for r in rows]

    def rows(self, after_index: int, limit: int) -> list[dict[str, Any]]:
        """Rows with leaf_index > after_index, in tree order (for the verifier)."""
        with self.read() as tx:
            rows = tx.execute(
                f"SELECT {', '.join(ROW_COLUMNS)} FROM {self.t('audit_trail')} "
                "WHERE leaf_index > %s ORDER BY leaf_index LIMIT %s",
                (after_index, limit),
            )
        return [self._row(r) for r in rows]

    def rows_occurred_between(
        self, occurred_from: datetime, occurred_to: datetime, below_size: int
    ) -> list[dict[str, Any]]:
        """Case events that occurred in [from, to) and are in the tree's first `below_size` leaves."""
        with self.read() as tx:
            rows = tx.execute(
                f"SELECT {', '.join(ROW_COLUMNS)} FROM {self.t('audit_trail')} "
                "WHERE case_id IS NOT NULL AND occurred_at >= %s AND occurred_at < %s "
                "AND leaf_index < %s ORDER BY leaf_index",
                (self.p_ts(occurred_from), self.p_ts(occurred_to), below_size),
            )
        return [self._row(r) for r in rows]

    def recording_delays(
        self,
        agency_ids: Sequence[str],
        occurred_from: datetime,
        occurred_to: datetime,
        max_position: int | None = None,
    ) -> list[dict[str, Any]]:
        """Case events of the agencies that occurred in [from, to), with both clocks (agency,
        case, type, position, occurred_at, recorded_at), in log order; only those at positions
        <= `max_position` when given (a report's checkpoint: the figures as known then)."""
        if not agency_ids:
            return []
        where, params = self._delay_where(agency_ids, occurred_from, occurred_to, max_position)
        with self.read() as tx:
            rows = tx.execute(
                "SELECT agency_id, case_id, version, type, position, occurred_at, recorded_at "
                f"FROM {self.t('audit_trail')} WHERE {where} ORDER BY leaf_index",
                params,
            )
        return [
            {
                **row,
                "occurred_at": self.v_ts(row["occurred_at"]),
                "recorded_at": self.v_ts(row["recorded_at"]),
            }
            for row in rows
        ]

    def _delay_where(
        self,
        agency_ids: Sequence[str],
        occurred_from: datetime,
        occurred_to: datetime,
        max_position: int | None,
    ) -> tuple[str, list[Any]]:
        cond, params = self.in_list("agency_id", list(agency_ids))
        where = f"case_id IS NOT NULL AND {cond} AND occurred_at >= %s AND occurred_at < %s"
        params = [*params, self.p_ts(occurred_from), self.p_ts(occurred_to)]
        if max_position is not None:
            where += " AND position <= %s"
            params.append(max_position)
        return where, params

    # microseconds: stored with the row; for rows written before the column existed, exactly
    # the same from both clocks (EXTRACT(epoch …) of an interval is numeric, PostgreSQL 14+)
    _DELAY_US = (
        "COALESCE(recording_delay_us, "
        "GREATEST(0, (EXTRACT(epoch FROM recorded_at - occurred_at) * 1000000)::bigint))"
    )

    def recording_delay_figures(
        self,
        agency_ids: Sequence[str],
        occurred_from: datetime,
        occurred_to: datetime,
        max_position: int | None,
        amendment_types: Sequence[str],
        late_from_us: int,
    ) -> DelayFigures:
        """The figures of `recording_delays` without a row per event (issue 13 item 5 at a
        province-year entered from paper, where every event is late): per agency and type the
        events; per agency, among its events of no type in `amendment_types`, how many have
        a delay of at least `late_from_us` and the delays at the ranks `delay_ranks` names.
        PostgreSQL: one statement, one scan; SQLite: from the rows, in Python (the same
        figures: `tests/integration/test_timeliness.py`)."""
        figures = DelayFigures()
        if not agency_ids:
            return figures
        amend = set(amendment_types)
        if self.dialect != "postgres":
            delays: dict[str, list[int]] = {}
            figures.entries = []
            for row in self.recording_delays(agency_ids, occurred_from, occurred_to, max_position):
                agency_id, kind = row["agency_id"], row["type"]
                by_type = figures.counts.setdefault(agency_id, {})
                by_type[kind] = by_type.get(kind, 0) + 1
                figures.up_to = max(figures.up_to or 0, row["position"])
                if kind in amend:
                    continue
                micro = _delay_micro(row["recorded_at"], row["occurred_at"])
                delays.setdefault(agency_id, []).append(micro)
                if micro >= late_from_us:
                    figures.late[agency_id] = figures.late.get(agency_id, 0) + 1
                    figures.entries.append(
                        (agency_id, row["case_id"], row["version"], kind, row["position"])
                        + (row["occurred_at"], row["recorded_at"], micro)
                    )
            for agency_id, values in delays.items():
                values.sort()
                figures.judged[agency_id] = len(values)
                figures.ranked[agency_id] = {r: values[r - 1] for r in delay_ranks(len(values))}
            return figures
        where, params = self._delay_where(agency_ids, occurred_from, occurred_to, max_position)
        with self.read() as tx:  # one (parallel) scan; the delays sorted here, not on disk
            counted = tx.rows(
                f"SELECT agency_id, type, count(*), count(*) FILTER (WHERE {self._DELAY_US} >= %s),"
                f" max(position), array_agg({self._DELAY_US}) FROM {self.t('audit_trail')} "
                f"WHERE {where} GROUP BY agency_id, type",
                [late_from_us, *params],
            )
        delays: dict[str, list[int]] = {}
        for agency_id, kind, count, late, last, values in counted:
            figures.counts.setdefault(agency_id, {})[kind] = int(count)
            figures.up_to = max(figures.up_to or 0, int(last))
            if kind in amend:
                continue
            figures.late[agency_id] = figures.late.get(agency_id, 0) + int(late)
            delays.setdefault(agency_id, []).extend(values)
        for agency_id, values in delays.items():
            values.sort()
            figures.judged[agency_id] = len(values)
            figures.ranked[agency_id] = {r: values[r - 1] for r in delay_ranks(len(values))}
        return figures

    def late_entries(
        self,
        agency_ids: Sequence[str],
        occurred_from: datetime,
        occurred_to: datetime,
        up_to: int | None,
        amendment_types: Sequence[str],
        late_from_us: int,
    ) -> list[tuple[Any, ...]]:
        """The entries `recording_delay_figures` counted as late, in log order: (agency,
        case, version, type, position, occurred_at, recorded_at, delay µs)."""
        if not agency_ids or up_to is None:
            return []
        if self.dialect != "postgres":
            figures = self.recording_delay_figures(
                agency_ids, occurred_from, occurred_to, up_to, amendment_types, late_from_us
            )
            return figures.entries or []
        where, params = self._delay_where(agency_ids, occurred_from, occurred_to, up_to)
        with self.read() as tx:
            return [
                (*row[:7], int(row[7]))
                for row in tx.rows(
                    "SELECT agency_id, case_id, version, type, position, occurred_at, "
                    f"recorded_at, {self._DELAY_US} FROM {self.t('audit_trail')} WHERE {where} "
                    f"AND type <> ALL(%s) AND {self._DELAY_US} >= %s ORDER BY leaf_index",
                    [*params, sorted(set(amendment_types)), late_from_us],
                )
            ]

    def positions_of(self, events: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The log position of each (case, version) the audit trail holds."""
        wanted = set(events)
        out: dict[tuple[str, int], int] = {}
        cases = sorted({case_id for case_id, _ in wanted})
        with self.read() as tx:
            for start in range(0, len(cases), 500):
                cond, params = self.in_list("case_id", cases[start : start + 500])
                for case_id, version, position in tx.rows(
                    f"SELECT case_id, version, position FROM {self.t('audit_trail')} WHERE {cond}",
                    params,
                ):
                    if (case_id, int(version)) in wanted:
                        out[(case_id, int(version))] = int(position)
        return out

    def opening_agencies(self, case_ids: Sequence[str]) -> dict[str, str]:
        """The agency that recorded version 1 of each case."""
        out: dict[str, str] = {}
        with self.read() as tx:
            for start in range(0, len(case_ids), 500):
                cond, params = self.in_list("case_id", list(case_ids[start : start + 500]))
                for row in tx.execute(
                    f"SELECT case_id, agency_id FROM {self.t('audit_trail')} "
                    f"WHERE version = 1 AND {cond}",
                    params,
                ):
                    out[row["case_id"]] = row["agency_id"]
        return out

    def _row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for name in _TIMES:
            out[name] = self.v_ts(out[name])
        for name in _HASHES:
            out[name] = bytes(out[name])
        return out

    # -- checkpoints -------------------------------------------------------------------------------
    def add_checkpoint(self, head: TreeHead, note: str, created_at: datetime) -> None:
        """Stores a signed checkpoint (a second one at the same size is ignored).

        Waits at most CHECKPOINT_LOCK_WAIT_MS for another process storing the same size (a
        worker frozen in that transaction keeps its row locked until its session ends)."""
        with self._write() as cursor:
            if self.dialect == "postgres":
                cursor.execute(f"SET LOCAL lock_timeout = '{CHECKPOINT_LOCK_WAIT_MS}ms'")
            tx = _tx(self, cursor)
            tx.upsert(
                "audit_trail_checkpoints",
                ("size", "root", "chain_hash", "last_position", "note", "created_at"),
                [
                    (
                        head.size,
                        head.root,
                        head.chain_hash,
                        head.last_position,
                        note,
                        self.p_ts(created_at),
                    )
                ],
                key=("size",),
                mode="ignore",
            )

    def add_cosignature(self, size: int, witness: str, line: str, created_at: datetime) -> None:
        """Stores (or replaces) one witness's cosignature line of the checkpoint at `size`."""
        with self._write() as cursor:
            _tx(self, cursor).upsert(
                "audit_trail_cosignatures",
                ("size", "witness", "line", "created_at"),
                [(size, witness, line, self.p_ts(created_at))],
                key=("size", "witness"),
            )

    def checkpoint(self, size: int) -> StoredCheckpoint | None:
        """The checkpoint at one size."""
        found = self._checkpoints("WHERE size = %s", (size,))
        return found[0] if found else None

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint of the largest size."""
        found = self._checkpoints(
            f"WHERE size = (SELECT max(size) FROM {self.t('audit_trail_checkpoints')})", ()
        )
        return found[0] if found else None

    def latest_checkpoint_at(self, instant: datetime) -> StoredCheckpoint | None:
        """The checkpoint of the largest size signed at or before `instant` (what a reader
        could check against then)."""
        table = self.t("audit_trail_checkpoints")
        found = self._checkpoints(
            f"WHERE size = (SELECT max(size) FROM {table} WHERE created_at <= %s)",
            (self.p_ts(instant),),
        )
        return found[0] if found else None

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, smallest first."""
        return self._checkpoints("", ())

    def checkpoint_sizes(self) -> list[int]:
        """The sizes of every stored checkpoint, smallest first."""
        with self.read() as tx:
            rows = tx.execute(f"SELECT size FROM {self.t('audit_trail_checkpoints')} ORDER BY size")
        return [int(r["size"]) for r in rows]

    def _checkpoints(self, where: str, params: Sequence[Any]) -> list[StoredCheckpoint]:
        with self.read() as tx:
            rows = tx.execute(
                f"SELECT size, root, chain_hash, last_position, note, created_at FROM "
                f"{self.t('audit_trail_checkpoints')} {where} ORDER BY size",
                params,
            )
            sizes = [int(r["size"]) for r in rows]
            lines: dict[int, list[str]] = {}
            if sizes:
                cond, more = self.in_list("size", sizes)
                for row in tx.execute(
                    f"SELECT size, line FROM "
                    f"{self.t('audit_trail_cosignatures')} WHERE {cond} "
                    "ORDER BY size, witness",
                    more,
                ):
                    lines.setdefault(int(row["size"]), []).append(row["line"])
        return [
            StoredCheckpoint(
                int(r["size"]),
                bytes(r["root"]),
                bytes(r["chain_hash"]),
                r["last_position"],
                r["note"],
                self.v_ts(r["created_at"]),
                tuple(lines.get(int(r["size"]), ())),
            )
            for r in rows
        ]


def _tx(view: ProjectionView, cursor: Any) -> Tx:
    return Tx(view, cursor)


_DDL = (
    "CREATE TABLE IF NOT EXISTS {schema}audit_trail ("
    " leaf_index BIGINT PRIMARY KEY, position BIGINT NOT NULL UNIQUE,"
    " originator_id TEXT NOT NULL, case_id TEXT, version INTEGER NOT NULL, event_id TEXT,"
    " type TEXT NOT NULL, agency_id TEXT, occurred_at %(ts)s, recorded_at %(ts)s NOT NULL,"
    " leaf_hash %(bytes)s NOT NULL, case_chain_hash %(bytes)s NOT NULL,"
    " global_chain_hash %(bytes)s NOT NULL, recording_delay_us BIGINT)",
    "CREATE INDEX IF NOT EXISTS audit_trail_case ON {schema}audit_trail (case_id, version)",
    "CREATE INDEX IF NOT EXISTS audit_trail_agency ON {schema}audit_trail (agency_id, leaf_index)",
    "CREATE INDEX IF NOT EXISTS audit_trail_occurred ON {schema}audit_trail (occurred_at)",
    "CREATE TABLE IF NOT EXISTS {schema}audit_trail_nodes ("
    " level INTEGER NOT NULL, idx BIGINT NOT NULL, hash %(bytes)s NOT NULL,"
    " PRIMARY KEY (level, idx))",
    "CREATE TABLE IF NOT EXISTS {schema}audit_trail_head ("
    " id INTEGER PRIMARY KEY, size BIGINT NOT NULL, chain_hash %(bytes)s NOT NULL,"
    " last_position BIGINT)",
    "CREATE TABLE IF NOT EXISTS {schema}audit_trail_case_heads ("
    " originator_id TEXT PRIMARY KEY, chain_hash %(bytes)s NOT NULL, version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {schema}audit_trail_checkpoints ("
    " size BIGINT PRIMARY KEY, root %(bytes)s NOT NULL, chain_hash %(bytes)s NOT NULL,"
    " last_position BIGINT, note TEXT NOT NULL, created_at %(ts)s NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {schema}audit_trail_cosignatures ("
    " size BIGINT NOT NULL, witness TEXT NOT NULL, line TEXT NOT NULL,"
    " created_at %(ts)s NOT NULL, PRIMARY KEY (size, witness))",
)


class AuditTrail(Projection[AuditTrailView]):
    """Every event as a Merkle leaf with case and global hash chains (projection `audit_trail`)."""

    name = "audit_trail"
    topics = ()  # every event of the log, person records included
    views: ClassVar[dict[str, type[ProjectionView]]] = store_views(AuditTrailView, _DDL)
    quarantine_scope = "none"  # the tree's order is the log's: `verify` checks it leaf by leaf

    def process_batch(self, batch: Batch) -> None:
        view = self.view
        with view.transaction(batch) as tx:
            if not batch.items:
                return
            size, global_chain, last_position = view.load_head(tx)
            rows: list[tuple[Any, ...]] = []
            hashes = []
            case_chains: dict[str, bytes] = {}
            case_versions: dict[str, int] = {}
            originators = sorted({str(item.event.originator_id) for item in batch.items})
            case_chains.update(view.load_case_heads(tx, originators))
            for item in batch.items:
                record, leaf = leaf_entry(item.position, item.event)
                originator = record["originator_id"]
                digest = leaf_hash(leaf)
                hashes.append(digest)
                global_chain = chain_next(global_chain, leaf)
                case_chain = chain_next(case_chains.get(originator, CHAIN_SEED), leaf)
                case_chains[originator] = case_chain
                case_versions[originator] = record["version"]
                occurred = item.event.occurred_at if record["occurred_at"] is not None else None
                try:
                    occurred_value = view.p_ts(occurred)
                except (OverflowError, ValueError):  # beyond the store's range: the leaf (the
                    occurred_value = None  # stored bytes) keeps the exact value
                recorded = item.event.timestamp
                rows.append(
                    (
                        size + len(rows),
                        item.position,
                        originator,
                        record["case_id"],
                        record["version"],
                        record["event_id"],
                        record["type"],
                        record["agency_id"],
                        occurred_value,
                        view.p_ts(recorded),
                        digest,
                        case_chain,
                        global_chain,
                        None if occurred_value is None else _delay_micro(recorded, occurred),
                    )
                )
                last_position = item.position
            view._tree(tx, size).append_leaf_hashes(hashes)
            tx.insert("audit_trail", WRITE_COLUMNS, rows)
            tx.upsert(
                "audit_trail_case_heads",
                ("originator_id", "chain_hash", "version"),
                [(o, case_chains[o], case_versions[o]) for o in sorted(case_versions)],
                key=("originator_id",),
            )
            view.save_head(tx, size + len(rows), global_chain, last_position)
