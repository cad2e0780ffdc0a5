"""`referrals verify`: recomputes the log from the event store and checks the audit trail and
every signed checkpoint against it; names the first event altered, removed or inserted.

The event store is the evidence: every stored record is decoded with the application's mapper
and made into its leaf (services.transparency.leaves) — never read from the audit trail. Walking
the store and the audit trail side by side in log order:

- same position, different leaf hash, or a record that cannot be decoded: ALTERED;
- a position the trail has and the store lacks: REMOVED;
- a store record the trail does not have, at or before the trail's position: INSERTED;
- a trail row whose chain hashes or tree index do not follow from the recomputed leaves: TRAIL
  (the view itself was edited);
- at each signed checkpoint's size: the signature must verify with the log key, and the
  recomputed root and global chain must equal the signed ones (CHECKPOINT); a store shorter
  than a signed checkpoint is REMOVED. This catches a rewrite even when the audit trail was
  rebuilt from the altered store.

Store records after the trail's position are reported as pending (not yet in the trail).

The walk reads the store in notification-id order from 1, so it then accounts for every row of
the events table (`_census`): the table's row count, smallest and largest id must be those the
walk saw (a row at id 0 or below is never in a walk from 1); on PostgreSQL no id may lie beyond
the id sequence (the ledger takes every id from it: a larger one was written by hand, even if
the audit trail has since taken it in); and each case's (aggregate's) versions must be exactly
1..k. Each failure is an INSERTED finding naming the extra rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from services.transparency.checkpoint import parse_checkpoint
from services.transparency.leaves import (
    CHAIN_SEED,
    LeafError,
    chain_head_of,
    chain_next,
    leaf_of_notification,
)
from services.transparency.merkle import EMPTY_ROOT, leaf_hash, node_hash
from services.transparency.note import NoteError, Verifier, open_note

PAGE = 1000

KIND_NAMES = {
    "ALTERED": ("BỊ SỬA", "ALTERED"),
    "REMOVED": ("BỊ XOÁ", "REMOVED"),
    "INSERTED": ("BỊ CHÈN", "INSERTED"),
    "TRAIL": ("SỔ KIỂM TOÁN BỊ SỬA", "AUDIT TRAIL ALTERED"),
    "CHECKPOINT": ("KHÔNG KHỚP ĐIỂM KIỂM ĐÃ KÝ", "SIGNED CHECKPOINT MISMATCH"),
}


@dataclass(frozen=True)
class Finding:
    """The first discrepancy found: what, where (position, leaf index), which case and event."""

    kind: str
    position: int | None
    leaf_index: int | None
    case_id: str | None
    event_id: str | None
    version: int | None
    detail_vi: str
    detail_en: str

    def _where(self, vi: bool) -> str:
        parts = []
        if self.position is not None:
            parts.append(f"{'vị trí' if vi else 'position'} {self.position}")
        if self.case_id is not None:
            parts.append(f"{'vụ việc' if vi else 'case'} {self.case_id}")
        if self.version is not None:
            parts.append(f"{'phiên bản' if vi else 'version'} {self.version}")
        if self.event_id is not None:
            parts.append(f"{'mã sự kiện' if vi else 'event id'} {self.event_id}")
        if self.leaf_index is not None:
            parts.append(f"{'chỉ số lá' if vi else 'leaf index'} {self.leaf_index}")
        return ", ".join(parts)

    @property
    def message_vi(self) -> str:
        return f"{KIND_NAMES[self.kind][0]}: {self._where(True)} — {self.detail_vi}"

    @property
    def message_en(self) -> str:
        return f"{KIND_NAMES[self.kind][1]}: {self._where(False)} — {self.detail_en}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "position": self.position,
            "leaf_index": self.leaf_index,
            "case_id": self.case_id,
            "event_id": self.event_id,
            "version": self.version,
            "message": self.message_vi,
            "message_en": self.message_en,
        }


@dataclass
class VerifyReport:
    """The outcome of one verification."""

    events_checked: int = 0
    checkpoints_checked: int = 0
    trail_size: int = 0
    pending: int = 0
    finding: Finding | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.finding is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events_checked": self.events_checked,
            "checkpoints_checked": self.checkpoints_checked,
            "trail_size": self.trail_size,
            "pending": self.pending,
            "finding": self.finding.as_dict() if self.finding else None,
        }


class _StreamingRoot:
    """MTH of the leaves appended so far, in O(log n) memory (RFC 9162 §2.1.1)."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, bytes]] = []

    def append(self, digest: bytes) -> None:
        level, node = 0, digest
        while self.stack and self.stack[-1][0] == level:
            node = node_hash(self.stack.pop()[1], node)
            level += 1
        self.stack.append((level, node))

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        result = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            result = node_hash(left, result)
        return result


def _store(app: Any, page: int) -> Iterator[Any]:
    start = 1
    while True:
        notifications = list(app.recorder.select_notifications(start=start, limit=page))
        if not notifications:
            return
        yield from notifications
        start = notifications[-1].id + 1


def _trail(view: Any, page: int) -> Iterator[dict[str, Any]]:
    after = -1
    while True:
        rows = view.rows(after, page)
        if not rows:
            return
        yield from rows
        after = rows[-1]["leaf_index"]


def _identify(app: Any, notification: Any) -> tuple[str | None, str | None, int | None]:
    try:
        event = app.mapper.to_domain_event(notification)
        return (
            getattr(event, "case_id", None),
            getattr(event, "event_id", None),
            notification.originator_version,
        )
    except Exception:  # noqa: BLE001 - an undecodable record is named by its position only
        return None, None, notification.originator_version


def verify_log(app: Any, view: Any, log_verifier: Verifier, page: int = PAGE) -> VerifyReport:
    """Recomputes every leaf and both chains from the store; checks trail rows and checkpoints."""
    report = VerifyReport()
    report.trail_size = view.size()
    trail_position = view.position() or 0
    checkpoints = view.checkpoints()
    next_checkpoint = 0
    streaming = _StreamingRoot()
    global_chain = CHAIN_SEED
    case_chains: dict[str, bytes] = {}
    previous_ok_size = 0
    index = 0

    def check_checkpoints() -> Finding | None:
        nonlocal next_checkpoint, previous_ok_size
        while next_checkpoint < len(checkpoints) and checkpoints[next_checkpoint].size == index:
            stored = checkpoints[next_checkpoint]
            finding = _check_checkpoint(
                stored, log_verifier, streaming.root(), global_chain, previous_ok_size
            )
            if finding is not None:
                return finding
            report.checkpoints_checked += 1
            previous_ok_size = stored.size
            next_checkpoint += 1
        return None

    seen: dict[str, int] = {"count": 0, "first": 0, "last": 0}  # ids start at 1: 0 = none

    def counted(rows: Iterator[Any]) -> Iterator[Any]:
        for record in rows:
            seen["count"] += 1
            seen["first"] = seen["first"] or record.id
            seen["last"] = record.id
            yield record

    store, trail = counted(_store(app, page)), _trail(view, page)
    stored, row = next(store, None), next(trail, None)
    finding = check_checkpoints()
    while finding is None and (stored is not None or row is not None):
        if row is None:
            assert stored is not None  # for mypy: the loop's condition with no row left
            if stored.id <= trail_position:
                case_id, event_id, version = _identify(app, stored)
                finding = Finding(
                    "INSERTED",
                    stored.id,
                    None,
                    case_id,
                    event_id,
                    version,
                    "bản ghi có trong kho sự kiện nhưng không có trong sổ kiểm toán, dù nằm "
                    "trước vị trí sổ kiểm toán đã xử lý",
                    "the store holds this record but the audit trail does not, although it lies "
                    "before the position the trail has processed",
                )
                break
            report.pending += 1 + sum(1 for _ in store)
            break
        if stored is None or stored.id > row["position"]:
            finding = Finding(
                "REMOVED",
                row["position"],
                row["leaf_index"],
                row["case_id"],
                row["event_id"],
                row["version"],
                "sổ kiểm toán có sự kiện này nhưng kho sự kiện không còn",
                "the audit trail holds this event but the event store no longer does",
            )
            break
        if stored.id < row["position"]:
            case_id, event_id, version = _identify(app, stored)
            finding = Finding(
                "INSERTED",
                stored.id,
                None,
                case_id,
                event_id,
                version,
                f"bản ghi không có trong sổ kiểm toán, chen trước sự kiện ở vị trí "
                f"{row['position']} (chỉ số lá {row['leaf_index']})",
                f"a record the audit trail does not have, ahead of the event at position "
                f"{row['position']} (leaf index {row['leaf_index']})",
            )
            break
        try:
            leaf = leaf_of_notification(app.mapper, stored)
        except LeafError as error:
            finding = Finding(
                "ALTERED",
                stored.id,
                row["leaf_index"],
                row["case_id"],
                row["event_id"],
                row["version"],
                f"bản ghi không còn giải mã được ({error})",
                f"the stored record can no longer be decoded ({error})",
            )
            break
        digest = leaf_hash(leaf)
        if digest != row["leaf_hash"]:
            finding = Finding(
                "ALTERED",
                stored.id,
                row["leaf_index"],
                row["case_id"],
                row["event_id"],
                row["version"],
                "nội dung sự kiện trong kho khác với lá đã ghi trong sổ kiểm toán",
                "the stored event's content differs from the leaf the audit trail recorded",
            )
            break
        global_chain = chain_next(global_chain, leaf)
        originator = row["originator_id"]
        case_chain = chain_next(case_chains.get(originator, CHAIN_SEED), leaf)
        case_chains[originator] = case_chain
        if (
            row["leaf_index"] != index
            or row["global_chain_hash"] != global_chain
            or row["case_chain_hash"] != case_chain
            or originator != str(stored.originator_id)
        ):
            finding = Finding(
                "TRAIL",
                stored.id,
                row["leaf_index"],
                row["case_id"],
                row["event_id"],
                row["version"],
                f"dòng sổ kiểm toán không khớp chỉ số lá {index} hoặc chuỗi băm tính lại",
                f"the audit-trail row does not match leaf index {index} or the recomputed "
                "hash chains",
            )
            break
        streaming.append(digest)
        index += 1
        report.events_checked += 1
        finding = check_checkpoints()
        stored, row = next(store, None), next(trail, None)
    if finding is None and next_checkpoint < len(checkpoints):
        short = checkpoints[next_checkpoint]
        finding = Finding(
            "REMOVED",
            None,
            index,
            None,
            None,
            None,
            f"kho sự kiện chỉ còn {index} sự kiện, ít hơn điểm kiểm đã ký kích thước "
            f"{short.size} (sự kiện cuối của điểm kiểm ở vị trí {short.last_position})",
            f"the event store holds only {index} events, fewer than the signed checkpoint of "
            f"size {short.size} (whose last event was at position {short.last_position})",
        )
    if finding is None and index and view.root(index) != streaming.root():
        finding = Finding(
            "TRAIL",
            None,
            None,
            None,
            None,
            None,
            f"bảng nút Merkle không cho ra gốc tính lại ở kích thước {index}",
            f"the Merkle node table does not give the recomputed root at size {index}",
        )
    if finding is None:
        for _ in store:  # pragma: no cover - the walk ends only when the store is read
            pass
        finding = _census(app, seen["count"], seen["first"] or None, seen["last"] or None, index)
    report.finding = finding
    return report


# ------------------------------------------------------------------ every row accounted for
_OUTSIDE_SHOWN = 5


def _census(
    app: Any, walked: int, first: int | None, last: int | None, tree_size: int
) -> Finding | None:
    """Checks that the walk saw every row of the events table and that every aggregate's
    versions are 1..k; the first discrepancy as an INSERTED finding, else None."""
    table = _EventsTable.of(app)
    if table is None:  # pragma: no cover - an event store we cannot query directly
        return None
    # rows up to the last id walked (rows above it are written after the walk: new events)
    lowest_ok = first if first is not None and first >= 1 else 1
    last_walked = last if last is not None else 0
    count, low = table.one(
        "SELECT count(*), min({id}) FROM {table} WHERE {id} <= %s", (last_walked,)
    )
    count = int(count or 0)
    if count != walked or (low is not None and low < lowest_ok):
        return _outside(
            app,
            table,
            "{id} < %s",
            (lowest_ok,),
            count - walked,
            f"bảng sự kiện có {count} dòng có mã thông báo đến {last_walked} nhưng "
            f"nhật ký chỉ gồm {walked} (cây Merkle kích thước {tree_size}, mã "
            f"{lowest_ok}..{last_walked})",
            f"the events table holds {count} rows with notification ids up to "
            f"{last_walked} but the log only {walked} (Merkle tree size {tree_size}, "
            f"ids {lowest_ok}..{last_walked})",
        )
    # the largest id first, then the sequence: a new event's id is drawn before its row exists
    [(high,)] = table.rows("SELECT max({id}) FROM {table}")
    sequence = table.sequence_top()
    if sequence is not None and high is not None and high > sequence:
        return _outside(
            app,
            table,
            "{id} > %s",
            (sequence,),
            None,
            f"có dòng mang mã thông báo lớn hơn mã cuối chuỗi số đã cấp ({sequence}); "
            f"cây Merkle kích thước {tree_size}",
            f"rows carry notification ids beyond the last one the id sequence handed "
            f"out ({sequence}); Merkle tree size {tree_size}",
        )
    gaps = table.rows(
        "SELECT originator_id, count(*), min(originator_version), max(originator_version) "
        "FROM {table} GROUP BY originator_id HAVING min(originator_version) <> 1 "
        "OR count(*) <> max(originator_version) LIMIT " + str(_OUTSIDE_SHOWN)
    )
    if gaps:
        originator, rows, low_v, high_v = gaps[0]
        odd = table.rows(
            "SELECT {id}, originator_id, originator_version, topic, state FROM {table} "
            "WHERE originator_id = %s ORDER BY originator_version DESC LIMIT 1",
            (originator,),
        )
        case_id, event_id, version = _identify_row(app, odd[0]) if odd else (None, None, None)
        return Finding(
            "INSERTED",
            odd[0][0] if odd else None,
            None,
            case_id,
            event_id,
            version,
            f"các phiên bản của bản ghi {originator} không liền nhau từ 1 ({rows} dòng, phiên "
            f"bản {low_v}..{high_v}); có dòng bị chèn ngoài thứ tự",
            f"the versions of aggregate {originator} are not 1..k ({rows} rows, versions "
            f"{low_v}..{high_v}); a row was inserted out of sequence",
        )
    return None


def _outside(
    app: Any,
    table: _EventsTable,
    where: str,
    params: tuple[Any, ...],
    extra: int | None,
    why_vi: str,
    why_en: str,
) -> Finding:
    rows = table.rows(
        "SELECT {id}, originator_id, originator_version, topic, state FROM {table} "
        f"WHERE {where} ORDER BY {{id}} LIMIT {_OUTSIDE_SHOWN}",
        params,
    )
    ids = ", ".join(str(r[0]) for r in rows) or "?"
    more = (extra - len(rows)) if extra is not None and extra > len(rows) else 0
    case_id, event_id, version = _identify_row(app, rows[0]) if rows else (None, None, None)
    return Finding(
        "INSERTED",
        rows[0][0] if rows else None,
        None,
        case_id,
        event_id,
        version,
        f"{why_vi}; dòng ngoài nhật ký: mã thông báo {ids}"
        + (f" (và {more} dòng khác)" if more else ""),
        f"{why_en}; rows outside the log: notification id {ids}"
        + (f" (and {more} more)" if more else ""),
    )


def _identify_row(app: Any, row: tuple[Any, ...]) -> tuple[str | None, str | None, int | None]:
    from eventsourcing.persistence import Notification

    notification = Notification(
        id=int(row[0]),
        originator_id=app.recorder.convert_originator_id(row[1])
        if hasattr(app.recorder, "convert_originator_id")
        else row[1],
        originator_version=int(row[2]),
        topic=row[3],
        state=bytes(row[4]),
    )
    return _identify(app, notification)


class _EventsTable:
    """Plain SQL over the recorder's events table (PostgreSQL or SQLite)."""

    def __init__(self, app: Any, kind: str) -> None:
        self.recorder = app.recorder
        self.kind = kind
        if kind == "postgres":
            datastore = self.recorder.datastore
            self.table = f'"{datastore.schema}"."{self.recorder.events_table_name}"'
            self.id = "notification_id"
        else:
            self.table = self.recorder.events_table_name
            self.id = "rowid"

    @classmethod
    def of(cls, app: Any) -> _EventsTable | None:
        from eventsourcing.postgres import PostgresAggregateRecorder
        from eventsourcing.sqlite import SQLiteAggregateRecorder

        if isinstance(app.recorder, PostgresAggregateRecorder):
            return cls(app, "postgres")
        if isinstance(app.recorder, SQLiteAggregateRecorder):
            return cls(app, "sqlite")
        return None  # pragma: no cover

    def rows(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        text = statement.format(id=self.id, table=self.table)
        if self.kind == "postgres":
            with self.recorder.datastore.get_connection() as conn, conn.cursor() as cur:
                cur.execute(text, params)
                return [
                    tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in cur.fetchall()
                ]
        with self.recorder.datastore.transaction(commit=False) as cur:
            cur.execute(text.replace("%s", "?"), params)
            return [tuple(r) for r in cur.fetchall()]

    def one(self, statement: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        return self.rows(statement, params)[0]

    def sequence_top(self) -> int | None:
        """The largest id the PostgreSQL sequence has handed out (None on SQLite)."""
        if self.kind != "postgres":
            return None
        [(name,)] = self.rows("SELECT pg_get_serial_sequence(%s, 'notification_id')", (self.table,))
        if name is None:  # pragma: no cover - an identity column or a hand-made table
            return None
        [(value, called)] = self.rows(f"SELECT last_value, is_called FROM {name}")
        return int(value) if called else int(value) - 1


def _check_checkpoint(
    stored: Any, verifier: Verifier, root: bytes, chain: bytes, previous_ok_size: int
) -> Finding | None:
    def mismatch(vi: str, en: str) -> Finding:
        return Finding(
            "CHECKPOINT",
            stored.last_position,
            None,
            None,
            None,
            None,
            f"điểm kiểm kích thước {stored.size}: {vi}; một sự kiện trong các chỉ số lá "
            f"[{previous_ok_size}, {stored.size}) đã bị sửa, xoá hoặc chèn",
            f"checkpoint of size {stored.size}: {en}; an event among leaf indexes "
            f"[{previous_ok_size}, {stored.size}) was altered, removed or inserted",
        )

    try:
        text, _ = open_note(stored.note, [verifier])
        signed = parse_checkpoint(text)
    except NoteError as error:
        return Finding(
            "CHECKPOINT",
            stored.last_position,
            None,
            None,
            None,
            None,
            f"chữ ký của điểm kiểm kích thước {stored.size} không hợp lệ ({error})",
            f"the signature of the checkpoint of size {stored.size} does not verify ({error})",
        )
    if signed.size != stored.size or signed.root_hash != stored.root:
        return mismatch(
            "ghi chú đã ký khác các cột đã lưu", "the signed note differs from its stored columns"
        )
    if signed.root_hash != root:
        return mismatch(
            "gốc tính lại từ kho sự kiện khác gốc đã ký",
            "the root recomputed from the event store differs from the signed root",
        )
    if chain_head_of(signed) != chain:
        return mismatch(
            "chuỗi băm toàn cục tính lại khác chuỗi đã ký",
            "the recomputed global chain differs from the signed chain head",
        )
    return None
