"""RFC 9162 §2.1 Merkle tree hashing, proof construction and proof verification (pure, no I/O).

* leaf hash  ``MTH({d}) = SHA-256(0x00 || d)``
* node hash  ``SHA-256(0x01 || left || right)``
* a tree of ``n > 1`` leaves splits at ``k``, the largest power of two smaller than ``n``.

The log stores the hash of every *complete, aligned* subtree: node ``(level, index)`` covers
leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 holds the leaf hashes. Any range
the RFC's recursions ask for (``MTH(D[a:b])`` in ``PATH`` and ``SUBPROOF``) decomposes into at most
``log2(n)`` such nodes, so a proof at any tree size needs ``O(log n)`` stored hashes. The functions
here only *plan* which nodes a proof needs and *assemble* it from them; the store fetches them.

Verification follows the algorithms of RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency)
step by step; they return ``False`` for anything that does not verify and never raise on hostile
input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "NodeKey",
    "assemble",
    "consistency_ranges",
    "fold_range",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "range_nodes",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeKey = tuple[int, int]
"""``(level, index)`` of a complete aligned subtree."""

_sha256 = hashlib.sha256


def leaf_hash(entry: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``SHA-256(0x00 || entry)``."""
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """``MTH(D[n])`` computed directly from the definition (reference implementation, O(n))."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(root_from_leaf_hashes(leaves[:k]), root_from_leaf_hashes(leaves[k:]))


def range_nodes(start: int, end: int) -> list[NodeKey]:
    """The complete aligned subtrees that make up ``D[start:end]``, left to right.

    Valid for the ranges the RFC recursions produce (``start`` is a multiple of every power of two
    not larger than ``end - start``), which is all this module ever asks for.
    """
    out: list[NodeKey] = []
    pos, size = start, end - start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, pos >> level))
            pos += 1 << level
    return out


def fold_range(hashes: Sequence[bytes]) -> bytes:
    """``MTH`` of a range from its :func:`range_nodes` hashes (left to right)."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.3.1 ``PATH(m, D[n])``: the ranges whose ``MTH`` form the proof, in proof order."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.4.1 ``PROOF(m, D[n])``: the ranges whose ``MTH`` form the proof, in proof order."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old in (0, new):
        return []
    out: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, new, old, True
    while True:
        size = hi - lo
        if m == size:
            if not complete:
                out.append((lo, hi))
            break
        k = _split(size)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
            m -= k
            complete = False
    out.reverse()
    return out


def assemble(ranges: Iterable[tuple[int, int]], nodes: Mapping[NodeKey, bytes]) -> list[bytes]:
    """Turn proof ranges into proof hashes using fetched nodes (KeyError if one is missing)."""
    return [fold_range([nodes[key] for key in range_nodes(a, b)]) for a, b in ranges]


def _ok_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show leaf hash ``leaf`` at ``index`` in the tree ``(size, root)``?"""
    if not (_ok_hash(leaf) and _ok_hash(root)) or not all(_ok_hash(p) for p in proof):
        return False
    if not (isinstance(index, int) and isinstance(size, int)) or not 0 <= index < size:  # step 1
        return False
    fn, sn = index, size - 1  # step 2
    r = leaf  # step 3
    for p in proof:  # step 4
        if sn == 0:  # 4a
            return False
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    return sn == 0 and r == root  # step 5


def verify_consistency(  # noqa: PLR0911, PLR0912 - mirrors the RFC's numbered steps
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree ``(new, new_root)`` an append-only extension of ``(old, old_root)``?

    Size 0 is consistent with every tree (empty proof, ``old_root`` must be the empty root); equal
    sizes need an empty proof and equal roots.
    """
    if not (_ok_hash(old_root) and _ok_hash(new_root)) or not all(_ok_hash(p) for p in proof):
        return False
    if not (isinstance(old, int) and isinstance(new, int)) or not 0 <= old <= new:
        return False
    if old == 0:
        return not proof and old_root == EMPTY_ROOT
    if old == new:
        return not proof and old_root == new_root
    if not proof:  # step 1
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # step 2: old is an exact power of two
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # 6a
            return False
        if fn & 1 or fn == sn:  # 6b
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # 6c
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0  # step 7
