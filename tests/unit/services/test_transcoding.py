"""The event store's transcoder and digests must write exactly what the slower originals
wrote: stored bytes and content digests are part of the storage format."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.transcoding import FastJSONTranscoder
from services.wire import WireEvent, parse_wire
from tests.factories import CaseScript


def _registered(transcoder: JSONTranscoder) -> JSONTranscoder:
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return transcoder


LIBRARY = _registered(JSONTranscoder())
FAST = _registered(FastJSONTranscoder())
AT = datetime(2026, 3, 3, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=7)))

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.text()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.datetimes(timezones=st.just(timezone.utc))
    | st.uuids(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def test_stored_bytes_are_the_library_bytes_when_every_event_type_is_encoded(referrals):
    case = CaseScript()
    for wire in case.full_history():
        referrals.record_event(wire)
    events = referrals.case_history(case.case_id)
    assert len(events) == 7
    for event in events:
        state = {
            k: v for k, v in vars(event).items() if k not in ("originator_id", "originator_version")
        }
        assert FAST.encode(state) == LIBRARY.encode(state)
        assert FAST.decode(LIBRARY.encode(state)) == LIBRARY.decode(LIBRARY.encode(state))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_encoding_matches_the_library_when_values_are_arbitrary(value):
    try:
        expected = LIBRARY.encode(value)
    except (TranscodingNotRegisteredError, UnicodeEncodeError, ValueError) as error:
        with pytest.raises(type(error)):
            FAST.encode(value)
        return
    assert FAST.encode(value) == expected
    assert FAST.decode(expected) == LIBRARY.decode(expected)


def test_strings_are_escaped_like_the_library_when_any_code_point_occurs():
    text = "".join(chr(c) for c in range(0x2FF)) + "\u2028\u2029\U0001f600 Nguyễn"
    state = {"data": {"name": text, "n": 1}, "at": AT, "id": UUID(int=7), "x": Decimal("1.5")}
    assert FAST.encode(state) == LIBRARY.encode(state)
    assert FAST.decode(FAST.encode(state)) == state


def test_unregistered_types_raise_the_library_error_when_encoded():
    with pytest.raises(TranscodingNotRegisteredError):
        FAST.encode({"when": AT.date()})


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["person_id", "stage", "form", "immediate", "ý", "a\nb"]),
        st.text() | st.booleans(),
        max_size=5,
    ),
    st.none() | st.text(max_size=70),
)
def test_content_digest_is_the_json_digest_when_data_varies(data, identity_digest):
    event = WireEvent("e-1", "c-1", "NOTIFICATION_ISSUED", "lsn-police", AT, data, None, None)
    body = {
        "case_id": "c-1",
        "type": "NOTIFICATION_ISSUED",
        "agency_id": "lsn-police",
        "occurred_at": AT.astimezone(timezone.utc).isoformat(),
        "data": data,
        "identity": identity_digest,
    }
    import hashlib

    try:
        expected = hashlib.sha256(
            json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
        ).hexdigest()
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            event.content_digest(identity_digest)
        return
    assert event.content_digest(identity_digest) == expected


def test_content_digest_of_a_parsed_event_is_unchanged_when_computed_twice(reference):
    wire = CaseScript().notification(sex="FEMALE")
    event = parse_wire(wire, reference)
    assert event.content_digest(None) == event.content_digest(None)
    assert event.content_digest("abc") != event.content_digest(None)
