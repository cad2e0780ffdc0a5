"""RFC 8785 (JSON Canonicalization Scheme) bytes for transparency-log leaves.

Serialisation is delegated to the ``rfc8785`` package. Deliberately narrower than
RFC 8785: floats are refused (leaves hold only str, int, bool, None, list/tuple, dict
with str keys), and integers must lie in the IEEE-754 safe range ±(2**53 - 1), as
RFC 8785 §3.2.2.3 / I-JSON (RFC 7493 §2.2) require for exact round-tripping.
"""

from __future__ import annotations

from typing import Any

import rfc8785


class CanonicalJsonError(ValueError):
    """Raised when a value cannot be a canonical ledger leaf (float, unsupported type, unsafe int)."""


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 JCS encoding of ``value``, refusing floats and non-JSON types."""
    _refuse_unsupported(value, path="$")
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeError) as error:
        raise CanonicalJsonError(str(error)) from None


def _refuse_unsupported(value: Any, path: str) -> None:
    """Walk ``value`` and raise CanonicalJsonError at the first non-leaf-safe node."""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        raise CanonicalJsonError(f"float at {path} is not allowed in a ledger leaf; use int or str")
    if isinstance(value, (list, tuple)):
        for position, item in enumerate(value):
            _refuse_unsupported(item, f"{path}[{position}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJsonError(f"object key {key!r} at {path} is not a string")
            _refuse_unsupported(item, f"{path}.{key}")
        return
    raise CanonicalJsonError(f"unsupported type {type(value).__name__} at {path}")
