"""Signed receipts (receipt/v1) checked against later checkpoints by inclusion proof."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest

from services.transparency.checkpoint import Checkpoint, sign_checkpoint
from services.transparency.merkle import InMemoryNodeStore, MerkleTree, leaf_hash
from services.transparency.note import NoteError, generate_signer, sign_note
from services.transparency.receipt import (
    MalformedReceiptError,
    Receipt,
    check_receipt_against_checkpoint,
    issue_receipt,
    open_receipt,
    parse_receipt,
)

ORIGIN = "legal-aid.example/ledger"
LOG_SIGNER = generate_signer(ORIGIN)
TRUSTED = [LOG_SIGNER.verifier()]
ACCEPTED_AT = datetime(2024, 5, 1, 8, 30, tzinfo=timezone.utc)
ENTRIES = [f'{{"event_id":"evt-{number}"}}'.encode() for number in range(30)]


def _tree(entries: list[bytes]) -> MerkleTree:
    tree = MerkleTree(InMemoryNodeStore())
    tree.append_leaves(entries)
    return tree


POSITION_OFFSET = 100  # log positions differ from tree indexes (gaps in notification ids)


def _receipt_for(index: int, signer=LOG_SIGNER, origin: str = ORIGIN) -> str:
    return issue_receipt(
        signer,
        origin=origin,
        position=index + POSITION_OFFSET,
        leaf_hash=leaf_hash(ENTRIES[index]),
        event_id=f"evt-{index}",
        time=ACCEPTED_AT,
    )


def _checkpoint(tree: MerkleTree, size: int | None = None) -> Checkpoint:
    size = tree.size if size is None else size
    return Checkpoint(ORIGIN, size, tree.root(size))


def test_receipt_body_has_exact_layout_when_issued():
    leaf = leaf_hash(ENTRIES[3])
    note = _receipt_for(3)
    expected_body = (
        "legal-aid-ledger receipt/v1\n"
        f"{ORIGIN}\nposition 103\nleaf {base64.b64encode(leaf).decode()}\nevent evt-3\ntime 2024-05-01T08:30:00Z\n"
    )
    assert note.startswith(expected_body + "\n— " + ORIGIN + " ")
    assert open_receipt(note, TRUSTED) == Receipt(ORIGIN, 103, leaf, "evt-3", ACCEPTED_AT)


def test_receipt_time_is_converted_to_utc_with_microseconds_when_issued_in_local_offset():
    local = datetime(2024, 5, 1, 15, 30, 0, 250, tzinfo=timezone(timedelta(hours=7)))
    receipt = Receipt(ORIGIN, 0, leaf_hash(b"x"), "evt", local)
    assert receipt.body().endswith("time 2024-05-01T08:30:00.000250Z\n")
    assert parse_receipt(receipt.body()).time == local


def test_receipt_verifies_when_checked_against_later_checkpoint():
    log = _tree(ENTRIES[:4])
    receipt = _receipt_for(3)
    log.append_leaves(ENTRIES[4:])
    proof = log.inclusion_proof(3, 30)
    assert check_receipt_against_checkpoint(receipt, _checkpoint(log), 3, proof, TRUSTED)
    signed_checkpoint = sign_checkpoint(_checkpoint(log), LOG_SIGNER)
    assert check_receipt_against_checkpoint(receipt, signed_checkpoint, 3, proof, TRUSTED)


def test_receipt_stops_verifying_when_log_rewrites_its_leaf():
    receipt = _receipt_for(3)
    rewritten_entries = list(ENTRIES)
    rewritten_entries[3] = b'{"event_id":"evt-3","altered":true}'
    rewritten = _tree(rewritten_entries)
    signed_checkpoint = sign_checkpoint(_checkpoint(rewritten), LOG_SIGNER)
    proof = rewritten.inclusion_proof(3, 30)
    assert not check_receipt_against_checkpoint(receipt, signed_checkpoint, 3, proof, TRUSTED)


def test_receipt_stops_verifying_when_log_drops_the_entry():
    receipt = _receipt_for(3)
    shortened = _tree(ENTRIES[:3] + ENTRIES[4:])
    proof = shortened.inclusion_proof(3, 29)
    assert not check_receipt_against_checkpoint(receipt, _checkpoint(shortened), 3, proof, TRUSTED)


def test_receipt_check_fails_when_leaf_index_is_not_below_checkpoint_size():
    log = _tree(ENTRIES)
    receipt = _receipt_for(10)
    assert not check_receipt_against_checkpoint(
        receipt, _checkpoint(log, 10), 10, log.inclusion_proof(9, 10), TRUSTED
    )


def test_receipt_check_fails_when_answer_gives_another_leaf_index():
    log = _tree(ENTRIES)
    receipt = _receipt_for(10)
    assert not check_receipt_against_checkpoint(
        receipt, _checkpoint(log), 11, log.inclusion_proof(11), TRUSTED
    )
    assert check_receipt_against_checkpoint(
        receipt, _checkpoint(log), 10, log.inclusion_proof(10), TRUSTED
    )


def test_receipt_check_fails_when_receipt_signature_is_untrusted_or_altered():
    log = _tree(ENTRIES)
    proof = log.inclusion_proof(3, 30)
    forged = _receipt_for(3, signer=generate_signer(ORIGIN))
    altered = _receipt_for(3).replace("event evt-3", "event evt-X")
    for receipt in (forged, altered, "garbage", ""):
        assert not check_receipt_against_checkpoint(receipt, _checkpoint(log), 3, proof, TRUSTED)


def test_receipt_check_fails_when_checkpoint_is_untrusted_or_for_another_origin():
    log = _tree(ENTRIES)
    proof = log.inclusion_proof(3, 30)
    untrusted_checkpoint = sign_checkpoint(_checkpoint(log), generate_signer(ORIGIN))
    other_origin = Checkpoint("other.example/log", 30, log.root())
    assert not check_receipt_against_checkpoint(
        _receipt_for(3), untrusted_checkpoint, 3, proof, TRUSTED
    )
    assert not check_receipt_against_checkpoint(_receipt_for(3), other_origin, 3, proof, TRUSTED)
    assert not check_receipt_against_checkpoint(_receipt_for(3), "not a note", 3, proof, TRUSTED)


@pytest.mark.parametrize("proof", [[], None, "x", [b"short"], [bytes(32)] * 5])
def test_receipt_check_fails_when_proof_is_garbage(proof):
    log = _tree(ENTRIES)
    assert not check_receipt_against_checkpoint(
        _receipt_for(3), _checkpoint(log), 3, proof, TRUSTED
    )


GOOD_BODY = Receipt(ORIGIN, 3, leaf_hash(b"x"), "evt-3", ACCEPTED_AT).body()
assert "\nposition 3\n" in GOOD_BODY


@pytest.mark.parametrize(
    "body",
    [
        GOOD_BODY.replace("receipt/v1", "receipt/v2"),
        GOOD_BODY.replace("position 3", "position 03"),
        GOOD_BODY.replace("position 3", "position -3"),
        GOOD_BODY.replace("position 3", "seq 3"),
        GOOD_BODY.replace("event evt-3", "event evt 3"),
        GOOD_BODY.replace("event evt-3", "event "),
        GOOD_BODY.replace("08:30:00Z", "08:30:00+00:00"),
        GOOD_BODY.replace("08:30:00Z", "08:30:00.000000Z"),
        GOOD_BODY.replace("2024-05-01", "2024-02-30"),
        GOOD_BODY.replace("leaf ", "leaf AAAA"),
        GOOD_BODY + "extra line\n",
        GOOD_BODY[:-1],
    ],
)
def test_parse_receipt_raises_malformed_when_body_is_not_canonical(body):
    with pytest.raises(MalformedReceiptError):
        parse_receipt(body)


def test_open_receipt_raises_note_error_when_note_is_not_a_receipt():
    with pytest.raises(NoteError):
        open_receipt(sign_note("hello\n", LOG_SIGNER), TRUSTED)


@pytest.mark.parametrize(
    "fields",
    [
        dict(origin="a\nb"),
        dict(position=-1),
        dict(leaf_hash=b"short"),
        dict(event_id="has space"),
        dict(time=datetime(2024, 5, 1, 8, 30)),
    ],
)
def test_issue_receipt_raises_when_fields_are_invalid(fields):
    arguments = dict(
        origin=ORIGIN, position=1, leaf_hash=leaf_hash(b"x"), event_id="evt-1", time=ACCEPTED_AT
    )
    arguments.update(fields)
    with pytest.raises(MalformedReceiptError):
        issue_receipt(LOG_SIGNER, **arguments)


def _leaf(position: int, event_id: str) -> bytes:
    from services.transparency.canonical import canonical_json
    from services.transparency.leaves import LEAF_FIELDS

    record = dict.fromkeys(LEAF_FIELDS)
    record.update(
        position=position,
        event_id=event_id,
        originator_id="o",
        version=1,
        type="T",
        recorded_at="2024-05-01T08:30:00.000000Z",
        data={},
    )
    return canonical_json(record)


def test_receipt_binds_its_position_through_the_leaf_bytes_when_they_are_given():
    leaves = [_leaf(100 + 2 * n, f"evt-{n}") for n in range(5)]  # positions with gaps
    log = MerkleTree(InMemoryNodeStore())
    log.append_leaves(leaves)
    receipt = issue_receipt(
        LOG_SIGNER,
        origin=ORIGIN,
        position=104,
        leaf_hash=leaf_hash(leaves[2]),
        event_id="evt-2",
        time=ACCEPTED_AT,
    )
    proof = log.inclusion_proof(2)
    assert check_receipt_against_checkpoint(
        receipt, _checkpoint(log), 2, proof, TRUSTED, leaf=leaves[2]
    )
    assert not check_receipt_against_checkpoint(
        receipt, _checkpoint(log), 2, proof, TRUSTED, leaf=leaves[3]
    )
    lying = issue_receipt(
        LOG_SIGNER,
        origin=ORIGIN,
        position=2,
        leaf_hash=leaf_hash(leaves[2]),
        event_id="evt-2",
        time=ACCEPTED_AT,
    )
    assert not check_receipt_against_checkpoint(
        lying, _checkpoint(log), 2, proof, TRUSTED, leaf=leaves[2]
    )


# ---------------------------------------------------------- held-receipt/v1 (ADR 0008 addendum)
def _held_leaf(position: int, digest: str, moment: datetime = ACCEPTED_AT) -> bytes:
    from services.transparency.canonical import canonical_json
    from services.transparency.leaves import LEAF_FIELDS, rfc3339

    record = dict.fromkeys(LEAF_FIELDS)
    record.update(
        position=position,
        originator_id="x",
        event_id="evt-held",
        case_id="LSN-1",
        version=7,
        type="NOTIFICATION_ISSUED",
        recorded_at=rfc3339(moment),
        data={},
        content_digest=digest,
    )
    return canonical_json(record)


def test_held_receipt_binds_no_leaf_hash_and_verifies_against_the_leaf_bytes():
    from services.transparency.receipt import issue_batch_receipts, issue_held_receipt

    digest = "ab" * 32
    leaf = _held_leaf(POSITION_OFFSET + 30, digest)
    tree = _tree([*ENTRIES, leaf])
    receipt = issue_held_receipt(
        LOG_SIGNER,
        origin=ORIGIN,
        position=POSITION_OFFSET + 30,
        content_digest=digest,
        event_id="evt-held",
        time=ACCEPTED_AT,
    )
    assert receipt.startswith(
        f"legal-aid-ledger held-receipt/v1\n{ORIGIN}\nposition 130\ncontent {digest}\n"
        "event evt-held\ntime 2024-05-01T08:30:00Z\n\n"
    )
    promised = open_receipt(receipt, TRUSTED)
    assert promised.held and promised.leaf_hash is None and promised.content_digest == digest
    checkpoint = _checkpoint(tree)
    proof = tree.inclusion_proof(30, tree.size)
    assert check_receipt_against_checkpoint(receipt, checkpoint, 30, proof, TRUSTED, leaf=leaf)
    assert not check_receipt_against_checkpoint(receipt, checkpoint, 30, proof, TRUSTED)
    for other in (
        _held_leaf(POSITION_OFFSET + 30, "cd" * 32),  # another content
        _held_leaf(POSITION_OFFSET + 31, digest),  # another position
        _held_leaf(POSITION_OFFSET + 30, digest, ACCEPTED_AT + timedelta(seconds=1)),
    ):
        assert not check_receipt_against_checkpoint(
            receipt, checkpoint, 30, proof, TRUSTED, leaf=other
        )
    # in a batch (one signature, ADR 0011) as receipt/v1 bodies are
    texts = issue_batch_receipts(
        LOG_SIGNER,
        [
            Receipt(ORIGIN, 130, None, "evt-held", ACCEPTED_AT, digest),
            parse_receipt(open_receipt(_receipt_for(3), TRUSTED).body()),
        ],
    )
    assert open_receipt(texts[0], TRUSTED) == promised


@pytest.mark.parametrize("digest", ["AB" * 32, "ab" * 31, "zz" * 32])
def test_held_receipt_refuses_a_content_digest_that_is_not_64_lowercase_hex(digest: str):
    with pytest.raises(MalformedReceiptError):
        Receipt(ORIGIN, 1, None, "evt", ACCEPTED_AT, digest)
    with pytest.raises(MalformedReceiptError):
        Receipt(ORIGIN, 1, bytes(32), "evt", ACCEPTED_AT, "ab" * 32)  # one or the other
