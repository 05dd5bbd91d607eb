"""Issue 15 item 1, CN -> VN: CN's road manifest waits at VN's endpoint for the CN export declarations it lists
(PEN-1..3) and, once they are all processed there, follows their mirror outcomes (PEN-6). Real keys, real
SQLite, the endpoint's own processor; no broker (the real-broker run is ``test_pending_e2e.py``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from xborder_gateway.connectors import Faults, NanningProcessor
from xborder_gateway.connectors._pending_endpoint import ExpiryTicker, pending_summary
from xborder_gateway.exchange._business import BusinessDecision
from xborder_gateway.exchange._pending import (
    LINKED_DECLARATION_HELD,
    LINKED_DECLARATION_PENDING,
    LINKED_DECLARATION_REJECTED,
    LINKED_DECLARATION_UNKNOWN,
    decide_vehicle,
)
from xborder_gateway.samples import CnConsignment, generate_cn_exports
from xborder_gateway.transport import Incoming, Outgoing

from .conftest import Home, open_answers
from .test_cn_vn_direction import _as_incoming, _cn_sends, _vn_takes_in

GRACE_S = 20.0
T0 = 1_800_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def vn_in(home: Home, clock: Clock) -> Iterator[NanningProcessor]:
    view = home.settings.for_role("VN", "CN").model_copy(update={"exchange_linked_grace_s": GRACE_S})
    endpoint = NanningProcessor(view, home.vn, home.vn_trust, Faults(), authority="VN")
    assert endpoint.pending is not None
    assert endpoint.mirror is not None
    endpoint.pending.clock = clock
    yield endpoint
    endpoint.close()


def _sealed(home: Home, consignments: Sequence[CnConsignment]) -> tuple[list[Outgoing], list[Outgoing]]:
    """(CN exports, CN road manifests) as CN's outbound sealed them for VN."""
    cn_out, outputs = _cn_sends(home, consignments)
    cn_out.close()
    sealed = [o for o in outputs if o.topic.startswith("xb.cn-vn.exchange")]
    return ([o for o in sealed if o.header("xbg-doc-type") == b"CN_EXPORT"],
            [o for o in sealed if o.header("xbg-doc-type") == b"CN_MANIFEST"])


def _answers(home: Home, outputs: Sequence[Outgoing]) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, message id, record) of each answer, opened with CN's keys as its tracker would."""
    return open_answers(outputs, home.cn, home.cn_trust)


def _mids(outputs: Sequence[Outgoing]) -> list[str]:
    return [(o.header("xbg-message-id") or b"").decode() for o in outputs]


def _responses(home: Home, outputs: Sequence[Outgoing]) -> dict[str, tuple[str, list[str]]]:
    return {mid: (str(r["status"]), [x["code"] for x in r["reasons"]])
            for kind, mid, r in _answers(home, outputs) if kind == "business-response"}


_offset = iter(range(10_000, 10**9))


def _batch(outputs: Sequence[Outgoing]) -> list[Incoming]:
    return _as_incoming(outputs, next(_offset) * 100)


def _clean(count: int, seed: int) -> list[CnConsignment]:
    found = [c for c in generate_cn_exports(count, seed) if c.vn_has_import and not c.expected_findings]
    assert found, "the seed must give clean consignments"
    return found


def test_manifest_before_its_exports_is_pending_then_decided_by_the_completing_batch(
        home: Home, vn_in: NanningProcessor) -> None:
    consignments = _clean(4, 8)
    _vn_takes_in(home, consignments)
    exports, manifests = _sealed(home, consignments)
    first = vn_in.process(_batch(manifests)).outputs
    answers = _answers(home, first)
    assert [k for k, _m, _r in answers] == ["receipt"] * len(manifests)  # PEN-1: no business response yet
    for _k, _mid, receipt in answers:
        assert receipt["outcome"] == "ACK"
        assert receipt.get("business_status") is None  # the Receipt v2 carries no decision for a PENDING one
        assert str(receipt["reason_text"]).startswith(f"{LINKED_DECLARATION_PENDING}:")
    assert pending_summary(vn_in.store.connection)["still_pending"] == len(manifests)
    second = vn_in.process(_batch(exports)).outputs
    # the batch that brings the exports answers the waiting manifests, addressed to THEIR message ids
    assert _responses(home, second) == {mid: ("ACCEPTED", []) for mid in _mids(manifests)}
    summary = pending_summary(vn_in.store.connection)
    assert (summary["pending_then_decided"], summary["still_pending"]) == (len(manifests), 0)


def test_exports_first_decide_the_manifest_at_once(home: Home, vn_in: NanningProcessor) -> None:
    consignments = _clean(3, 8)
    _vn_takes_in(home, consignments)
    exports, manifests = _sealed(home, consignments)
    vn_in.process(_batch(exports))
    answers = _answers(home, vn_in.process(_batch(manifests)).outputs)
    assert [(k, r.get("business_status")) for k, _m, r in answers] == [("receipt", "ACCEPTED")] * len(manifests)


def test_manifest_follows_its_exports_mirror_outcomes(home: Home, vn_in: NanningProcessor) -> None:
    """PEN-6: an export with findings (HELD) or whose check still waits for VN's IDA holds its manifest."""
    consignments = list(generate_cn_exports(8, 21, mismatch_ratio=0.5))
    held = {c.manifest["manifest_number"] for c in consignments if c.expected_findings or not c.vn_has_import}
    assert held
    assert held != {c.manifest["manifest_number"] for c in consignments}
    _vn_takes_in(home, consignments)
    exports, manifests = _sealed(home, consignments)
    vn_in.process(_batch(manifests))
    later = _answers(home, vn_in.process(_batch(exports)).outputs)
    decided = {str(r["business_key"]): (str(r["status"]), {x["code"] for x in r["reasons"]})
               for k, _m, r in later if k == "business-response"}
    assert len(decided) == len(manifests)
    for number, (status, codes) in decided.items():
        assert (status, codes) == (("HELD", {LINKED_DECLARATION_HELD}) if number in held else ("ACCEPTED", set()))


def test_grace_tick_rejects_a_manifest_whose_exports_never_come(
        home: Home, vn_in: NanningProcessor, clock: Clock) -> None:
    consignments = _clean(2, 8)
    _exports, manifests = _sealed(home, consignments)
    vn_in.process(_batch(manifests))
    assert vn_in.pending is not None
    ticker = ExpiryTicker(vn_in.pending, vn_in.store, None)
    clock.ms = T0 + int(GRACE_S * 1000) - 1
    assert ticker.tick() == []  # not before the grace period, counted from the processing time
    clock.ms = T0 + int(GRACE_S * 1000)
    out = ticker.tick()
    assert _responses(home, out) == {mid: ("REJECTED", [LINKED_DECLARATION_UNKNOWN]) for mid in _mids(manifests)}
    assert [o.value for o in ticker.tick()] == [o.value for o in out]  # TICK-1: the same bytes until committed
    ticker.committed(out)
    assert ticker.tick() == []  # decided once (PEN-4)
    assert pending_summary(vn_in.store.connection)["expired"] == len(manifests)


def test_the_grace_ticker_runs_at_vns_endpoint(vn_in: NanningProcessor) -> None:
    from types import SimpleNamespace

    from xborder_gateway.connectors.nanning import _grace_ticker

    ticker = _grace_ticker(SimpleNamespace(auditor=None), vn_in)  # type: ignore[arg-type]
    assert isinstance(ticker, ExpiryTicker)


@pytest.mark.parametrize(("outcomes", "expected"), [
    ({"E1": "ACCEPTED", "E2": "ACCEPTED"}, ("ACCEPTED", [])),
    ({"E1": "ACCEPTED", "E2": "HELD"}, ("HELD", [LINKED_DECLARATION_HELD])),
    ({"E1": "WAITING", "E2": "ACCEPTED"}, ("HELD", [LINKED_DECLARATION_HELD])),
    ({"E1": "REJECTED", "E2": "HELD"}, ("REJECTED", [LINKED_DECLARATION_REJECTED])),
])
def test_decide_vehicle_follows_the_worst_linked_outcome(outcomes: dict[str, str],
                                                         expected: tuple[str, list[str]]) -> None:
    from xborder_gateway.exchange._business import KnownDeclaration

    def decide(outcome: Any) -> BusinessDecision:
        return decide_vehicle("CN_MANIFEST", ["E1", "E2"], gross_weight_kg=None,
                              lookup=lambda k: KnownDeclaration(k, None), cancelled=lambda _k: False,
                              processed_ms=0, now_ms=0, grace_ms=1000, outcome=outcome)

    got = decide(outcomes.get)
    assert (got.status, [c for c, _t in got.reasons]) == expected
    assert decide(None).status == "ACCEPTED"  # without outcomes (CN's endpoint) nothing changes


def test_a_missing_export_still_waits_whatever_the_others_outcomes() -> None:
    got = decide_vehicle("CN_MANIFEST", ["E1", "E2"], gross_weight_kg=None,
                         lookup=lambda k: None if k == "E2" else object(),  # type: ignore[arg-type,return-value]
                         cancelled=lambda _k: False, processed_ms=0, now_ms=0, grace_ms=1000,
                         outcome={"E1": "HELD"}.get)
    assert got.status == "PENDING"
