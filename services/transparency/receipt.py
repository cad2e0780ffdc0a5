"""Signed receipts an agency keeps for each event the ledger accepted (project format receipt/v1).

A receipt is a C2SP signed note (c2sp.org/signed-note) whose text is exactly:

    legal-aid-ledger receipt/v1
    <origin>
    position <n>
    leaf <base64 RFC 9162 leaf hash>
    event <event_id>
    time <RFC 3339 UTC, e.g. 2024-05-01T08:30:00Z or 2024-05-01T08:30:00.123456Z>

The first line gives domain separation from checkpoint bodies, so the log may sign
receipts with its checkpoint key. Parsing is strict: the body must be byte-for-byte what
``Receipt.body()`` would produce (canonical decimal, canonical base64 of 32 bytes,
"Z" times with no fraction, or exactly six digits when microseconds are non-zero).

`position` is the event's place in the event store's order (its notification id), known when
the post is answered; it is *not* the leaf's index in the Merkle tree (the store's ids can have
gaps, and the audit trail assigns tree indexes later, in log order). The leaf's canonical bytes
contain the position (services.transparency.leaves), so the leaf hash binds the two: a verifier
takes the leaf index from the log's inclusion-proof answer and checks the receipt's leaf hash
at that index. A receipt proves "the log promised leaf L for the event at position p"; checking
it against a later checkpoint plus an RFC 9162 §2.1.3.2 inclusion proof proves the log kept
that promise.

A batch of receipts costs one signature (ADR 0011): `issue_batch_receipts` gives each event a
batch-receipt/v1 text — its receipt/v1 body, its inclusion path in an RFC 9162 tree whose
leaves are the batch's receipt/v1 bodies, and the signed note of that tree's size and root.
`open_receipt` verifies both kinds and answers the same `Receipt`.

A poster with no part in the case whose fact is held without the case's state being compared
(ADR 0008 addendum) gets a held-receipt/v1 instead, which binds no leaf hash: the leaf contains
the case version, and everything else in it is the poster's own, so the leaf hash would tell
the version to whoever tries 1, 2, 3 …. Its text is

    legal-aid-ledger held-receipt/v1
    <origin>
    position <n>
    content <the event's content digest, 64 lowercase hex>
    event <event_id>
    time <RFC 3339 UTC>

and it is checked against the leaf bytes (given with the inclusion proof): the leaf must carry
the receipt's position, content digest, event id and recording time, and its hash must be at
the proof's index. A batch's held receipts travel in batch-receipt/v1 texts as receipt/v1 do.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from services.transparency.checkpoint import Checkpoint, parse_checkpoint
from services.transparency.merkle import HASH_SIZE, leaf_hash, node_hash, verify_inclusion
from services.transparency.note import (
    NoteError,
    NoteSigner,
    NoteVerifier,
    check_note_text,
    open_note,
    sign_note,
)

RECEIPT_HEADER = "legal-aid-ledger receipt/v1"
HELD_RECEIPT_HEADER = "legal-aid-ledger held-receipt/v1"
BATCH_RECEIPT_HEADER = "legal-aid-ledger batch-receipt/v1"
BATCH_NOTE_HEADER = "legal-aid-ledger receipt-batch/v1"
MAX_PATH = 64
_DECIMAL_PATTERN = re.compile(r"0|[1-9][0-9]*")
_DIGEST_PATTERN = re.compile(r"[0-9a-f]{64}")
_TIME_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?Z")


class MalformedReceiptError(NoteError):
    """Raised when a note text is not a legal-aid-ledger receipt/v1 body."""


@dataclass(frozen=True)
class Receipt:
    """The log's signed promise that event ``event_id`` at log ``position`` is leaf ``leaf_hash``
    (receipt/v1), or, for a held-receipt/v1 (``leaf_hash`` None), the leaf whose position, event
    id, recording time and content digest are these."""

    origin: str
    position: int
    leaf_hash: bytes | None
    event_id: str
    time: datetime
    content_digest: str | None = None

    def __post_init__(self) -> None:
        if not _is_token_line(self.origin, allow_spaces=True):
            raise MalformedReceiptError("origin must be one non-empty line")
        if type(self.position) is not int or self.position < 0:
            raise MalformedReceiptError("position must be a non-negative integer")
        if self.leaf_hash is None:
            if not isinstance(self.content_digest, str) or not _DIGEST_PATTERN.fullmatch(
                self.content_digest
            ):
                raise MalformedReceiptError("content digest must be 64 lowercase hex digits")
        elif not isinstance(self.leaf_hash, bytes) or len(self.leaf_hash) != HASH_SIZE:
            raise MalformedReceiptError("leaf hash must be 32 bytes")
        elif self.content_digest is not None:
            raise MalformedReceiptError("a receipt binds a leaf hash or a content digest")
        if not _is_token_line(self.event_id, allow_spaces=False):
            raise MalformedReceiptError(
                "event id must be non-empty, without spaces or control characters"
            )
        if not isinstance(self.time, datetime) or self.time.utcoffset() is None:
            raise MalformedReceiptError("time must be a timezone-aware datetime")

    @property
    def held(self) -> bool:
        """Whether this is a held-receipt/v1 (no leaf hash: checked against the leaf bytes)."""
        return self.leaf_hash is None

    def body(self) -> str:
        """Return the receipt/v1 (or held-receipt/v1) note text."""
        if self.leaf_hash is None:
            return (
                f"{HELD_RECEIPT_HEADER}\n{self.origin}\nposition {self.position}\n"
                f"content {self.content_digest}\nevent {self.event_id}\n"
                f"time {format_rfc3339_utc(self.time)}\n"
            )
        leaf = base64.b64encode(self.leaf_hash).decode("ascii")
        return (
            f"{RECEIPT_HEADER}\n{self.origin}\nposition {self.position}\nleaf {leaf}\n"
            f"event {self.event_id}\ntime {format_rfc3339_utc(self.time)}\n"
        )


def format_rfc3339_utc(moment: datetime) -> str:
    """Return ``moment`` as RFC 3339 UTC with a "Z" suffix (microseconds only when non-zero)."""
    if moment.utcoffset() is None:
        raise ValueError("time must be timezone-aware")
    utc = moment.astimezone(timezone.utc)
    fraction = f".{utc.microsecond:06d}" if utc.microsecond else ""
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def issue_receipt(
    signer: NoteSigner,
    *,
    origin: str,
    position: int,
    leaf_hash: bytes,
    event_id: str,
    time: datetime,
) -> str:
    """Return a signed receipt/v1 note for one accepted event."""
    return sign_note(Receipt(origin, position, leaf_hash, event_id, time).body(), signer)


def issue_held_receipt(
    signer: NoteSigner,
    *,
    origin: str,
    position: int,
    content_digest: str,
    event_id: str,
    time: datetime,
) -> str:
    """Return a signed held-receipt/v1 note: for a poster with no part in the case (no leaf
    hash, which would tell it the case's version)."""
    return sign_note(Receipt(origin, position, None, event_id, time, content_digest).body(), signer)


def parse_receipt(body: str) -> Receipt:
    """Parse a receipt/v1 note text (already verified) into a Receipt, or raise MalformedReceiptError."""
    try:
        check_note_text(body)
    except NoteError as error:
        raise MalformedReceiptError(str(error)) from None
    lines = body[:-1].split("\n")
    if len(lines) != 6 or lines[0] not in (RECEIPT_HEADER, HELD_RECEIPT_HEADER):
        raise MalformedReceiptError(f"receipt must be six lines starting {RECEIPT_HEADER!r}")
    held = lines[0] == HELD_RECEIPT_HEADER
    origin = lines[1]
    position_text = _field(lines[2], "position")
    leaf_text = _field(lines[3], "content" if held else "leaf")
    event_id = _field(lines[4], "event")
    time_text = _field(lines[5], "time")
    if not _DECIMAL_PATTERN.fullmatch(position_text):
        raise MalformedReceiptError("position is not a canonical decimal")
    leaf_hash: bytes | None = None
    if not held:
        try:
            leaf_hash = base64.b64decode(leaf_text, validate=True)
        except ValueError:
            raise MalformedReceiptError("leaf is not base64") from None
    if not _TIME_PATTERN.fullmatch(time_text):
        raise MalformedReceiptError("time is not RFC 3339 UTC")
    try:
        moment = datetime.fromisoformat(time_text.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedReceiptError("time is not a valid date") from None
    receipt = Receipt(
        origin, int(position_text), leaf_hash, event_id, moment, leaf_text if held else None
    )
    if receipt.body() != body:
        raise MalformedReceiptError("receipt is not in canonical form")
    return receipt


def open_receipt(note: str, verifiers: Iterable[NoteVerifier]) -> Receipt:
    """Verify a receipt's signature with trusted keys and parse it (raises NoteError): a
    receipt/v1 note, or a batch-receipt/v1 (its path to the signed batch root checked)."""
    if note.startswith(BATCH_RECEIPT_HEADER + "\n"):
        return open_batch_receipt(note, verifiers)
    text, _ = open_note(note, verifiers)
    return parse_receipt(text)


class ReceiptNotInBatchError(NoteError):
    """Raised when a batch receipt's body is not in the tree its signed note names."""


def issue_batch_receipts(signer: NoteSigner, receipts: Sequence[Receipt]) -> list[str]:
    """One batch-receipt/v1 text per receipt, in order, under one signature (ADR 0011)."""
    if not receipts:
        return []
    origin = receipts[0].origin
    if any(r.origin != origin for r in receipts):
        raise MalformedReceiptError("a batch of receipts has one origin")
    bodies = [r.body() for r in receipts]
    root, paths = _root_and_paths([leaf_hash(b.encode("utf-8")) for b in bodies])
    note = sign_note(_batch_note_body(origin, len(bodies), root), signer)
    return [
        _batch_head(index, path, body) + "\n" + note
        for index, (path, body) in enumerate(zip(paths, bodies, strict=True))
    ]


def open_batch_receipt(text: str, verifiers: Iterable[NoteVerifier]) -> Receipt:
    """Verify a batch-receipt/v1 (the batch note's signature, the body's path to its root) and
    parse the event's receipt (raises NoteError)."""
    head, blank, signed = text.partition("\n\n")
    lines = head.split("\n")
    if not blank or len(lines) < 8 or lines[0] != BATCH_RECEIPT_HEADER:
        raise MalformedReceiptError("not a batch-receipt/v1")
    index_text = _field(lines[1], "index")
    if not _DECIMAL_PATTERN.fullmatch(index_text):
        raise MalformedReceiptError("index is not a canonical decimal")
    path_lines = lines[2:-6]
    if len(path_lines) > MAX_PATH:
        raise MalformedReceiptError("path too long")
    path = [_hash_field(line, "path") for line in path_lines]
    body = "\n".join(lines[-6:]) + "\n"
    receipt = parse_receipt(body)
    if _batch_head(int(index_text), path, body) != head + "\n":
        raise MalformedReceiptError("batch receipt is not in canonical form")
    note_text, _ = open_note(signed, verifiers)
    note_lines = note_text[:-1].split("\n") if note_text.endswith("\n") else []
    if len(note_lines) != 4 or note_lines[0] != BATCH_NOTE_HEADER:
        raise MalformedReceiptError(f"the signed note is not a {BATCH_NOTE_HEADER!r}")
    size_text = _field(note_lines[2], "size")
    if not _DECIMAL_PATTERN.fullmatch(size_text):
        raise MalformedReceiptError("size is not a canonical decimal")
    root = _hash_field(note_lines[3], "root")
    if _batch_note_body(note_lines[1], int(size_text), root) != note_text:
        raise MalformedReceiptError("batch note is not in canonical form")
    if note_lines[1] != receipt.origin:
        raise ReceiptNotInBatchError("the receipt's origin is not the batch's")
    if not verify_inclusion(
        leaf_hash(body.encode("utf-8")), int(index_text), int(size_text), path, root
    ):
        raise ReceiptNotInBatchError("the receipt is not in the signed batch")
    return receipt


def _batch_note_body(origin: str, size: int, root: bytes) -> str:
    return f"{BATCH_NOTE_HEADER}\n{origin}\nsize {size}\nroot {base64.b64encode(root).decode()}\n"


def _batch_head(index: int, path: Sequence[bytes], body: str) -> str:
    lines = "".join(f"path {base64.b64encode(h).decode()}\n" for h in path)
    return f"{BATCH_RECEIPT_HEADER}\nindex {index}\n{lines}{body}"


def _hash_field(line: str, name: str) -> bytes:
    text = _field(line, name)
    try:
        value = base64.b64decode(text, validate=True)
    except ValueError:
        raise MalformedReceiptError(f"{name} is not base64") from None
    if len(value) != HASH_SIZE or base64.b64encode(value).decode() != text:
        raise MalformedReceiptError(f"{name} is not the canonical base64 of 32 bytes")
    return value


def _root_and_paths(hashes: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """MTH of `hashes` (RFC 9162 §2.1.1) and every leaf's PATH (§2.1.3.1)."""
    if len(hashes) == 1:
        return hashes[0], [[]]
    split = 1 << ((len(hashes) - 1).bit_length() - 1)
    left, left_paths = _root_and_paths(hashes[:split])
    right, right_paths = _root_and_paths(hashes[split:])
    return node_hash(left, right), (
        [p + [right] for p in left_paths] + [p + [left] for p in right_paths]
    )


def check_receipt_against_checkpoint(
    receipt: str,
    checkpoint: Checkpoint | str,
    leaf_index: int,
    inclusion_proof: Sequence[bytes],
    verifiers: Iterable[NoteVerifier],
    leaf: bytes | None = None,
) -> bool:
    """Return whether a signed receipt's leaf is at ``leaf_index`` in the checkpoint's tree.

    ``leaf_index`` and ``inclusion_proof`` come from the log's inclusion-proof answer (RFC 9162
    §2.1.3.2); the receipt's position needs no relation to the index because the leaf bytes
    hashed into the tree contain it. When the leaf bytes are given too, they must hash to the
    receipt's leaf hash and carry the receipt's position and event id. A held-receipt/v1 needs
    the leaf bytes (the answer's `leaf`): they must carry its position, event id, content
    digest and recording time, and their hash is the one checked.

    A checkpoint given as a Checkpoint object is taken as already verified; given as note
    text, it must be signed by one of ``verifiers``.
    """
    trusted = list(verifiers)
    try:
        promised = open_receipt(receipt, trusted)
        if isinstance(checkpoint, str):
            checkpoint_text, _ = open_note(checkpoint, trusted)
            checkpoint = parse_checkpoint(checkpoint_text)
        if not isinstance(checkpoint, Checkpoint) or checkpoint.origin != promised.origin:
            return False
        if leaf is not None and not _leaf_matches(promised, bytes(leaf)):
            return False
        promised_hash = promised.leaf_hash
        if promised_hash is None:  # held-receipt/v1: the leaf bytes are what it promised
            if leaf is None:
                return False
            promised_hash = leaf_hash(bytes(leaf))
    except (NoteError, ValueError, TypeError):
        return False
    if type(leaf_index) is not int or not 0 <= leaf_index < checkpoint.size:
        return False
    return verify_inclusion(
        promised_hash, leaf_index, checkpoint.size, inclusion_proof, checkpoint.root_hash
    )


def _leaf_matches(promised: Receipt, leaf: bytes) -> bool:
    from services.transparency.leaves import LeafError, parse_leaf, parse_rfc3339

    if promised.leaf_hash is not None and leaf_hash(leaf) != promised.leaf_hash:
        return False
    try:
        record = parse_leaf(leaf)
    except LeafError:
        return False
    if record["position"] != promised.position or record["event_id"] != promised.event_id:
        return False
    if promised.leaf_hash is not None:
        return True
    try:
        recorded_at = parse_rfc3339(str(record["recorded_at"]))
    except ValueError:
        return False
    return bool(
        record["content_digest"] == promised.content_digest and recorded_at == promised.time
    )


def _field(line: str, name: str) -> str:
    prefix = name + " "
    if not line.startswith(prefix):
        raise MalformedReceiptError(f"expected a {name!r} line")
    return line[len(prefix) :]


def _is_token_line(value: object, *, allow_spaces: bool) -> bool:
    if not isinstance(value, str) or not value or any(char < " " for char in value):
        return False
    if not allow_spaces and any(char.isspace() for char in value):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
