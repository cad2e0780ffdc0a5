"""One signature per batch of receipts (ADR 0011, issue 16): batch-receipt/v1 texts verify
offline like receipt/v1 notes, bind the same promise, and old receipt/v1 notes still verify."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import pytest

from services.transparency.checkpoint import Checkpoint, sign_checkpoint
from services.transparency.merkle import InMemoryNodeStore, MerkleTree, leaf_hash
from services.transparency.note import NoteError, generate_signer
from services.transparency.receipt import (
    BATCH_RECEIPT_HEADER,
    Receipt,
    check_receipt_against_checkpoint,
    issue_batch_receipts,
    issue_receipt,
    open_receipt,
)

ORIGIN = "legal-aid.example/ledger"
SIGNER = generate_signer(ORIGIN)
TRUSTED = [SIGNER.verifier()]
AT = datetime(2024, 5, 1, 8, 30, tzinfo=timezone.utc)
ENTRIES = [f'{{"event_id":"evt-{n}"}}'.encode() for n in range(40)]


def promises(count: int) -> list[Receipt]:
    return [Receipt(ORIGIN, 100 + n, leaf_hash(ENTRIES[n]), f"evt-{n}", AT) for n in range(count)]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13, 40])
def test_every_receipt_of_a_batch_opens_to_its_promise(count: int) -> None:
    texts = issue_batch_receipts(SIGNER, promises(count))
    assert [open_receipt(t, TRUSTED) for t in texts] == promises(count)
    assert all(t.startswith(BATCH_RECEIPT_HEADER + "\n") for t in texts)
    signatures = {t.rsplit("\n— ", 1)[1] for t in texts}
    assert len(signatures) == 1  # one signature for the whole batch


def test_a_batch_receipt_verifies_against_a_later_checkpoint_like_a_single_one() -> None:
    tree = MerkleTree(InMemoryNodeStore())
    tree.append_leaves(ENTRIES)
    checkpoint = sign_checkpoint(Checkpoint(ORIGIN, tree.size, tree.root()), SIGNER)
    single = issue_receipt(
        SIGNER,
        origin=ORIGIN,
        position=103,
        leaf_hash=leaf_hash(ENTRIES[3]),
        event_id="evt-3",
        time=AT,
    )  # receipt/v1, as issued before
    batch = issue_batch_receipts(SIGNER, promises(10))[3]
    for receipt in (single, batch):
        assert check_receipt_against_checkpoint(
            receipt, checkpoint, 3, tree.inclusion_proof(3), TRUSTED
        )
        assert not check_receipt_against_checkpoint(
            receipt, checkpoint, 4, tree.inclusion_proof(4), TRUSTED
        )


def _swap(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def test_a_changed_batch_receipt_does_not_open() -> None:
    texts = issue_batch_receipts(SIGNER, promises(8))
    other_leaf = base64.b64encode(leaf_hash(b"other")).decode()
    forged = [
        _swap(texts[2], "position 102", "position 103"),  # the body is not the signed leaf
        _swap(texts[2], "event evt-2", "event evt-3"),
        _swap(texts[2], "index 2", "index 3"),
        _swap(texts[2], "\npath ", f"\npath {other_leaf}\npath "),
        texts[2].split("\n\n", 1)[0]
        + "\n\n"
        + texts[5]
        .split("\n\n", 1)[1]
        .replace("size 8", "size 9"),  # a note whose signature no longer verifies
        texts[2].replace(ORIGIN + "\nposition", "other.example/log\nposition"),
    ]
    for text in forged:
        with pytest.raises(NoteError):
            open_receipt(text, TRUSTED)
        assert not check_receipt_against_checkpoint(
            text, Checkpoint(ORIGIN, 1, b"\0" * 32), 0, [], TRUSTED
        )
    with pytest.raises(NoteError):  # signed by someone else
        open_receipt(issue_batch_receipts(generate_signer(ORIGIN), promises(2))[0], TRUSTED)
