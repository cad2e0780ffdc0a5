"""C2SP signed-note (https://c2sp.org/signed-note, v1.0.0) with Ed25519 keys.

Follows the spec for: note layout (text ending in newline, blank line, one or more
"— <name> <base64(key ID || signature)>" lines), the UTF-8 / no-control-character rule,
splitting at the *last* blank line, key-name rules (non-empty, no Unicode spaces, no
"+"), key ID = SHA-256(name || 0x0A || type || public key)[:4], Ed25519 type 0x01
over the note text, ignoring signatures from unknown (name, key ID) pairs, rejecting
the whole note when a known key's signature fails, and rejecting notes that no known
key verified. Key texts use the golang.org/x/mod/sumdb/note encodings:
verifier "<name>+<hex key ID>+<base64(type || public key)>" and signer
"PRIVATE+KEY+<name>+<hex key ID>+<base64(type || 32-byte seed)>".

Stricter than the spec (deliberate): signature base64 must be canonical (re-encodes to
the same text), and at most 100 signature lines are read (the spec requires >= 16).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SIGNATURE_TYPE_ED25519 = 0x01
SIGNATURE_LINE_PREFIX = "\u2014 "
MAX_SIGNATURES = 100
KEY_HASH_SIZE = 4
ED25519_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
_PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"


class NoteError(Exception):
    """Raised when a signed note cannot be produced or accepted (C2SP signed-note)."""


class MalformedNoteError(NoteError):
    """Raised when note text or a signature line breaks the signed-note format."""


class InvalidKeyError(NoteError):
    """Raised when a key name or key text breaks the signed-note key encoding."""


class InvalidSignatureError(NoteError):
    """Raised when a signature from a known key does not verify (the whole note is rejected)."""

    def __init__(self, name: str, key_hash: bytes) -> None:
        super().__init__(f"signature by known key {name}+{key_hash.hex()} does not verify")
        self.name = name
        self.key_hash = key_hash


class UnverifiedNoteError(NoteError):
    """Raised when no signature in the note comes from a known key."""


class NoteVerifier(Protocol):
    """Anything that can check one signature line: identified by (name, 4-byte key ID)."""

    @property
    def name(self) -> str: ...

    @property
    def key_hash(self) -> bytes: ...

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` (bytes after the key ID) signs ``message``."""
        ...


class NoteSigner(Protocol):
    """Anything that can produce a signature line's bytes for a note text."""

    @property
    def name(self) -> str: ...

    @property
    def key_hash(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes:
        """Return the signature bytes that follow the key ID."""
        ...


@dataclass(frozen=True)
class NoteSignature:
    """One parsed signature line: key name, 4-byte key ID and the signature bytes after it."""

    name: str
    key_hash: bytes
    signature: bytes

    def line(self) -> str:
        """Return the signature line, newline-terminated (signed-note "Signatures")."""
        return format_signature_line(self.name, self.key_hash, self.signature)


@dataclass(frozen=True)
class Verifier:
    """Ed25519 (type 0x01) note verifier: name plus 32-byte public key."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if len(self.public_key) != ED25519_KEY_SIZE:
            raise InvalidKeyError("Ed25519 public key must be 32 bytes")

    @property
    def key_hash(self) -> bytes:
        """Key ID = SHA-256(name || 0x0A || 0x01 || public key)[:4] (signed-note "Ed25519 signatures")."""
        return key_hash(self.name, SIGNATURE_TYPE_ED25519, self.public_key)

    @property
    def key_text(self) -> str:
        """Verifier key text "<name>+<hex key ID>+<base64(0x01 || public key)>"."""
        return format_verifier_key(self.name, SIGNATURE_TYPE_ED25519, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` is a valid Ed25519 signature of ``message``."""
        return ed25519_verify(self.public_key, message, signature)


@dataclass(frozen=True, repr=False)
class Signer:
    """Ed25519 (type 0x01) note signer: name plus 32-byte private seed (never shown in repr)."""

    name: str
    seed: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if len(self.seed) != ED25519_KEY_SIZE:
            raise InvalidKeyError("Ed25519 seed must be 32 bytes")

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_hash={self.key_hash.hex()})"

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key (RFC 8032 encoding)."""
        return ed25519_public_key(self.seed)

    @property
    def key_hash(self) -> bytes:
        """Key ID of the matching verifier."""
        return key_hash(self.name, SIGNATURE_TYPE_ED25519, self.public_key)

    @property
    def key_text(self) -> str:
        """Signer key text "PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>"."""
        encoded = _b64(bytes([SIGNATURE_TYPE_ED25519]) + self.seed)
        return f"{_PRIVATE_KEY_PREFIX}{self.name}+{self.key_hash.hex()}+{encoded}"

    def verifier(self) -> Verifier:
        """Return the public verifier for this signer."""
        return Verifier(self.name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return _private_key(self.seed).sign(message)


def key_hash(name: str, signature_type: int, public_key: bytes) -> bytes:
    """Return SHA-256(name || 0x0A || type || public key)[:4] (signed-note "Signatures")."""
    material = name.encode("utf-8") + b"\n" + bytes([signature_type]) + bytes(public_key)
    return hashlib.sha256(material).digest()[:KEY_HASH_SIZE]


@lru_cache(maxsize=256)
def _valid_key_name(name: str) -> bool:
    if not name or "+" in name:
        return False
    if any(char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F for char in name):
        return False
    return _is_utf8_encodable(name)


def is_valid_key_name(name: object) -> bool:
    """Return whether ``name`` is a legal key name: non-empty, no Unicode spaces, no "+"."""
    # checked for every signature line: the answer for a name is computed once
    return isinstance(name, str) and _valid_key_name(str(name))


def generate_signer(name: str) -> Signer:
    """Return a fresh Ed25519 note signer named ``name``."""
    private_key = Ed25519PrivateKey.generate()
    return Signer(name, private_key.private_bytes_raw())


@lru_cache(maxsize=64)
def ed25519_public_key(seed: bytes) -> bytes:
    """Return the RFC 8032 public key for a 32-byte Ed25519 seed."""
    public = _private_key(seed).public_key()
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


@lru_cache(maxsize=64)
def _private_key(seed: bytes) -> Ed25519PrivateKey:
    """The key object of a seed, built once (building it costs as much as a signature)."""
    return Ed25519PrivateKey.from_private_bytes(seed)


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Return whether ``signature`` is a valid RFC 8032 Ed25519 signature; never raises."""
    if len(signature) != ED25519_SIGNATURE_SIZE:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def format_verifier_key(name: str, signature_type: int, public_key: bytes) -> str:
    """Return verifier key text "<name>+<hex key ID>+<base64(type || public key)>"."""
    _check_key_name(name)
    encoded = _b64(bytes([signature_type]) + public_key)
    return f"{name}+{key_hash(name, signature_type, public_key).hex()}+{encoded}"


def parse_verifier_key(key_text: str) -> tuple[str, int, bytes]:
    """Parse verifier key text into (name, signature type, public key), checking its key ID."""
    parts = key_text.strip().split("+", 2) if isinstance(key_text, str) else []
    if len(parts) != 3:
        raise InvalidKeyError("verifier key must be <name>+<hex key ID>+<base64 key>")
    name, hash_hex, key_b64 = parts
    signature_type, public_key = _parse_typed_key(name, hash_hex, key_b64)
    return name, signature_type, public_key


def parse_signer_key(key_text: str) -> tuple[str, int, bytes]:
    """Parse signer key text into (name, signature type, seed), checking its key ID."""
    if not isinstance(key_text, str) or not key_text.startswith(_PRIVATE_KEY_PREFIX):
        raise InvalidKeyError("signer key must start with PRIVATE+KEY+")
    parts = key_text.strip()[len(_PRIVATE_KEY_PREFIX) :].split("+", 2)
    if len(parts) != 3:
        raise InvalidKeyError("signer key must be PRIVATE+KEY+<name>+<hex key ID>+<base64 key>")
    name, hash_hex, key_b64 = parts
    signature_type, seed = _decode_typed_key(name, key_b64)
    if len(seed) != ED25519_KEY_SIZE:
        raise InvalidKeyError("Ed25519 seed must be 32 bytes")
    _check_key_hash_text(hash_hex, key_hash(name, signature_type, ed25519_public_key(seed)))
    return name, signature_type, seed


def verifier_from_key_text(key_text: str) -> Verifier:
    """Return the Ed25519 note verifier encoded by ``key_text`` (type 0x01 only)."""
    name, signature_type, public_key = parse_verifier_key(key_text)
    if signature_type != SIGNATURE_TYPE_ED25519:
        raise InvalidKeyError(
            f"unsupported signature type 0x{signature_type:02x} for a note verifier"
        )
    return Verifier(name, public_key)


def signer_from_key_text(key_text: str) -> Signer:
    """Return the Ed25519 note signer encoded by ``key_text`` (type 0x01 only)."""
    name, signature_type, seed = parse_signer_key(key_text)
    if signature_type != SIGNATURE_TYPE_ED25519:
        raise InvalidKeyError(
            f"unsupported signature type 0x{signature_type:02x} for a note signer"
        )
    return Signer(name, seed)


def format_signature_line(name: str, key_id: bytes, signature: bytes) -> str:
    """Return "— <name> <base64(key ID || signature)>\\n" (signed-note "Signatures")."""
    _check_key_name(name)
    if len(key_id) != KEY_HASH_SIZE:
        raise InvalidKeyError("key ID must be 4 bytes")
    return f"{SIGNATURE_LINE_PREFIX}{name} {_b64(bytes(key_id) + bytes(signature))}\n"


def sign_note(text: str, signers: NoteSigner | Sequence[NoteSigner]) -> str:
    """Return ``text`` signed by each signer as a C2SP signed note."""
    check_note_text(text)
    signer_list: list[NoteSigner] = (
        list(signers) if isinstance(signers, (list, tuple)) else [cast(NoteSigner, signers)]
    )
    if not signer_list:
        raise NoteError("at least one signer is required")
    message = text.encode("utf-8")
    lines = [format_signature_line(s.name, s.key_hash, s.sign(message)) for s in signer_list]
    return text + "\n" + "".join(lines)


def check_note_text(text: object) -> str:
    """Raise MalformedNoteError unless ``text`` is a legal note text (UTF-8, ends in newline, no controls)."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise MalformedNoteError("note text must be a string ending in a newline")
    _check_characters(text)
    return text


def split_note(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and parsed signature lines, without verifying anything."""
    if isinstance(note, (bytes, bytearray)):
        try:
            note = bytes(note).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedNoteError("note is not valid UTF-8") from None
    if not isinstance(note, str):
        raise MalformedNoteError("note must be text")
    _check_characters(note)
    split_at = note.rfind("\n\n")
    if split_at < 0:
        raise MalformedNoteError("note has no blank line before its signatures")
    text, signature_block = note[: split_at + 1], note[split_at + 2 :]
    if not signature_block or not signature_block.endswith("\n"):
        raise MalformedNoteError("note must end with newline-terminated signature lines")
    lines = signature_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"note has more than {MAX_SIGNATURES} signatures")
    return text, [_parse_signature_line(line) for line in lines]


def add_signature_lines(note: str, lines: Iterable[str]) -> str:
    """Return ``note`` with extra signature lines (e.g. cosignatures) appended after checking them."""
    split_note(note)
    extra = "".join(lines)
    if extra:
        split_note("x\n\n" + extra)
    return note + extra


def open_note(note: str | bytes, verifiers: Iterable[NoteVerifier]) -> tuple[str, list[str]]:
    """Verify a signed note; return (text, names of known keys that signed it) or raise NoteError."""
    text, signatures = split_note(note)
    known: dict[tuple[str, bytes], list[NoteVerifier]] = {}
    for verifier in verifiers:
        known.setdefault((verifier.name, bytes(verifier.key_hash)), []).append(verifier)
    message = text.encode("utf-8")
    verified_names: list[str] = []
    for signature in signatures:
        candidates = known.get((signature.name, signature.key_hash))
        if not candidates:
            continue
        if not any(_safe_verify(v, message, signature.signature) for v in candidates):
            raise InvalidSignatureError(signature.name, signature.key_hash)
        if signature.name not in verified_names:
            verified_names.append(signature.name)
    if not verified_names:
        raise UnverifiedNoteError("no signature from a known key")
    return text, verified_names


def _safe_verify(verifier: NoteVerifier, message: bytes, signature: bytes) -> bool:
    try:
        return bool(verifier.verify(message, signature))
    except Exception:  # noqa: BLE001 - a failing verifier counts as a bad signature
        return False


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_LINE_PREFIX):
        raise MalformedNoteError(
            f"signature line must start with an em dash and a space: {line[:60]!r}"
        )
    name, separator, encoded = line[len(SIGNATURE_LINE_PREFIX) :].partition(" ")
    if not separator or not is_valid_key_name(name) or not encoded:
        raise MalformedNoteError(
            f"signature line has a bad key name or no signature: {line[:60]!r}"
        )
    blob = _strict_b64decode(encoded)
    if blob is None or len(blob) < KEY_HASH_SIZE + 1:
        raise MalformedNoteError(
            f"signature is not canonical base64 of at least 5 bytes: {line[:60]!r}"
        )
    return NoteSignature(name, blob[:KEY_HASH_SIZE], blob[KEY_HASH_SIZE:])


def _check_characters(text: str) -> None:
    if not _is_utf8_encodable(text):
        raise MalformedNoteError("note is not valid UTF-8")
    for char in text:
        if char < " " and char != "\n":
            raise MalformedNoteError(f"note contains control character {char!r}")


def _check_key_name(name: object) -> None:
    if not is_valid_key_name(name):
        raise InvalidKeyError(
            f"invalid key name {name!r}: must be non-empty, without spaces or '+'"
        )


def _parse_typed_key(name: str, hash_hex: str, key_b64: str) -> tuple[int, bytes]:
    signature_type, public_key = _decode_typed_key(name, key_b64)
    _check_key_hash_text(hash_hex, key_hash(name, signature_type, public_key))
    return signature_type, public_key


def _decode_typed_key(name: str, key_b64: str) -> tuple[int, bytes]:
    _check_key_name(name)
    blob = _strict_b64decode(key_b64)
    if blob is None or len(blob) < 2:
        raise InvalidKeyError("key material is not base64 of a type byte and a key")
    return blob[0], blob[1:]


def _check_key_hash_text(hash_hex: str, expected: bytes) -> None:
    if len(hash_hex) != 2 * KEY_HASH_SIZE or hash_hex.lower() != expected.hex():
        raise InvalidKeyError("key ID in the key text does not match the key")


def _strict_b64decode(encoded: str) -> bytes | None:
    try:
        decoded = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if _b64(decoded) == encoded else None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _is_utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
