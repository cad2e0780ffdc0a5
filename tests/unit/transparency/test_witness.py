"""Witness cosigning: trust on first use, consistent growth only, atomic state."""

from __future__ import annotations

import json

import pytest

from infra.transparency.witness import RefusalReason, Witness, WitnessRefusal, WitnessStateError
from services.transparency.checkpoint import Checkpoint, sign_checkpoint
from services.transparency.merkle import InMemoryNodeStore, MerkleTree
from services.transparency.note import (
    add_signature_lines,
    generate_signer,
    open_note,
    sign_note,
    split_note,
)

ORIGIN = "legal-aid.example/ledger"
WITNESS_NAME = "witness.example/w1"
NOW = 1_717_000_000
LOG_SIGNER = generate_signer(ORIGIN)
ENTRIES = [f"event-{number}".encode() for number in range(40)]


def _tree(entries: list[bytes]) -> MerkleTree:
    tree = MerkleTree(InMemoryNodeStore())
    tree.append_leaves(entries)
    return tree


def _checkpoint_note(tree: MerkleTree, size: int, signer=LOG_SIGNER, origin: str = ORIGIN) -> str:
    return sign_checkpoint(Checkpoint(origin, size, tree.root(size)), signer)


@pytest.fixture
def honest_log() -> MerkleTree:
    return _tree(ENTRIES)


@pytest.fixture
def witness(tmp_path) -> Witness:
    return Witness(
        WITNESS_NAME,
        generate_signer(WITNESS_NAME),
        LOG_SIGNER.verifier().key_text,
        tmp_path / "state.json",
        clock=lambda: NOW + 0.9,
    )


def _refusal(witness: Witness, note: str, proof: list[bytes]) -> RefusalReason:
    with pytest.raises(WitnessRefusal) as refusal:
        witness.cosign(note, proof)
    return refusal.value.reason


def test_first_checkpoint_is_cosigned_and_recorded_when_state_is_empty(witness, honest_log):
    note = _checkpoint_note(honest_log, 10)
    line = witness.cosign(note, [])
    cosigned = add_signature_lines(note, [line])
    assert open_note(cosigned, [LOG_SIGNER.verifier(), witness.verifier])[1] == [
        ORIGIN,
        WITNESS_NAME,
    ]
    assert split_note("x\n\n" + line)[1][0].signature[:8] == NOW.to_bytes(8, "big")
    state = witness.state()
    assert (state.origin, state.size, state.root_hash) == (ORIGIN, 10, honest_log.root(10))


def test_witness_cosigns_when_log_grows_consistently(witness, honest_log):
    witness.cosign(_checkpoint_note(honest_log, 10), [])
    for old_size, new_size in [(10, 11), (11, 27), (27, 40)]:
        line = witness.cosign(
            _checkpoint_note(honest_log, new_size), honest_log.consistency_proof(old_size, new_size)
        )
        assert line.startswith(f"— {WITNESS_NAME} ")
    assert witness.state().size == 40


def test_witness_cosigns_again_when_checkpoint_is_unchanged(witness, honest_log):
    note = _checkpoint_note(honest_log, 10)
    witness.cosign(note, [])
    assert witness.cosign(note, [])
    assert witness.state().size == 10


def test_witness_cosigns_empty_tree_then_growth_when_log_starts_empty(witness, honest_log):
    witness.cosign(_checkpoint_note(honest_log, 0), [])
    witness.cosign(_checkpoint_note(honest_log, 5), honest_log.consistency_proof(0, 5))
    assert witness.state().size == 5


def test_witness_refuses_smaller_tree_when_log_is_truncated(witness, honest_log):
    witness.cosign(_checkpoint_note(honest_log, 20), [])
    truncated = _tree(ENTRIES[:15])
    assert _refusal(witness, _checkpoint_note(truncated, 15), []) is RefusalReason.SMALLER_TREE
    assert witness.state().size == 20


def test_witness_refuses_inconsistent_when_middle_leaf_is_edited(witness, honest_log):
    witness.cosign(_checkpoint_note(honest_log, 20), [])
    edited = list(ENTRIES)
    edited[7] = b"rewritten event"
    rewritten = _tree(edited)
    reason = _refusal(witness, _checkpoint_note(rewritten, 30), rewritten.consistency_proof(20, 30))
    assert reason is RefusalReason.INCONSISTENT
    assert witness.state().root_hash == honest_log.root(20)


@pytest.mark.parametrize("proof", [[], [b"\x00" * 32], "garbage", None])
def test_witness_refuses_inconsistent_when_proof_is_missing_or_garbage(witness, honest_log, proof):
    witness.cosign(_checkpoint_note(honest_log, 20), [])
    assert _refusal(witness, _checkpoint_note(honest_log, 30), proof) is RefusalReason.INCONSISTENT


def test_witness_refuses_fork_when_same_size_has_different_root(witness, honest_log):
    witness.cosign(_checkpoint_note(honest_log, 20), [])
    forked = _tree(ENTRIES[:19] + [b"fork"])
    assert (
        _refusal(witness, _checkpoint_note(forked, 20), [])
        is RefusalReason.SAME_SIZE_DIFFERENT_ROOT
    )


def test_witness_refuses_bad_signature_when_signed_by_another_key(witness, honest_log):
    impostor = generate_signer(ORIGIN)
    assert (
        _refusal(witness, _checkpoint_note(honest_log, 10, impostor), [])
        is RefusalReason.BAD_SIGNATURE
    )
    assert witness.state() is None


def test_witness_refuses_bad_signature_when_note_is_tampered(witness, honest_log):
    note = _checkpoint_note(honest_log, 10).replace("\n10\n", "\n11\n", 1)
    assert _refusal(witness, note, []) is RefusalReason.BAD_SIGNATURE
    assert _refusal(witness, "not a note", []) is RefusalReason.BAD_SIGNATURE


def test_witness_refuses_wrong_origin_when_log_key_signs_another_origin(witness, honest_log):
    note = _checkpoint_note(honest_log, 10, origin="other.example/log")
    assert _refusal(witness, note, []) is RefusalReason.WRONG_ORIGIN


def test_witness_refuses_malformed_checkpoint_when_body_is_not_a_checkpoint(witness):
    note = sign_note(f"{ORIGIN}\nnot a size\n", LOG_SIGNER)
    assert _refusal(witness, note, []) is RefusalReason.MALFORMED_CHECKPOINT


def test_new_witness_instance_refuses_truncation_when_state_file_persists(tmp_path, honest_log):
    def make_witness() -> Witness:
        return Witness(
            WITNESS_NAME, generate_signer(WITNESS_NAME), LOG_SIGNER.verifier(), tmp_path / "w.json"
        )

    make_witness().cosign(_checkpoint_note(honest_log, 25), [])
    assert (
        _refusal(make_witness(), _checkpoint_note(honest_log, 24), []) is RefusalReason.SMALLER_TREE
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["w.json"]
    assert set(json.loads((tmp_path / "w.json").read_text())) == {"origin", "size", "root"}


@pytest.mark.parametrize("content", ["{", "{}", '{"origin": "o", "size": -1, "root": ""}', "[]"])
def test_witness_raises_state_error_when_state_file_is_corrupt(tmp_path, honest_log, content):
    (tmp_path / "state.json").write_text(content)
    witness = Witness(
        WITNESS_NAME, generate_signer(WITNESS_NAME), LOG_SIGNER.verifier(), tmp_path / "state.json"
    )
    with pytest.raises(WitnessStateError):
        witness.cosign(_checkpoint_note(honest_log, 10), [])


def test_witness_raises_value_error_when_name_differs_from_key_name(tmp_path):
    with pytest.raises(ValueError):
        Witness(
            "other.example/w",
            generate_signer(WITNESS_NAME),
            LOG_SIGNER.verifier(),
            tmp_path / "s.json",
        )
