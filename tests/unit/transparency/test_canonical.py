"""RFC 8785 canonical JSON for ledger leaves, refusing floats."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.transparency.canonical import (
    CanonicalJsonError,
    canonical_json,
    canonical_json_reference,
)

SAFE_INT = st.integers(-(2**53) + 1, 2**53 - 1)
LEAF_VALUES = st.recursive(
    st.none() | st.booleans() | SAFE_INT | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


def test_keys_are_sorted_and_output_is_compact_when_object_is_serialised():
    value = {"b": 1, "a": [True, None, "x"], "é": "ạ"}
    assert canonical_json(value) == '{"a":[true,null,"x"],"b":1,"é":"ạ"}'.encode()


def test_control_characters_are_escaped_when_string_contains_them():
    assert canonical_json("a\nb\u0001") == b'"a\\nb\\u0001"'


@given(LEAF_VALUES)
def test_output_round_trips_and_ignores_key_order_when_value_is_leaf_safe(value):
    encoded = canonical_json(value)
    assert json.loads(encoded) == value
    if isinstance(value, dict):
        assert canonical_json(dict(reversed(list(value.items())))) == encoded


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        {"amount": 0.5},
        [1, [2, float("nan")]],
        {1: "x"},
        b"bytes",
        {"a": {1, 2}},
        2**53,
        -(2**53),
        "\ud800",
    ],
)
def test_canonical_json_raises_when_value_is_not_leaf_safe(value):
    with pytest.raises(CanonicalJsonError):
        canonical_json(value)


WIDE_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))
WIDE_VALUES = st.recursive(
    st.none() | st.booleans() | SAFE_INT | WIDE_TEXT,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            WIDE_TEXT | st.text(alphabet=st.characters(max_codepoint=127)), children, max_size=4
        )
    ),
    max_leaves=20,
)


@given(WIDE_VALUES)
def test_fast_path_gives_the_rfc8785_bytes_when_value_is_leaf_safe(value):
    assert canonical_json(value) == canonical_json_reference(value)


def test_keys_are_ordered_by_utf16_code_units_when_a_key_is_outside_the_bmp():
    value = {"\U0001f600": 1, "\uff61": 2}  # surrogate pair 0xD83D sorts before 0xFF61
    assert canonical_json(value) == '{"\U0001f600":1,"\uff61":2}'.encode()
