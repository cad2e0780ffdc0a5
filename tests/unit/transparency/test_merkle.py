"""RFC 9162 §2.1 Merkle tree: roots, proofs and verifiers against an independent RFC reference."""

from __future__ import annotations

import hashlib
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.transparency.merkle import (
    EMPTY_ROOT,
    InMemoryNodeStore,
    InvalidLeafHashError,
    MerkleTree,
    MissingNodeError,
    NodeKey,
    ProofRequestError,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------------------
# Independent reference: RFC 6962 §2.1 / RFC 9162 §2.1, written from the text,
# over D = ENTRIES[low:high] (ranges instead of list copies so it can be cached).
# ---------------------------------------------------------------------------

REFERENCE_SIZE = 4200
ENTRIES = [f"referral-event-{number}".encode() for number in range(REFERENCE_SIZE)]


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """Largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@cache
def ref_mth(low: int, high: int) -> bytes:
    """MTH(D[low:high]) exactly as RFC 6962 §2.1."""
    n = high - low
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return _sha256(b"\x00" + ENTRIES[low])
    k = _k(n)
    return _sha256(b"\x01" + ref_mth(low, low + k) + ref_mth(low + k, high))


def ref_path(m: int, low: int, high: int) -> list[bytes]:
    """PATH(m, D[low:high]) exactly as RFC 6962 §2.1.1."""
    n = high - low
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return ref_path(m, low, low + k) + [ref_mth(low + k, high)]
    return ref_path(m - k, low + k, high) + [ref_mth(low, low + k)]


def ref_subproof(m: int, low: int, high: int, b: bool) -> list[bytes]:
    """SUBPROOF(m, D[low:high], b) exactly as RFC 6962 §2.1.2."""
    n = high - low
    if m == n:
        return [] if b else [ref_mth(low, high)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, low, low + k, b) + [ref_mth(low + k, high)]
    return ref_subproof(m - k, low + k, high, False) + [ref_mth(low, low + k)]


def ref_proof(m: int, n: int) -> list[bytes]:
    """PROOF(m, D[0:n]) exactly as RFC 6962 §2.1.2."""
    return ref_subproof(m, 0, n, True)


def _build_tree(count: int) -> tuple[MerkleTree, InMemoryNodeStore]:
    store = InMemoryNodeStore()
    tree = MerkleTree(store)
    tree.append_leaves(ENTRIES[:count])
    return tree, store


SHARED_TREE, _ = _build_tree(REFERENCE_SIZE)


def _flip_bit(value: bytes, bit: int) -> bytes:
    data = bytearray(value)
    data[(bit // 8) % len(data)] ^= 1 << (bit % 8)
    return bytes(data)


# ----------------------------------- hashing ------------------------------------


def test_leaf_and_node_hashes_use_domain_prefixes_when_computed():
    left, right = _sha256(b"l"), _sha256(b"r")
    assert leaf_hash(b"abc") == _sha256(b"\x00abc")
    assert node_hash(left, right) == _sha256(b"\x01" + left + right)


def test_root_is_sha256_of_empty_string_when_tree_is_empty():
    tree, _ = _build_tree(0)
    assert EMPTY_ROOT == _sha256(b"")
    assert tree.root() == EMPTY_ROOT
    assert root_from_leaf_hashes([]) == EMPTY_ROOT


# ------------------------- exhaustive small sizes 1..70 -------------------------


@pytest.mark.parametrize("size", range(1, 71))
def test_root_matches_reference_mth_when_size_is_small(size):
    leaf_hashes = [leaf_hash(entry) for entry in ENTRIES[:size]]
    assert SHARED_TREE.root(size) == ref_mth(0, size)
    assert root_from_leaf_hashes(leaf_hashes) == ref_mth(0, size)
    assert root_from_leaf_hashes(iter(leaf_hashes)) == ref_mth(0, size)


@pytest.mark.parametrize("size", range(1, 71))
def test_inclusion_proofs_match_reference_path_and_verify_when_size_is_small(size):
    root = SHARED_TREE.root(size)
    for index in range(size):
        proof = SHARED_TREE.inclusion_proof(index, size)
        assert proof == ref_path(index, 0, size)
        assert verify_inclusion(leaf_hash(ENTRIES[index]), index, size, proof, root)


@pytest.mark.parametrize("new_size", range(1, 71))
def test_consistency_proofs_match_reference_proof_and_verify_when_size_is_small(new_size):
    new_root = SHARED_TREE.root(new_size)
    for old_size in range(1, new_size + 1):
        proof = SHARED_TREE.consistency_proof(old_size, new_size)
        assert proof == ref_proof(old_size, new_size)
        assert verify_consistency(old_size, new_size, SHARED_TREE.root(old_size), new_root, proof)


# ------------------------------ random larger sizes ------------------------------


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_proofs_match_reference_and_verify_when_size_is_large_and_random(data):
    size = data.draw(st.integers(71, REFERENCE_SIZE), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    old_size = data.draw(st.integers(1, size), label="old_size")
    root = SHARED_TREE.root(size)
    assert root == ref_mth(0, size)
    inclusion = SHARED_TREE.inclusion_proof(index, size)
    assert inclusion == ref_path(index, 0, size)
    assert verify_inclusion(leaf_hash(ENTRIES[index]), index, size, inclusion, root)
    consistency = SHARED_TREE.consistency_proof(old_size, size)
    assert consistency == ref_proof(old_size, size)
    assert verify_consistency(old_size, size, SHARED_TREE.root(old_size), root, consistency)


# --------------------------------- tampering ------------------------------------


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_inclusion_verification_fails_when_anything_is_tampered(data):
    size = data.draw(st.integers(2, 300), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    bit = data.draw(st.integers(0, 255), label="bit")
    root = SHARED_TREE.root(size)
    leaf = leaf_hash(ENTRIES[index])
    proof = SHARED_TREE.inclusion_proof(index, size)
    position = data.draw(st.integers(0, len(proof) - 1), label="position")
    tampered_proof = list(proof)
    tampered_proof[position] = _flip_bit(proof[position], bit)
    assert not verify_inclusion(leaf, index, size, tampered_proof, root)
    assert not verify_inclusion(_flip_bit(leaf, bit), index, size, proof, root)
    assert not verify_inclusion(leaf, index, size, proof, _flip_bit(root, bit))
    assert not verify_inclusion(leaf, index, size, proof[:-1], root)
    assert not verify_inclusion(leaf, index, size, proof + [root], root)
    assert not verify_inclusion(leaf, (index + 1) % size, size, proof, root)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_consistency_verification_fails_when_anything_is_tampered(data):
    new_size = data.draw(st.integers(3, 300), label="new_size")
    old_size = data.draw(st.integers(1, new_size - 1), label="old_size")
    bit = data.draw(st.integers(0, 255), label="bit")
    old_root, new_root = SHARED_TREE.root(old_size), SHARED_TREE.root(new_size)
    proof = SHARED_TREE.consistency_proof(old_size, new_size)
    position = data.draw(st.integers(0, len(proof) - 1), label="position")
    tampered_proof = list(proof)
    tampered_proof[position] = _flip_bit(proof[position], bit)
    assert not verify_consistency(old_size, new_size, old_root, new_root, tampered_proof)
    assert not verify_consistency(old_size, new_size, _flip_bit(old_root, bit), new_root, proof)
    assert not verify_consistency(old_size, new_size, old_root, _flip_bit(new_root, bit), proof)
    assert not verify_consistency(old_size, new_size, old_root, new_root, proof[:-1])
    assert not verify_consistency(old_size, new_size, old_root, new_root, proof + [new_root])


def test_inclusion_proof_fails_when_leaf_is_edited_and_tree_rebuilt():
    edited = list(ENTRIES[:40])
    edited[17] = b"forged"
    forged_tree = MerkleTree(InMemoryNodeStore())
    forged_tree.append_leaves(edited)
    honest_root = SHARED_TREE.root(40)
    assert forged_tree.root() != honest_root
    forged_proof = forged_tree.inclusion_proof(17, 40)
    assert not verify_inclusion(leaf_hash(b"forged"), 17, 40, forged_proof, honest_root)
    assert not verify_consistency(
        20, 40, SHARED_TREE.root(20), forged_tree.root(), forged_tree.consistency_proof(20, 40)
    )


# ------------------------------ consistency edges ------------------------------


def test_consistency_accepts_only_empty_proof_and_equal_roots_when_sizes_are_equal():
    root = SHARED_TREE.root(9)
    assert SHARED_TREE.consistency_proof(9, 9) == []
    assert verify_consistency(9, 9, root, root, [])
    assert not verify_consistency(9, 9, root, SHARED_TREE.root(8), [])
    assert not verify_consistency(9, 9, root, root, [root])


def test_consistency_accepts_only_empty_proof_and_empty_root_when_old_size_is_zero():
    new_root = SHARED_TREE.root(9)
    assert SHARED_TREE.consistency_proof(0, 9) == []
    assert verify_consistency(0, 9, EMPTY_ROOT, new_root, [])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 9, new_root, new_root, [])
    assert not verify_consistency(0, 9, EMPTY_ROOT, new_root, [new_root])


def test_consistency_fails_when_proof_is_empty_or_sizes_shrink():
    assert not verify_consistency(4, 9, SHARED_TREE.root(4), SHARED_TREE.root(9), [])
    proof = SHARED_TREE.consistency_proof(4, 9)
    assert not verify_consistency(9, 4, SHARED_TREE.root(9), SHARED_TREE.root(4), proof)


GOOD_HASH = _sha256(b"x")
GARBAGE_VALUES = [
    None,
    "text",
    -1,
    True,
    1.5,
    b"short",
    bytes(33),
    [1, 2],
    [b"short"],
    {"a": 1},
    2**70,
    object(),
]


@pytest.mark.parametrize("garbage", GARBAGE_VALUES)
def test_verifiers_return_false_when_any_argument_is_garbage(garbage):
    proof = SHARED_TREE.inclusion_proof(2, 5)
    inclusion_args = [leaf_hash(ENTRIES[2]), 2, 5, proof, SHARED_TREE.root(5)]
    consistency_args = [
        3,
        5,
        SHARED_TREE.root(3),
        SHARED_TREE.root(5),
        SHARED_TREE.consistency_proof(3, 5),
    ]
    assert verify_inclusion(*inclusion_args)
    assert verify_consistency(*consistency_args)
    for position in range(5):
        broken = list(inclusion_args)
        broken[position] = garbage
        assert verify_inclusion(*broken) is False
        broken = list(consistency_args)
        broken[position] = garbage
        assert verify_consistency(*broken) is False


def test_verifiers_return_false_when_proof_is_enormous():
    proof = [GOOD_HASH] * 10_000
    assert verify_inclusion(GOOD_HASH, 0, 2**64, proof, GOOD_HASH) is False
    assert verify_consistency(1, 2**64, GOOD_HASH, GOOD_HASH, proof) is False


# ------------------------------ incremental appends ------------------------------


@settings(max_examples=40, deadline=None)
@given(batch_sizes=st.lists(st.integers(0, 40), min_size=1, max_size=20))
def test_batched_appends_store_same_nodes_when_batch_sizes_vary(batch_sizes):
    total = sum(batch_sizes)
    one_batch_tree, one_batch_store = _build_tree(total)
    store = InMemoryNodeStore()
    tree = MerkleTree(store)
    returned: dict[NodeKey, bytes] = {}
    position = 0
    for batch_size in batch_sizes:
        new_nodes = tree.append_leaves(ENTRIES[position : position + batch_size])
        assert not set(new_nodes) & set(returned)
        returned.update(new_nodes)
        position += batch_size
        assert tree.size == position
        assert tree.root() == ref_mth(0, position)
    assert store.all_nodes() == one_batch_store.all_nodes() == returned
    assert tree.root() == one_batch_tree.root()


def test_append_returns_only_completed_perfect_subtrees_when_tree_grows():
    tree, _ = _build_tree(3)
    new_nodes = tree.append_leaves([ENTRIES[3]])
    assert set(new_nodes) == {(0, 3), (1, 1), (2, 0)}
    assert new_nodes[(2, 0)] == ref_mth(0, 4)
    assert tree.append_leaf_hashes([]) == {}


def test_append_uses_one_read_and_one_write_when_batch_is_appended():
    store = _CountingStore()
    tree = MerkleTree(store)
    tree.append_leaves(ENTRIES[:13])
    store.reset_counts()
    tree.append_leaves(ENTRIES[13:50])
    assert (store.get_calls, store.put_calls) == (1, 1)


@pytest.mark.parametrize("bad_leaf", [b"", bytes(31), bytes(33), "0" * 32, None])
def test_append_raises_when_leaf_hash_is_not_32_bytes(bad_leaf):
    tree, store = _build_tree(2)
    with pytest.raises(InvalidLeafHashError):
        tree.append_leaf_hashes([GOOD_HASH, bad_leaf])
    assert store.size() == 2


# ------------------------------ request validation ------------------------------


@pytest.mark.parametrize(
    "request_proof",
    [
        lambda tree: tree.inclusion_proof(5, 5),
        lambda tree: tree.inclusion_proof(-1, 5),
        lambda tree: tree.inclusion_proof(0, 0),
        lambda tree: tree.inclusion_proof(0, 11),
        lambda tree: tree.consistency_proof(6, 5),
        lambda tree: tree.consistency_proof(-1, 5),
        lambda tree: tree.consistency_proof(3, 11),
        lambda tree: tree.root(11),
        lambda tree: tree.root(True),
    ],
)
def test_proof_request_raises_when_index_or_size_is_out_of_range(request_proof):
    tree, _ = _build_tree(10)
    with pytest.raises(ProofRequestError):
        request_proof(tree)


def test_root_raises_when_store_lost_a_node():
    store = _CountingStore()
    tree = MerkleTree(store)
    tree.append_leaves(ENTRIES[:6])
    del store.nodes[(1, 2)]
    with pytest.raises(MissingNodeError):
        tree.root()


# ------------------------------ five million leaves ------------------------------


class _CountingStore:
    """NodeStore that counts calls and keys read."""

    def __init__(self) -> None:
        self.nodes: dict[NodeKey, bytes] = {}
        self.stored_size = 0
        self.reset_counts()

    def reset_counts(self) -> None:
        self.get_calls = self.put_calls = self.keys_read = 0

    def get_nodes(self, keys):
        keys = list(keys)
        self.get_calls += 1
        self.keys_read += len(keys)
        return {key: self._lookup(key) for key in keys if self._lookup(key) is not None}

    def _lookup(self, key: NodeKey) -> bytes | None:
        return self.nodes.get(key)

    def put_nodes(self, nodes) -> None:
        self.put_calls += 1
        self.nodes.update(nodes)

    def size(self) -> int:
        return self.stored_size

    def set_size(self, size: int) -> None:
        self.stored_size = size


class _UniformLeavesStore(_CountingStore):
    """A real tree in which every leaf is the same, so level L nodes all share one hash."""

    def __init__(self, size: int, leaf: bytes) -> None:
        super().__init__()
        self.stored_size = size
        self.level_hashes = [leaf]
        for _ in range(64):
            self.level_hashes.append(node_hash(self.level_hashes[-1], self.level_hashes[-1]))

    def _lookup(self, key: NodeKey) -> bytes | None:
        level, index = key
        if key in self.nodes:
            return self.nodes[key]
        if (index + 1) << level <= self.stored_size:
            return self.level_hashes[level]
        return None


def test_proofs_read_few_nodes_in_one_call_when_tree_has_five_million_leaves():
    size = 5_000_000
    leaf = leaf_hash(b"same")
    store = _UniformLeavesStore(size, leaf)
    tree = MerkleTree(store)
    root = tree.root()
    for index in (0, 1, 2_499_999, 4_194_303, 4_194_304, size - 2, size - 1):
        store.reset_counts()
        proof = tree.inclusion_proof(index, size)
        assert (store.get_calls, store.keys_read <= 2 * 23) == (1, True)
        assert verify_inclusion(leaf, index, size, proof, root)
    for old_size in (1, 3, 1_048_576, 2_999_999, size - 1):
        store.reset_counts()
        proof = tree.consistency_proof(old_size, size)
        assert (store.get_calls, store.keys_read <= 2 * 23) == (1, True)
        assert verify_consistency(old_size, size, tree.root(old_size), root, proof)
    store.reset_counts()
    tree.append_leaf_hashes([leaf] * 100)
    assert (store.get_calls, store.put_calls, store.keys_read) == (1, 1, bin(size).count("1"))
    assert verify_consistency(size, size + 100, root, tree.root(), tree.consistency_proof(size))
