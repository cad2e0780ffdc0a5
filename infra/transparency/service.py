"""The ledger's transparency log: signed checkpoints, receipts, proofs and bundles over the
audit-trail projection (projections/audit_trail.py), with the log's Ed25519 key.

Entry points other areas call (each takes the process's container):

    receipt_for(container, recorded) -> str          a signed receipt/v1 for one accepted post
    receipts_for(container, results) -> list          the same for a batch's results (one
                                                      store read; None for a rejection; two
                                                      or more new events: batch-receipt/v1
                                                      under one signature, ADR 0011)
    checkpoint_for_position(container, position) -> (size, root, note)
                                                      the signed checkpoint a report is bound to
    start_checkpointer(container) -> CheckpointPublisher
                                                      publishes checkpoints every
                                                      `checkpoint_interval_seconds`
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domain.calendar import VIETNAM_TZ
from domain.errors import DomainError, InvalidEventError, LogIntegrityError, NotFoundError
from domain.referral import Recorded, referral_id
from projections.framework import is_lock_busy
from services.transparency.bundle import (
    BUNDLE_FORMAT,
    b64,
    case_figures,
    province_figures,
)
from services.transparency.checkpoint import (
    Checkpoint,
    CosignatureVerifier,
    cosignature_verifier_from_key_text,
)
from services.transparency.leaves import (
    LeafError,
    chain_extension,
    leaf_bytes,
    leaf_entry,
    leaf_of_notification,
    rfc3339,
)
from services.transparency.merkle import leaf_hash
from services.transparency.note import (
    NoteError,
    Signer,
    generate_signer,
    open_note,
    sign_note,
    signer_from_key_text,
    split_note,
)
from services.transparency.receipt import (
    Receipt,
    issue_batch_receipts,
    issue_held_receipt,
    issue_receipt,
)
from services.worker_health import ConnectionWatch, is_connection_error, status_path

if TYPE_CHECKING:
    from infra.bootstrap import Container

log = logging.getLogger(__name__)

MAX_BUNDLE_CONSISTENCY_PROOFS = 64


# ------------------------------------------------------------------------------------- errors
class TransparencyError(DomainError):
    """Raised when the transparency log cannot answer (bilingual message given by the caller)."""

    def __init__(self, code: str, field: str | None, message_vi: str, message_en: str) -> None:
        super().__init__(code, field)
        self.message_vi = message_vi
        self.message_en = message_en
        self.args = (f"{code}: {message_en}",)


class LogEntryNotFoundError(TransparencyError, NotFoundError):
    """Raised when a checkpoint, event or size asked for is not in the log."""


class CosignatureRejectedError(TransparencyError, InvalidEventError):
    """Raised when a posted cosignature is not a valid one from a configured witness."""


class LogKeyError(RuntimeError):
    """Raised when the log signing key is missing, unreadable or not named after the origin."""


class LogForkError(RuntimeError):
    """Raised when the tree at a checkpointed size no longer has the checkpoint's root."""


class LogIntegrityFailedError(LogIntegrityError, LogForkError):
    """A stored event no longer matches the audit trail: LOG_INTEGRITY_FAILED (HTTP 409)."""


def _integrity_failed(
    row: dict[str, Any], reason_vi: str, reason_en: str
) -> LogIntegrityFailedError:
    return LogIntegrityFailedError(
        "case_id",
        f"sự kiện ở vị trí {row['position']} (vụ việc «{row['case_id']}», phiên bản "
        f"{row['version']}, mã sự kiện {row['event_id']}) {reason_vi}",
        f"the event at position {row['position']} (case '{row['case_id']}', version "
        f"{row['version']}, event id {row['event_id']}) {reason_en}",
    )


# ----------------------------------------------------------------------------------------- keys
def load_log_signer(settings: Any) -> Signer:
    """The log's Ed25519 signer: the secret, or the key file (generated only in development)."""
    from infra.settings import PLACEHOLDER_LOG_ORIGIN

    if settings.environment == "production" and settings.log_origin == PLACEHOLDER_LOG_ORIGIN:
        raise LogKeyError(
            f"the log origin is the development placeholder {PLACEHOLDER_LOG_ORIGIN!r}; in "
            "production set REFERRALS_LOG_ORIGIN to the log's real name (e.g. "
            "ledger.tgpl.gov.vn/log) and a key named after it (`referrals secrets init`)"
        )
    if settings.log_signing_key is not None:
        text = settings.log_signing_key.get_secret_value()
    else:
        path = Path(settings.log_signing_key_file)
        if not path.exists():
            if settings.environment == "production":
                raise LogKeyError(
                    f"the log signing key file {path} does not exist; in production set "
                    "REFERRALS_LOG_SIGNING_KEY or REFERRALS_SIGNING_KEY_FILE "
                    "(`referrals log-keygen` makes one)"
                )
            try:
                write_log_key(path, generate_signer(settings.log_origin))
            except FileExistsError:
                pass  # another thread or process made it first: everyone uses that one
        from infra.private_files import tighten_file

        text = tighten_file(path).read_text(encoding="utf-8")
    try:
        signer = signer_from_key_text(text.strip())
    except NoteError as error:
        raise LogKeyError(f"the log signing key is not a valid Ed25519 note key: {error}") from None
    if signer.name != settings.log_origin:
        raise LogKeyError(
            f"the log signing key is named {signer.name!r}, but the log origin is "
            f"{settings.log_origin!r}; the key must carry the origin's name"
        )
    return signer


def write_log_key(path: Path, signer: Signer) -> None:
    """Writes a private key file (mode 0600, never overwritten) and its public `.pub` beside it.

    The key appears at `path` complete or not at all (written aside, then linked), so a
    concurrent reader never sees half a key; FileExistsError if `path` already exists.
    """
    from infra.private_files import private_dir

    private_dir(path.parent)
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(signer.key_text + "\n")
        os.link(aside, path)  # atomic and never replaces an existing key
    finally:
        os.unlink(aside)
    path.with_name(path.name + ".pub").write_text(
        signer.verifier().key_text + "\n", encoding="utf-8"
    )


def witness_verifiers(settings: Any) -> list[CosignatureVerifier]:
    """The witnesses whose cosignatures the log accepts (settings.log_witness_keys)."""
    texts = [t.strip() for t in settings.log_witness_keys.replace("\n", ",").split(",")]
    return [cosignature_verifier_from_key_text(t) for t in texts if t]


# ------------------------------------------------------------------------------------ the log
class TransparencyLog:
    """Checkpoints, receipts, proofs and bundles of one process's ledger."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.settings = container.settings
        self.app = container.referrals
        self.projections = container.projections
        self.view = container.projections.view("audit_trail")
        self.origin = self.settings.log_origin
        self._signer: Signer | None = None
        self._lock = threading.Lock()

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            self._signer = load_log_signer(self.settings)
        return self._signer

    @property
    def public_key(self) -> str:
        """The log's verifier key text (what inspectors and witnesses trust)."""
        return self.signer.verifier().key_text

    def _now(self) -> datetime:
        clock = getattr(self.app, "clock", None)
        return clock() if callable(clock) else datetime.now(timezone.utc)

    # -- catching up --------------------------------------------------------------------------
    def catch_up(
        self, position: int | None = None, timeout: float | None = None, lenient: bool = False
    ) -> int:
        """Makes sure the audit trail has applied the log up to `position` (default: its end);
        returns how many events it is still behind (0: caught up).

        Only the audit trail is caught up here. In the API (`service == "api"`) this waits at
        most `api_read_wait_seconds` for a projection worker that holds the view (issue 19:
        a frozen worker must not hang reads): then TimeoutError, or, if `lenient`, the lag
        (the caller answers from the view as it is and says so)."""
        target = (self.app.recorder.max_notification_id() or 0) if position is None else position
        if (self.view.position() or 0) >= target:
            return 0
        if timeout is None:
            timeout = (
                float(self.settings.api_read_wait_seconds)
                if getattr(self.settings, "service", "") == "api"
                else 60.0
            )
        try:
            self.projections.process_pending(until=target, timeout=timeout, names=("audit_trail",))
        except TimeoutError:
            if not lenient:
                raise
            lag = max(0, target - (self.view.position() or 0))
            log.warning(
                "audit trail %d events behind after %.1fs: answering from the view as it is",
                lag,
                timeout,
            )
            return lag
        return 0

    def lag(self) -> int:
        """Events recorded that the audit trail has not applied yet."""
        return max(0, (self.app.recorder.max_notification_id() or 0) - (self.view.position() or 0))

    # -- checkpoints ----------------------------------------------------------------------------
    def publish_checkpoint(self, size: int | None = None) -> Any:
        """Signs and stores the checkpoint of the tree at `size` (default: now); returns it.

        Idempotent per size. Raises LogForkError if a checkpoint of that size exists with
        another root (the tree was rebuilt from an altered store: run `referrals verify`).
        """
        with self._lock:
            head = self.view.head() if size is None else self.view.tree_head(size)
            existing = self.view.checkpoint(head.size)
            if existing is None:
                body = Checkpoint(
                    self.origin, head.size, head.root, (chain_extension(head.chain_hash),)
                ).body()
                self.view.add_checkpoint(head, sign_note(body, self.signer), self._now())
                existing = self.view.checkpoint(head.size)
            if existing is None or existing.root != head.root:
                raise LogForkError(
                    f"checkpoint {head.size} was signed with another root than the tree now has"
                )
            return existing

    def publish_if_grown(self) -> Any:
        """Publishes a checkpoint if the tree grew since the latest one; returns it or None."""
        latest = self.view.latest_checkpoint()
        if latest is not None and latest.size >= self.view.size():
            return None
        return self.publish_checkpoint()

    def latest_checkpoint(self) -> Any:
        """The latest stored checkpoint (publishing the first one if there is none)."""
        latest = self.view.latest_checkpoint()
        if latest is not None:
            return latest
        self.catch_up()
        return self.publish_checkpoint()

    def fresh_checkpoint(self) -> Any:
        """A checkpoint of the whole audit trail as it stands (published if the tree grew).

        If another process is storing that checkpoint and holds its row (a worker frozen
        inside that transaction, issue 19), the latest stored one: a read never waits on it."""
        try:
            grown = self.publish_if_grown()
        except Exception as error:
            if not is_lock_busy(error):
                raise
            log.warning("a checkpoint is being stored elsewhere (%s): using the latest", error)
            grown = None
        return grown or self.latest_checkpoint()

    def checkpoint(self, size: int) -> Any:
        """The stored checkpoint of one size, or LogEntryNotFoundError."""
        found = self.view.checkpoint(size)
        if found is None:
            raise LogEntryNotFoundError(
                "CHECKPOINT_NOT_FOUND",
                "size",
                f"Không có điểm kiểm (checkpoint) đã ký cho kích thước {size}.",
                f"There is no signed checkpoint of size {size}.",
            )
        return found

    def covering_checkpoint(self, needed_size: int) -> Any:
        """The latest checkpoint if it covers `needed_size` leaves, else a new one."""
        latest = self.view.latest_checkpoint()
        if latest is not None and latest.size >= needed_size:
            return latest
        return self.publish_checkpoint()

    def checkpoint_for_position(self, position: int) -> tuple[int, bytes, str]:
        """(size, root, cosigned note) of the checkpoint of the log as it stood at `position`."""
        top = self.app.recorder.max_notification_id() or 0
        if position > top:
            raise LogEntryNotFoundError(
                "POSITION_NOT_FOUND",
                "position",
                f"Vị trí {position} vượt quá cuối sổ ({top}).",
                f"Position {position} is beyond the end of the log ({top}).",
            )
        self.catch_up(position)
        stored = self.publish_checkpoint(self.view.size_at_position(position))
        return stored.size, stored.root, stored.cosigned_note

    def add_cosignature(self, size: int, line: str) -> Any:
        """Verifies a witness's cosignature line for the checkpoint at `size`, then stores it."""
        stored = self.checkpoint(size)
        text = line if line.endswith("\n") else line + "\n"
        body, _ = split_note(stored.note)
        try:
            _, signatures = split_note(body + "\n" + text)
        except NoteError as error:
            raise _rejected(
                f"dòng chữ ký không hợp lệ ({error})", f"not a signature line ({error})"
            ) from None
        if len(signatures) != 1:
            raise _rejected("cần đúng một dòng chữ ký", "exactly one signature line is expected")
        signature = signatures[0]
        known = [
            v
            for v in witness_verifiers(self.settings)
            if v.name == signature.name and v.key_hash == signature.key_hash
        ]
        if not known:
            raise _rejected(
                f"nhân chứng «{signature.name}» không có trong danh sách được tin cậy",
                f"witness '{signature.name}' is not a configured witness",
            )
        try:
            open_note(body + "\n" + text, known)
        except NoteError:
            raise _rejected(
                "chữ ký đồng xác nhận không khớp với điểm kiểm",
                "the cosignature does not verify for this checkpoint",
            ) from None
        self.view.add_cosignature(size, signature.name, text, self._now())
        return self.checkpoint(size)

    # -- receipts -------------------------------------------------------------------------------
    def receipt_for(self, recorded: Recorded) -> str:
        """A signed receipt/v1 for one accepted post (a duplicate's is re-issued)."""
        return self.receipts_for([recorded])[0]

    def receipts_for(self, recorded: Sequence[Any], *, one_signature: bool = True) -> list[Any]:
        """Receipts for accepted posts: new events from the stored event, duplicates from the
        audit trail (a receipt/v1 note: Ed25519 signatures are deterministic, so a post first
        answered with one gets the same note again). Items that are not `Recorded` (a batch's
        rejections) get None. Two or more new events get batch-receipt/v1 texts under one
        signature (ADR 0011) unless `one_signature` is False (receipt/v1 each)."""
        fresh = [
            r
            for r in recorded
            if isinstance(r, Recorded) and not r.duplicate and r.position is not None
        ]
        stored: dict[int, Any] = {}
        # the records this process just wrote carry their stored bytes (`Recorded.stored`,
        # exactly what the insert sent): only the others are read back from the log
        unread = []
        for r in fresh:
            if r.stored is not None and getattr(r.stored, "id", None) == r.position:
                stored[r.position] = r.stored  # type: ignore[index]
            else:
                unread.append(r)
        if unread:
            low = min(r.position for r in unread)  # type: ignore[type-var]
            high = max(r.position for r in unread)  # type: ignore[type-var]
            for n in self.app.recorder.select_notifications(
                start=low, limit=high - low + 1, stop=high
            ):
                stored[n.id] = n
        out: list[Any] = []
        promised: list[tuple[int, Receipt]] = []  # new events' promises, by place in `out`
        for item in recorded:
            if not isinstance(item, Recorded):
                out.append(None)
                continue
            if item.duplicate or item.position is None:
                out.append(self._receipt_from_trail(item))
                continue
            notification = stored.get(item.position)
            if (
                notification is None
                or notification.originator_id != referral_id(item.case_id)
                or notification.originator_version != item.version
            ):
                raise LogEntryNotFoundError(
                    "EVENT_NOT_IN_LOG",
                    "position",
                    f"Không tìm thấy sự kiện phiên bản {item.version} của vụ việc "
                    f"«{item.case_id}» ở vị trí {item.position}.",
                    f"Version {item.version} of case '{item.case_id}' is not at position "
                    f"{item.position}.",
                )
            event = self.app.mapper.to_domain_event(notification)
            if item.scope_only:  # no leaf hash: it would tell the case's version (ADR 0008)
                receipt = Receipt(
                    self.origin,
                    item.position,
                    None,
                    event.event_id,
                    event.timestamp,
                    event.content_digest,
                )
            else:
                leaf = leaf_bytes(item.position, event)
                receipt = Receipt(
                    self.origin, item.position, leaf_hash(leaf), event.event_id, event.timestamp
                )
            promised.append((len(out), receipt))
            out.append(None)
        if len(promised) == 1 or not one_signature:  # receipt/v1, as ever
            for place, receipt in promised:
                out[place] = sign_note(receipt.body(), self.signer)
        elif promised:  # one signature for the batch (ADR 0011)
            texts = issue_batch_receipts(self.signer, [r for _, r in promised])
            for (place, _), text in zip(promised, texts, strict=True):
                out[place] = text
        return out

    def _receipt_from_trail(self, recorded: Recorded) -> str | None:
        """A duplicate's receipt, rebuilt from the audit trail; None while the trail has not
        reached it yet (a retry must still be answered as a duplicate, never as an error: the
        agency can fetch the receipt later through the inclusion-proof route)."""
        row = self.view.entry(recorded.case_id, recorded.version)
        if row is None:
            return None
        if recorded.scope_only:  # the held-receipt/v1 its first answer carried
            event: Any = next(
                iter(
                    self.app.events.get(
                        referral_id(recorded.case_id),
                        gt=recorded.version - 1,
                        lte=recorded.version,
                    )
                ),
                None,
            )
            if event is None:
                return None
            return issue_held_receipt(
                self.signer,
                origin=self.origin,
                position=row["position"],
                content_digest=event.content_digest,
                event_id=row["event_id"],
                time=row["recorded_at"],
            )
        return issue_receipt(
            self.signer,
            origin=self.origin,
            position=row["position"],
            leaf_hash=row["leaf_hash"],
            event_id=row["event_id"],
            time=row["recorded_at"],
        )

    def _leaf_at(self, position: int) -> bytes:
        """The canonical leaf bytes of the stored event at log `position`."""
        for notification in self.app.recorder.select_notifications(
            start=position, limit=1, stop=position
        ):
            return leaf_of_notification(self.app.mapper, notification)
        raise LogEntryNotFoundError(
            "EVENT_NOT_IN_LOG",
            "position",
            f"Không tìm thấy sự kiện ở vị trí {position}.",
            f"No event at position {position}.",
        )

    def _entry_or_404(self, case_id: str, version: int) -> dict[str, Any]:
        row = self.view.entry(case_id, version)
        if row is None:
            raise LogEntryNotFoundError(
                "EVENT_NOT_IN_LOG",
                "version",
                f"Sự kiện phiên bản {version} của vụ việc «{case_id}» chưa có trong sổ kiểm toán.",
                f"Version {version} of case '{case_id}' is not in the audit trail.",
            )
        return row

    # -- proofs ----------------------------------------------------------------------------------
    def inclusion(
        self,
        case_id: str,
        version: int | None = None,
        size: int | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """The inclusion proof of one case event (by version, or by the client's event id)
        against a signed checkpoint (default: the latest that covers it, published if needed)."""

        def lookup() -> dict[str, Any] | None:
            if version is not None:
                return self.view.entry(case_id, version)
            return self.view.entry_by_event(case_id, event_id or "")

        row = lookup()
        if row is None:
            self.catch_up(lenient=True)
            row = lookup()
        if row is None:
            raise LogEntryNotFoundError(
                "EVENT_NOT_IN_LOG",
                "version" if version is not None else "event_id",
                f"Sự kiện {version or event_id} của vụ việc «{case_id}» không có trong sổ kiểm "
                "toán.",
                f"Event {version or event_id} of case '{case_id}' is not in the audit trail.",
            )
        stored = (
            self.covering_checkpoint(row["leaf_index"] + 1)
            if size is None
            else self.checkpoint(size)
        )
        if row["leaf_index"] >= stored.size:
            raise LogEntryNotFoundError(
                "EVENT_NOT_IN_CHECKPOINT",
                "size",
                f"Điểm kiểm kích thước {stored.size} chưa bao gồm sự kiện này "
                f"(chỉ số lá {row['leaf_index']}).",
                f"The checkpoint of size {stored.size} does not cover this event "
                f"(leaf index {row['leaf_index']}).",
            )
        return {
            "case_id": case_id,
            "version": row["version"],
            "event_id": row["event_id"],
            "position": row["position"],
            "leaf_index": row["leaf_index"],
            "leaf_hash": b64(row["leaf_hash"]),
            # the leaf's bytes: a held-receipt/v1 (no leaf hash) is checked against them
            "leaf": b64(self._leaf_at(row["position"])),
            "tree_size": stored.size,
            "root": b64(stored.root),
            "proof": [b64(h) for h in self.view.inclusion_proof(row["leaf_index"], stored.size)],
            "checkpoint": stored.cosigned_note,
        }

    def consistency(self, old_size: int, new_size: int | None = None) -> dict[str, Any]:
        """The consistency proof between two tree sizes (default new: the latest checkpoint)."""
        new = self.latest_checkpoint().size if new_size is None else new_size
        size = self.view.size()
        if not 0 <= old_size <= new <= size:
            raise LogEntryNotFoundError(
                "SIZE_OUT_OF_RANGE",
                "old",
                f"Cần 0 ≤ old ≤ new ≤ {size} (kích thước hiện tại của cây).",
                f"Need 0 <= old <= new <= {size} (the tree's current size).",
            )
        return {
            "old_size": old_size,
            "new_size": new,
            "old_root": b64(self.view.root(old_size)),
            "new_root": b64(self.view.root(new)),
            "proof": [b64(h) for h in self.view.consistency_proof(old_size, new)],
        }

    # -- bundles ---------------------------------------------------------------------------------
    def case_bundle(
        self, case_id: str, at: datetime | None = None, since: Iterable[int] = ()
    ) -> dict[str, Any]:
        """A case's leaves with inclusion proofs against the latest checkpoint (with its
        cosignatures), consistency proofs from earlier checkpoints, and its figures.

        If the audit trail cannot be caught up in time (a worker holds it), the bundle is
        of the view as it is: valid against its (older) checkpoint (see `lag`)."""
        self.catch_up(lenient=True)
        rows = self.view.case_timeline(case_id)
        if not rows:
            raise LogEntryNotFoundError(
                "CASE_NOT_FOUND",
                "case_id",
                f"Không tìm thấy vụ việc «{case_id}».",
                f"Case '{case_id}' was not found.",
            )
        stored = self.fresh_checkpoint()
        events = self._stored_events(case_id)
        leaves = self._leaves(rows, lambda row: events.get(row["version"]), stored.size)
        at = at or self._now()
        state = getattr(self.container, "reference_state", None)
        if state is not None:
            state.maybe_refresh()  # a version another process published
        refs = state.refs if state is not None and state.refs.records else None
        figures = case_figures(
            [e["leaf"] for e in leaves],
            self.container.rules,
            self.container.calendar,
            at,
            self.container.reference,
            refs=refs,
        )
        bundle = {
            "format": BUNDLE_FORMAT,
            "kind": "case",
            "origin": self.origin,
            "case_id": case_id,
            "as_of": rfc3339(at),
            "checkpoint": stored.cosigned_note,
            "leaves": leaves,
            "consistency": self._consistency_chain(stored.size, since),
            "figures": figures,
        }
        if refs is not None:  # issue 14: the versions the verdicts used, to judge offline
            used = {label for v in figures["time_limits"] for label in v["basis"]}
            if not any(label.startswith("time_limits@") for label in used):
                latest = refs.latest("time_limits")
                if latest is not None:
                    used.add(latest.label)
            bundle["reference"] = state.documents(used)
        return bundle

    def province_bundle(
        self,
        province: str,
        occurred_from: datetime,
        occurred_to: datetime,
        since: Iterable[int] = (),
    ) -> dict[str, Any]:
        """Every leaf of the province's cases that occurred in [from, to), with proofs, and the
        per-agency counts recomputed from them (a report anyone can recompute)."""
        self.catch_up(lenient=True)
        stored = self.fresh_checkpoint()
        rows = self.view.rows_occurred_between(occurred_from, occurred_to, stored.size)
        openers = self.view.opening_agencies(sorted({r["case_id"] for r in rows}))
        agencies = self.container.reference.agencies

        def in_province(case_id: str) -> bool:
            agency = agencies.get(openers.get(case_id, ""))
            return agency is not None and agency.province == province

        rows = [r for r in rows if in_province(r["case_id"])]
        cache: dict[str, dict[int, Any]] = {}

        def event_of(row: dict[str, Any]) -> Any:
            case = row["case_id"]
            if case not in cache:
                cache[case] = self._stored_events(case)
            return cache[case].get(row["version"])

        leaves = self._leaves(rows, event_of, stored.size)
        return {
            "format": BUNDLE_FORMAT,
            "kind": "province",
            "origin": self.origin,
            "province": province,
            "from": rfc3339(occurred_from),
            "to": rfc3339(occurred_to),
            "as_of": rfc3339(self._now()),
            "checkpoint": stored.cosigned_note,
            "leaves": leaves,
            "consistency": self._consistency_chain(stored.size, since),
            "figures": province_figures([e["leaf"] for e in leaves]),
            **self._province_references(occurred_from, occurred_to),
        }

    def _province_references(
        self, occurred_from: datetime, occurred_to: datetime
    ) -> dict[str, Any]:
        """The reference versions a province's figures rest on (issue 14): every document's
        version in force at the period's end, and the calendar of each year of the period."""
        state = getattr(self.container, "reference_state", None)
        if state is None:
            return {}
        state.maybe_refresh()
        if not state.refs.records:
            return {}
        refs = state.refs
        last = occurred_to.astimezone(VIETNAM_TZ).date()
        labels = {r.label for r in refs.current(last) if r.kind != "holidays"}
        for year in range(occurred_from.astimezone(VIETNAM_TZ).year, last.year + 1):
            record = refs.latest(f"holidays/{year}")
            if record is not None:
                labels.add(record.label)
        return {"reference": state.documents(labels)}

    def _stored_events(self, case_id: str) -> dict[int, Any]:
        """The case's stored events by version; LOG_INTEGRITY_FAILED if one cannot be decoded."""
        try:
            return {e.originator_version: e for e in self.app.events.get(referral_id(case_id))}
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise LogIntegrityFailedError(
                "case_id",
                f"một sự kiện đã lưu của vụ việc «{case_id}» không còn giải mã được "
                f"({type(error).__name__})",
                f"a stored event of case '{case_id}' can no longer be decoded "
                f"({type(error).__name__})",
            ) from None

    def _leaves(self, rows: list[dict[str, Any]], event_of: Any, size: int) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            if row["leaf_index"] >= size:
                continue
            event = event_of(row)
            if event is None:
                raise _integrity_failed(
                    row,
                    "có trong sổ kiểm toán nhưng kho sự kiện không còn",
                    "is in the audit trail but no longer in the event store",
                )
            try:
                leaf = leaf_entry(row["position"], event)[1]
            except LeafError as error:
                raise _integrity_failed(
                    row,
                    f"không tạo lại được lá ({error})",
                    f"cannot be made into its leaf again ({error})",
                ) from None
            if leaf_hash(leaf) != row["leaf_hash"]:
                raise _integrity_failed(
                    row,
                    "trong kho khác với lá đã ghi trong sổ kiểm toán",
                    "in the store differs from the leaf the audit trail recorded",
                )
            out.append(
                {
                    "leaf_index": row["leaf_index"],
                    "leaf": leaf.decode("utf-8"),
                    "proof": [b64(h) for h in self.view.inclusion_proof(row["leaf_index"], size)],
                }
            )
        return out

    def _consistency_chain(self, size: int, since: Iterable[int]) -> list[dict[str, Any]]:
        """Consistency proofs to `size` from earlier checkpoints: the most recent ones, some
        spread over the older ones, and every size asked for."""
        earlier = [s for s in self.view.checkpoint_sizes() if 0 < s < size]
        half = MAX_BUNDLE_CONSISTENCY_PROOFS // 2
        if len(earlier) > MAX_BUNDLE_CONSISTENCY_PROOFS:
            older, recent = earlier[:-half], earlier[-half:]
            step = len(older) / half
            earlier = sorted({older[int(i * step)] for i in range(half)} | set(recent))
        chosen = sorted(set(earlier) | {s for s in since if 0 < s < size})
        return [
            {"old_size": s, "proof": [b64(h) for h in self.view.consistency_proof(s, size)]}
            for s in chosen
        ]


def _rejected(vi: str, en: str) -> CosignatureRejectedError:
    return CosignatureRejectedError(
        "COSIGNATURE_REJECTED",
        "cosignature",
        f"Chữ ký đồng xác nhận bị từ chối: {vi}.",
        f"Cosignature rejected: {en}.",
    )


# ------------------------------------------------------------------------ container-level API
def transparency_log(container: Container) -> TransparencyLog:
    """The container's transparency log (built by `build_container`; a process without
    projections, the relay, has none)."""
    if container.transparency is None:
        raise RuntimeError("this process has no transparency log (no projections)")
    return container.transparency


def receipt_for(container: Any, recorded: Recorded) -> str:
    """The signed receipt/v1 for one accepted post (HTTP or Kafka); duplicates re-issued."""
    return transparency_log(container).receipt_for(recorded)


def receipts_for(
    container: Any, recorded: Sequence[Any], *, one_signature: bool = True
) -> list[str | None]:
    """Receipts for a batch's results, in order (None for a rejected item); see
    TransparencyLog.receipts_for."""
    return transparency_log(container).receipts_for(recorded, one_signature=one_signature)


def checkpoint_for_position(container: Any, position: int) -> tuple[int, bytes, str]:
    """(size, root, signed note) of the checkpoint whose size is the audit trail's size at log
    `position` (created if needed): what a report computed up to `position` is bound to."""
    return transparency_log(container).checkpoint_for_position(position)


class CheckpointPublisher:
    """Publishes a checkpoint every `interval` seconds when the tree grew (a daemon thread).

    An error is logged and kept in `error` (shown by `status()`); the next tick tries again,
    because a checkpoint is only ever a signature over what the audit trail already holds.
    A lost database connection is logged once (and once when it is back), kept in `watch`,
    and retried with backoff (never slower than `interval`).
    """

    def __init__(
        self, log_: TransparencyLog, interval: float, watch: ConnectionWatch | None = None
    ) -> None:
        self.log = log_
        self.interval = max(0.05, float(interval))
        self.error: BaseException | None = None
        self.published = 0
        self.watch = watch or ConnectionWatch("checkpointer", logger=log)
        self._next_wait = self.interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="checkpoints", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._next_wait):
            self.tick()

    def tick(self) -> Any:
        try:
            published = self.log.publish_if_grown()
        except Exception as error:  # noqa: BLE001 - logged, kept, retried next tick
            self.error = error
            if is_connection_error(error):
                self._next_wait = min(self.interval, self.watch.lost(error))
            else:
                log.exception("publishing a checkpoint failed")
                self._next_wait = self.interval
            return None
        self.error = None
        self._next_wait = self.interval
        self.watch.restored()
        if published is not None:
            self.published += 1
        return published

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    close = stop

    def status(self) -> dict[str, Any]:
        return {
            "running": self._thread is not None and self._thread.is_alive(),
            "interval_seconds": self.interval,
            "published": self.published,
            "error": repr(self.error) if self.error is not None else None,
            **self.watch.as_dict(),
        }


def start_checkpointer(
    container: Container, interval: float | None = None, status_file: bool = False
) -> CheckpointPublisher:
    """Starts the periodic checkpoint publisher of this process (stopped by container.close());
    with `status_file` (the `referrals project` worker), it writes its connection state to
    `<data dir>/worker-status/checkpointer.json`."""
    existing = container.checkpointer
    if existing is not None:
        return existing
    seconds = container.settings.checkpoint_interval_seconds if interval is None else interval
    path = status_path(container.settings.data_dir, "checkpointer") if status_file else None
    publisher = CheckpointPublisher(
        transparency_log(container), seconds, ConnectionWatch("checkpointer", path, logger=log)
    )
    container.checkpointer = publisher
    publisher.start()
    return publisher


__all__ = [
    "CheckpointPublisher",
    "CosignatureRejectedError",
    "LogEntryNotFoundError",
    "LogForkError",
    "LogIntegrityFailedError",
    "LogKeyError",
    "TransparencyError",
    "TransparencyLog",
    "checkpoint_for_position",
    "load_log_signer",
    "receipt_for",
    "receipts_for",
    "start_checkpointer",
    "transparency_log",
    "witness_verifiers",
    "write_log_key",
]
