"""The integrity of one case's audit chain, for the case page: verified, broken at an event, or
pending (recorded but not yet in the audit trail).

Built from the transparency area's pieces (projections/audit_trail.py, services/transparency/, infra/transparency/):

1. every stored event of the case is made into its leaf again (`leaf_entry`, from the event
   store, never from the trail) and its leaf hash compared with the audit-trail row;
2. the case chain SHA-256(previous || leaf) is recomputed from the seed and compared with the
   row's `case_chain_hash` (a row edited, dropped or reordered breaks it);
3. the latest signed checkpoint is opened with the log's key, and every leaf it covers is
   checked against its signed root with an RFC 9162 inclusion proof.

As of an instant (the case page's replay), the same checks run over the events recorded by
then, against the latest checkpoint signed by then: the integrity of the record as it stood,
checked today (a later edit of those events still shows as broken).

The first problem found is reported with the case version and event id. Read-only: it never
publishes a checkpoint (leaves after the latest one are reported as not yet signed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.transparency.checkpoint import parse_checkpoint
from services.transparency.leaves import CHAIN_SEED, LeafError, chain_next, leaf_entry
from services.transparency.merkle import leaf_hash, verify_inclusion
from services.transparency.note import NoteError, open_note


@dataclass(frozen=True)
class CaseIntegrity:
    """What checking one case's chain found."""

    status: str  # verified | broken | pending | unavailable
    events: int  # events of the case in the store
    chained: int  # events whose leaf and case chain matched
    signed: int  # of those, events covered by the latest signed checkpoint
    checkpoint_size: int | None = None
    checkpoint_at: datetime | None = None
    broken_version: int | None = None
    broken_event_id: str | None = None
    problem_vi: str = ""
    problem_en: str = ""


def case_integrity(
    container: Any,
    case_id: str,
    history: list[Any],
    as_of: datetime | None = None,
    signed: bool = True,
) -> CaseIntegrity:
    """Checks the case's audit chain against its stored events (`history`, in order): all of
    them against the latest checkpoint, or, `as_of` an instant, those recorded by then
    (`history` is then that prefix) against the latest checkpoint signed by then; without
    `signed`, only steps 1 and 2 (no checkpoint signature or inclusion proofs: the cheap
    check `/history` makes on every read)."""
    projections = container.projections
    if projections is None or "audit_trail" not in projections:
        return CaseIntegrity("unavailable", len(history), 0, 0)
    view = projections.view("audit_trail")
    rows = {row["version"]: row for row in view.case_timeline(case_id)}
    chain = CHAIN_SEED
    chained: list[tuple[dict[str, Any], bytes]] = []
    for event in history:
        version = event.originator_version
        row = rows.pop(version, None)
        if row is None:
            trail_position = view.position() or 0
            top = container.referrals.recorder.max_notification_id() or 0
            if trail_position < top:  # the trail has not reached it yet
                return CaseIntegrity("pending", len(history), len(chained), 0)
            return _broken(
                history,
                chained,
                event,
                "sự kiện có trong kho nhưng không có trong sổ kiểm toán",
                "the event is in the store but not in the audit trail",
            )
        try:
            _, leaf = leaf_entry(row["position"], event)
        except LeafError as error:
            return _broken(
                history,
                chained,
                event,
                f"không tạo lại được lá ({error})",
                f"its leaf cannot be rebuilt ({error})",
            )
        if leaf_hash(leaf) != row["leaf_hash"]:
            return _broken(
                history,
                chained,
                event,
                "nội dung sự kiện trong kho khác với lá đã ghi trong sổ kiểm toán",
                "the stored event differs from the leaf the audit trail recorded",
            )
        chain = chain_next(chain, leaf)
        if chain != row["case_chain_hash"]:
            return _broken(
                history,
                chained,
                event,
                "chuỗi băm của vụ việc không khớp tại sự kiện này",
                "the case's hash chain does not match at this event",
            )
        chained.append((row, leaf))
    if as_of is not None:  # events recorded after the instant are not part of this check
        rows = {v: r for v, r in rows.items() if v <= len(history)}
    if rows:
        version = min(rows)
        row = rows[version]
        return CaseIntegrity(
            "broken",
            len(history),
            len(chained),
            0,
            broken_version=version,
            broken_event_id=row["event_id"],
            problem_vi="sổ kiểm toán có sự kiện này nhưng kho sự kiện không còn",
            problem_en="the audit trail holds this event but the event store no longer does",
        )
    if not signed:
        return CaseIntegrity("verified", len(history), len(chained), 0)
    signed_count, checkpoint, failed = _signed(view, chained, container, as_of)
    if failed is not None:
        row, vi, en = failed
        return CaseIntegrity(
            "broken",
            len(history),
            len(chained),
            signed_count,
            broken_version=row["version"],
            broken_event_id=row["event_id"],
            problem_vi=vi,
            problem_en=en,
        )
    return CaseIntegrity(
        "verified",
        len(history),
        len(chained),
        signed_count,
        checkpoint.size if checkpoint else None,
        checkpoint.created_at if checkpoint else None,
    )


def _broken(history: list[Any], chained: list[Any], event: Any, vi: str, en: str) -> CaseIntegrity:
    return CaseIntegrity(
        "broken",
        len(history),
        len(chained),
        0,
        broken_version=event.originator_version,
        broken_event_id=getattr(event, "event_id", None),
        problem_vi=vi,
        problem_en=en,
    )


def _signed(
    view: Any,
    chained: list[tuple[dict[str, Any], bytes]],
    container: Any,
    as_of: datetime | None = None,
) -> tuple[int, Any, tuple[dict[str, Any], str, str] | None]:
    """(events covered by the latest checkpoint — signed by `as_of` if given —, that
    checkpoint, the first failure or None)."""
    stored = view.latest_checkpoint() if as_of is None else view.latest_checkpoint_at(as_of)
    if stored is None:
        return 0, stored, None
    from infra.transparency.service import transparency_log

    try:
        verifier = transparency_log(container).signer.verifier()
        text, _ = open_note(stored.note, [verifier])
        signed = parse_checkpoint(text)
    except (NoteError, ValueError, OSError, RuntimeError) as error:  # not verifiable
        first = chained[0][0] if chained else {"version": None, "event_id": None}
        return (
            0,
            stored,
            (
                first,
                f"chữ ký của điểm kiểm {stored.size} không hợp lệ ({error})",
                f"the signature of checkpoint {stored.size} does not verify ({error})",
            ),
        )
    covered = 0
    for row, leaf in chained:
        if row["leaf_index"] >= signed.size:
            continue
        proof = view.inclusion_proof(row["leaf_index"], signed.size)
        if not verify_inclusion(
            leaf_hash(leaf), row["leaf_index"], signed.size, proof, signed.root_hash
        ):
            return (
                covered,
                stored,
                (
                    row,
                    f"sự kiện không nằm trong cây của điểm kiểm đã ký {signed.size}",
                    f"the event is not in the tree of signed checkpoint {signed.size}",
                ),
            )
        covered += 1
    return covered, stored, None
