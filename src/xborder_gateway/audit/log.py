"""The audit log: append events, search them, prove inclusion and consistency, sign checkpoints.

The Merkle tree (RFC 9162 §2.1) is stored as the hash of every complete aligned subtree, so an append
touches ``O(1)`` amortised nodes plus the ``O(log n)`` right frontier read inside the write
transaction, and any proof at any size reads ``O(log n)`` nodes. See ``docs/audit.md``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from xborder_gateway.audit import merkle
from xborder_gateway.audit._keys import load_or_create_signer, load_verifier, origin_for
from xborder_gateway.audit._store import EntryRow, SearchFilter, Store, open_store
from xborder_gateway.audit.bundle import BUNDLE_FORMAT
from xborder_gateway.audit.cosignature import (
    Cosignature,
    CosignatureVerifier,
    add_signature_lines,
    verify_cosignature,
)
from xborder_gateway.audit.errors import AuditNotFoundError, AuditVerificationError
from xborder_gateway.audit.events import AuditEvent, EventType
from xborder_gateway.audit.note import Checkpoint, NoteSigner, NoteVerifier, sign_note
from xborder_gateway.config import Settings
from xborder_gateway.errors import AuditIntegrityError, ConfigError, GatewayError

__all__ = [
    "AuditConfig",
    "AuditLog",
    "ConsistencyProof",
    "InclusionProof",
    "LogEntry",
    "SignedCheckpoint",
    "VerifyReport",
    "WitnessReport",
    "time_to_us",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_INDEX = 2**63 - 1
_log = logging.getLogger(__name__)


NEXT_KEY_EXTENSION = "xborder-next-key "  # checkpoint extension line announcing the next key (ADR 0303)


def next_key_of(cp: Checkpoint) -> NoteVerifier | None:
    """The verifier key a checkpoint announces as its successor, if any."""
    keys = [line[len(NEXT_KEY_EXTENSION):] for line in cp.extensions if line.startswith(NEXT_KEY_EXTENSION)]
    if len(keys) > 1:
        raise AuditIntegrityError("a checkpoint announces more than one next key", code="AUDIT_KEY_CHAIN")
    if not keys:
        return None
    announced = NoteVerifier.parse(keys[0])
    if announced.name != cp.origin:
        raise AuditIntegrityError("an announced key must be named after the log's origin", code="AUDIT_KEY_CHAIN")
    return announced


def time_to_us(value: datetime) -> int:
    return (value.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)


def _now_us() -> int:
    return time_to_us(datetime.now(UTC))


@dataclass(frozen=True)
class AuditConfig:
    """Bounds and cadence of the audit log (one frozen object, from :class:`Settings`)."""

    checkpoint_every_entries: int = 1000
    checkpoint_every_seconds: float = 10.0
    max_batch: int = 50_000
    max_search_limit: int = 1000
    verify_chunk: int = 8192  # a power of two
    busy_timeout_s: float = 30.0  # SQLite: how long a writer waits for another process's transaction

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditConfig:
        return cls(checkpoint_every_entries=settings.audit_checkpoint_entries,
                   checkpoint_every_seconds=settings.audit_checkpoint_seconds)


@dataclass(frozen=True)
class LogEntry:
    index: int
    entry: bytes
    event: AuditEvent

    @property
    def leaf_hash(self) -> bytes:
        return merkle.leaf_hash(self.entry)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "leaf_hash": self.leaf_hash.hex(),
            "entry": self.event.canonical_dict(),
            "entry_b64": base64.b64encode(self.entry).decode("ascii"),
        }


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {"leaf_index": self.leaf_index, "tree_size": self.tree_size, "leaf_hash": self.leaf_hash.hex(),
                "hashes": [h.hex() for h in self.hashes]}

    def verify(self, root: bytes) -> bool:
        return merkle.verify_inclusion(self.leaf_hash, self.leaf_index, self.tree_size, self.hashes, root)


@dataclass(frozen=True)
class ConsistencyProof:
    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    hashes: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {"old_size": self.old_size, "new_size": self.new_size, "old_root": self.old_root.hex(),
                "new_root": self.new_root.hex(), "hashes": [h.hex() for h in self.hashes]}

    def verify(self) -> bool:
        return merkle.verify_consistency(self.old_size, self.new_size, self.old_root, self.new_root, self.hashes)


@dataclass(frozen=True)
class SignedCheckpoint:
    note: str
    checkpoint: Checkpoint
    issued_at: datetime


@dataclass(frozen=True)
class WitnessReport:
    """Which checkpoint had to be witnessed, which cosigned checkpoint covers it, and when it was cosigned."""

    required_size: int | None
    cosigned_size: int | None
    cosigned_at: int | None


@dataclass(frozen=True)
class VerifyReport:
    size: int
    checkpoints: int
    root: bytes


class _Frontier:
    """The right edge of the tree: ``(level, hash)`` of each complete subtree of the binary
    decomposition of the size, largest first. Appending a leaf yields the nodes it completes."""

    __slots__ = ("stack",)

    def __init__(self, stack: list[tuple[int, bytes]]) -> None:
        self.stack = stack

    def push(self, index: int, leaf: bytes, out: list[tuple[int, int, bytes]]) -> None:
        stack = self.stack
        out.append((0, index, leaf))
        level, h = 0, leaf
        while stack and stack[-1][0] == level:
            left = stack.pop()[1]
            h = merkle.node_hash(left, h)
            level += 1
            out.append((level, index >> level, h))
        stack.append((level, h))

    def root(self) -> bytes:
        if not self.stack:
            return merkle.EMPTY_ROOT
        return merkle.fold_range([h for _, h in self.stack])


class AuditLog:
    """One authority's audit log. Thread-safe; use :meth:`open`."""

    def __init__(self, store: Store, authority: str, origin: str, *, signer: NoteSigner | None,
                 verifier: NoteVerifier | None, config: AuditConfig) -> None:
        self._store = store
        self.authority = authority
        self.origin = origin
        self._signer = signer
        self.verifier = verifier
        self.config = config
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._settings: Settings | None = None

    def _start_ticker(self) -> None:
        """Sign due checkpoints while no appends come (the T-seconds rule holds on an idle log too)."""
        interval = self.config.checkpoint_every_seconds

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.maybe_checkpoint()
                except Exception:  # noqa: BLE001 - a background tick must not die; the next append raises
                    _log.exception("audit %s: background checkpoint failed", self.authority)

        self._ticker = threading.Thread(target=run, name=f"audit-checkpoint-{self.authority}", daemon=True)
        self._ticker.start()

    # --- lifecycle -------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings, authority: str, *, config: AuditConfig | None = None,
             read_only: bool = False, background_checkpoints: bool = True,
             passphrase: bytes | None = None) -> AuditLog:
        """Open (creating on first use) the log of ``authority`` ("VN" or "CN").

        SQLite under ``settings.audit_db(authority)``, or PostgreSQL when ``settings.audit_url`` is
        set. ``read_only`` opens without the signing key (auditor commands, the HTTP API). A writable
        log signs due checkpoints from a background thread every ``checkpoint_every_seconds`` unless
        ``background_checkpoints`` is false; :meth:`close` stops it. The checkpoint key's passphrase is the
        home's (``resolve_passphrase``) unless ``passphrase`` is given.
        """
        authority = authority.upper()
        if authority not in ("VN", "CN"):
            raise ConfigError(f"unknown authority {authority!r}", code="AUDIT_AUTHORITY", hint="use VN or CN")
        origin = origin_for(settings, authority)
        config = config or AuditConfig.from_settings(settings)
        store = open_store(sqlite_path=settings.audit_db(authority), url=settings.audit_url,
                           schema=f"{settings.audit_pg_schema}_{authority.lower()}",
                           busy_timeout_s=config.busy_timeout_s)
        try:
            signer = None if read_only else load_or_create_signer(settings, authority, passphrase)
            verifier = signer.verifier if signer else load_verifier(settings, authority)
            if signer is not None:
                meta = store.init_meta({"schema": "1", "authority": authority, "origin": origin,
                                        "verifier_key": str(signer.verifier)})
            else:
                meta = store.meta()
            if meta.get("authority", authority) != authority or meta.get("origin", origin) != origin:
                raise ConfigError(f"{store.description} holds the log {meta.get('origin')}, not {origin}",
                                  code="AUDIT_WRONG_LOG", hint="check --authority, XBG_AUDIT_ORIGIN and the home")
            if verifier is not None and meta.get("verifier_key", str(verifier)) != str(verifier):
                # KEY-1: a key other than the first one is accepted only as the last announced one
                probe = cls(store, authority, origin, signer=None, verifier=verifier, config=config)
                if str(probe.key_chain()[-1]) != str(verifier):
                    raise AuditIntegrityError(
                        "the log was started with another checkpoint key than the one in the home",
                        code="AUDIT_KEY_MISMATCH",
                        hint="restore the original key under <home>/audit/ (see docs/audit.md)")
        except BaseException:
            store.close()
            raise
        log = cls(store, authority, origin, signer=signer, verifier=verifier, config=config)
        log._settings = settings
        if signer is not None:
            try:
                log._check_signer_is_current()
            except BaseException:
                store.close()
                raise
        if signer is not None and background_checkpoints:
            log._start_ticker()
        return log

    def _check_signer_is_current(self) -> None:
        """KEY-3: a writer must sign with the last announced key. If a rotation committed but the key
        files were not swapped (a crash in between), finish the swap from the staged key; else refuse."""
        from xborder_gateway.audit._keys import finish_staged_rotation

        assert_signer = self._signer
        if assert_signer is None or self._settings is None:
            return
        current = self.key_chain()[-1]
        if current == assert_signer.verifier:
            return
        staged = finish_staged_rotation(self._settings, self.authority, current)
        if staged is None:
            raise AuditIntegrityError(
                f"the log announced the checkpoint key {current}, but the home holds {assert_signer.verifier}",
                code="AUDIT_KEY_MISMATCH", hint="restore the announced key under <home>/audit/ (ADR 0303)")
        self._signer = staged
        self.verifier = staged.verifier

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=30)
            self._ticker = None
            # A process that stops before the T-seconds tick leaves no unsigned tail behind
            # (otherwise the last entries of a short run stay outside every checkpoint until the next start)
            try:
                self.checkpoint_now()
            except Exception:  # noqa: BLE001 - closing must not fail; `xborder audit verify` reports the cause
                _log.exception("audit %s: final checkpoint on close failed", self.authority)
        with self._lock:
            self._store.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def backend(self) -> str:
        return self._store.description

    # --- append ----------------------------------------------------------------------------
    def append(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append ``events`` in one transaction; durable when this returns; returns their indexes.

        Kafka offsets may be committed once this returns (AUD-5). A checkpoint falls due every
        ``checkpoint_every_entries`` entries or ``checkpoint_every_seconds`` seconds and is signed in
        the same transaction, after checking consistency with the previous one.
        """
        if not events:
            return []
        if len(events) > self.config.max_batch:
            raise ConfigError(f"{len(events)} events in one append (max {self.config.max_batch})",
                              code="AUDIT_BATCH_TOO_LARGE", hint="append in smaller batches")
        if self._signer is None:
            raise ConfigError("this audit log was opened read-only", code="AUDIT_READ_ONLY")
        encoded: list[tuple[bytes, bytes, AuditEvent]] = []
        for event in events:
            if event.authority != self.authority:  # AUD-6: each side writes only its own log
                raise ConfigError(f"a {event.authority} event cannot go into the {self.authority} log",
                                  code="AUDIT_WRONG_AUTHORITY")
            entry = event.canonical_bytes()
            encoded.append((entry, merkle.leaf_hash(entry), event))
        with self._lock, self._store.write():
            size, new_size, root = self._append_locked(encoded)
            self._maybe_checkpoint_locked(new_size, root, force=False)
        return list(range(size, new_size))

    def _append_locked(self, encoded: Sequence[tuple[bytes, bytes, AuditEvent]]) -> tuple[int, int, bytes]:
        size = self._store.size()  # AUD-4: the size comes from the database, inside the lock
        frontier = self._frontier(size)
        entry_rows: list[EntryRow] = []
        node_rows: list[tuple[int, int, bytes]] = []
        for offset, (entry, leaf, event) in enumerate(encoded):
            index = size + offset
            entry_rows.append((index, entry, time_to_us(event.time), event.authority, event.process,
                               event.event_type.value, event.message_id, event.business_key,
                               event.document_type, event.outcome))
            frontier.push(index, leaf, node_rows)
        self._store.insert(entry_rows, node_rows)
        return size, size + len(encoded), frontier.root()

    async def append_async(self, events: Sequence[AuditEvent]) -> list[int]:
        """:meth:`append` in a worker thread, for asyncio connectors."""
        return await asyncio.to_thread(self.append, events)

    def _frontier(self, size: int) -> _Frontier:
        keys = merkle.range_nodes(0, size)
        nodes = self._store.nodes(keys)
        try:
            return _Frontier([(level, nodes[(level, idx)]) for level, idx in keys])
        except KeyError as exc:
            raise AuditIntegrityError(f"tree node {exc.args[0]} is missing at size {size}", code="AUDIT_NODE_MISSING",
                                      hint="run `xborder audit verify`; the database was altered") from exc

    def maybe_checkpoint(self) -> SignedCheckpoint | None:
        """Sign a checkpoint if one is due by time (call it on idle ticks); return the new one."""
        return self._checkpoint(force=False)

    def checkpoint_now(self) -> SignedCheckpoint | None:
        """Sign a checkpoint of the current size now (unless the latest already covers it)."""
        return self._checkpoint(force=True)

    def _checkpoint(self, *, force: bool) -> SignedCheckpoint | None:
        if self._signer is None:
            raise ConfigError("this audit log was opened read-only", code="AUDIT_READ_ONLY")
        with self._lock, self._store.write():
            size = self._store.size()
            return self._maybe_checkpoint_locked(size, self._frontier(size).root(), force=force)

    def _maybe_checkpoint_locked(self, size: int, root: bytes, *, force: bool) -> SignedCheckpoint | None:
        if self._signer is None:
            raise ConfigError("this audit log was opened read-only", code="AUDIT_READ_ONLY")
        last = self._store.last_checkpoint()
        last_size = last[0] if last else 0
        if size <= last_size:
            return None
        now = _now_us()
        due = (force or last is None or size - last_size >= self.config.checkpoint_every_entries
               or now - last[3] >= self.config.checkpoint_every_seconds * 1_000_000)
        if not due:
            return None
        if last is not None:
            # CP-3: the new tree must be consistent with the last signed one, or nothing is signed.
            previous = Checkpoint.open(last[2], self._signer.verifier, origin=self.origin)
            if previous.size != last[0] or previous.root != last[1]:
                raise AuditIntegrityError(f"stored checkpoint {last[0]} does not match its signed note",
                                          code="CHECKPOINT_TAMPERED", hint="run `xborder audit verify`")
            proof = self._consistency_hashes(previous.size, size)
            if not merkle.verify_consistency(previous.size, size, previous.root, root, proof):
                raise AuditIntegrityError(
                    f"the tree at size {size} is not consistent with the signed checkpoint at size {previous.size}; "
                    "refusing to sign", code="CHECKPOINT_INCONSISTENT", hint="run `xborder audit verify`")
        return self._sign_locked(size, root, now)

    def _sign_locked(self, size: int, root: bytes, now: int, *, next_signer: NoteSigner | None = None
                     ) -> SignedCheckpoint:
        if self._signer is None:
            raise ConfigError("this audit log was opened read-only", code="AUDIT_READ_ONLY")
        extensions = (f"{NEXT_KEY_EXTENSION}{next_signer.verifier}",) if next_signer is not None else ()
        cp = Checkpoint(self.origin, size, root, extensions)
        note = sign_note(cp.to_text(), self._signer)
        if next_signer is not None:  # KEY-2: the new key proves possession on the announcement itself
            note += next_signer.signature_line(cp.to_text())
        self._store.insert_checkpoint((size, root, note, now))
        return SignedCheckpoint(note, cp, _EPOCH + timedelta(microseconds=now))

    def rotate_key(self, new_key: Ed25519PrivateKey | None = None) -> SignedCheckpoint:
        """Replace the checkpoint key (ADR 0303): append a ``key_rotated`` event and sign, with the old
        key *and* the new one, a checkpoint whose extension line announces the new verifier key; later
        checkpoints are signed by the new key only. The home's key files are swapped after the commit."""
        from xborder_gateway.audit._keys import install_rotated_key, stage_next_key

        if self._signer is None:
            raise ConfigError("this audit log was opened read-only", code="AUDIT_READ_ONLY")
        new_key = new_key or Ed25519PrivateKey.generate()
        next_signer = NoteSigner(self.origin, new_key)
        if next_signer.verifier == self._signer.verifier:
            raise ConfigError("the new key is the current key", code="AUDIT_KEY_ROTATION")
        settings = self._settings
        if settings is None:
            raise ConfigError("rotate_key needs a log opened with AuditLog.open", code="AUDIT_KEY_ROTATION")
        stage_next_key(settings, self.authority, new_key)  # KEY-3: on disk before the log names it
        event = AuditEvent(time=datetime.now(UTC), authority=self.authority, process="audit",
                           event_type=EventType.KEY_ROTATED, outcome="ok",
                           signing_key_id=f"note:{next_signer.verifier.key_hash.hex()}")
        entry = event.canonical_bytes()
        with self._lock:
            with self._store.write():
                _, new_size, root = self._append_locked([(entry, merkle.leaf_hash(entry), event)])
                last = self._store.last_checkpoint()
                if last is not None:  # CP-3, as for every checkpoint
                    previous = Checkpoint.open(last[2], self._signer.verifier, origin=self.origin)
                    proof = self._consistency_hashes(previous.size, new_size)
                    if not merkle.verify_consistency(previous.size, new_size, previous.root, root, proof):
                        raise AuditIntegrityError("the tree is not consistent with the last checkpoint; "
                                                  "refusing to rotate", code="CHECKPOINT_INCONSISTENT")
                signed = self._sign_locked(new_size, root, _now_us(), next_signer=next_signer)
            install_rotated_key(settings, self.authority, self._signer, next_signer)
            self._signer = next_signer
            self.verifier = next_signer.verifier
        return signed

    # --- reads -----------------------------------------------------------------------------
    def size(self) -> int:
        with self._lock:
            return self._store.size()

    def _check_size(self, size: int | None) -> int:
        current = self._store.size()
        if size is None:
            return current
        if not 0 <= size <= current:
            raise AuditNotFoundError(f"tree size {size} is not in [0, {current}]", code="AUDIT_BAD_SIZE")
        return size

    def root(self, size: int | None = None) -> bytes:
        with self._lock:
            size = self._check_size(size)
            keys = merkle.range_nodes(0, size)
            if not keys:
                return merkle.EMPTY_ROOT
            nodes = self._store.nodes(keys)
            return merkle.fold_range([nodes[k] for k in keys])

    def _row_to_entry(self, row: EntryRow) -> LogEntry:
        try:
            event = AuditEvent.from_canonical(row[1])
        except GatewayError as exc:
            raise AuditVerificationError(f"entry {row[0]}: {exc.message}", entry_index=row[0],
                                         code="AUDIT_ENTRY_ENCODING") from exc
        return LogEntry(row[0], row[1], event)

    def get(self, index: int) -> LogEntry:
        if not 0 <= index <= _MAX_INDEX:  # past BIGINT the database would raise OverflowError, not "not found"
            raise AuditNotFoundError(f"no entry {index} in the {self.authority} log", code="AUDIT_BAD_INDEX")
        with self._lock:
            row = self._store.entry(index)
        if row is None:
            raise AuditNotFoundError(f"no entry {index} in the {self.authority} log")
        return self._row_to_entry(row)

    def search(self, *, message_id: str | None = None, business_key: str | None = None,
               event_type: str | None = None, since: datetime | None = None, until: datetime | None = None,
               after: int | None = None, limit: int = 100) -> list[LogEntry]:
        """Entries matching every given filter, in log order; page with ``after`` (last index seen)."""
        limit = max(1, min(limit, self.config.max_search_limit))
        if after is not None and after >= _MAX_INDEX:
            return []  # nothing lies after the last possible index (and SQL would overflow)
        flt = SearchFilter(message_id=message_id, business_key=business_key, event_type=event_type,
                           since_us=time_to_us(since) if since else None, until_us=time_to_us(until) if until else None,
                           after=after, limit=limit)
        with self._lock:
            rows = self._store.search(flt)
        return [self._row_to_entry(r) for r in rows]

    def _fetch(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        keys = [k for a, b in ranges for k in merkle.range_nodes(a, b)]
        nodes = self._store.nodes(keys)
        try:
            return merkle.assemble(ranges, nodes)
        except KeyError as exc:
            raise AuditIntegrityError(f"tree node {exc.args[0]} is missing", code="AUDIT_NODE_MISSING",
                                      hint="run `xborder audit verify`") from exc

    def _consistency_hashes(self, old: int, new: int) -> list[bytes]:
        return self._fetch(merkle.consistency_ranges(old, new))

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        """The RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` (default: now)."""
        with self._lock:
            size = self._check_size(size)
            if not 0 <= index < size:
                raise AuditNotFoundError(f"entry {index} is not in a tree of size {size}", code="AUDIT_BAD_INDEX")
            leaf = self._store.nodes([(0, index)]).get((0, index))
            if leaf is None:
                raise AuditIntegrityError(f"leaf {index} is missing", code="AUDIT_NODE_MISSING")
            hashes = self._fetch(merkle.inclusion_ranges(index, size))
        return InclusionProof(index, size, leaf, tuple(hashes))

    def consistency_proof(self, old: int, new: int | None = None) -> ConsistencyProof:
        with self._lock:
            new = self._check_size(new)
            if not 0 <= old <= new:
                raise AuditNotFoundError(f"no consistency proof from {old} to {new}", code="AUDIT_BAD_SIZE")
            hashes = self._consistency_hashes(old, new)
            old_root, new_root = self.root(old), self.root(new)
        return ConsistencyProof(old, new, old_root, new_root, tuple(hashes))

    def _signed(self, row: tuple[int, bytes, str, int] | None) -> SignedCheckpoint | None:
        if row is None:
            return None
        return SignedCheckpoint(row[2], Checkpoint.parse(row[2].split("\n\n")[0] + "\n"),
                                _EPOCH + timedelta(microseconds=row[3]))

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        with self._lock:
            return self._signed(self._store.last_checkpoint())

    def checkpoint_covering(self, index: int) -> SignedCheckpoint | None:
        """The first checkpoint whose tree contains entry ``index``."""
        with self._lock:
            return self._signed(self._store.checkpoint_covering(index + 1))

    def checkpoints(self) -> list[SignedCheckpoint]:
        with self._lock:
            return [s for s in (self._signed(r) for r in self._store.checkpoints()) if s is not None]

    def bundle(self, index: int, *, issue: bool = True) -> dict[str, Any]:
        """An offline proof bundle for entry ``index`` (``docs/audit.md`` §6).

        If no checkpoint covers the entry yet and ``issue`` is set, one is signed now.
        """
        entry = self.get(index)
        signed = self.checkpoint_covering(index)
        if signed is None and issue and self._signer is not None:
            self.checkpoint_now()
            signed = self.checkpoint_covering(index)
        if signed is None or self.verifier is None:
            raise AuditNotFoundError(f"no signed checkpoint covers entry {index} yet", code="AUDIT_NO_CHECKPOINT",
                                     hint="wait for the next checkpoint or run `xborder audit checkpoint --issue`")
        with self._lock:  # offline bundles carry the cosigned checkpoint: the first witnessed one covering it
            witnessed = sorted({c[0] for c in self._store.cosignatures() if c[0] > index})
        cp_size = witnessed[0] if witnessed else signed.checkpoint.size
        proof = self.inclusion_proof(index, cp_size)
        return {
            "format": BUNDLE_FORMAT,
            "entry": entry.to_json(),
            "inclusion_proof": proof.to_json(),
            "checkpoint": self.cosigned_note(cp_size) or signed.note,
            "verifier_key": str(self.verifier),
        }

    # --- witness cosignatures (issue 12) ------------------------------------------------------
    def submission(self, old_size: int, size: int | None = None) -> bytes:
        """The payload that publishes a checkpoint to a witness: tlog-witness ``add-checkpoint``'s body
        (``old <size>``, the consistency proof from ``old_size``, an empty line, the signed note) for the
        checkpoint at ``size`` (default: the latest)."""
        from xborder_gateway.audit.witness import format_submission

        with self._lock:
            row = self._store.last_checkpoint() if size is None else self._store.checkpoint_at(size)
            if row is None:
                raise AuditNotFoundError("no such checkpoint", code="AUDIT_NO_CHECKPOINT")
            if not 0 <= old_size <= row[0]:
                raise AuditNotFoundError(f"no consistency proof from {old_size} to {row[0]}", code="AUDIT_BAD_SIZE")
            proof = self._consistency_hashes(old_size, row[0]) if old_size else []
        return format_submission(old_size, proof, row[2])

    def add_cosignature(self, size: int, line: str, witness: CosignatureVerifier) -> Cosignature:
        """Verify ``line`` as ``witness``'s cosignature of the stored checkpoint at ``size`` and store it
        beside the checkpoint (COSIG-3: only verified cosignatures are stored)."""
        with self._lock, self._store.write():
            row = self._store.checkpoint_at(size)
            if row is None:
                raise AuditNotFoundError(f"no checkpoint at size {size}", code="AUDIT_NO_CHECKPOINT")
            cosig = verify_cosignature(add_signature_lines(row[2], [line]), witness, now=int(_now_us() // 1_000_000))
            self._store.insert_cosignature(size, str(witness), cosig.line, cosig.timestamp)
        return cosig

    def cosigned_sizes(self, witness: CosignatureVerifier | None = None) -> list[int]:
        """The checkpoint sizes that have a stored cosignature of ``witness`` (of any witness if None;
        each was verified when it was stored)."""
        with self._lock:
            return sorted({c[0] for c in self._store.cosignatures() if witness is None or c[1] == str(witness)})

    def cosigned_note(self, size: int | None = None) -> str | None:
        """The checkpoint note at ``size`` (default: latest) with every stored cosignature line appended."""
        with self._lock:
            row = self._store.last_checkpoint() if size is None else self._store.checkpoint_at(size)
            if row is None:
                return None
            lines = [c[2] for c in self._store.cosignatures(row[0])]
        return add_signature_lines(row[2], lines) if lines else row[2]

    def check_witnessed(self, witness: CosignatureVerifier, *, max_lag_entries: int | None = None,
                        max_lag_seconds: float | None = None, now: datetime | None = None) -> WitnessReport:
        """Raise unless the latest checkpoint older than the allowed lag is covered by a valid cosignature
        of ``witness`` (on it or a later checkpoint: our own verify proves those consistent).

        A checkpoint is "older than the lag" when at least ``max_lag_entries`` entries were appended
        after it, or it was issued at least ``max_lag_seconds`` ago; with neither given, the latest
        checkpoint must be cosigned (WIT-4). A stored cosignature that no longer verifies against its
        checkpoint (the checkpoint was re-signed after it was witnessed) fails at once."""
        now_us = _now_us() if now is None else time_to_us(now)
        with self._lock:
            size = self._store.size()
            cps = self._store.checkpoints()
            cosigs = self._store.cosignatures()
        notes = {row[0]: row[2] for row in cps}
        valid: dict[int, int] = {}
        for cp_size, key, line, _ts in cosigs:
            if key != str(witness):
                continue
            note = notes.get(cp_size)
            if note is None:
                raise AuditVerificationError(f"a cosignature is stored for size {cp_size}, which has no checkpoint",
                                             code="WITNESS_COSIGNATURE_INVALID")
            try:
                valid[cp_size] = verify_cosignature(add_signature_lines(note, [line]), witness).timestamp
            except AuditIntegrityError as exc:
                raise AuditVerificationError(
                    f"checkpoint at size {cp_size}: the stored cosignature by {witness.name} does not verify "
                    f"({exc.code}): the checkpoint was changed after it was witnessed",
                    code="WITNESS_COSIGNATURE_INVALID") from exc

        def required(row: tuple[int, bytes, str, int]) -> bool:
            if max_lag_entries is None and max_lag_seconds is None:
                return True
            by_entries = max_lag_entries is not None and size - row[0] >= max_lag_entries
            by_time = max_lag_seconds is not None and now_us - row[3] >= max_lag_seconds * 1_000_000
            return by_entries or by_time

        due = [row for row in cps if required(row)]
        if not due:
            return WitnessReport(None, None, None)
        target = due[-1]
        covering = sorted(s for s in valid if s >= target[0])
        if not covering:
            raise AuditVerificationError(
                f"the latest checkpoint older than the allowed lag (size {target[0]}, issued "
                f"{(_EPOCH + timedelta(microseconds=target[3])).isoformat()}) has no valid cosignature by "
                f"{witness.name}+{witness.key_hash.hex()}", entry_index=target[0] - 1 if target[0] else None,
                code="WITNESS_COSIGNATURE_MISSING",
                hint="check that checkpoints reach the counterpart's witness and cosignatures come back")
        return WitnessReport(target[0], covering[0], valid[covering[0]])

    # --- full verification -----------------------------------------------------------------
    def verify(self, verifier: NoteVerifier | None = None,
               progress: Callable[[int, int], None] | None = None) -> VerifyReport:
        """Recompute the whole tree from the entries; check every stored node, every checkpoint's
        signature, root and consistency with the previous one. Raises :class:`AuditVerificationError`
        naming the first bad entry (or node, or checkpoint)."""
        verifier = verifier or self.verifier
        with self._lock:
            return self._verify(verifier, progress)

    def _verify(self, verifier: NoteVerifier | None, progress: Callable[[int, int], None] | None) -> VerifyReport:
        store = self._store
        size = store.size()
        cps = store.checkpoints()
        if cps and verifier is None:
            raise AuditVerificationError("the log has checkpoints but no verifier key is known",
                                         code="AUDIT_NO_VERIFIER", hint="pass the log's verifier key (--key)")
        # Every stored checkpoint first stands on its own: signed by the trusted key, of this log's
        # origin, and its searchable size/root columns equal to the signed note (VER-1). Only then is
        # its size trusted to say how long the log was (a forged size must not pass for "entries deleted").
        opened = self._open_chain(cps, verifier)
        if cps and cps[-1][0] > size:
            raise AuditVerificationError(  # VER-2: a signed checkpoint proves those entries existed
                f"the latest checkpoint covers {cps[-1][0]} entries but the log holds {size}: "
                f"entries {size}..{cps[-1][0] - 1} were deleted", entry_index=size, code="AUDIT_TAIL_DELETED")
        cp_by_size = {row[0]: row for row in cps}
        frontier = _Frontier([])
        previous: Checkpoint | None = None
        chunk = self.config.verify_chunk
        for lo in range(0, size, chunk):
            hi = min(size, lo + chunk)
            rows = store.entries(lo, hi)
            stored_leaves = store.node_range(0, lo, hi)
            made: list[tuple[int, int, bytes]] = []
            due_checkpoints: list[tuple[tuple[int, bytes, str, int], bytes]] = []
            for expected, row in zip(range(lo, hi), rows, strict=False):
                index = row[0]
                if index != expected:
                    raise AuditVerificationError(f"entry {expected} is missing", entry_index=expected,
                                                 code="AUDIT_ENTRIES_MISSING")
                entry = self._row_to_entry(row)
                self._check_columns(entry, row)
                leaf = merkle.leaf_hash(row[1])
                if stored_leaves.get(index) != leaf:
                    raise AuditVerificationError(
                        f"entry {index}: its bytes do not hash to the stored leaf hash "
                        "(the entry or its hash was changed)", entry_index=index, code="AUDIT_LEAF_MISMATCH")
                frontier.push(index, leaf, made)
                due = cp_by_size.get(index + 1)
                if due is not None:
                    due_checkpoints.append((due, frontier.root()))
            if len(rows) != hi - lo:
                raise AuditVerificationError(f"entry {lo + len(rows)} is missing", entry_index=lo + len(rows),
                                             code="AUDIT_ENTRIES_MISSING")
            self._check_nodes(made)  # stored nodes first: a bad node is named more precisely than a bad proof
            for due, root in due_checkpoints:
                previous = self._verify_checkpoint(due, opened[due[0]], root, previous)
            if progress is not None:
                progress(hi, size)
        if store.count_nodes(0) != size:
            raise AuditVerificationError(f"the nodes table holds {store.count_nodes(0)} leaves for {size} entries",
                                         code="AUDIT_NODE_MISMATCH")
        return VerifyReport(size, len(cps), frontier.root())

    def _check_columns(self, entry: LogEntry, row: EntryRow) -> None:
        ev = entry.event
        expected = (time_to_us(ev.time), ev.authority, ev.process, ev.event_type.value, ev.message_id,
                    ev.business_key, ev.document_type, ev.outcome)
        names = ("time", "authority", "process", "event_type", "message_id", "business_key", "document_type",
                 "outcome")
        for name, want, got in zip(names, expected, row[2:], strict=True):
            if want != got:
                raise AuditVerificationError(
                    f"entry {row[0]}: the searchable column {name} ({got!r}) differs from the hashed entry ({want!r})",
                    entry_index=row[0], code="AUDIT_COLUMN_MISMATCH")
        if ev.authority != self.authority:
            raise AuditVerificationError(f"entry {row[0]} belongs to {ev.authority}, not {self.authority}",
                                         entry_index=row[0], code="AUDIT_WRONG_AUTHORITY")

    def _check_nodes(self, made: list[tuple[int, int, bytes]]) -> None:
        by_level: dict[int, dict[int, bytes]] = {}
        for level, idx, h in made:
            if level:
                by_level.setdefault(level, {})[idx] = h
        for level, computed in by_level.items():
            stored = self._store.node_range(level, min(computed), max(computed) + 1)
            for idx in sorted(computed):
                if stored.get(idx) != computed[idx]:
                    first, last = idx << level, ((idx + 1) << level) - 1
                    raise AuditVerificationError(
                        f"stored tree node (level {level}, index {idx}) over entries {first}..{last} "
                        "does not match the recomputed hash", code="AUDIT_NODE_MISMATCH")

    def _open_chain(self, cps: Sequence[tuple[int, bytes, str, int]], trusted: NoteVerifier | None
                    ) -> dict[int, Checkpoint]:
        """Open every checkpoint with the key in force at its size, following key announcements (KEY-1).

        The chain starts at the log's first key (``meta``); ``trusted`` must be one of its keys. A key
        announced at size N also signed that checkpoint, whose root covers every entry before N, so an
        auditor who holds only a later key still has every entry covered by a signature of it."""
        if not cps:
            return {}
        if trusted is None:
            raise AuditVerificationError("no verifier key", code="AUDIT_NO_VERIFIER")
        first = self._store.meta().get("verifier_key")
        current = NoteVerifier.parse(first) if first else trusted
        chain = [current]
        opened: dict[int, Checkpoint] = {}
        for row in cps:
            cp = self._open_checkpoint(row, current)
            opened[row[0]] = cp
            announced = next_key_of(cp)
            if announced is not None:
                try:  # KEY-2: the announcement is signed by the new key too
                    Checkpoint.open(row[2], announced, origin=self.origin)
                except AuditIntegrityError as exc:
                    raise AuditVerificationError(f"checkpoint at size {row[0]} announces a key that did not sign it",
                                                 code="AUDIT_KEY_CHAIN") from exc
                current = announced
                chain.append(current)
        if trusted not in chain:
            raise AuditVerificationError(
                f"the checkpoints are not signed by {trusted.name}+{trusted.key_hash.hex()}",
                code="NOTE_UNKNOWN_SIGNER", hint="check that you trust the right verifier key (xborder audit key)")
        return opened

    def key_chain(self) -> list[NoteVerifier]:
        """The log's checkpoint keys in the order they were announced (the first from ``meta``)."""
        with self._lock:
            cps = self._store.checkpoints()
            first = self._store.meta().get("verifier_key")
        if not first:
            return [self.verifier] if self.verifier else []
        chain = [NoteVerifier.parse(first)]
        for row in cps:
            if NEXT_KEY_EXTENSION not in row[2]:
                continue  # only announcements change the key; `verify` checks every other signature
            try:
                announced = next_key_of(Checkpoint.open(row[2], chain[-1], origin=self.origin))
            except AuditIntegrityError:
                break  # `verify` names the fault
            if announced is not None:
                chain.append(announced)
        return chain

    def _open_checkpoint(self, row: tuple[int, bytes, str, int], verifier: NoteVerifier | None) -> Checkpoint:
        """The signed checkpoint of a stored row, checked against the row (signature, origin, size, root)."""
        if verifier is None:
            raise AuditVerificationError("no verifier key", code="AUDIT_NO_VERIFIER")
        size = row[0]
        try:
            cp = Checkpoint.open(row[2], verifier, origin=self.origin)  # NOTE-3, CP-2: signature and origin
        except AuditIntegrityError as exc:
            raise AuditVerificationError(f"checkpoint at size {size}: {exc.message}", code=exc.code,
                                         hint=exc.hint) from exc
        if cp.size != size or cp.root != row[1]:
            raise AuditVerificationError(
                f"checkpoint at size {size}: the stored size/root ({size}, {row[1].hex()[:16]}…) differ from "
                f"its signed note ({cp.size}, {cp.root.hex()[:16]}…)", code="CHECKPOINT_TAMPERED")
        return cp

    def _verify_checkpoint(self, row: tuple[int, bytes, str, int], cp: Checkpoint, root: bytes,
                           previous: Checkpoint | None) -> Checkpoint:
        size = row[0]
        if cp.root != root:
            first = previous.size if previous else 0
            raise AuditVerificationError(
                f"checkpoint at size {size}: the signed root does not match the tree recomputed from the entries; "
                f"an entry in {first}..{size - 1} was rewritten together with its hashes",
                entry_index=first, code="CHECKPOINT_ROOT_MISMATCH")
        if previous is not None:
            proof = self._consistency_hashes(previous.size, size)
            if not merkle.verify_consistency(previous.size, size, previous.root, cp.root, proof):
                raise AuditVerificationError(
                    f"checkpoints {previous.size} and {size} are not proven consistent by the stored nodes",
                    code="CHECKPOINT_INCONSISTENT")
        return cp
