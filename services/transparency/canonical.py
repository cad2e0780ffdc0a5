r"""RFC 8785 (JSON Canonicalization Scheme) bytes for transparency-log leaves.

Serialisation is delegated to the ``rfc8785`` package. Deliberately narrower than
RFC 8785: floats are refused (leaves hold only str, int, bool, None, list/tuple, dict
with str keys), and integers must lie in the IEEE-754 safe range ±(2**53 - 1), as
RFC 8785 §3.2.2.3 / I-JSON (RFC 7493 §2.2) require for exact round-tripping.

Fast path (the audit trail hashes every event): when every object key is ASCII, the
standard library's compact, key-sorted, non-ASCII-preserving encoder produces exactly the
RFC 8785 bytes for these types — same escapes (\b \t \n \f \r \" \\, other controls
as lowercase \u00xx), same integer form, and code-point key order equals the UTF-16
code-unit order RFC 8785 §3.2.3 asks for when keys are ASCII. Other values go through
``rfc8785``. tests/unit/transparency/test_canonical.py checks the two agree.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import rfc8785

_MAX_SAFE_INT = 2**53 - 1
_FAST = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False, check_circular=False
)


class CanonicalJsonError(ValueError):
    """Raised when a value cannot be a canonical ledger leaf (float, unsupported type, unsafe int)."""


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 JCS encoding of ``value``, refusing floats and non-JSON types."""
    if _plain_ascii_keys(value):
        # the common case, checked without building error paths; orjson writes the same
        # bytes as the stdlib fast path for these values (same escapes, sorted ASCII keys)
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # e.g. a lone surrogate: the stdlib path below raises the usual error
    if _refuse_unsupported(value, path="$"):
        try:
            return _FAST.encode(value).encode("utf-8")
        except UnicodeEncodeError as error:
            raise CanonicalJsonError(str(error)) from None
    return canonical_json_reference(value)


def _plain_ascii_keys(value: Any) -> bool:
    """Whether `value` holds only str, bool, None, safe ints, lists and dicts with ASCII str
    keys (exact types): then the fast path applies and nothing needs refusing."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_MAX_SAFE_INT <= value <= _MAX_SAFE_INT)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            if type(item) is not str and not _plain_ascii_keys(item):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_plain_ascii_keys(item) for item in value)
    return False


def canonical_json_reference(value: Any) -> bytes:
    """The ``rfc8785`` package's encoding (no fast path), after the same refusals."""
    _refuse_unsupported(value, path="$")
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeError) as error:
        raise CanonicalJsonError(str(error)) from None


def _refuse_unsupported(value: Any, path: str) -> bool:
    """Walk ``value``; raise CanonicalJsonError at the first non-leaf-safe node.

    Returns whether every object key is ASCII (the fast path's condition).
    """
    if value is None or isinstance(value, (str, bool)):
        return True
    if isinstance(value, int):
        if not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            raise CanonicalJsonError(f"integer at {path} is outside the IEEE-754 safe range")
        return True
    if isinstance(value, float):
        raise CanonicalJsonError(f"float at {path} is not allowed in a ledger leaf; use int or str")
    if isinstance(value, (list, tuple)):
        fast = True
        for position, item in enumerate(value):
            fast = _refuse_unsupported(item, f"{path}[{position}]") and fast
        return fast
    if isinstance(value, dict):
        fast = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJsonError(f"object key {key!r} at {path} is not a string")
            fast = _refuse_unsupported(item, f"{path}.{key}") and key.isascii() and fast
        return fast
    raise CanonicalJsonError(f"unsupported type {type(value).__name__} at {path}")
