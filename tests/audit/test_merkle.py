"""RFC 9162 §2.1: known-answer roots and proofs, hostile proof probes, and a property test."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xborder_gateway.audit import merkle
from xborder_gateway.audit.log import _Frontier

# The RFC 6962/9162 reference inputs (certificate-transparency test data) and the published roots.
CT_INPUTS = [bytes.fromhex(x) for x in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                         "606162636465666768696a6b6c6d6e6f"]]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (0, 8), (5, 8) and the consistency proofs (2, 8), (6, 8), (2, 5) are the certificate-transparency test
# data; the others are derived by hand from the RFC definitions (commented where they are).
CT_INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    # derived: the only sibling of leaf 2 in a tree of 3 is MTH(D[0:2]), the size-2 root
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    # derived by hand from the RFC's PATH definition: leaf 0, MTH(D[2:4]), leaf 4
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CT_CONSISTENCY = [
    (1, 1, []),
    (2, 8, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    # derived by hand from SUBPROOF: for old = 1 the proof equals leaf 0's inclusion path
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]


def leaves_of(n: int, salt: bytes = b"") -> list[bytes]:
    return [merkle.leaf_hash(salt + i.to_bytes(4, "big")) for i in range(n)]


def nodes_of(leaves: list[bytes]) -> dict[merkle.NodeKey, bytes]:
    """Every complete aligned subtree, built the way the log builds them (the frontier)."""
    out: list[tuple[int, int, bytes]] = []
    frontier = _Frontier([])
    for i, leaf in enumerate(leaves):
        frontier.push(i, leaf, out)
    return {(level, idx): h for level, idx, h in out}


# --- reference proofs straight from the RFC's recursive definitions (O(n), for cross-checking) -------
def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*ref_path(m, leaves[:k]), merkle.root_from_leaf_hashes(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), merkle.root_from_leaf_hashes(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [merkle.root_from_leaf_hashes(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], complete), merkle.root_from_leaf_hashes(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), merkle.root_from_leaf_hashes(leaves[:k])]


def test_leaf_and_node_hash_prefixes() -> None:
    assert merkle.leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert merkle.node_hash(b"l" * 32, b"r" * 32) == hashlib.sha256(b"\x01" + b"l" * 32 + b"r" * 32).digest()


@pytest.mark.parametrize("size", range(9))
def test_known_answer_roots(size: int) -> None:
    leaves = [merkle.leaf_hash(d) for d in CT_INPUTS[:size]]
    assert merkle.root_from_leaf_hashes(leaves).hex() == CT_ROOTS[size]
    frontier = _Frontier([])
    for i, leaf in enumerate(leaves):
        frontier.push(i, leaf, [])
    assert frontier.root().hex() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION)
def test_known_answer_inclusion(index: int, size: int, proof: list[str]) -> None:
    leaves = [merkle.leaf_hash(d) for d in CT_INPUTS]
    got = merkle.assemble(merkle.inclusion_ranges(index, size), nodes_of(leaves))
    assert [h.hex() for h in got] == proof
    assert merkle.verify_inclusion(leaves[index], index, size, got, bytes.fromhex(CT_ROOTS[size]))


@pytest.mark.parametrize(("old", "new", "proof"), CT_CONSISTENCY)
def test_known_answer_consistency(old: int, new: int, proof: list[str]) -> None:
    leaves = [merkle.leaf_hash(d) for d in CT_INPUTS]
    got = merkle.assemble(merkle.consistency_ranges(old, new), nodes_of(leaves))
    assert [h.hex() for h in got] == proof
    assert merkle.verify_consistency(old, new, bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new]), got)


# --- proof probes (each mutation must be rejected) ----------------------------------------------------
def _flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8 % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


GARBAGE = hashlib.sha256(b"garbage").digest()


def inclusion_probes(index: int, size: int, proof: list[bytes], leaf: bytes, root: bytes) -> list[tuple[str, tuple]]:
    probes: list[tuple[str, tuple]] = []
    for j in range(len(proof)):
        for bit in (0, 77, 255):
            p = list(proof)
            p[j] = _flip(p[j], bit)
            probes.append((f"hash {j} bit {bit} flipped", (leaf, index, size, p, root)))
        probes.append((f"hash {j} removed", (leaf, index, size, proof[:j] + proof[j + 1:], root)))
        probes.append((f"hash {j} truncated to 31 bytes", (leaf, index, size,
                                                           [*proof[:j], proof[j][:31], *proof[j + 1:]], root)))
    for j in range(len(proof) + 1):
        probes.append((f"garbage inserted at {j}", (leaf, index, size, [*proof[:j], GARBAGE, *proof[j:]], root)))
    probes += [
        ("garbage before", (leaf, index, size, [GARBAGE, *proof], root)),
        ("garbage after", (leaf, index, size, [*proof, GARBAGE], root)),
        ("index - 1", (leaf, index - 1, size, proof, root)),
        ("index + 1", (leaf, index + 1, size, proof, root)),
        ("size * 2", (leaf, index, size * 2, proof, root)),
        ("size // 2", (leaf, index, size // 2, proof, root)),
        ("leaf bit flipped", (_flip(leaf, 3), index, size, proof, root)),
        ("root bit flipped", (leaf, index, size, proof, _flip(root, 200))),
        ("empty proof", (leaf, index, size, [], root)),
        ("proof reversed", (leaf, index, size, proof[::-1], root)),
        ("leaf given as entry hash without 0x00 prefix", (hashlib.sha256(b"x").digest(), index, size, proof, root)),
    ]
    if len(set(proof)) < 2:
        probes = [p for p in probes if p[0] != "proof reversed"]
    if not proof:  # the genuine proof is already empty
        probes = [p for p in probes if p[0] != "empty proof"]
    return probes


def consistency_probes(old: int, new: int, proof: list[bytes], old_root: bytes,
                       new_root: bytes) -> list[tuple[str, tuple]]:
    probes: list[tuple[str, tuple]] = []
    for j in range(len(proof)):
        for bit in (0, 77, 255):
            p = list(proof)
            p[j] = _flip(p[j], bit)
            probes.append((f"hash {j} bit {bit} flipped", (old, new, old_root, new_root, p)))
        probes.append((f"hash {j} removed", (old, new, old_root, new_root, proof[:j] + proof[j + 1:])))
    for j in range(len(proof) + 1):
        probes.append((f"garbage inserted at {j}", (old, new, old_root, new_root, [*proof[:j], GARBAGE, *proof[j:]])))
    probes += [
        ("garbage before", (old, new, old_root, new_root, [GARBAGE, *proof])),
        ("garbage after", (old, new, old_root, new_root, [*proof, GARBAGE])),
        ("old - 1", (old - 1, new, old_root, new_root, proof)),
        ("old + 1", (old + 1, new, old_root, new_root, proof)),
        # not probed: new +/- 1. RFC 9162 §2.1.4.2 binds the new size only through the proof's shape, and
        # e.g. 4 -> 7 and 4 -> 8 share it (one hash: the right subtree). The size is bound by the signed
        # checkpoint that carries it with the root; transparency-dev/merkle behaves the same.
        ("new * 2", (old, new * 2, old_root, new_root, proof)),
        ("old // 2", (old // 2, new, old_root, new_root, proof)),
        ("old root bit flipped", (old, new, _flip(old_root, 9), new_root, proof)),
        ("new root bit flipped", (old, new, old_root, _flip(new_root, 9), proof)),
        ("roots swapped", (old, new, new_root, old_root, proof)),
        ("sizes swapped", (new, old, new_root, old_root, proof)),
        ("empty proof", (old, new, old_root, new_root, [])),
    ]
    return probes


PROBE_TREE = leaves_of(300, b"probe")
PROBE_NODES = nodes_of(PROBE_TREE)
INCLUSION_CASES = [(0, 1), (0, 2), (1, 2), (5, 8), (6, 7), (0, 300), (255, 256), (256, 257), (299, 300), (123, 129)]
CONSISTENCY_CASES = [(1, 2), (2, 5), (3, 7), (4, 8), (6, 8), (7, 8), (8, 9), (100, 300), (128, 256), (255, 256),
                     (256, 300), (1, 300)]


@pytest.mark.parametrize(("index", "size"), INCLUSION_CASES)
def test_inclusion_probes_all_rejected(index: int, size: int) -> None:
    proof = merkle.assemble(merkle.inclusion_ranges(index, size), PROBE_NODES)
    root = merkle.root_from_leaf_hashes(PROBE_TREE[:size])
    leaf = PROBE_TREE[index]
    assert merkle.verify_inclusion(leaf, index, size, proof, root), "the genuine proof must verify"
    probes = inclusion_probes(index, size, proof, leaf, root)
    accepted = [name for name, args in probes if merkle.verify_inclusion(*args)]
    assert accepted == [], f"probes accepted for ({index}, {size}): {accepted}"
    assert len(probes) >= 10


@pytest.mark.parametrize(("old", "new"), CONSISTENCY_CASES)
def test_consistency_probes_all_rejected(old: int, new: int) -> None:
    proof = merkle.assemble(merkle.consistency_ranges(old, new), PROBE_NODES)
    old_root = merkle.root_from_leaf_hashes(PROBE_TREE[:old])
    new_root = merkle.root_from_leaf_hashes(PROBE_TREE[:new])
    assert merkle.verify_consistency(old, new, old_root, new_root, proof), "the genuine proof must verify"
    probes = consistency_probes(old, new, proof, old_root, new_root)
    accepted = [name for name, args in probes if merkle.verify_consistency(*args)]
    assert accepted == [], f"probes accepted for ({old}, {new}): {accepted}"


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("index equal to size", (PROBE_TREE[0], 8, 8, [], merkle.EMPTY_ROOT)),
        ("negative index", (PROBE_TREE[0], -1, 8, [], merkle.EMPTY_ROOT)),
        ("size 0", (PROBE_TREE[0], 0, 0, [], merkle.EMPTY_ROOT)),
        ("not bytes", ("00" * 32, 0, 1, [], "00" * 32)),
        ("short root", (PROBE_TREE[0], 0, 1, [], PROBE_TREE[0][:31])),
    ],
)
def test_inclusion_degenerate_inputs_rejected(name: str, args: tuple) -> None:
    assert not merkle.verify_inclusion(*args), name


def test_consistency_degenerate_cases() -> None:
    r4, r5 = (merkle.root_from_leaf_hashes(PROBE_TREE[:n]) for n in (4, 5))
    assert merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, r5, [])
    assert not merkle.verify_consistency(0, 5, r4, r5, []), "size 0 must have the empty root"
    assert not merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, r5, [GARBAGE])
    assert merkle.verify_consistency(4, 4, r4, r4, [])
    assert not merkle.verify_consistency(4, 4, r4, r5, [])
    assert not merkle.verify_consistency(4, 4, r4, r4, [r4])
    assert not merkle.verify_consistency(5, 4, r5, r4, [])
    with pytest.raises(ValueError, match="not in a tree"):
        merkle.inclusion_ranges(5, 5)
    with pytest.raises(ValueError, match="no consistency proof"):
        merkle.consistency_ranges(6, 5)


@settings(max_examples=150, deadline=None)
@given(size=st.integers(min_value=1, max_value=700), data=st.data())
def test_property_proofs_match_the_rfc_definitions_and_verify(size: int, data: st.DataObject) -> None:
    leaves = leaves_of(size, b"prop")
    nodes = nodes_of(leaves)
    root = merkle.root_from_leaf_hashes(leaves)
    # the stored aligned subtrees give the same root as the recursive definition
    assert merkle.fold_range([nodes[k] for k in merkle.range_nodes(0, size)]) == root
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    proof = merkle.assemble(merkle.inclusion_ranges(index, size), nodes)
    assert proof == ref_path(index, leaves)
    assert len(proof) <= size.bit_length()
    assert merkle.verify_inclusion(leaves[index], index, size, proof, root)
    assert not merkle.verify_inclusion(leaves[index], index, size, proof, _flip(root, index % 256))
    old = data.draw(st.integers(min_value=1, max_value=size), label="old")
    cproof = merkle.assemble(merkle.consistency_ranges(old, size), nodes)
    assert cproof == (ref_subproof(old, leaves, True) if old < size else [])
    old_root = merkle.root_from_leaf_hashes(leaves[:old])
    assert merkle.verify_consistency(old, size, old_root, root, cproof)
    if old < size:
        other = merkle.root_from_leaf_hashes([*leaves[: old - 1], merkle.leaf_hash(b"forged")])
        assert not merkle.verify_consistency(old, size, other, root, cproof)
