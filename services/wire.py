"""The wire format every edge shares (HTTP, Kafka, `referrals load`), checked field by field.

One JSON object per event: `event_id`, `case_id`, `type`, `agency_id`, `occurred_at`, `data`,
and optionally `identity` (identifying data, encrypted before storage) and `expected_version`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeGuard

import orjson

from domain.catalogue import (
    InstantRange,
    event_type_spec,
    normalise_data,
    parse_instant,
)
from domain.errors import InvalidEventError
from domain.reference import ReferenceData

WIRE_FIELDS = (
    "event_id",
    "case_id",
    "type",
    "agency_id",
    "occurred_at",
    "data",
    "identity",
    "expected_version",
)
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")


@dataclass(frozen=True)
class WireEvent:
    """A wire event after shape checks: normalised data, identity still in clear."""

    event_id: str
    case_id: str
    wire_type: str
    agency_id: str
    occurred_at: datetime
    data: dict[str, Any]
    identity: dict[str, Any] | None
    expected_version: int | None

    def content_digest(self, identity_digest: str | None) -> str:
        """SHA-256 over the event's meaning, so a retry is recognised whatever its JSON layout.

        The identity enters only through a keyed digest (HMAC under the person's data key),
        so the digest in the log reveals nothing and dies with the key.
        """
        body = {
            "case_id": self.case_id,
            "type": self.wire_type,
            "agency_id": self.agency_id,
            "occurred_at": self.occurred_at.astimezone(timezone.utc).isoformat(),
            "data": self.data,
            "identity": identity_digest,
        }
        if all(
            type(k) is str and (type(v) is str or type(v) is bool) for k, v in self.data.items()
        ):
            # what the normalised data holds: orjson writes the same bytes as the json call
            # below (sorted keys, the same escaping), several times faster
            try:
                return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
            except orjson.JSONEncodeError:  # e.g. a lone surrogate: json's own error below
                pass
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def is_identifier(value: Any) -> TypeGuard[str]:
    """Whether `value` is a client identifier (see `parse_identifier`)."""
    # fullmatch: with match, `$` also accepted a trailing newline ("LSN-1\n" ≠ "LSN-1")
    return isinstance(value, str) and _ID_PATTERN.fullmatch(value) is not None


def parse_identifier(value: Any, field: str) -> str:
    """A client identifier: 1–128 characters of letters, digits and . _ : / @ -."""
    if not is_identifier(value):
        raise InvalidEventError(
            "FIELD_INVALID" if value not in (None, "") else "FIELD_REQUIRED",
            field,
            rule_vi="1–128 ký tự gồm chữ, số và . _ : / @ -",
            rule_en="1–128 characters of letters, digits and . _ : / @ -",
        )
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise InvalidEventError("JSON_DUPLICATE_KEY", key[:64])
            seen.add(key)
    return obj


def loads_strict(text: str | bytes) -> Any:
    """`json.loads` that refuses an object naming a key twice (JSON_DUPLICATE_KEY): with plain
    `json.loads` the last one silently wins, so what is recorded is not what the client meant.
    The one decoder of wire JSON (HTTP bodies, `referrals load` lines, Kafka messages)."""
    return json.loads(text, object_pairs_hook=_unique_keys)


def parse_wire(
    obj: Any, reference: ReferenceData, allowed: InstantRange | None = None
) -> WireEvent:
    """Checks a decoded JSON object against the wire format; names the first bad field.

    `allowed`: the instants accepted for `occurred_at` and the datetime fields of `data`."""
    if not isinstance(obj, Mapping):
        raise InvalidEventError(
            "FIELD_INVALID",
            "$",
            rule_vi="sự kiện phải là một đối tượng JSON",
            rule_en="an event must be a JSON object",
        )
    for name in obj:
        if name not in WIRE_FIELDS:
            raise InvalidEventError("FIELD_UNKNOWN", str(name)[:64], event_type="wire")
    event_id = parse_identifier(obj.get("event_id"), "event_id")
    case_id = parse_identifier(obj.get("case_id"), "case_id")
    if obj.get("type") is None:
        raise InvalidEventError("FIELD_REQUIRED", "type")
    wire_type = event_type_spec(obj.get("type")).wire_type
    agency_id = parse_identifier(obj.get("agency_id"), "agency_id")
    if obj.get("occurred_at") is None:
        raise InvalidEventError("FIELD_REQUIRED", "occurred_at")
    occurred_at = parse_instant(obj["occurred_at"], "occurred_at", allowed)
    data = normalise_data(wire_type, obj.get("data"), reference, allowed)
    identity = obj.get("identity")
    if identity is not None and not isinstance(identity, Mapping):
        raise InvalidEventError(
            "FIELD_INVALID",
            "identity",
            rule_vi="phải là một đối tượng JSON",
            rule_en="must be a JSON object",
        )
    expected = obj.get("expected_version")
    if expected is not None and (
        isinstance(expected, bool) or not isinstance(expected, int) or not 0 <= expected < 2**31
    ):
        raise InvalidEventError(
            "FIELD_INVALID",
            "expected_version",
            rule_vi="phải là số nguyên không âm",
            rule_en="must be a non-negative integer",
        )
    return WireEvent(
        event_id,
        case_id,
        wire_type,
        agency_id,
        occurred_at,
        data,
        dict(identity) if identity is not None else None,
        expected,
    )
