"""Suite v2 (docs/envelope.md §8): batches seal once and every envelope still opens alone, in any order."""

from __future__ import annotations

import hashlib
import random
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xborder_gateway.audit import merkle as audit_merkle
from xborder_gateway.envelope import (
    SUITE_V1,
    SUITE_V2,
    BatchCache,
    BatchSealer,
    EnvelopeOpenError,
    EnvelopeReplayError,
    MemoryReplayGuard,
    _batch,
    new_message_id,
    open_envelope,
)
from xborder_gateway.errors import EnvelopeError


def _batch_of(world: Any, kit: Any, n: int, **kw: Any) -> list[Any]:
    sealer = BatchSealer(sender=world.vn, recipient="CN", trust=world.vn_trust, now=kit.T0, **kw)
    for i in range(n):
        sealer.add(kit.avro_payload(f"declaration {i}".encode() * (i % 4 + 1)), document_type="IDA",
                   schema_fingerprint=kit.FP, priority=i % 10)
    return sealer.seal()


def _open(world: Any, kit: Any, data: bytes, cache: BatchCache | None = None, replay: Any = None) -> Any:
    return open_envelope(data, me=world.cn, trust=world.cn_trust, now=kit.T0 + timedelta(seconds=1),
                         batch_cache=cache or BatchCache(), replay=replay)


# --- Merkle tree: the same as RFC 9162 and the audit log's implementation ------------------------------------

@pytest.mark.parametrize("n", [*range(1, 34), 64, 100, 256])
def test_root_and_paths_match_rfc9162(n: int) -> None:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]
    root, paths = _batch.root_and_paths(leaves)
    assert root == audit_merkle.root_from_leaf_hashes(leaves)
    for i, path in enumerate(paths):
        assert len(path) == _batch.path_length(i, n) == len(audit_merkle.inclusion_ranges(i, n))
        assert audit_merkle.verify_inclusion(leaves[i], i, n, path, root)
        assert _batch.root_from_path(leaves[i], i, n, path) == root
        if n > 1:  # a wrong index, size, or one hash more or less never reaches the root
            assert _batch.root_from_path(leaves[i], (i + 1) % n, n, path) != root
            # (another size can give the same root for a left-edge leaf: that is why the size is signed)
            assert _batch.root_from_path(leaves[i], i, n, path[:-1]) != root
            assert _batch.root_from_path(leaves[i], i, n, [*path, root]) is None


def test_leaf_and_node_prefixes_differ() -> None:
    """RFC 9162 second-preimage defence: a leaf is never a node (0x00 vs 0x01)."""
    h, p = b"H" * 40, b"payload"
    assert _batch.leaf_hash(h, p) == hashlib.sha256(b"\x00" + h + hashlib.sha256(p).digest()).digest()
    assert _batch._node(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()


def test_statement_has_its_own_label_and_binds_every_field() -> None:
    base = {"batch_id": b"\x01" * 16, "batch_size": 3, "root": b"\x02" * 32}
    stmt = _batch.statement(2, "VN", "CN", **base)  # type: ignore[arg-type]
    assert stmt.startswith(b"xborder-gateway/envelope/v2/batch-root\x00")
    assert not stmt.startswith(b"xborder-gateway/envelope/v1/signature\x00")
    variants = [
        _batch.statement(1, "VN", "CN", **base),  # type: ignore[arg-type]
        _batch.statement(2, "CN", "VN", **base),  # type: ignore[arg-type]
        _batch.statement(2, "VN", "CNX", **base),  # type: ignore[arg-type]
        _batch.statement(2, "VN", "CN", batch_id=b"\x03" * 16, batch_size=3, root=b"\x02" * 32),
        _batch.statement(2, "VN", "CN", batch_id=b"\x01" * 16, batch_size=4, root=b"\x02" * 32),
        _batch.statement(2, "VN", "CN", batch_id=b"\x01" * 16, batch_size=3, root=b"\x04" * 32),
    ]
    assert len({stmt, *variants}) == 7


# --- round trips ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 17, 64])
def test_every_envelope_opens_alone_in_any_order(world: Any, kit: Any, n: int) -> None:
    sealed = _batch_of(world, kit, n)
    assert [s.header.suite for s in sealed] == [SUITE_V2] * n
    assert len({s.message_id for s in sealed}) == n
    order = list(range(n))
    random.Random(n).shuffle(order)
    shared = BatchCache()
    for i in order:
        alone = _open(world, kit, sealed[i].data)  # fresh cache: its batch-mates were lost
        together = _open(world, kit, sealed[i].data, shared)
        for opened in (alone, together):
            assert opened.payload == kit.avro_payload(f"declaration {i}".encode() * (i % 4 + 1))
            assert opened.header == sealed[i].header
            assert opened.sha256 == sealed[i].sha256
    # one HPKE open and one Ed25519 verification for the whole batch
    assert shared.stats.secret_misses == 1
    assert shared.stats.secret_hits == n - 1
    assert shared.stats.root_misses == 1
    assert shared.stats.root_hits == n - 1


def test_open_without_a_cache_argument_uses_the_process_cache(world: Any, kit: Any) -> None:
    sealed = _batch_of(world, kit, 2)
    for s in sealed:
        assert open_envelope(s.data, me=world.cn, trust=world.cn_trust, replay=None, now=kit.T0).payload


def test_v1_by_configuration(world: Any, kit: Any) -> None:
    sealed = _batch_of(world, kit, 3, suite=SUITE_V1)
    assert [s.header.suite for s in sealed] == [SUITE_V1] * 3
    cache = BatchCache()
    for s in sealed:
        assert _open(world, kit, s.data, cache).header.suite == SUITE_V1
    assert cache.stats.secret_misses == cache.stats.root_misses == 0


def test_unknown_suite_refused_at_construction(world: Any) -> None:
    with pytest.raises(EnvelopeError, match="suite"):
        BatchSealer(sender=world.vn, recipient="CN", trust=world.vn_trust, suite=3)


# --- a fresh batch secret per transaction attempt -------------------------------------------------------------

def test_a_redo_uses_a_fresh_secret_even_with_the_same_ids_and_payloads(world: Any, kit: Any) -> None:
    ids = [new_message_id(kit.T0) for _ in range(3)]
    attempts = []
    for _ in range(2):  # the aborted attempt and its redo
        sealer = BatchSealer(sender=world.vn, recipient="CN", trust=world.vn_trust, now=kit.T0)
        for mid in ids:
            sealer.add(kit.avro_payload(), document_type="IDA", schema_fingerprint=kit.FP, message_id=mid)
        attempts.append(sealer.seal())
    first, redo = attempts
    end = len(first[0].header.encode())
    assert first[0].data[end : end + 16] != redo[0].data[end : end + 16]  # batch id
    assert first[0].data[end + 16 : end + 96] != redo[0].data[end + 16 : end + 96]  # enc || sealed secret
    assert all(a.data[end + 96 :] != b.data[end + 96 :] for a, b in zip(first, redo, strict=True))


def test_key_and_nonce_depend_on_secret_message_id_and_header() -> None:
    secret, bid, h, mid = b"s" * 32, b"b" * 16, b"H" * 120, b"m" * 16
    base = _batch.envelope_key(secret, bid, h, mid)
    assert len(base[0]) == 32
    assert len(base[1]) == 12
    for changed in (_batch.envelope_key(b"t" * 32, bid, h, mid), _batch.envelope_key(secret, b"c" * 16, h, mid),
                    _batch.envelope_key(secret, bid, h + b"x", mid), _batch.envelope_key(secret, bid, h, b"n" * 16)):
        assert changed[0] != base[0]
        assert changed[1] != base[1]


def test_a_sealer_is_spent_after_seal(world: Any, kit: Any) -> None:
    sealer = BatchSealer(sender=world.vn, recipient="CN", trust=world.vn_trust, now=kit.T0)
    sealer.add(kit.avro_payload(), document_type="IDA", schema_fingerprint=kit.FP)
    sealer.seal()
    assert sealer.spent
    with pytest.raises(RuntimeError, match="new BatchSealer"):
        sealer.seal()
    with pytest.raises(RuntimeError, match="new BatchSealer"):
        sealer.add(kit.avro_payload(), document_type="IDA", schema_fingerprint=kit.FP)


def test_a_message_id_twice_in_one_batch_is_refused(world: Any, kit: Any) -> None:
    sealer = BatchSealer(sender=world.vn, recipient="CN", trust=world.vn_trust, now=kit.T0)
    mid = new_message_id(kit.T0)
    sealer.add(kit.avro_payload(), document_type="IDA", schema_fingerprint=kit.FP, message_id=mid)
    with pytest.raises(EnvelopeError) as err:
        sealer.add(kit.avro_payload(b"other"), document_type="IDA", schema_fingerprint=kit.FP, message_id=mid)
    assert err.value.code == "ENV-10 MESSAGE_ID_REUSED"


def test_sealer_checks_what_seal_checks(world: Any, kit: Any) -> None:
    sealer = BatchSealer(sender=world.vn, recipient="CN", trust=world.vn_trust, now=kit.T0, max_size=2)
    with pytest.raises(EnvelopeError) as err:
        sealer.add(b"not avro", document_type="IDA", schema_fingerprint=kit.FP)
    assert err.value.code == "ENV-9 PAYLOAD_NOT_AVRO"
    with pytest.raises(EnvelopeError) as err:
        sealer.add(kit.avro_payload(), document_type="IDA", schema_fingerprint=kit.FP, ttl=timedelta(days=8))
    assert err.value.code == "ENV-8 BAD_LIFETIME"
    sealer.add(kit.avro_payload(), document_type="IDA", schema_fingerprint=kit.FP)
    sealer.add(kit.avro_payload(), document_type="IDA", schema_fingerprint=kit.FP)
    with pytest.raises(ValueError, match="at most 2"):
        sealer.add(kit.avro_payload(), document_type="IDA", schema_fingerprint=kit.FP)
    big = BatchSealer(sender=world.vn, recipient="CN", trust=world.vn_trust, now=kit.T0)
    with pytest.raises(EnvelopeError) as err:
        big.add(kit.avro_payload(b"x" * (1 << 20)), document_type="IDA", schema_fingerprint=kit.FP)
    assert err.value.code == "ENV-1 SIZE_EXCEEDED"
    with pytest.raises(EnvelopeError) as err:
        big.add(kit.avro_payload(), document_type="ida", schema_fingerprint=kit.FP)
    assert err.value.code == "ENV-2 INVALID_HEADER_FIELD"
    assert len(big) == 0  # a refused item queues nothing: the others of the batch still seal
    big.add(kit.avro_payload(), document_type="IDA", schema_fingerprint=kit.FP)
    assert len(big.seal()) == 1
    assert BatchSealer(sender=world.vn, recipient="CN", trust=world.vn_trust).seal() == []


# --- the same opening rules as v1 -------------------------------------------------------------------------------

def test_replay_and_expiry_rules_apply_to_v2(world: Any, kit: Any) -> None:
    sealed = _batch_of(world, kit, 2)
    guard = MemoryReplayGuard()
    opened = _open(world, kit, sealed[0].data, replay=guard)
    guard.remember(opened.header, opened.sha256)
    with pytest.raises(EnvelopeReplayError) as dup:
        _open(world, kit, sealed[0].data, replay=guard)
    assert dup.value.code == "ENV-10 REPLAYED"
    assert _open(world, kit, sealed[1].data, replay=guard).payload  # its batch-mate is another message
    with pytest.raises(EnvelopeOpenError) as late:
        open_envelope(sealed[1].data, me=world.cn, trust=world.cn_trust, replay=None,
                      now=kit.T0 + timedelta(days=2, minutes=6), batch_cache=BatchCache())
    assert late.value.code == "ENV-8 EXPIRED"


def test_cache_hit_still_checks_the_signing_key_is_trusted(world: Any, kit: Any) -> None:
    """ENV-5 runs for every envelope before the caches: a cached root does not outlive the key's trust."""
    from xborder_gateway.envelope import TrustStore

    sealed = _batch_of(world, kit, 2)
    cache = BatchCache()
    _open(world, kit, sealed[0].data, cache)
    with pytest.raises(EnvelopeOpenError) as err:
        open_envelope(sealed[1].data, me=world.cn, trust=TrustStore([]), replay=None, now=kit.T0, batch_cache=cache)
    assert err.value.code == "ENV-5 UNKNOWN_SIGNING_KEY"


def test_root_cache_is_keyed_by_signing_key_id(kit: Any) -> None:
    """A root verified under one key id never vouches for the same batch id and statement under another."""
    cache = BatchCache()
    digest, sig = b"d" * 32, b"s" * 64
    cache.remember_root(b"k1" * 16, b"b" * 16, digest, sig)
    assert cache.root_verified(b"k1" * 16, b"b" * 16, digest, sig)
    assert not cache.root_verified(b"k2" * 16, b"b" * 16, digest, sig)
    assert not cache.root_verified(b"k1" * 16, b"b" * 16, b"e" * 32, sig)  # other statement
    assert not cache.root_verified(b"k1" * 16, b"b" * 16, digest, b"t" * 64)  # other signature


def test_caches_are_bounded() -> None:
    cache = BatchCache(max_secrets=2, max_roots=2)
    for i in range(5):
        cache.secret((bytes([i]), b"", b"", b""), lambda i=i: bytes([i]) * 32)
        cache.remember_root(bytes([i]), b"", b"", b"")
    assert len(cache._secrets) == 2
    assert len(cache._roots) == 2
    with pytest.raises(ValueError, match="sizes"):
        BatchCache(max_secrets=0)


def test_a_failed_secret_open_is_not_cached() -> None:
    cache = BatchCache()

    def boom() -> bytes:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        cache.secret((b"k", b"b", b"e", b"s"), boom)
    assert cache.secret((b"k", b"b", b"e", b"s"), lambda: b"x" * 32) == b"x" * 32


def test_aead_is_the_documented_one(world: Any, kit: Any) -> None:
    """Cross-check: the ciphertext opens with AES-256-GCM under the documented key, nonce and aad."""
    secret, bid = b"\x11" * 32, b"\x22" * 16
    chunks = iter([bid, secret])
    sealer = BatchSealer(sender=world.vn, recipient="CN", trust=world.vn_trust, now=kit.T0,
                         randomness=lambda n: next(chunks))
    sealer.add(kit.avro_payload(), document_type="IDA", schema_fingerprint=kit.FP)
    (s,) = sealer.seal()
    h = s.header.encode()
    key, nonce = _batch.envelope_key(secret, bid, h, s.message_id.bytes)
    pt = AESGCM(key).decrypt(nonce, s.data[len(h) + 96 :], h + bid)
    assert pt[:9] == b"\x00\x00\x00\x01\x00\x00\x00\x00\x00"  # size 1, index 0, empty path
    assert pt[9 + 64 :] == kit.avro_payload()


def test_the_size_bound_is_exact_for_the_longest_path(world: Any, kit: Any) -> None:
    """ENV-1 at add(): the largest payload add() accepts still fits the cap after sealing with a full path."""
    from xborder_gateway.envelope import EnvelopeLimits

    limits = EnvelopeLimits(max_envelope_bytes=4096)
    sealer = BatchSealer(sender=world.vn, recipient="CN", trust=world.vn_trust, now=kit.T0, limits=limits,
                         max_size=5)
    fits = None
    for body in range(4096, 0, -1):
        try:
            sealer.add(kit.avro_payload(b"x" * body), document_type="IDA", schema_fingerprint=kit.FP)
        except EnvelopeError:
            continue
        fits = body
        break
    assert fits is not None
    for _ in range(4):
        sealer.add(kit.avro_payload(), document_type="IDA", schema_fingerprint=kit.FP)
    sealed = sealer.seal()
    assert max(len(s.data) for s in sealed) <= 4096
    assert len(sealed[0].data) == 4096  # leaf 0 of 5 has the longest path (3 hashes): the bound is tight


def test_v1_sealer_raises_per_item_too(world: Any, kit: Any) -> None:
    sealer = BatchSealer(sender=world.vn, recipient="CN", trust=world.vn_trust, now=kit.T0, suite=SUITE_V1)
    with pytest.raises(EnvelopeError) as err:
        sealer.add(b"not avro", document_type="IDA", schema_fingerprint=kit.FP)
    assert err.value.code == "ENV-9 PAYLOAD_NOT_AVRO"
    sealer.add(kit.avro_payload(), document_type="IDA", schema_fingerprint=kit.FP)
    assert len(sealer) == 1
    assert [s.header.suite for s in sealer.seal()] == [SUITE_V1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 80), data=st.data())
def test_any_subset_in_any_order_opens(world: Any, kit: Any, n: int, data: st.DataObject) -> None:
    """Property: whatever survives of a batch, in whatever order, opens — with or without a shared cache."""
    sealed = _batch_of(world, kit, n)
    keep = data.draw(st.lists(st.integers(0, n - 1), unique=True, min_size=1, max_size=n))
    shared = data.draw(st.booleans())
    cache = BatchCache()
    for i in keep:
        opened = _open(world, kit, sealed[i].data, cache if shared else None)
        assert opened.sha256 == sealed[i].sha256


def test_cache_is_safe_across_threads(world: Any, kit: Any) -> None:
    """Connectors may open from worker threads: one cache, many threads, every envelope opens once verified."""
    from concurrent.futures import ThreadPoolExecutor

    sealed = _batch_of(world, kit, 64)
    cache = BatchCache(max_secrets=1, max_roots=1)  # tiny: forces evictions under contention
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda s: _open(world, kit, s.data, cache).sha256, sealed * 3))
    assert results == [s.sha256 for s in sealed * 3]


def test_the_parser_minimum_matches_the_v2_layout() -> None:
    """ENV-2 for v2 (in _format, which cannot import _batch) uses the same minimum tail as the layout."""
    from xborder_gateway.envelope import _format

    assert _format._MIN_TAIL[SUITE_V2] == _batch.V2_MIN_TAIL == 16 + 32 + 48 + 9 + 64 + 10 + 16
