"""C2SP tlog-checkpoint bodies and tlog-cosignature/v1 witness cosignatures."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from services.transparency.checkpoint import (
    Checkpoint,
    CosignatureVerifier,
    Cosigner,
    MalformedCheckpointError,
    cosignature_timestamp,
    cosignature_verifier_from_key_text,
    generate_cosigner,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from services.transparency.note import (
    InvalidKeyError,
    InvalidSignatureError,
    NoteError,
    UnverifiedNoteError,
    add_signature_lines,
    generate_signer,
    open_note,
    split_note,
)

ORIGIN = "legal-aid.example/ledger"
ROOT = hashlib.sha256(b"root").digest()
SPEC_EXAMPLE_COSIGNATURE = (
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZ"
    "qhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)


@pytest.fixture(scope="module")
def log_signer():
    return generate_signer(ORIGIN)


@pytest.fixture(scope="module")
def cosigner():
    return generate_cosigner("witness.example/w1")


def test_body_has_origin_size_and_base64_root_lines_when_formatted():
    body = Checkpoint(ORIGIN, 20852163, ROOT).body()
    assert body == f"{ORIGIN}\n20852163\n{base64.b64encode(ROOT).decode()}\n"
    assert (
        Checkpoint(ORIGIN, 0, ROOT, ("ext one", "ext two")).body().endswith("\next one\next two\n")
    )


@given(
    size=st.integers(0, 2**64),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1),
        max_size=3,
    ),
)
def test_parse_returns_same_checkpoint_when_body_round_trips(size, root, extensions):
    checkpoint = Checkpoint(ORIGIN, size, root, tuple(extensions))
    assert parse_checkpoint(checkpoint.body()) == checkpoint


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n012\n{base64.b64encode(ROOT).decode()}\n",  # leading zero
        f"{ORIGIN}\n+12\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n 12\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n١٢\n{base64.b64encode(ROOT).decode()}\n",  # non-ASCII digits
        f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n12\n",  # only two lines
        f"\n12\n{base64.b64encode(ROOT).decode()}\n",  # empty origin
        f"{ORIGIN}\n12\n{base64.b64encode(ROOT).decode()}\n\nextension\n",  # empty extension line
        f"{ORIGIN}\n12\n{base64.b64encode(ROOT[:31]).decode()}\n",  # 31-byte root
        f"{ORIGIN}\n12\n{base64.b64encode(ROOT).decode()[:-1]}\n",  # broken base64
        f"{ORIGIN}\n12\n{base64.b64encode(ROOT).decode()}",  # no final newline
        f"{ORIGIN}\n12\n{base64.b64encode(ROOT).decode()}\nbad\x01ext\n",  # control character
    ],
)
def test_parse_raises_malformed_checkpoint_when_body_breaks_format(body):
    with pytest.raises(MalformedCheckpointError):
        parse_checkpoint(body)


@pytest.mark.parametrize(
    "fields",
    [
        ("", 1, ROOT),
        ("a\nb", 1, ROOT),
        (ORIGIN, -1, ROOT),
        (ORIGIN, True, ROOT),
        (ORIGIN, 1, ROOT[:16]),
    ],
)
def test_checkpoint_raises_malformed_when_fields_are_invalid(fields):
    with pytest.raises(MalformedCheckpointError):
        Checkpoint(*fields)


def test_open_checkpoint_returns_checkpoint_when_log_signature_verifies(log_signer):
    checkpoint = Checkpoint(ORIGIN, 7, ROOT)
    assert (
        open_checkpoint(sign_checkpoint(checkpoint, log_signer), log_signer.verifier())
        == checkpoint
    )


def test_open_checkpoint_raises_when_signed_by_another_key(log_signer):
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), generate_signer(ORIGIN))
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(note, log_signer.verifier())


def test_cosignature_signs_header_time_and_whole_body_when_produced(cosigner):
    body = Checkpoint(ORIGIN, 5, ROOT, ("ext",)).body()
    line = cosigner.cosign(body, 1679315147)
    _, (signature,) = split_note("x\n\n" + line)
    expected_key_id = hashlib.sha256(
        cosigner.name.encode() + b"\n\x04" + cosigner.public_key
    ).digest()[:4]
    assert signature.key_hash == expected_key_id
    assert signature.signature[:8] == (1679315147).to_bytes(8, "big")
    assert cosignature_timestamp(signature) == 1679315147
    message = b"cosignature/v1\ntime 1679315147\n" + body.encode()
    Ed25519PublicKey.from_public_bytes(cosigner.public_key).verify(signature.signature[8:], message)


def test_cosignature_opens_beside_log_signature_when_appended_to_checkpoint(log_signer, cosigner):
    note = sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), log_signer)
    text, _ = open_note(note, [log_signer.verifier()])
    cosigned = add_signature_lines(note, [cosigner.cosign(text, 1_700_000_000)])
    assert open_note(cosigned, [log_signer.verifier(), cosigner.verifier()])[1] == [
        ORIGIN,
        cosigner.name,
    ]
    assert open_checkpoint(cosigned, log_signer.verifier()).size == 5


def test_cosignature_fails_when_checkpoint_body_is_altered(cosigner):
    body = Checkpoint(ORIGIN, 5, ROOT).body()
    forged = Checkpoint(ORIGIN, 6, ROOT).body() + "\n" + cosigner.cosign(body, 1)
    with pytest.raises(InvalidSignatureError):
        open_note(forged, [cosigner.verifier()])


def test_cosignature_is_ignored_by_plain_note_verifier_when_key_types_differ():
    signer = generate_signer("witness.example/w2")
    cosigner = Cosigner.from_signer(signer)
    assert cosigner.key_hash != signer.key_hash
    note = "body\n\n" + cosigner.cosign("body\n", 1)
    with pytest.raises(UnverifiedNoteError):
        open_note(note, [signer.verifier()])


@pytest.mark.parametrize("signature", [bytes(71), bytes(73), b"\xff" * 8 + bytes(64)])
def test_cosignature_verifier_returns_false_when_signature_has_wrong_shape(cosigner, signature):
    assert cosigner.verifier().verify(b"body\n", signature) is False


def test_spec_example_cosignature_carries_its_time_when_parsed():
    _, (signature,) = split_note("x\n\n" + SPEC_EXAMPLE_COSIGNATURE)
    assert signature.name == "witness.example.com/w1"
    assert cosignature_timestamp(signature) == 1679315147


def test_cosignature_key_text_round_trips_when_type_is_0x04(cosigner):
    verifier = cosigner.verifier()
    name, key_id, key_material = verifier.key_text.split("+", 2)
    assert (name, key_id) == (cosigner.name, verifier.key_hash.hex())
    assert base64.b64decode(key_material) == b"\x04" + cosigner.public_key
    assert cosignature_verifier_from_key_text(verifier.key_text) == verifier
    with pytest.raises(InvalidKeyError):
        cosignature_verifier_from_key_text(generate_signer("x").verifier().key_text)


@pytest.mark.parametrize("timestamp", [-1, 2**63, "1"])
def test_cosign_raises_when_timestamp_is_out_of_range(cosigner, timestamp):
    with pytest.raises(ValueError):
        cosigner.cosign("body\n", timestamp)


def test_cosign_raises_when_body_is_not_note_text(cosigner):
    with pytest.raises(NoteError):
        cosigner.cosign("no newline", 1)


def test_cosignature_verifier_raises_when_key_is_invalid():
    with pytest.raises(InvalidKeyError):
        CosignatureVerifier("bad name", bytes(32))
