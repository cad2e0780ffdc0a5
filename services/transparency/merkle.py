"""RFC 9162 §2.1 (= RFC 6962 §2.1) Merkle tree over SHA-256, stored as perfect subtrees.

Follows the spec exactly for hashing (leaf prefix 0x00, node prefix 0x01, empty tree =
SHA-256("")), for proof contents and order (PATH §2.1.3.1, PROOF §2.1.4.1) and for the
verification algorithms (§2.1.3.2, §2.1.4.2).

Storage layout: the hash of every *complete* perfect subtree is stored under
``(level, index)``; it covers leaves ``[index * 2**level, (index + 1) * 2**level)``.
Level 0 holds the leaf hashes. Nodes of incomplete subtrees are never stored: any root
or proof for any size ``<= store.size()`` is a right fold over O(log n) stored nodes,
fetched in a single ``get_nodes`` call.

Choices beyond the RFC (documented, not deviations in the hashes or proofs):
- ``verify_consistency`` with ``old_size == 0`` accepts only an empty proof *and*
  ``old_root == EMPTY_ROOT`` (the RFC leaves the empty tree undefined).
- Verifiers never raise; any malformed input (wrong types, non-32-byte hashes,
  negative sizes) returns ``False``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

NodeKey = tuple[int, int]
"""(level, index) of a perfect subtree; level 0 = leaf hashes."""

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_MAX_PROOF_LENGTH = 128


class MerkleTreeError(Exception):
    """Raised when the Merkle tree cannot serve a request (base class)."""


class ProofRequestError(MerkleTreeError, ValueError):
    """Raised when a root or proof is asked for an index or size the tree does not have."""


class InvalidLeafHashError(MerkleTreeError, ValueError):
    """Raised when an appended leaf hash is not 32 bytes."""


class MissingNodeError(MerkleTreeError):
    """Raised when the node store lacks a perfect subtree that its size says must exist."""


def leaf_hash(data: bytes) -> bytes:
    """Return SHA-256(0x00 || data), the leaf hash of RFC 9162 §2.1.1."""
    return hashlib.sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return SHA-256(0x01 || left || right), the interior node hash of RFC 9162 §2.1.1."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root_from_leaf_hashes(leaf_hashes: Iterable[bytes]) -> bytes:
    """Return MTH (RFC 9162 §2.1.1) of a contiguous batch of leaf hashes, streaming in O(log n) memory."""
    # Stack of (level, hash) for completed perfect subtrees, largest first.
    stack: list[tuple[int, bytes]] = []
    for leaf in leaf_hashes:
        _check_leaf_hash(leaf)
        level, node = 0, bytes(leaf)
        while stack and stack[-1][0] == level:
            _, left = stack.pop()
            node = node_hash(left, node)
            level += 1
        stack.append((level, node))
    if not stack:
        return EMPTY_ROOT
    root = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        root = node_hash(left, root)
    return root


class NodeStore(Protocol):
    """Persistence port for perfect-subtree hashes keyed by (level, index)."""

    def get_nodes(self, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        """Return the stored hashes for ``keys``; absent keys are simply missing."""
        ...

    def put_nodes(self, nodes: Mapping[NodeKey, bytes]) -> None:
        """Store (upsert) the given perfect-subtree hashes."""
        ...

    def size(self) -> int:
        """Return the number of leaves committed to the tree."""
        ...

    def set_size(self, size: int) -> None:
        """Record the number of leaves committed to the tree."""
        ...


class InMemoryNodeStore:
    """Dictionary-backed NodeStore for tests and small tools."""

    def __init__(self) -> None:
        self._nodes: dict[NodeKey, bytes] = {}
        self._size = 0

    def get_nodes(self, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        """Return the stored hashes for ``keys``."""
        return {key: self._nodes[key] for key in keys if key in self._nodes}

    def put_nodes(self, nodes: Mapping[NodeKey, bytes]) -> None:
        """Store the given hashes."""
        self._nodes.update(nodes)

    def size(self) -> int:
        """Return the committed leaf count."""
        return self._size

    def set_size(self, size: int) -> None:
        """Record the committed leaf count."""
        self._size = size

    def all_nodes(self) -> dict[NodeKey, bytes]:
        """Return a copy of every stored node (for tests and audits)."""
        return dict(self._nodes)


class MerkleTree:
    """Append-only RFC 9162 Merkle tree whose perfect subtrees live in a NodeStore."""

    def __init__(self, store: NodeStore) -> None:
        self._store = store

    @property
    def size(self) -> int:
        """Number of leaves in the tree."""
        return self._store.size()

    def append_leaves(self, entries: Iterable[bytes]) -> dict[NodeKey, bytes]:
        """Hash raw entries as RFC 9162 §2.1.1 leaves and append them as one batch."""
        return self.append_leaf_hashes([leaf_hash(entry) for entry in entries])

    def append_leaf_hashes(self, leaf_hashes: Sequence[bytes]) -> dict[NodeKey, bytes]:
        """Append leaf hashes; store and return every perfect subtree they complete (one put per batch)."""
        new_hashes = [bytes(_check_leaf_hash(leaf)) for leaf in leaf_hashes]
        if not new_hashes:
            return {}
        start = self._store.size()
        frontier = self._fetch(_perfect_subtree_keys(0, start))
        new_nodes: dict[NodeKey, bytes] = {}
        for offset, node in enumerate(new_hashes):
            level, index = 0, start + offset
            new_nodes[(0, index)] = node
            while index & 1:
                sibling_key = (level, index - 1)
                left = new_nodes.get(sibling_key)
                if left is None:
                    left = frontier[sibling_key]
                node = node_hash(left, node)
                level, index = level + 1, index >> 1
                new_nodes[(level, index)] = node
        self._store.put_nodes(new_nodes)
        self._store.set_size(start + len(new_hashes))
        return new_nodes

    def root(self, size: int | None = None) -> bytes:
        """Return MTH(D[0:size]) (RFC 9162 §2.1.1) from O(log n) stored nodes."""
        size = self._checked_size(size)
        if size == 0:
            return EMPTY_ROOT
        keys = _perfect_subtree_keys(0, size)
        return _fold(keys, self._fetch(keys))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, deepest sibling first."""
        size = self._checked_size(size)
        if not _is_int(index) or not 0 <= index < size:
            raise ProofRequestError(f"leaf index {index!r} is outside a tree of size {size}")
        return self._hash_ranges(_inclusion_ranges(index, size))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Return PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1 (empty when old is 0 or equal)."""
        new_size = self._checked_size(new_size)
        if not _is_int(old_size) or not 0 <= old_size <= new_size:
            raise ProofRequestError(f"old size {old_size!r} is outside 0..{new_size}")
        if old_size in (0, new_size):
            return []
        return self._hash_ranges(_consistency_ranges(old_size, new_size))

    def _hash_ranges(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        keys_per_range = [_perfect_subtree_keys(start, end) for start, end in ranges]
        nodes = self._fetch([key for keys in keys_per_range for key in keys])
        return [_fold(keys, nodes) for keys in keys_per_range]

    def _checked_size(self, size: int | None) -> int:
        stored = self._store.size()
        if size is None:
            return stored
        if not _is_int(size) or not 0 <= size <= stored:
            raise ProofRequestError(f"tree size {size!r} is outside 0..{stored}")
        return size

    def _fetch(self, keys: list[NodeKey]) -> dict[NodeKey, bytes]:
        if not keys:
            return {}
        unique_keys = list(dict.fromkeys(keys))
        nodes = self._store.get_nodes(unique_keys)
        missing = [key for key in unique_keys if key not in nodes]
        if missing:
            raise MissingNodeError(f"node store lacks perfect subtrees {missing[:5]}")
        return nodes


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Verify an inclusion proof per RFC 9162 §2.1.3.2; False on any malformed input."""
    try:
        if not (_is_hash(leaf_hash) and _is_hash(root) and _is_int(index) and _is_int(size)):
            return False
        if not _is_proof(proof) or not 0 <= index < size:
            return False
        fn, sn = index, size - 1
        result = bytes(leaf_hash)
        for sibling in proof:
            if sn == 0:
                return False
            if fn & 1 or fn == sn:
                result = node_hash(bytes(sibling), result)
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
            else:
                result = node_hash(result, bytes(sibling))
            fn, sn = fn >> 1, sn >> 1
        return sn == 0 and hmac.compare_digest(result, bytes(root))
    except Exception:  # noqa: BLE001 - a verifier answers False, never raises
        return False


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Verify a consistency proof per RFC 9162 §2.1.4.2; False on any malformed input."""
    try:
        if not (
            _is_int(old_size) and _is_int(new_size) and _is_hash(old_root) and _is_hash(new_root)
        ):
            return False
        if not _is_proof(proof) or not 0 <= old_size <= new_size:
            return False
        old_root, new_root = bytes(old_root), bytes(new_root)
        if old_size == new_size:
            return len(proof) == 0 and hmac.compare_digest(old_root, new_root)
        if old_size == 0:
            return len(proof) == 0 and hmac.compare_digest(old_root, EMPTY_ROOT)
        if len(proof) == 0:
            return False
        path = [bytes(node) for node in proof]
        if old_size & (old_size - 1) == 0:
            path.insert(0, old_root)
        fn, sn = old_size - 1, new_size - 1
        while fn & 1:
            fn, sn = fn >> 1, sn >> 1
        old_result = new_result = path[0]
        for node in path[1:]:
            if sn == 0:
                return False
            if fn & 1 or fn == sn:
                old_result = node_hash(node, old_result)
                new_result = node_hash(node, new_result)
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
            else:
                new_result = node_hash(new_result, node)
            fn, sn = fn >> 1, sn >> 1
        return (
            sn == 0
            and hmac.compare_digest(old_result, old_root)
            and hmac.compare_digest(new_result, new_root)
        )
    except Exception:  # noqa: BLE001 - a verifier answers False, never raises
        return False


def _perfect_subtree_keys(start: int, end: int) -> list[NodeKey]:
    """Split leaves [start, end) greedily into aligned perfect subtrees, left to right."""
    keys: list[NodeKey] = []
    position = start
    while position < end:
        level = (end - position).bit_length() - 1
        if position:
            level = min(level, (position & -position).bit_length() - 1)
        keys.append((level, position >> level))
        position += 1 << level
    return keys


def _fold(keys: list[NodeKey], nodes: Mapping[NodeKey, bytes]) -> bytes:
    """Right-fold perfect subtrees (largest first) into MTH of the range they cover."""
    result = nodes[keys[-1]]
    for key in reversed(keys[:-1]):
        result = node_hash(nodes[key], result)
    return result


def _split_point(count: int) -> int:
    """Return k, the largest power of two smaller than count (RFC 9162 §2.1.1), for count > 1."""
    return 1 << ((count - 1).bit_length() - 1)


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form PATH(index, D[0:size]), in RFC output order."""
    ranges: list[tuple[int, int]] = []
    low, high = 0, size
    while high - low > 1:
        middle = low + _split_point(high - low)
        if index < middle:
            ranges.append((middle, high))
            high = middle
        else:
            ranges.append((low, middle))
            low = middle
    ranges.reverse()
    return ranges


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form PROOF(old_size, D[0:new_size]), in RFC output order."""
    ranges: list[tuple[int, int]] = []
    low, high = 0, new_size
    is_whole_old_tree = True
    while old_size != high:
        middle = low + _split_point(high - low)
        if old_size <= middle:
            ranges.append((middle, high))
            high = middle
        else:
            ranges.append((low, middle))
            low = middle
            is_whole_old_tree = False
    if not is_whole_old_tree:
        ranges.append((low, high))
    ranges.reverse()
    return ranges


def _check_leaf_hash(leaf: bytes) -> bytes:
    if not _is_hash(leaf):
        raise InvalidLeafHashError(f"leaf hash must be {HASH_SIZE} bytes, got {leaf!r:.80}")
    return leaf


def _is_hash(value: object) -> bool:
    return isinstance(value, (bytes, bytearray)) and len(value) == HASH_SIZE


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_proof(proof: object) -> bool:
    return (
        isinstance(proof, (list, tuple))
        and len(proof) <= _MAX_PROOF_LENGTH
        and all(_is_hash(node) for node in proof)
    )
