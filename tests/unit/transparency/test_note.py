"""C2SP signed-note: signing, opening, key encodings and rejections."""

from __future__ import annotations

import base64

import pytest

from services.transparency.note import (
    InvalidKeyError,
    InvalidSignatureError,
    MalformedNoteError,
    NoteError,
    UnverifiedNoteError,
    Verifier,
    add_signature_lines,
    generate_signer,
    key_hash,
    open_note,
    sign_note,
    signer_from_key_text,
    split_note,
    verifier_from_key_text,
)

# Published example of golang.org/x/mod/sumdb/note (a test key, not a secret).
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

TEXT = "legal-aid.example/log\n42\nsome body\n"


@pytest.fixture(scope="module")
def signer():
    return generate_signer("legal-aid.example/log")


def test_note_matches_go_reference_when_signed_with_published_example_key():
    signer = signer_from_key_text(GO_SIGNER_KEY)
    assert signer.key_text == GO_SIGNER_KEY
    assert signer.verifier().key_text == GO_VERIFIER_KEY
    assert sign_note(GO_TEXT, signer) == GO_NOTE
    assert open_note(GO_NOTE, [verifier_from_key_text(GO_VERIFIER_KEY)]) == (
        GO_TEXT,
        ["PeterNeumann"],
    )


def test_key_hash_is_truncated_sha256_of_name_newline_type_and_key_when_computed(signer):
    import hashlib

    expected = hashlib.sha256(signer.name.encode() + b"\n\x01" + signer.public_key).digest()[:4]
    assert signer.key_hash == key_hash(signer.name, 0x01, signer.public_key) == expected


def test_open_returns_text_and_signer_when_note_round_trips(signer):
    note = sign_note(TEXT, signer)
    assert note.startswith(TEXT + "\n— legal-aid.example/log ")
    assert open_note(note, [signer.verifier()]) == (TEXT, ["legal-aid.example/log"])
    assert open_note(note.encode(), [signer.verifier()]) == (TEXT, ["legal-aid.example/log"])


def test_open_returns_only_known_signers_when_note_has_several_signatures(signer):
    other = generate_signer("witness.example/w1")
    note = sign_note(TEXT, [signer, other])
    assert open_note(note, [signer.verifier(), other.verifier()])[1] == [signer.name, other.name]
    assert open_note(note, [other.verifier()])[1] == [other.name]


def test_open_keeps_blank_lines_inside_text_when_note_is_split(signer):
    text = "first\n\nsecond after a blank line\n\n"
    assert open_note(sign_note(text, signer), [signer.verifier()])[0] == text


def test_key_texts_round_trip_when_parsed_back(signer):
    assert signer_from_key_text(signer.key_text).seed == signer.seed
    assert verifier_from_key_text(signer.verifier().key_text) == signer.verifier()
    assert "seed" not in repr(signer) and base64.b64encode(signer.seed).decode() not in repr(signer)


def test_open_raises_invalid_signature_when_text_is_altered(signer):
    note = sign_note(TEXT, signer).replace("42", "43", 1)
    with pytest.raises(InvalidSignatureError):
        open_note(note, [signer.verifier()])


def test_open_raises_invalid_signature_when_signature_bytes_are_altered(signer):
    text, (signature,) = split_note(sign_note(TEXT, signer))
    forged = bytearray(signature.signature)
    forged[0] ^= 1
    note = text + "\n" + type(signature)(signature.name, signature.key_hash, bytes(forged)).line()
    with pytest.raises(InvalidSignatureError):
        open_note(note, [signer.verifier()])


def test_open_raises_invalid_signature_when_known_key_fails_even_if_another_verifies(signer):
    other = generate_signer("witness.example/w1")
    good = sign_note(TEXT, other)
    bad_line = sign_note("other text\n", signer).split("\n\n", 1)[1]
    with pytest.raises(InvalidSignatureError):
        open_note(good + bad_line, [signer.verifier(), other.verifier()])


def test_open_raises_unverified_when_signed_by_wrong_key_with_same_name(signer):
    impostor = generate_signer(signer.name)
    with pytest.raises(UnverifiedNoteError):
        open_note(sign_note(TEXT, impostor), [signer.verifier()])


def test_open_ignores_unknown_signatures_when_a_known_one_verifies(signer):
    unknown = generate_signer("someone.example/else")
    note = sign_note(TEXT, [unknown, signer])
    assert open_note(note, [signer.verifier()]) == (TEXT, [signer.name])


@pytest.mark.parametrize(
    "mangle",
    [
        lambda note: note.replace("\n\n", "\n"),  # no blank line
        lambda note: note[:-1],  # no final newline
        lambda note: note.replace("— ", "- "),  # not an em dash
        lambda note: note.replace("— ", "—"),  # no space after dash
        lambda note: note.replace("— legal-aid.example/log ", "— legal+aid "),  # '+' in name
        lambda note: note.replace("— legal-aid.example/log ", "—  "),  # empty name
        lambda note: note[:-3] + "!!\n",  # bad base64
        lambda note: note[:-2] + "\n",  # base64 without its padding
        lambda note: note.split("— ")[0] + "— legal-aid.example/log AAAA\n",  # fewer than 5 bytes
        lambda note: note.replace("42", "4\t2"),  # control character
        lambda note: note + "\n",  # trailing blank line
        lambda note: note.split("\n\n")[0] + "\n\n",  # empty signature block
        lambda note: (
            note + "".join(note.split("\n\n")[1] for _ in range(100))
        ),  # too many signatures
    ],
)
def test_open_raises_malformed_when_note_breaks_format(signer, mangle):
    with pytest.raises(MalformedNoteError):
        open_note(mangle(sign_note(TEXT, signer)), [signer.verifier()])


@pytest.mark.parametrize("garbage", [b"\xff\xfe\n\n", None, 12, "", "\ud800\n\n— a AAAAAAA=\n"])
def test_open_raises_note_error_when_input_is_garbage(garbage, signer):
    with pytest.raises(NoteError):
        open_note(garbage, [signer.verifier()])


@pytest.mark.parametrize("text", ["no final newline", "tab\there\n", "", None])
def test_sign_raises_malformed_when_text_is_not_a_note_text(signer, text):
    with pytest.raises(MalformedNoteError):
        sign_note(text, signer)


@pytest.mark.parametrize("name", ["", "has space", "has+plus", "tab\tname", "nbsp\u00a0name"])
def test_generate_signer_raises_when_name_is_invalid(name):
    with pytest.raises(InvalidKeyError):
        generate_signer(name)


@pytest.mark.parametrize(
    "key_text",
    [
        GO_VERIFIER_KEY.replace("c74f20a3", "c74f20a4"),  # wrong key ID
        GO_VERIFIER_KEY.replace("+ARpc", "+AhpC"),  # wrong type byte
        "PeterNeumann+c74f20a3",  # missing key
        "PeterNeumann+c74f20a3+!!!",  # bad base64
        "PeterNeumann+c74f20a3+AQ==",  # empty key
        GO_SIGNER_KEY,  # a private key is not a verifier key
    ],
)
def test_verifier_from_key_text_raises_when_key_text_is_invalid(key_text):
    with pytest.raises(InvalidKeyError):
        verifier_from_key_text(key_text)


@pytest.mark.parametrize(
    "key_text",
    [GO_VERIFIER_KEY, GO_SIGNER_KEY.replace("c74f20a3", "00000000"), "PRIVATE+KEY+x+00000000+AQ=="],
)
def test_signer_from_key_text_raises_when_key_text_is_invalid(key_text):
    with pytest.raises(InvalidKeyError):
        signer_from_key_text(key_text)


def test_verifier_raises_when_public_key_is_not_32_bytes():
    with pytest.raises(InvalidKeyError):
        Verifier("name", bytes(31))


def test_add_signature_lines_appends_verifiable_lines_when_lines_are_well_formed(signer):
    other = generate_signer("witness.example/w1")
    other_line = sign_note(TEXT, other).split("\n\n", 1)[1]
    combined = add_signature_lines(sign_note(TEXT, signer), [other_line])
    assert open_note(combined, [signer.verifier(), other.verifier()])[1] == [
        signer.name,
        other.name,
    ]
    with pytest.raises(MalformedNoteError):
        add_signature_lines(combined, ["not a signature line\n"])
