"""The transparency log's leaves: one canonical byte string per recorded event, and the hash chains.

One function (`leaf_bytes`) turns a stored event and its log position into the bytes that are
hashed into the Merkle tree (RFC 6962 leaf hash). The audit-trail projection, the receipts
issued at post time, `referrals verify` and the offline bundle verifier all call it, so the
four can never disagree about what a leaf is.

A leaf is the RFC 8785 (JCS) canonical JSON of:

    position            the event's notification id (log order; ids may have gaps)
    originator_id       the aggregate id (uuid5 of the case reference, or of the person id)
    event_id, case_id   the client's event id and the case reference (null for person events)
    version             the aggregate version (case version for referral events)
    type                the wire type (NOTIFICATION_ISSUED, ...) or, for other events, the topic
    agency_id           the recording agency (null for person events)
    occurred_at         when it happened, RFC 3339 UTC (null for person events)
    recorded_at         when the ledger recorded it, RFC 3339 UTC
    data                the pseudonymous payload (for person events: the event's own fields)
    identity_ciphertext the AES-GCM ciphertext of the personal data, never the clear text
    content_digest      the digest the ledger keeps for idempotency (null for person events)

Hashing ciphertext (not clear text) is what lets a person's erasure (destroying their data key)
leave every leaf, proof and checkpoint valid.

The chains: chain(i) = SHA-256(chain(i-1) || leaf bytes(i)) with chain(-1) = 32 zero bytes,
once over the whole log (the global chain, carried in every checkpoint) and once per aggregate
(the case chain).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime, timezone
from typing import Any

from services.transparency.canonical import CanonicalJsonError, canonical_json
from services.transparency.merkle import leaf_hash

CHAIN_SEED = bytes(32)
"""The chain value before the first leaf."""
CHAIN_EXTENSION = "chain-head"
"""Checkpoint extension line "chain-head <base64 global chain hash after the last leaf>"."""

LEAF_FIELDS = (
    "position",
    "originator_id",
    "event_id",
    "case_id",
    "version",
    "type",
    "agency_id",
    "occurred_at",
    "recorded_at",
    "data",
    "identity_ciphertext",
    "content_digest",
)
_STANDARD_ATTRIBUTES = frozenset({"timestamp", "originator_id", "originator_version"})


class LeafError(ValueError):
    """Raised when an event cannot be made into a leaf, or bytes are not a canonical leaf."""


def rfc3339(moment: datetime) -> str:
    """An aware datetime as RFC 3339 UTC with a "Z" and microseconds (fixed width)."""
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise LeafError(f"expected a timezone-aware datetime, got {moment!r:.60}")
    try:
        utc = moment.astimezone(timezone.utc)
    except OverflowError:  # year 1 east of UTC / 9999 west of it: stored before the wire
        return moment.isoformat(timespec="microseconds")  # refused it (issue 12); own offset
    if utc.year >= 1000:  # the same text as strftime, without its format parsing (≈ 1.4 µs)
        return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # glibc writes years below 1000 unpadded


def parse_rfc3339(text: str) -> datetime:
    """The aware datetime of a leaf timestamp."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def leaf_record(position: int, event: Any) -> dict[str, Any]:
    """The leaf's fields for a decoded stored event at log `position`."""
    if not isinstance(position, int) or isinstance(position, bool) or position < 0:
        raise LeafError(f"position must be a non-negative integer, got {position!r:.40}")
    cls = type(event)
    wire_type = getattr(cls, "WIRE_TYPE", "")
    record: dict[str, Any] = {
        "position": position,
        "originator_id": str(event.originator_id),
        "version": int(event.originator_version),
        "recorded_at": rfc3339(event.timestamp),
    }
    if wire_type:
        record.update(
            type=wire_type,
            event_id=event.event_id,
            case_id=event.case_id,
            agency_id=event.agency_id,
            occurred_at=rfc3339(event.occurred_at),
            data=_jsonable(dict(event.data)),
            identity_ciphertext=event.identity_ciphertext,
            content_digest=event.content_digest,
        )
    else:
        fields = {k: v for k, v in vars(event).items() if k not in _STANDARD_ATTRIBUTES}
        record.update(
            type=getattr(cls, "TOPIC", None) or f"{cls.__module__}:{cls.__qualname__}",
            event_id=None,
            case_id=None,
            agency_id=None,
            occurred_at=None,
            data=_jsonable(fields),
            identity_ciphertext=None,
            content_digest=None,
        )
    return {name: record[name] for name in LEAF_FIELDS}


def leaf_bytes(position: int, event: Any) -> bytes:
    """The canonical bytes of the leaf of a decoded stored event at log `position`."""
    return leaf_entry(position, event)[1]


def leaf_entry(position: int, event: Any) -> tuple[dict[str, Any], bytes]:
    """The leaf's fields and its canonical bytes (RFC 8785) for a decoded stored event."""
    record = leaf_record(position, event)
    try:
        return record, canonical_json(record)
    except CanonicalJsonError as error:
        raise LeafError(f"event at position {position} cannot be a leaf: {error}") from None


def leaf_of_notification(mapper: Any, notification: Any) -> bytes:
    """Decodes one stored record with the application's mapper and returns its leaf bytes.

    Raises LeafError when the record cannot be decoded or lacks a leaf field (the verifier
    reports such a record as altered).
    """
    try:
        event = mapper.to_domain_event(notification)
        return leaf_bytes(notification.id, event)
    except LeafError:
        raise
    except Exception as error:  # noqa: BLE001 - any decoding failure means "altered"
        raise LeafError(
            f"stored event at position {notification.id} cannot be decoded: "
            f"{type(error).__name__}: {error}"
        ) from None


def parse_leaf(data: bytes | str) -> dict[str, Any]:
    """The fields of leaf bytes, which must be canonical JSON with exactly the leaf fields."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise LeafError("leaf is not UTF-8 JSON") from None
    if not isinstance(record, dict) or set(record) != set(LEAF_FIELDS):
        raise LeafError("leaf does not have exactly the leaf fields")
    try:
        canonical = canonical_json(record)
    except CanonicalJsonError as error:
        raise LeafError(f"leaf is not canonical: {error}") from None
    if canonical != raw:
        raise LeafError("leaf bytes are not in RFC 8785 canonical form")
    return record


def leaf_hash_of(data: bytes) -> bytes:
    """The RFC 6962 leaf hash of leaf bytes."""
    return leaf_hash(data)


def chain_next(previous: bytes, leaf: bytes) -> bytes:
    """SHA-256(previous chain value || leaf bytes)."""
    return hashlib.sha256(bytes(previous) + bytes(leaf)).digest()


def chain_extension(chain: bytes) -> str:
    """The checkpoint extension line carrying the global chain head."""
    return f"{CHAIN_EXTENSION} {base64.b64encode(bytes(chain)).decode('ascii')}"


def chain_head_of(checkpoint: Any) -> bytes | None:
    """The global chain hash a checkpoint's extension line carries (None without one)."""
    prefix = CHAIN_EXTENSION + " "
    for line in checkpoint.extensions:
        if line.startswith(prefix):
            try:
                return base64.b64decode(line[len(prefix) :], validate=True)
            except ValueError:
                return None
    return None


def _jsonable(value: Any) -> Any:
    """The JSON value of an event attribute (times as RFC 3339 UTC, ids as text)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    raise LeafError(f"unsupported value of type {type(value).__name__} in an event")
