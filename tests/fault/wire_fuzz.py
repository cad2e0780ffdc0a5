"""Hypothesis strategies for hostile wire events, as the bytes a client would send.

An item starts from a lawful event (the next event of an open case, or the opening of a new
one) and is spoiled by one to three mutations: a field of the wrong type, a huge string, lone
UTF-16 surrogates, NUL characters, a timestamp without offset or far in the future or past, an
unknown agency, deep nesting, huge or non-finite numbers, unknown or missing fields, a body that
is not an object, or bytes that are not UTF-8 at all. Some mutations leave the event lawful;
callers count what the ledger accepted rather than assume it refused everything.

The bytes never contain a raw newline, so an item is also one line of a JSONL file.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

POLICE = "lsn-police-investigation"


class Raw:
    """A JSON fragment written as is (numbers and nestings `json.dumps` cannot produce)."""

    def __init__(self, text: str) -> None:
        self.text = text


@dataclass(frozen=True)
class WireItem:
    raw: bytes  # what is sent
    case_id: str | None  # the case it would touch if accepted
    note: str  # the mutations, for failure messages


def encode(value: Any) -> bytes:
    """JSON text of `value` (ASCII, surrogates as \\u escapes) with `Raw` fragments inlined."""
    fragments: dict[str, str] = {}
    counter = itertools.count()

    def swap(node: Any) -> Any:
        if isinstance(node, Raw):
            key = f"__raw_{next(counter)}__"
            fragments[key] = node.text
            return key
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    text = json.dumps(swap(value))  # ensure_ascii: lone surrogates become "\ud800" escapes
    for key, fragment in fragments.items():
        text = text.replace(json.dumps(key), fragment, 1)
    return text.encode("ascii")


# ---------------------------------------------------------------------------- bad values
LONE_SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc80b", "\ud83d", "x\ud800\ud800"])
NULS = st.sampled_from(["\x00", "a\x00b", "\x00" * 8, "lsn-police-investigation\x00"])
HUGE_STRINGS = st.sampled_from([129, 4_097, 100_000]).flatmap(
    lambda n: st.sampled_from(["A" * n, "Ệ" * n, "a-" * (n // 2)])
)
NAIVE_TIMES = st.sampled_from(
    [
        "2026-03-03T09:00:00",
        "2026-03-03",
        "2026-03-03 09:00",
        "20260303T090000",
        "2026-03-03T09:00:00.123456",
        "T09:00:00",
        "",
    ]
)
EXTREME_TIMES = st.sampled_from(
    [
        "9999-12-31T23:59:59+14:00",
        "0001-01-01T00:00:00+00:00",
        "1900-01-01T00:00:00+07:00",
        "2100-01-01T00:00:00Z",
        "2017-12-31T23:59:59+07:00",
        "2026-02-30T00:00:00+07:00",
        "2026-03-03T24:00:00+07:00",
        "2026-03-03T09:00:00+25:00",
        "+10000-01-01T00:00:00Z",
        "2026-03-03T09:00:00+07:00:00.5",
    ]
)
UNKNOWN_AGENCIES = st.sampled_from(
    [
        "no-such-agency",
        "lsn-police-investigation-x",
        "LSN-POLICE-INVESTIGATION",
        "vlg-centre",
        "lsn-centre",
        "vlg-police-investigation",
        "a" * 128,
        "lsn-police/../vlg-police",
    ]
)
HUGE_NUMBERS = st.one_of(
    st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**400, -1, 0, 1.5, 1e308, -0.0]),
    st.sampled_from(
        [
            "1" * 5000,
            "1e999",
            "-1e999",
            "NaN",
            "Infinity",
            "-Infinity",
            "1E400",
            "0." + "0" * 4000 + "1",
        ]
    ).map(Raw),
    st.integers(),
    st.floats(),
)
DEEP = st.sampled_from([64, 900, 5_000, 100_000]).flatmap(
    lambda depth: st.sampled_from(
        [
            Raw("[" * depth + "]" * depth),
            Raw('{"a":' * depth + "1" + "}" * depth),
            Raw("[" * depth + '"x"' + "]" * depth),
        ]
    )
)
PLAIN = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10**6),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
BAD_VALUES = st.one_of(
    PLAIN,
    LONE_SURROGATES,
    NULS,
    HUGE_STRINGS,
    NAIVE_TIMES,
    EXTREME_TIMES,
    UNKNOWN_AGENCIES,
    HUGE_NUMBERS,
    DEEP,
)
BAD_KEYS = st.one_of(
    st.sampled_from(["person_name", "national_id", "", "__proto__", "data "]),
    LONE_SURROGATES,
    NULS,
    st.text(min_size=1, max_size=10),
)
NOT_UTF8 = st.sampled_from(
    [
        b"\xff",
        b"\xc3\x28",
        b"\xed\xa0\x80",
        b"\xc0\xaf",
        b"\xf5\x80\x80",
        b"\x80",
        b"\xfe\xff",
        b"\x00",
    ]
)

TOP_FIELDS = (
    "event_id",
    "case_id",
    "type",
    "agency_id",
    "occurred_at",
    "data",
    "identity",
    "expected_version",
)


# ---------------------------------------------------------------------------- the items
def _path_to(event: dict[str, Any], path: tuple[str, ...]) -> tuple[dict[str, Any], str]:
    node = event
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    return node, path[-1]


@st.composite
def wire_items(draw: st.DrawFn, cases: list[tuple[str, str]], ids: itertools.count) -> WireItem:
    """One hostile item aimed at one of `cases` ((case id, opening instant)) or a new case."""
    number = next(ids)
    if draw(st.booleans()):
        case_id, opened = draw(st.sampled_from(cases))
        event: dict[str, Any] = {
            "event_id": f"fz-{number:06d}",
            "case_id": case_id,
            "type": "AID_REQUESTED",
            "agency_id": POLICE,
            "occurred_at": opened,
            "data": {"request_form": "written"},
        }
        data_fields = ("request_form", "documents_complete")
    else:
        case_id = f"LSN-FZ-{number:06d}"
        event = {
            "event_id": f"fz-{number:06d}",
            "case_id": case_id,
            "type": "NOTIFICATION_ISSUED",
            "agency_id": POLICE,
            "occurred_at": "2026-01-05T09:00:00+07:00",
            "data": {
                "person_id": f"0b6f3c9e-6f1e-4d1e-9a3e-{number:012d}",
                "proceedings_kind": "criminal",
                "procedural_role": "ARRESTED",
                "stage": "INVESTIGATION",
                "eligible_category": "POOR_HOUSEHOLD",
                "form": "MAU_03",
            },
            "identity": {"full_name": "Nguyễn Văn An", "date_of_birth": "1990-05-01"},
        }
        data_fields = (
            "person_id",
            "proceedings_kind",
            "procedural_role",
            "stage",
            "eligible_category",
            "form",
        )
    paths = (
        [(f,) for f in TOP_FIELDS]
        + [("data", f) for f in data_fields]
        + [("identity", "full_name"), ("identity", "date_of_birth"), ("identity", "id_number")]
    )
    notes = []
    body: Any = event
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(("set", "set", "set", "drop", "add", "replace")))
        if kind == "replace":
            body = draw(st.one_of(PLAIN, HUGE_NUMBERS, DEEP, st.lists(PLAIN, max_size=3)))
            notes.append("body replaced")
            break
        path = draw(st.sampled_from(paths))
        node, name = _path_to(event, path)
        if kind == "set":
            value = draw(BAD_VALUES)
            node[name] = value
            shown = value.text[:20] if isinstance(value, Raw) else repr(value)[:20]
            notes.append(f"{'.'.join(path)}={shown}")
        elif kind == "drop":
            node.pop(name, None)
            notes.append(f"-{'.'.join(path)}")
        else:
            key = draw(BAD_KEYS)
            node[key] = draw(BAD_VALUES)
            notes.append(f"+{'.'.join(path[:-1]) or '$'}.{key[:10]!r}")
    raw = encode(body)
    if draw(st.integers(0, 9)) == 0:  # bytes that are not UTF-8 in the middle of a string
        bad = draw(NOT_UTF8)
        marker = f"fz-{number:06d}".encode()
        raw = raw.replace(marker, marker + bad, 1) if marker in raw else raw + bad
        notes.append(f"bytes {bad!r}")
    assert b"\n" not in raw
    return WireItem(raw, case_id, "; ".join(notes))
