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
        return {"kind": self.kind, "position": self.position, "leaf_index": self.leaf_index,
                "case_id": self.case_id, "event_id": self.event_id, "version": self.version,
                "message": self.message_vi, "message_en": self.message_en}


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
        return {"ok": self.ok, "events_checked": self.events_checked,
                "checkpoints_checked": self.checkpoints_checked, "trail_size": self.trail_size,
                "pending": self.pending,
                "finding": self.finding.as_dict() if self.finding else None}


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
        return getattr(event, "case_id", None), getattr(event, "event_id", None), \
            notification.originator_version
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
            finding = _check_checkpoint(stored, log_verifier, streaming.root(), global_chain,
                                        previous_ok_size)
            if finding is not None:
                return finding
            report.checkpoints_checked += 1
            previous_ok_size = stored.size
            next_checkpoint += 1
        return None

    store, trail = _store(app, page), _trail(view, page)
    stored, row = next(store, None), next(trail, None)
    finding = check_checkpoints()
    while finding is None and (stored is not None or row is not None):
        if row is None:
            assert stored is not None  # for mypy: the loop's condition with no row left
            if stored.id <= trail_position:
                case_id, event_id, version = _identify(app, stored)
                finding = Finding(
                    "INSERTED", stored.id, None, case_id, event_id, version,
                    "bản ghi có trong kho sự kiện nhưng không có trong sổ kiểm toán, dù nằm "
                    "trước vị trí sổ kiểm toán đã xử lý",
                    "the store holds this record but the audit trail does not, although it lies "
                    "before the position the trail has processed")
                break
            report.pending += 1 + sum(1 for _ in store)
            break
        if stored is None or stored.id > row["position"]:
            finding = Finding(
                "REMOVED", row["position"], row["leaf_index"], row["case_id"], row["event_id"],
                row["version"],
                "sổ kiểm toán có sự kiện này nhưng kho sự kiện không còn",
                "the audit trail holds this event but the event store no longer does")
            break
        if stored.id < row["position"]:
            case_id, event_id, version = _identify(app, stored)
            finding = Finding(
                "INSERTED", stored.id, None, case_id, event_id, version,
                f"bản ghi không có trong sổ kiểm toán, chen trước sự kiện ở vị trí "
                f"{row['position']} (chỉ số lá {row['leaf_index']})",
                f"a record the audit trail does not have, ahead of the event at position "
                f"{row['position']} (leaf index {row['leaf_index']})")
            break
        try:
            leaf = leaf_of_notification(app.mapper, stored)
        except LeafError as error:
            finding = Finding(
                "ALTERED", stored.id, row["leaf_index"], row["case_id"], row["event_id"],
                row["version"], f"bản ghi không còn giải mã được ({error})",
                f"the stored record can no longer be decoded ({error})")
            break
        digest = leaf_hash(leaf)
        if digest != row["leaf_hash"]:
            finding = Finding(
                "ALTERED", stored.id, row["leaf_index"], row["case_id"], row["event_id"],
                row["version"],
                "nội dung sự kiện trong kho khác với lá đã ghi trong sổ kiểm toán",
                "the stored event's content differs from the leaf the audit trail recorded")
            break
        global_chain = chain_next(global_chain, leaf)
        originator = row["originator_id"]
        case_chain = chain_next(case_chains.get(originator, CHAIN_SEED), leaf)
        case_chains[originator] = case_chain
        if (row["leaf_index"] != index or row["global_chain_hash"] != global_chain
                or row["case_chain_hash"] != case_chain
                or originator != str(stored.originator_id)):
            finding = Finding(
                "TRAIL", stored.id, row["leaf_index"], row["case_id"], row["event_id"],
                row["version"],
                f"dòng sổ kiểm toán không khớp chỉ số lá {index} hoặc chuỗi băm tính lại",
                f"the audit-trail row does not match leaf index {index} or the recomputed "
                "hash chains")
            break
        streaming.append(digest)
        index += 1
        report.events_checked += 1
        finding = check_checkpoints()
        stored, row = next(store, None), next(trail, None)
    if finding is None and next_checkpoint < len(checkpoints):
        short = checkpoints[next_checkpoint]
        finding = Finding(
            "REMOVED", None, index, None, None, None,
            f"kho sự kiện chỉ còn {index} sự kiện, ít hơn điểm kiểm đã ký kích thước "
            f"{short.size} (sự kiện cuối của điểm kiểm ở vị trí {short.last_position})",
            f"the event store holds only {index} events, fewer than the signed checkpoint of "
            f"size {short.size} (whose last event was at position {short.last_position})")
    if finding is None and index and view.root(index) != streaming.root():
        finding = Finding(
            "TRAIL", None, None, None, None, None,
            f"bảng nút Merkle không cho ra gốc tính lại ở kích thước {index}",
            f"the Merkle node table does not give the recomputed root at size {index}")
    report.finding = finding
    return report


def _check_checkpoint(stored: Any, verifier: Verifier, root: bytes, chain: bytes,
                      previous_ok_size: int) -> Finding | None:
    def mismatch(vi: str, en: str) -> Finding:
        return Finding(
            "CHECKPOINT", stored.last_position, None, None, None, None,
            f"điểm kiểm kích thước {stored.size}: {vi}; một sự kiện trong các chỉ số lá "
            f"[{previous_ok_size}, {stored.size}) đã bị sửa, xoá hoặc chèn",
            f"checkpoint of size {stored.size}: {en}; an event among leaf indexes "
            f"[{previous_ok_size}, {stored.size}) was altered, removed or inserted")

    try:
        text, _ = open_note(stored.note, [verifier])
        signed = parse_checkpoint(text)
    except NoteError as error:
        return Finding(
            "CHECKPOINT", stored.last_position, None, None, None, None,
            f"chữ ký của điểm kiểm kích thước {stored.size} không hợp lệ ({error})",
            f"the signature of the checkpoint of size {stored.size} does not verify ({error})")
    if signed.size != stored.size or signed.root_hash != stored.root:
        return mismatch("ghi chú đã ký khác các cột đã lưu",
                        "the signed note differs from its stored columns")
    if signed.root_hash != root:
        return mismatch("gốc tính lại từ kho sự kiện khác gốc đã ký",
                        "the root recomputed from the event store differs from the signed root")
    if chain_head_of(signed) != chain:
        return mismatch("chuỗi băm toàn cục tính lại khác chuỗi đã ký",
                        "the recomputed global chain differs from the signed chain head")
    return None
