"""The gate's feed path in few SQLite statements (issue 14 item 3: under the running exchange the feed brings
hundreds of records per batch, and each cost one statement for its offset check, one for its mark and one
review query per changed declaration). The offsets are read once per partition and written once per batch;
the review of a batch's changed declarations is one query. The tests also hold the semantics: a batch that
fails leaves no mark, a redone batch is recognised, the reviewed arrivals keep their order."""

from __future__ import annotations

import pytest
from tests.gate.test_processor import ARR, FEED, NOW, TRUCK, Feed, accepted, processor

from xborder_gateway.gate import DeclarationStatus, DeclState, Direction, GateStore, VehicleDeclarationSeen


def _count(store: GateStore) -> list[str]:
    seen: list[str] = []
    store._db.set_trace_callback(seen.append)  # every statement SQLite runs, BEGIN and COMMIT included
    return seen


def _statuses(n: int) -> list[DeclarationStatus]:
    return [DeclarationStatus(f"30{i:010d}", DeclState.SENT, NOW - 1000) for i in range(n)]


def test_feed_records_cost_about_one_statement_each() -> None:
    """Before: 5.0 statements per status record (offset check, status read, status upsert, mark, and the
    review query of its declaration); after: 2.0 (status read + upsert; per batch one offset read per
    partition, one mark statement, one review query). Bound: 2.2 (fails if per-record statements return)."""
    f, store = Feed(), GateStore.memory()
    p = processor(store)
    p.handle([*f.view(TRUCK, *accepted(TRUCK.number, *TRUCK.linked)), f.arrival("a1")])
    seen = _count(store)
    batch = f.view(*_statuses(200))
    p.handle(batch)
    per_record = len(seen) / len(batch)
    assert per_record <= 2.2, f"{per_record:.2f} statements per feed record ({len(seen)} for {len(batch)})"
    assert store.next_offset(FEED, 0) == batch[-1].offset + 1


def test_a_failed_batch_leaves_no_mark_and_is_applied_when_redone(monkeypatch: pytest.MonkeyPatch) -> None:
    f, store = Feed(), GateStore.memory()
    p = processor(store)
    batch = f.view(*_statuses(5))
    calls = {"n": 0}
    real = store.apply

    def failing(ev: object, now: int) -> set[str]:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("disk gone")
        return real(ev, now)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "apply", failing)
    with pytest.raises(RuntimeError):
        p.handle(batch)
    assert store.next_offset(FEED, 0) == 0  # the marks of the rolled-back batch were never written
    assert not store.applied(FEED, 0, 0)
    monkeypatch.setattr(store, "apply", real)
    result = p.handle(batch)
    assert result.replayed == 0
    assert store.next_offset(FEED, 0) == 5
    assert p.handle(batch).replayed == 5  # and now it is recognised as applied


def test_a_mark_never_moves_the_stored_offset_back() -> None:
    store = GateStore.memory()
    with store.transaction():
        store.mark(ARR, 1, 9)
        store.mark(ARR, 1, 3)
        assert store.next_offset(ARR, 1) == 10
    assert store.next_offset(ARR, 1) == 10
    with store.transaction():
        store.mark(ARR, 1, 4)
    assert store.next_offset(ARR, 1) == 10
    store.mark(ARR, 2, 0)  # outside a transaction: written at once, as before
    assert store.next_offset(ARR, 2) == 1


def test_reviewed_arrivals_come_in_declaration_then_camera_order() -> None:
    f, store = Feed(), GateStore.memory()
    p = processor(store)
    trucks = [VehicleDeclarationSeen(number=f"91000000000{i}", direction=Direction.EXIT_TO_CN, plate=f"12C3456{i}",
                                     linked=(f"30000000000{i}",)) for i in range(3)]
    p.handle(f.view(*trucks))
    for i in reversed(range(len(trucks))):  # arrivals in reverse number order
        p.handle([f.arrival(f"a{i}", plate=f"12C-345.6{i}")])
    since = NOW - 3_600_000
    assert store.arrivals_to_review({t.linked[0] for t in trucks}, set(), since) == ["a0", "a1", "a2"]
    assert store.arrivals_to_review({trucks[2].linked[0]}, set(), since) == ["a2"]
    assert store.arrivals_to_review(set(), set(), since) == []
