"""The event store's JSON transcoder: `eventsourcing`'s `JSONTranscoder`, computed by orjson.

Stored bytes are the storage format (and the audit trail hashes them), so the output must be
byte for byte what the library's transcoder writes. orjson gives that for plain JSON values
(str, exact int within 64 bits, bool, None, lists, dicts with str keys; same escaping, same
separators, insertion order). Values of registered types (datetime, UUID, Decimal) are turned
into the library's `{"_type_": name, "_data_": ...}` objects first. Anything else (floats,
whose text orjson may write differently, unregistered types, subclasses, non-str keys, lone
surrogates) is left to the library's own code, which also raises the library's errors.
Tested against the library on every event type and on every code point
(tests/unit/services/test_transcoding.py).
"""

from __future__ import annotations

from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder

_INT_RANGE = range(-(2**63), 2**64)
_DUMP_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


class _NotPlainError(Exception):
    """A value the fast path does not handle (the library's code does)."""


class FastJSONTranscoder(JSONTranscoder):
    """Byte-identical to `JSONTranscoder`, about twice as fast on the events we store."""

    def encode(self, obj: Any) -> bytes:
        try:
            return orjson.dumps(self._prepare(obj), option=_DUMP_OPTIONS)
        except (_NotPlainError, orjson.JSONEncodeError, TypeError):
            return super().encode(obj)

    def _prepare(self, value: Any) -> Any:
        kind = type(value)
        if kind is str or kind is bool or value is None:
            return value
        if kind is dict:
            out = {}
            for key, item in value.items():
                if type(key) is not str:
                    raise _NotPlainError
                out[key] = item if type(item) is str else self._prepare(item)
            return out
        if kind is int:
            if value not in _INT_RANGE:
                raise _NotPlainError
            return value
        if kind is list or kind is tuple:
            return [self._prepare(item) for item in value]
        transcoding = self.types.get(kind)
        if transcoding is None:
            raise _NotPlainError
        data = transcoding.encode(value)
        return {
            "_type_": transcoding.name,
            "_data_": data if type(data) is str else self._prepare(data),
        }

    def decode(self, data: bytes) -> Any:
        try:
            return self._restore(orjson.loads(data))
        except (orjson.JSONDecodeError, _NotPlainError):
            # JSON orjson refuses (NaN), or numbers it may read differently (it reads an
            # integer beyond 64 bits as a float): the library's own decoder
            return super().decode(data)

    def _restore(self, value: Any) -> Any:
        """Applies the library's object hook bottom-up, as `json` does while parsing."""
        kind = type(value)
        if kind is dict:
            for key, item in value.items():
                if type(item) is dict or type(item) is list:
                    value[key] = self._restore(item)
                elif type(item) is float:
                    raise _NotPlainError
            return self._decode_obj(value)
        if kind is list:
            for index, item in enumerate(value):
                if type(item) is dict or type(item) is list:
                    value[index] = self._restore(item)
                elif type(item) is float:
                    raise _NotPlainError
        elif kind is float:
            raise _NotPlainError
        return value
