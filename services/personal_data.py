"""Identifying data of persons: validated, encrypted under a per-person data key, erasable.

- Each person (pseudonymous `person_id`) gets a random 256-bit data key on first use.
- Identity blocks are stored in events only as AES-256-GCM ciphertext under that key, with the
  person id, case id and event id as associated data (a ciphertext cannot be moved elsewhere).
- Data keys are stored wrapped (AES-256-GCM) by a master key; master keys come from settings
  and are rotated by re-wrapping (`referrals rotate-master-key`).
- Erasure destroys the data key and leaves a tombstone, so the ciphertext in the immutable log
  becomes unreadable while every hash over it still verifies (Decree 13/2023; PDPL 2025).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from domain.catalogue import clean_text
from domain.errors import InvalidEventError, RuleViolationError

IDENTITY_FIELDS = (
    "full_name",
    "date_of_birth",
    "id_number",
    "address",
    "phone",
    "guardian_name",
    "guardian_relationship",
    "guardian_phone",
)
CIPHERTEXT_PREFIX = "aesgcm1"


@dataclass(frozen=True)
class WrappedKey:
    """A person's data key as stored: wrapped by one master key, or erased."""

    person_id: str
    master_key_id: str | None
    wrapped: bytes | None
    erased_at: datetime | None


@dataclass(frozen=True)
class AccessLogEntry:
    """One read of clear personal data: who, when, which person, why."""

    at: datetime
    principal_id: str
    principal_role: str
    agency_id: str | None
    person_id: str
    case_id: str | None
    purpose: str
    province: str | None = None  # the case's province, so inspectors see their provinces' reads


class KeyStore(Protocol):
    """Where wrapped data keys, erasure tombstones and the access log live."""

    def get(self, person_id: str) -> WrappedKey | None: ...

    def insert_if_absent(self, key: WrappedKey) -> WrappedKey:
        """Stores the key unless one (or a tombstone) exists; returns what is stored."""
        ...

    def destroy(self, person_id: str, at: datetime) -> bool:
        """Replaces the key by a tombstone; False if there was no live key."""
        ...

    def purge_erased(self) -> bool:
        """Removes old row versions of destroyed keys from the live database files (the
        database's MVCC and write-ahead copies); False if some could not be removed yet."""
        ...

    def iter_live(self, batch: int = 1000) -> Iterator[WrappedKey]: ...

    def replace_wrapping(self, person_id: str, master_key_id: str, wrapped: bytes) -> None: ...

    def log_access(self, entry: AccessLogEntry) -> None: ...

    def access_log(
        self,
        person_id: str | None = None,
        limit: int = 1000,
        provinces: Iterable[str] | None = None,
    ) -> list[AccessLogEntry]: ...


class MasterKeys:
    """The master keys by id, and which one wraps new data keys."""

    def __init__(self, keys: Mapping[str, bytes], active_id: str) -> None:
        if active_id not in keys:
            raise ValueError(f"active master key {active_id!r} is not among the master keys")
        for key_id, key in keys.items():
            if len(key) != 32:
                raise ValueError(f"master key {key_id!r} must be 32 bytes (AES-256)")
        self._keys = dict(keys)
        self.active_id = active_id

    @property
    def ids(self) -> frozenset[str]:
        """The ids of the configured master keys."""
        return frozenset(self._keys)

    def wrap(self, person_id: str, data_key: bytes, key_id: str | None = None) -> tuple[str, bytes]:
        key_id = key_id or self.active_id
        nonce = os.urandom(12)
        sealed = AESGCM(self._keys[key_id]).encrypt(nonce, data_key, person_id.encode())
        return key_id, nonce + sealed

    def unwrap(self, person_id: str, key_id: str, wrapped: bytes) -> bytes:
        try:
            key = self._keys[key_id]
        except KeyError:
            raise KeyError(f"master key {key_id!r} is not configured") from None
        return AESGCM(key).decrypt(wrapped[:12], wrapped[12:], person_id.encode())


def parse_master_keys(spec: str) -> dict[str, bytes]:
    """Reads `{"key-id": "<base64 of 32 bytes>", ...}` (the REFERRALS_MASTER_KEYS setting)."""
    raw = json.loads(spec)
    return {str(k): base64.b64decode(v) for k, v in raw.items()}


def new_master_key() -> str:
    """A fresh base64 master key for the settings file."""
    return base64.b64encode(os.urandom(32)).decode()


def validate_identity(identity: Any, occurred_on: date) -> dict[str, str]:
    """Checks the identity block field by field; returns it with empty fields dropped."""
    if not isinstance(identity, Mapping):
        raise InvalidEventError(
            "FIELD_INVALID",
            "identity",
            rule_vi="phải là một đối tượng JSON",
            rule_en="must be a JSON object",
        )
    out: dict[str, str] = {}
    for name in identity:
        if name not in IDENTITY_FIELDS:
            raise InvalidEventError(
                "FIELD_UNKNOWN", f"identity.{str(name)[:64]}", event_type="identity"
            )
    for name in IDENTITY_FIELDS:
        value = identity.get(name)
        if value is None or value == "":
            continue
        out[name] = clean_text(value, f"identity.{name}", 200)
    if "date_of_birth" in out:
        try:
            born = date.fromisoformat(out["date_of_birth"])
        except ValueError:
            raise InvalidEventError(
                "FIELD_INVALID",
                "identity.date_of_birth",
                rule_vi="phải có dạng YYYY-MM-DD",
                rule_en="must be YYYY-MM-DD",
            ) from None
        if born > occurred_on or born.year < 1900:
            raise InvalidEventError(
                "FIELD_INVALID",
                "identity.date_of_birth",
                rule_vi="phải sau năm 1900 và không muộn hơn ngày xảy ra sự kiện",
                rule_en="must be after 1900 and not after the event date",
            )
    if not out:
        raise InvalidEventError("FIELD_REQUIRED", "identity.full_name")
    return out


def age_band_on(born: date, day: date) -> str:
    """Age band of a person on a day (under 16 = child, Luật Trẻ em 2016 Điều 1; 60+ elderly)."""
    years = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
    if years < 16:
        return "UNDER_16"
    if years < 18:
        return "16_TO_UNDER_18"
    if years < 60:
        return "18_TO_UNDER_60"
    return "60_PLUS"


class PersonalDataVault:
    """Encrypts, reveals and erases identifying data; the only holder of clear data keys."""

    def __init__(self, store: KeyStore, master_keys: MasterKeys) -> None:
        self.store = store
        self.master_keys = master_keys

    # -- keys -----------------------------------------------------------------------------
    def _data_key(self, person_id: str, create: bool) -> bytes | None:
        stored = self.store.get(person_id)
        if stored is None and create:
            key_id, wrapped = self.master_keys.wrap(person_id, os.urandom(32))
            stored = self.store.insert_if_absent(WrappedKey(person_id, key_id, wrapped, None))
        if stored is None:
            return None
        if stored.erased_at is not None or stored.wrapped is None:
            return None
        return self.master_keys.unwrap(person_id, stored.master_key_id or "", stored.wrapped)

    def is_erased(self, person_id: str) -> bool:
        stored = self.store.get(person_id)
        return stored is not None and stored.erased_at is not None

    def session(self, defer_new_keys: bool = False) -> KeySession:
        """The keys one recording (an event or a batch) works with, each read once."""
        return KeySession(self, defer_new_keys)

    # -- encryption -----------------------------------------------------------------------
    def seal(
        self, person_id: str, identity: Mapping[str, str], case_id: str, event_id: str
    ) -> tuple[str, str]:
        """(ciphertext for the log, keyed digest for idempotency) of an identity block."""
        key = self._data_key(person_id, create=True)
        if key is None:
            raise RuleViolationError("PERSON_ERASED", "identity", value=person_id)
        return self._seal_with(key, person_id, identity, case_id, event_id)

    def _seal_with(
        self,
        key: bytes,
        person_id: str,
        identity: Mapping[str, str],
        case_id: str,
        event_id: str,
    ) -> tuple[str, str]:
        clear = _canonical(identity)
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, clear, _aad(person_id, case_id, event_id))
        token = ".".join((CIPHERTEXT_PREFIX, _b64(nonce), _b64(sealed)))
        return token, self._digest(key, clear)

    def identity_digest(self, person_id: str, identity: Mapping[str, str]) -> str | None:
        """The keyed digest a retry of the same identity block yields (None once erased)."""
        key = self._data_key(person_id, create=False)
        return None if key is None else self._digest(key, _canonical(identity))

    @staticmethod
    def _digest(key: bytes, clear: bytes) -> str:
        subkey = HKDF(SHA256(), 32, salt=None, info=b"identity-digest/v1").derive(key)
        return hmac.new(subkey, clear, hashlib.sha256).hexdigest()

    def open(
        self, person_id: str, ciphertext: str, case_id: str, event_id: str
    ) -> dict[str, str] | None:
        """The clear identity block, or None when the person's key has been destroyed."""
        key = self._data_key(person_id, create=False)
        if key is None:
            return None
        prefix, nonce, sealed = ciphertext.split(".")
        if prefix != CIPHERTEXT_PREFIX:
            raise ValueError(f"unknown ciphertext format {prefix!r}")
        try:
            clear = AESGCM(key).decrypt(
                _unb64(nonce), _unb64(sealed), _aad(person_id, case_id, event_id)
            )
        except InvalidTag:
            raise ValueError("identity ciphertext does not authenticate") from None
        return cast(dict[str, str], json.loads(clear))

    # -- erasure and rotation ---------------------------------------------------------------
    def destroy_key(self, person_id: str, at: datetime, purge: bool = True) -> bool:
        """Crypto-shreds the person: their data key is replaced by a tombstone and (with
        `purge`, the default) no old copy of it stays in the live key-store files."""
        if self.store.get(person_id) is None:
            self.store.insert_if_absent(WrappedKey(person_id, None, None, at))
            destroyed = True
        else:
            destroyed = self.store.destroy(person_id, at)
        if purge:
            self.purge_erased()
        return destroyed

    def purge_erased(self) -> bool:
        """See `KeyStore.purge_erased`; a store without MVCC copies has nothing to purge."""
        purge = getattr(self.store, "purge_erased", None)
        return True if purge is None else bool(purge())

    def rotate(self) -> int:
        """Re-wraps every live data key with the active master key; returns how many moved."""
        moved = 0
        for stored in list(self.store.iter_live()):
            if stored.master_key_id == self.master_keys.active_id or stored.wrapped is None:
                continue
            clear = self.master_keys.unwrap(
                stored.person_id, stored.master_key_id or "", stored.wrapped
            )
            key_id, wrapped = self.master_keys.wrap(stored.person_id, clear)
            self.store.replace_wrapping(stored.person_id, key_id, wrapped)
            moved += 1
        return moved


class KeySession:
    """The data keys of one recording: each person's stored key read once (or all of a batch's
    in one query), unwrapped once.

    With `defer_new_keys` (the batch path) a person's first key is generated when an event
    that passed every rule is sealed, as always, but written by `flush()` together with the
    batch's other new keys, before the events are saved (a key is always stored before any
    ciphertext under it). `flush()` names the persons for whom another writer stored a key (or
    an erasure tombstone) first: events sealed under our key must then be judged again.
    """

    def __init__(self, vault: PersonalDataVault, defer_new_keys: bool = False) -> None:
        self.vault = vault
        self.defer_new_keys = defer_new_keys
        self._stored: dict[str, WrappedKey | None] = {}
        self._clear: dict[str, bytes | None] = {}
        self._new: dict[str, WrappedKey] = {}

    def prefetch(self, person_ids: Iterable[str]) -> None:
        """Reads the stored keys of these persons (one query when the store can)."""
        wanted = [p for p in dict.fromkeys(person_ids) if p not in self._stored]
        if not wanted:
            return
        get_many = getattr(self.vault.store, "get_many", None)
        if get_many is None:
            for person_id in wanted:
                self._stored[person_id] = self.vault.store.get(person_id)
            return
        found = get_many(wanted)
        for person_id in wanted:
            self._stored[person_id] = found.get(person_id)

    def stored(self, person_id: str) -> WrappedKey | None:
        if person_id not in self._stored:
            self._stored[person_id] = self.vault.store.get(person_id)
        return self._stored[person_id]

    def is_erased(self, person_id: str) -> bool:
        stored = self.stored(person_id)
        return stored is not None and stored.erased_at is not None

    def _key(self, person_id: str, create: bool) -> bytes | None:
        if person_id in self._clear and (self._clear[person_id] is not None or not create):
            return self._clear[person_id]
        stored = self.stored(person_id)
        if stored is None and create:
            master = self.vault.master_keys
            clear = os.urandom(32)
            key_id, wrapped = master.wrap(person_id, clear)
            fresh = WrappedKey(person_id, key_id, wrapped, None)
            if self.defer_new_keys:
                self._new[person_id] = self._stored[person_id] = fresh
                self._clear[person_id] = clear
                return clear
            stored = self._stored[person_id] = self.vault.store.insert_if_absent(fresh)
        if stored is None or stored.erased_at is not None or stored.wrapped is None:
            key = None
        else:
            key = self.vault.master_keys.unwrap(
                person_id, stored.master_key_id or "", stored.wrapped
            )
        self._clear[person_id] = key
        return key

    def identity_digest(self, person_id: str, identity: Mapping[str, str]) -> str | None:
        """As `PersonalDataVault.identity_digest` (None when there is no usable key)."""
        key = self._key(person_id, create=False)
        return None if key is None else self.vault._digest(key, _canonical(identity))

    def seal(
        self, person_id: str, identity: Mapping[str, str], case_id: str, event_id: str
    ) -> tuple[str, str]:
        """As `PersonalDataVault.seal`."""
        key = self._key(person_id, create=True)
        if key is None:
            raise RuleViolationError("PERSON_ERASED", "identity", value=person_id)
        return self.vault._seal_with(key, person_id, identity, case_id, event_id)

    def new_key_holders(self) -> set[str]:
        """Persons whose key this session generated and has not written yet."""
        return set(self._new)

    def flush(self) -> set[str]:
        """Writes the deferred new keys; returns the persons another writer got to first."""
        if not self._new:
            return set()
        keys = list(self._new.values())
        self._new.clear()
        insert_many = getattr(self.vault.store, "insert_many_if_absent", None)
        if insert_many is not None:
            stored = insert_many(keys)
        else:
            stored = {k.person_id: self.vault.store.insert_if_absent(k) for k in keys}
        lost = set()
        for key in keys:
            kept = stored.get(key.person_id)
            if kept is None or kept.wrapped != key.wrapped or kept.erased_at is not None:
                lost.add(key.person_id)
            self._stored[key.person_id] = kept
            self._clear.pop(key.person_id, None)
        return lost


def _canonical(identity: Mapping[str, str]) -> bytes:
    return json.dumps(
        dict(identity), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    ).encode()


def _aad(person_id: str, case_id: str, event_id: str) -> bytes:
    return json.dumps([person_id, case_id, event_id], ensure_ascii=False).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
