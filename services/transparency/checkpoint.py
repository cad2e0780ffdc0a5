"""C2SP tlog-checkpoint bodies and tlog-cosignature (cosignature/v1, Ed25519) witness signatures.

Follows c2sp.org/tlog-checkpoint: the note text is at least three non-empty lines —
origin, tree size in ASCII decimal without leading zeros, base64 root hash — then
optional non-empty extension lines; the checkpoint is signed as a C2SP signed note.

Follows c2sp.org/tlog-cosignature (Ed25519 type): key ID =
SHA-256(name || 0x0A || 0x04 || public key)[:4]; signature = key ID || u64 big-endian
POSIX timestamp || Ed25519 signature; signed message = "cosignature/v1\\n" +
"time <timestamp>\\n" + the whole checkpoint note text, extension lines included.
Cosignature verifier keys use type byte 0x04 ("<name>+<hex key ID>+<base64(0x04 || key)>").

Choices beyond or narrower than the specs:
- Root hashes must be exactly 32 bytes (this ledger is SHA-256, RFC 6962 only).
- A cosigner may be built from an ordinary 0x01 note signer key (as
  transparency-dev/formats does); the key ID is then recomputed with type 0x04.
  The spec says nothing about private-key text for cosigners, so none is defined here.
- The ML-DSA-44 cosignature type and subtree signing are not implemented.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from services.transparency.note import (
    ED25519_KEY_SIZE,
    ED25519_SIGNATURE_SIZE,
    KEY_HASH_SIZE,
    InvalidKeyError,
    NoteError,
    NoteSignature,
    Signer,
    Verifier,
    check_note_text,
    ed25519_public_key,
    ed25519_verify,
    format_signature_line,
    format_verifier_key,
    generate_signer,
    is_valid_key_name,
    key_hash,
    open_note,
    parse_verifier_key,
    sign_note,
)

COSIGNATURE_TYPE_ED25519 = 0x04
COSIGNATURE_HEADER = "cosignature/v1"
ROOT_HASH_SIZE = 32
MAX_TIMESTAMP = 2**63 - 1
_TIMESTAMP_SIZE = 8
_TREE_SIZE_PATTERN = re.compile(r"0|[1-9][0-9]*")


class MalformedCheckpointError(NoteError):
    """Raised when a note text is not a c2sp.org/tlog-checkpoint body."""


@dataclass(frozen=True)
class Checkpoint:
    """A log's signed tree head: origin, tree size, root hash, extension lines (tlog-checkpoint)."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _is_single_line(self.origin):
            raise MalformedCheckpointError("origin must be one non-empty line")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise MalformedCheckpointError("tree size must be a non-negative integer")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != ROOT_HASH_SIZE:
            raise MalformedCheckpointError("root hash must be 32 bytes")
        if not all(_is_single_line(line) for line in self.extensions):
            raise MalformedCheckpointError("extension lines must be non-empty single lines")

    def body(self) -> str:
        """Return the checkpoint note text: origin, size, base64 root, extensions, each newline-terminated."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        lines = [self.origin, str(self.size), root, *self.extensions]
        return check_note_text("".join(line + "\n" for line in lines))


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse a tlog-checkpoint note text into a Checkpoint, or raise MalformedCheckpointError."""
    try:
        check_note_text(body)
    except NoteError as error:
        raise MalformedCheckpointError(str(error)) from None
    lines = body[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise MalformedCheckpointError("checkpoint needs at least three non-empty lines")
    origin, size_text, root_text, *extensions = lines
    if not _TREE_SIZE_PATTERN.fullmatch(size_text):
        raise MalformedCheckpointError(f"tree size {size_text[:30]!r} is not a canonical decimal")
    try:
        root_hash = base64.b64decode(root_text, validate=True)
    except ValueError:
        raise MalformedCheckpointError("root hash is not base64") from None
    if base64.b64encode(root_hash).decode("ascii") != root_text:
        raise MalformedCheckpointError("root hash is not canonical base64")
    return Checkpoint(origin, int(size_text), root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """Return the checkpoint as a signed note (tlog-checkpoint "Signatures")."""
    return sign_note(checkpoint.body(), signer)


def open_checkpoint(note: str, log_verifier: Verifier) -> Checkpoint:
    """Verify the log's signature on a checkpoint note and parse it (other signatures are ignored)."""
    text, _ = open_note(note, [log_verifier])
    return parse_checkpoint(text)


def cosigned_message(checkpoint_body: str, timestamp: int) -> bytes:
    """Return "cosignature/v1\\ntime <t>\\n" + checkpoint body (tlog-cosignature "Ed25519 signed message")."""
    return f"{COSIGNATURE_HEADER}\ntime {timestamp}\n{checkpoint_body}".encode()


@dataclass(frozen=True)
class CosignatureVerifier:
    """Verifier for Ed25519 cosignature/v1 lines (signature type 0x04)."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name) or len(self.public_key) != ED25519_KEY_SIZE:
            raise InvalidKeyError("cosigner needs a valid name and a 32-byte Ed25519 key")

    @property
    def key_hash(self) -> bytes:
        """Key ID = SHA-256(name || 0x0A || 0x04 || public key)[:4] (tlog-cosignature "Format")."""
        return key_hash(self.name, COSIGNATURE_TYPE_ED25519, self.public_key)

    @property
    def key_text(self) -> str:
        """Verifier key text with type byte 0x04."""
        return format_verifier_key(self.name, COSIGNATURE_TYPE_ED25519, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` (timestamp || Ed25519 sig) cosigns the checkpoint body ``message``."""
        if len(signature) != _TIMESTAMP_SIZE + ED25519_SIGNATURE_SIZE:
            return False
        timestamp = int.from_bytes(signature[:_TIMESTAMP_SIZE], "big")
        if timestamp > MAX_TIMESTAMP:
            return False
        try:
            body = message.decode("utf-8")
        except UnicodeDecodeError:
            return False
        signed = cosigned_message(body, timestamp)
        return ed25519_verify(self.public_key, signed, signature[_TIMESTAMP_SIZE:])


@dataclass(frozen=True, repr=False)
class Cosigner:
    """Ed25519 cosignature/v1 signer (a witness's key)."""

    name: str
    seed: bytes

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name) or len(self.seed) != ED25519_KEY_SIZE:
            raise InvalidKeyError("cosigner needs a valid name and a 32-byte Ed25519 seed")

    def __repr__(self) -> str:
        return f"Cosigner(name={self.name!r}, key_hash={self.key_hash.hex()})"

    @classmethod
    def from_signer(cls, signer: Signer) -> Cosigner:
        """Reuse a note signer's name and Ed25519 key for cosignatures (key ID recomputed with 0x04)."""
        return cls(signer.name, signer.seed)

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return ed25519_public_key(self.seed)

    @property
    def key_hash(self) -> bytes:
        """Key ID with signature type 0x04."""
        return key_hash(self.name, COSIGNATURE_TYPE_ED25519, self.public_key)

    def verifier(self) -> CosignatureVerifier:
        """Return the matching cosignature verifier."""
        return CosignatureVerifier(self.name, self.public_key)

    def cosign(self, checkpoint_body: str, timestamp: int) -> str:
        """Return the cosignature line "— <name> base64(key ID || u64 time || sig)\\n" (tlog-cosignature)."""
        check_note_text(checkpoint_body)
        if not isinstance(timestamp, int) or not 0 <= timestamp <= MAX_TIMESTAMP:
            raise ValueError("cosignature timestamp must be in 0..2**63-1")
        signer = Signer(self.name, self.seed)
        signature = signer.sign(cosigned_message(checkpoint_body, timestamp))
        blob = timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + signature
        return format_signature_line(self.name, self.key_hash, blob)


def generate_cosigner(name: str) -> Cosigner:
    """Return a fresh Ed25519 cosigner named ``name``."""
    return Cosigner.from_signer(generate_signer(name))


def cosignature_verifier_from_key_text(key_text: str) -> CosignatureVerifier:
    """Return the cosignature verifier encoded by a type-0x04 verifier key text."""
    name, signature_type, public_key = parse_verifier_key(key_text)
    if signature_type != COSIGNATURE_TYPE_ED25519:
        raise InvalidKeyError(f"cosignature key must have type 0x04, got 0x{signature_type:02x}")
    return CosignatureVerifier(name, public_key)


def cosignature_timestamp(signature: NoteSignature) -> int:
    """Return the POSIX timestamp carried by a parsed cosignature/v1 signature line."""
    expected_size = _TIMESTAMP_SIZE + ED25519_SIGNATURE_SIZE
    if len(signature.key_hash) != KEY_HASH_SIZE or len(signature.signature) != expected_size:
        raise MalformedCheckpointError("not a cosignature/v1 signature")
    return int.from_bytes(signature.signature[:_TIMESTAMP_SIZE], "big")


def _is_single_line(value: object) -> bool:
    """Non-empty text with no newline or other ASCII control character, encodable as UTF-8."""
    if not isinstance(value, str) or not value or any(char < " " for char in value):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
