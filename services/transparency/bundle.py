"""Offline verification of an exported bundle: needs the package and public keys, no database.

A bundle (JSON, format "legal-aid-ledger bundle/v1") holds:

    kind             "case" (one case's events) or "province" (a province's events of a period)
    checkpoint       the log's signed checkpoint (C2SP tlog-checkpoint note) with the witnesses'
                     cosignature lines (c2sp.org/tlog-cosignature)
    leaves           [{leaf_index, leaf (the canonical leaf JSON text), proof [base64 ...]}]
    consistency      [{old_size, proof}]: RFC 9162 consistency proofs from earlier checkpoints
    as_of            the instant the figures were evaluated at (a parameter, not a claim)
    figures          what the ledger computed from those leaves (time-limit verdicts, counts)

`verify_bundle` checks the checkpoint's signature with the log key the inspector trusts, every
cosignature the inspector asks for, every leaf (canonical, in the tree by its inclusion proof),
the growth from a checkpoint the inspector trusted earlier (consistency proof), and recomputes
the figures from the leaves with the reference versions the bundle carries (`reference`: each
document's content, SHA-256 and signed note, checked with the log key; issue 14), or with the
installed rules and calendar for a bundle made before those were carried. For a case bundle it
also replays the events through the ledger's own recording rules
(`domain.referral.judge_history`) and reports every event they would not have accepted (issue 13
item 7).
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from services.transparency.checkpoint import (
    Checkpoint,
    cosignature_timestamp,
    cosignature_verifier_from_key_text,
    parse_checkpoint,
)
from services.transparency.leaves import LeafError, parse_leaf, parse_rfc3339, rfc3339
from services.transparency.merkle import leaf_hash, verify_consistency, verify_inclusion
from services.transparency.note import NoteError, open_note, split_note, verifier_from_key_text

BUNDLE_FORMAT = "legal-aid-ledger bundle/v1"


def b64(data: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(bytes(data)).decode("ascii")


def unb64(text: Any) -> bytes:
    """Bytes of strict standard base64 text (ValueError otherwise)."""
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("invalid base64") from None


# ------------------------------------------------------------------------------------ figures
def _leaf_event(record: dict[str, Any]) -> Any:
    """A leaf as the attributes `services.referrals.case_facts` folds."""
    return SimpleNamespace(
        WIRE_TYPE=record["type"],
        data=record["data"] or {},
        agency_id=record["agency_id"],
        occurred_at=parse_rfc3339(record["occurred_at"]),
        originator_version=record["version"],
        timestamp=parse_rfc3339(record["recorded_at"]),
        event_id=record["event_id"],
        case_id=record["case_id"],
        content_digest=record["content_digest"],
        identity_ciphertext=record["identity_ciphertext"],
        position=record["position"],
    )


def case_figures(
    leaves: Sequence[str | bytes],
    rules: Sequence[Any],
    calendar: Any,
    at: datetime,
    reference: Any = None,
    refs: Any = None,
    clock: str = "recorded",
) -> dict[str, Any]:
    """A case's figures from its leaves: status, events, and the legal time-limit verdicts at
    `at` (the same folding as `Referrals.time_limits`: events recorded by `at`, judged by
    `domain.deadlines.evaluate_time_limits`).

    `clock="occurred"` (ADR 0008): the case as it happened by `at` instead — every event in the
    bundle whose occurred_at is at or before `at`, derived in occurred order
    (`Referrals.case_as_happened`), its limits judged at `at`; the figures then carry
    `"clock": "occurred"`. The recording rules are still replayed over every event of the
    bundle and every refusal is reported (a refusal is a refusal on either clock).

    The events are first replayed through the ledger's own recording rules
    (`domain.referral.judge_history`, with the shipped reference data): an event they would not
    have accepted is listed under `refused` (the key is present only when there is one) and
    takes no part in the status or the verdicts.
    """
    from domain.deadlines import evaluate_time_limits
    from domain.referral import derive_case, judge_history
    from services.referrals import case_facts

    records = sorted((parse_leaf(leaf) for leaf in leaves), key=lambda r: r["version"])
    history = [_leaf_event(r) for r in records if r["case_id"] is not None]
    if clock == "occurred":  # as known now (the whole bundle), as it happened by `at`
        case_id = history[0].case_id if history else ""
        _, refusals = judge_history(case_id, history, reference)  # every recording decision
        refused_versions = {r.version for r in refusals}
        history = [e for e in history if e.occurred_at <= at]
        state = derive_case(
            case_id, [e for e in history if e.originator_version not in refused_versions]
        )
    else:
        history = [e for e in history if e.timestamp <= at]
        case_id = history[0].case_id if history else ""
        state, refusals = judge_history(case_id, history, reference)  # no reference: folded
        refused_versions = {r.version for r in refusals}
    held = set(state.held or ()) if state is not None else set()
    lawful = sorted(
        (
            e
            for e in history
            if e.originator_version not in refused_versions and e.event_id not in held
        ),
        key=lambda e: (e.occurred_at, e.originator_version),
    )  # ADR 0008
    figures: dict[str, Any] = {
        "events": len(history),
        "status": state.status if state is not None else None,
    }
    if clock == "occurred":
        figures["clock"] = "occurred"
    if refs is not None:  # issue 14: judged with the recorded versions, each verdict its basis
        from domain.reference_versions import judge_with_basis

        judged = judge_with_basis(case_facts(lawful), refs, at)
        figures["time_limits"] = [{**_verdict(v), "basis": list(basis)} for v, basis in judged]
    else:
        verdicts = evaluate_time_limits(case_facts(lawful), rules, calendar, at)
        figures["time_limits"] = [_verdict(v) for v in verdicts]
    if refusals:
        position = {e.originator_version: e.position for e in history}
        figures["refused"] = [
            {
                "position": position.get(r.version),
                "version": r.version,
                "event_id": r.event_id,
                "type": r.wire_type,
                "code": r.error.code,
                "field": r.error.field,
                "message": r.error.message_vi,
                "message_en": r.error.message_en,
                "in_force": r.in_force,
            }
            for r in refusals
        ]
    return figures


def bundle_references(bundle: dict[str, Any], verifier: Any) -> Any:
    """The reference versions a bundle carries (issue 14) as a `ReferenceSet`, each checked:
    its content hashes to its sha256 and its signed note verifies under the log key and names
    that ref, version and sha256. None when the bundle carries none (made before issue 14).
    Raises ValueError naming the first document that fails."""
    from domain.reference_versions import ReferenceSet, record_from_dict

    documents = bundle.get("reference")
    if documents is None:
        return None
    if not isinstance(documents, list):
        raise ValueError("member 'reference' must be a list of documents")
    records = []
    for item in documents:
        record = record_from_dict(item)
        try:
            text, _ = open_note(record.signed_note, [verifier])
        except (NoteError, TypeError) as error:
            raise ValueError(
                f"reference {record.label}: the log's signature does not verify ({error})"
            ) from None
        lines = set(text.splitlines())
        expected = {f"ref {record.ref}", f"version {record.version}", f"sha256 {record.sha256}"}
        if not expected <= lines:
            raise ValueError(
                f"reference {record.label}: the signed note names another document, version or hash"
            )
        records.append(record)
    return ReferenceSet(records)


def _verdict(verdict: Any) -> dict[str, Any]:
    return {
        "rule_id": verdict.rule_id,
        "trigger_version": verdict.trigger_version,
        "trigger_at": rfc3339(verdict.trigger_at),
        "deadline": rfc3339(verdict.deadline),
        "status": verdict.status,
        "target_version": verdict.target_version,
        "met_at": rfc3339(verdict.met_at) if verdict.met_at is not None else None,
        "outstanding": verdict.outstanding,
        "responsible_agency_id": verdict.responsible_agency_id,
        "legal_basis": verdict.legal_basis,
    }


def province_figures(leaves: Sequence[str | bytes]) -> dict[str, Any]:
    """Counts of the leaves by recording agency and event type (and per agency)."""
    records = [parse_leaf(leaf) for leaf in leaves]
    by_type = Counter((r["agency_id"], r["type"]) for r in records)
    by_agency = Counter(r["agency_id"] for r in records)
    return {
        "events": len(records),
        "cases": len({r["case_id"] for r in records}),
        "by_agency": [{"agency_id": a, "events": n} for a, n in sorted(by_agency.items())],
        "by_agency_and_type": [
            {"agency_id": a, "type": t, "events": n} for (a, t), n in sorted(by_type.items())
        ],
    }


# ---------------------------------------------------------------------------------- verifying
@dataclass
class BundleReport:
    """What an offline verification of a bundle found."""

    ok: bool = True
    problems: list[tuple[str, str]] = field(default_factory=list)  # (vi, en)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (vi, en): not failures
    checkpoint: Checkpoint | None = None
    witnesses: list[tuple[str, int]] = field(default_factory=list)  # (name, cosigned at)
    leaves_checked: int = 0
    trusted_size: int | None = None
    figures: dict[str, Any] | None = None
    claimed_figures: dict[str, Any] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, vi: str, en: str) -> None:
        self.ok = False
        self.problems.append((vi, en))


def verify_bundle(
    bundle: dict[str, Any],
    log_key: str,
    witness_keys: Sequence[str] = (),
    trusted_checkpoint: str | None = None,
    at: datetime | None = None,
    rules: Sequence[Any] | None = None,
    calendar: Any = None,
    reference: Any = None,
    clock: str = "recorded",
) -> BundleReport:
    """Verifies a bundle with only public keys; recomputes its figures (see module docstring).

    `reference` (the register and code lists, `ReferenceData`) lets the recomputation replay a
    case's events through the ledger's recording rules and report those it would have refused;
    without it the events are folded as recorded. `clock` (a case bundle): `"recorded"` (the
    default) recomputes the case as the ledger knew it at `at` (default the bundle's as_of) and
    compares with the exported figures when `at` is not given; `"occurred"` recomputes it as it
    happened by `at` (`case_figures`), never compared (the ledger exports the known figures)."""
    if clock not in ("recorded", "occurred"):
        raise ValueError("clock is 'recorded' or 'occurred'")
    report = BundleReport()
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        report.fail(
            "tệp không phải gói chứng cứ legal-aid-ledger bundle/v1",
            "the file is not a legal-aid-ledger bundle/v1",
        )
        return report
    verifier = verifier_from_key_text(log_key)
    note: Any = bundle.get("checkpoint")  # not a string: open_note's TypeError, reported
    try:
        text, _ = open_note(note, [verifier])
        checkpoint = parse_checkpoint(text)
    except (NoteError, TypeError) as error:
        report.fail(
            f"chữ ký của sổ trên điểm kiểm không hợp lệ ({error})",
            f"the log's signature on the checkpoint does not verify ({error})",
        )
        return report
    report.checkpoint = checkpoint
    _check_witnesses(report, note, witness_keys)
    _check_leaves(report, bundle, checkpoint)
    if trusted_checkpoint is not None:
        _check_growth(report, bundle, checkpoint, trusted_checkpoint, verifier)
    refs = None
    if report.ok:
        try:
            refs = bundle_references(bundle, verifier)
        except (KeyError, TypeError, ValueError) as error:
            report.fail(
                f"dữ liệu tham chiếu trong gói không hợp lệ ({error})",
                f"the bundle's reference versions do not verify ({error})",
            )
    if report.ok:
        _recompute(report, bundle, at, rules, calendar, refs, reference, clock)
    return report


def _check_witnesses(report: BundleReport, note: str, witness_keys: Sequence[str]) -> None:
    _, signatures = split_note(note)
    for key_text in witness_keys:
        witness = cosignature_verifier_from_key_text(key_text)
        try:
            open_note(note, [witness])
        except NoteError:
            report.fail(
                f"nhân chứng «{witness.name}» chưa đồng ký (cosign) điểm kiểm này",
                f"witness '{witness.name}' has not cosigned this checkpoint",
            )
            continue
        stamp = next(
            cosignature_timestamp(s)
            for s in signatures
            if s.name == witness.name and s.key_hash == witness.key_hash
        )
        report.witnesses.append((witness.name, stamp))


def _check_leaves(report: BundleReport, bundle: dict[str, Any], checkpoint: Checkpoint) -> None:
    leaves = bundle.get("leaves")
    if not isinstance(leaves, list):
        report.fail("gói không có danh sách lá", "the bundle has no list of leaves")
        return
    for number, entry in enumerate(leaves):
        try:
            index = entry["leaf_index"]
            raw = entry["leaf"].encode("utf-8")
            proof = [unb64(h) for h in entry["proof"]]
            record = parse_leaf(raw)
        except (KeyError, TypeError, AttributeError, ValueError, LeafError) as error:
            report.fail(
                f"lá thứ {number} của gói hỏng ({error})",
                f"leaf {number} of the bundle is malformed ({error})",
            )
            continue
        if not verify_inclusion(
            leaf_hash(raw), index, checkpoint.size, proof, checkpoint.root_hash
        ):
            report.fail(
                f"sự kiện ở vị trí {record['position']} (vụ việc {record['case_id']}, mã sự kiện "
                f"{record['event_id']}, chỉ số lá {index}) KHÔNG nằm trong cây của điểm kiểm "
                f"{checkpoint.size}: nội dung đã bị sửa hoặc bằng chứng sai",
                f"the event at position {record['position']} (case {record['case_id']}, event "
                f"{record['event_id']}, leaf index {index}) is NOT in the tree of checkpoint "
                f"{checkpoint.size}: altered content or a wrong proof",
            )
            continue
        report.leaves_checked += 1
        report.records.append(record)
    if bundle.get("kind") == "case":
        _check_case_leaves(report, bundle)
    elif bundle.get("kind") == "province":
        _check_period(report, bundle)


def _check_case_leaves(report: BundleReport, bundle: dict[str, Any]) -> None:
    case_id = bundle.get("case_id")
    versions = [r["version"] for r in report.records]
    if any(r["case_id"] != case_id for r in report.records):
        report.fail(
            f"gói có lá không thuộc vụ việc {case_id}",
            f"the bundle has leaves of another case than {case_id}",
        )
    if report.ok and sorted(versions) != list(range(1, len(versions) + 1)):
        report.fail(
            f"các phiên bản của vụ việc không liên tục từ 1: {sorted(versions)}",
            f"the case's versions are not contiguous from 1: {sorted(versions)}",
        )


def _check_period(report: BundleReport, bundle: dict[str, Any]) -> None:
    try:
        start, end = parse_rfc3339(bundle["from"]), parse_rfc3339(bundle["to"])
    except (KeyError, TypeError, ValueError):
        report.fail("gói thiếu khoảng thời gian", "the bundle lacks its period")
        return
    for record in report.records:
        occurred = record["occurred_at"]
        if occurred is None or not start <= parse_rfc3339(occurred) < end:
            report.fail(
                f"sự kiện ở vị trí {record['position']} nằm ngoài khoảng thời gian",
                f"the event at position {record['position']} is outside the period",
            )


def _check_growth(
    report: BundleReport,
    bundle: dict[str, Any],
    checkpoint: Checkpoint,
    trusted_note: str,
    verifier: Any,
) -> None:
    try:
        text, _ = open_note(trusted_note, [verifier])
        trusted = parse_checkpoint(text)
    except NoteError as error:
        report.fail(
            f"điểm kiểm tin cậy không có chữ ký hợp lệ của sổ ({error})",
            f"the trusted checkpoint does not carry a valid log signature ({error})",
        )
        return
    report.trusted_size = trusted.size
    if trusted.origin != checkpoint.origin:
        report.fail("điểm kiểm tin cậy thuộc sổ khác", "the trusted checkpoint is of another log")
        return
    if trusted.size > checkpoint.size:
        report.fail(
            f"gói cũ hơn điểm kiểm tin cậy ({checkpoint.size} < {trusted.size}); hãy xin gói mới",
            f"the bundle is older than the trusted checkpoint ({checkpoint.size} < "
            f"{trusted.size}); ask for a newer bundle",
        )
        return
    if trusted.size == checkpoint.size:
        if trusted.root_hash != checkpoint.root_hash:
            report.fail(
                f"CÙNG kích thước {trusted.size} nhưng KHÁC gốc: sổ đã bị viết lại",
                f"SAME size {trusted.size} but a DIFFERENT root: the log was rewritten",
            )
        return
    proofs = [c for c in bundle.get("consistency") or [] if c.get("old_size") == trusted.size]
    if not proofs:
        report.fail(
            f"gói không có bằng chứng nhất quán từ kích thước {trusted.size}; xuất lại với "
            f"--since {trusted.size}",
            f"the bundle has no consistency proof from size {trusted.size}; export it again "
            f"with --since {trusted.size}",
        )
        return
    try:
        proof = [unb64(h) for h in proofs[0]["proof"]]
    except (KeyError, TypeError, ValueError):
        proof = []
    if not verify_consistency(
        trusted.size, checkpoint.size, trusted.root_hash, checkpoint.root_hash, proof
    ):
        report.fail(
            f"sổ ở kích thước {checkpoint.size} KHÔNG nhất quán với điểm kiểm tin cậy "
            f"{trusted.size}: lịch sử đã bị viết lại",
            f"the log at size {checkpoint.size} is NOT consistent with the trusted checkpoint "
            f"{trusted.size}: history was rewritten",
        )


def _recompute(
    report: BundleReport,
    bundle: dict[str, Any],
    at: datetime | None,
    rules: Sequence[Any] | None,
    calendar: Any,
    refs: Any = None,
    reference: Any = None,
    clock: str = "recorded",
) -> None:
    leaves = [e["leaf"] for e in bundle["leaves"]]
    report.claimed_figures = bundle.get("figures")
    if bundle.get("kind") == "case" and refs is not None:  # the recorded versions (issue 14)
        instant = at or parse_rfc3339(bundle["as_of"])
        report.figures = case_figures(leaves, (), None, instant, reference, refs=refs, clock=clock)
        compare = at is None and clock == "recorded"
    elif bundle.get("kind") == "case":
        if rules is None or calendar is None:  # the caller loads them (infra.reference_data)
            raise TypeError(
                "a case bundle's figures are recomputed with the time-limit rules "
                "and the working calendar: pass rules= and calendar="
            )
        instant = at or parse_rfc3339(bundle["as_of"])
        report.figures = case_figures(leaves, rules, calendar, instant, reference, clock=clock)
        compare = at is None and clock == "recorded"
    else:
        report.figures = province_figures(leaves)
        compare = True
    for refused in report.figures.get("refused", ()):
        where_vi = (
            f"sự kiện ở vị trí {refused['position']} (vụ việc {bundle.get('case_id')}, "
            f"mã sự kiện {refused['event_id']}, phiên bản {refused['version']}, "
            f"{refused['type']})"
        )
        where_en = (
            f"the event at position {refused['position']} (case {bundle.get('case_id')}, "
            f"event {refused['event_id']}, version {refused['version']}, "
            f"{refused['type']})"
        )
        if refused["in_force"]:
            report.fail(
                f"{where_vi} lẽ ra bị sổ từ chối theo chính quy tắc của sổ: "
                f"{refused['code']}: {refused['message']}",
                f"{where_en} would have been refused by the ledger's own rules: "
                f"{refused['code']}: {refused['message_en']}",
            )
        else:
            report.notes.append(
                (
                    f"{where_vi} không đạt quy tắc {refused['code']}, quy tắc này có hiệu lực sau "
                    "khi sự kiện được ghi (không tính là lỗi)",
                    f"{where_en} breaks rule {refused['code']}, which took effect after the event "
                    "was recorded (not a failure)",
                )
            )
    if compare and report.claimed_figures is not None and report.claimed_figures != report.figures:
        report.fail(
            "số liệu tính lại từ các lá KHÁC số liệu sổ đã xuất",
            "the figures recomputed from the leaves DIFFER from the ones the ledger exported",
        )
