"""The CN -> VN direction through the same processors as VN -> CN (issue 10 items 3 and 4), with real keys
and real SQLite and no broker: CN's outbound takes framed Avro, VN's endpoint opens, de-duplicates and runs
the mirror checks against the IDAs VN's own outbound recorded, CN's tracker matches VN's answers."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

import pytest

from xborder_gateway import avro
from xborder_gateway.connectors import Faults, NanningProcessor, OutboundProcessor, ReceiptTracker
from xborder_gateway.connectors._common import H_PUBLISHED_MS, H_RUN
from xborder_gateway.connectors._mirror_tick import mark_produced, recheck_once
from xborder_gateway.exchange import summarize_run
from xborder_gateway.exchange._mirror_store import load_imports, mirror_summary
from xborder_gateway.samples import CnConsignment, generate_cn_exports
from xborder_gateway.transport import Incoming, Outgoing

from .conftest import Home, open_answers

RUN = "cnvn1"


def _intake(topic: str, items: Sequence[tuple[str, bytes]]) -> list[Incoming]:
    now = int(time.time() * 1000)
    return [Incoming(topic, 0, i, key.encode(), value, ((H_RUN, RUN.encode()), (H_PUBLISHED_MS, str(now).encode())),
                     timestamp_ms=now) for i, (key, value) in enumerate(items)]


def _as_incoming(outputs: Sequence[Outgoing], start: int = 0) -> list[Incoming]:
    return [Incoming(o.topic, 0, start + i, o.key, o.value, o.headers, timestamp_ms=int(time.time() * 1000))
            for i, o in enumerate(outputs)]


def _vn_takes_in(home: Home, consignments: Sequence[CnConsignment]) -> None:
    vn_out = OutboundProcessor(home.settings, home.vn, home.vn_trust)
    res = vn_out.process(_intake(home.settings.topic_intake, [(c.ida.business_key, c.ida.xml) for c in consignments
                                                              if c.vn_has_import]))
    assert res.counts["sealed"] == sum(c.vn_has_import for c in consignments)
    vn_out.close()


def _cn_sends(home: Home, consignments: Sequence[CnConsignment], extra: Sequence[tuple[str, bytes]] = ()
              ) -> tuple[OutboundProcessor, list[Outgoing]]:
    view = home.settings.for_role("CN", "CN")
    cn_out = OutboundProcessor(view, home.cn, home.cn_trust, "CN")
    frames = [(c.export["declaration_number"], c.export_frame()) for c in consignments]
    frames += [(c.manifest["manifest_number"], c.manifest_frame()) for c in consignments]
    res = cn_out.process(_intake(view.topic_intake, [*frames, *extra]))
    return cn_out, res.outputs


def test_cn_outbound_seals_agreed_avro_for_vn_on_cn_topics(home: Home) -> None:
    consignments = list(generate_cn_exports(6, 11))
    bad = b"\xc3\x01" + b"\x00" * 12  # a frame of no agreed schema: CNA-2/3
    cn_out, outputs = _cn_sends(home, consignments, [("BAD-1", bad)])
    by_topic = Counter(o.topic for o in outputs)
    assert set(by_topic) <= {"xb.cn-vn.exchange", "xb.cn-vn.exchange.priority", "cn.declarations.rejected",
                             "cn.declarations.status"}
    assert by_topic["xb.cn-vn.exchange"] + by_topic["xb.cn-vn.exchange.priority"] == 12
    rejected = [o for o in outputs if o.topic == "cn.declarations.rejected"]
    assert [r.value for r in rejected] == [bad]  # raw bytes kept
    sealed = [o for o in outputs if o.topic.startswith("xb.cn-vn.exchange")]
    assert {o.header("xbg-doc-type") for o in sealed} == {b"CN_EXPORT", b"CN_MANIFEST"}
    perishable = {c.manifest["manifest_number"] for c in consignments if c.manifest["perishable"]}
    assert {o.header("xbg-business-key").decode() for o in sealed  # type: ignore[union-attr]
            if o.topic.endswith(".priority") and o.header("xbg-doc-type") == b"CN_MANIFEST"} == perishable
    # CN's own state: the duplicate check lives in CN's state database, never VN's
    assert cn_out.db.execute("SELECT count(*) FROM xbg_submissions").fetchone()[0] == 12
    cn_out.close()
    assert not home.settings.state_db("VN").exists()


def test_vn_outbound_records_its_idas_for_the_mirror(home: Home) -> None:
    consignments = list(generate_cn_exports(4, 5))
    _vn_takes_in(home, consignments)
    import sqlite3

    with sqlite3.connect(home.settings.state_db("VN")) as conn:
        for c in consignments:
            found = load_imports(conn, c.export["vehicle_plate"])  # the CN spelling of the plate
            assert c.ida.business_key in {i.number for i in found}


def _direction(home: Home, consignments: Sequence[CnConsignment]) -> tuple[NanningProcessor, list[Outgoing],
                                                                           list[Outgoing]]:
    _vn_takes_in(home, consignments)
    cn_out, outputs = _cn_sends(home, consignments)
    cn_out.close()
    sealed = [o for o in outputs if o.topic.startswith("xb.cn-vn.exchange")]
    vn_in = NanningProcessor(home.settings.for_role("VN", "CN"), home.vn, home.vn_trust, Faults(), authority="VN")
    res = vn_in.process(_as_incoming(sealed))
    assert res.counts["processed"] == len(sealed)
    return vn_in, sealed, res.outputs


def _decisions(home: Home, outputs: Sequence[Outgoing]) -> list[tuple[str, list[str]]]:
    """(status, reason codes) of every business decision in ``outputs``, opened with CN's keys: the one a
    Receipt v2 carries, and each BusinessResponse."""
    out = []
    for kind, _mid, rec in open_answers(outputs, home.cn, home.cn_trust):
        if kind == "receipt" and rec.get("business_status") is not None:
            out.append((str(rec["business_status"]), [r["code"] for r in rec["business_reasons"]]))
        elif kind == "business-response":
            out.append((str(rec["status"]), [r["code"] for r in rec["reasons"]]))
    return out


def test_seeded_mismatches_are_found_exactly_end_to_end(home: Home) -> None:
    consignments = list(generate_cn_exports(30, 21, mismatch_ratio=0.5))
    vn_in, sealed, answers = _direction(home, consignments)
    assert {o.topic for o in answers} == {"xb.vn-cn.receipts"}
    kinds = Counter(o.header("xbg-kind") for o in answers)
    assert kinds[b"receipt"] == len(sealed)
    waiting = [c for c in consignments if not c.vn_has_import]
    assert waiting, "the seed must include a no-import export"
    # every export but those without an IDA was answered at once -- the decision rides in its Receipt v2
    # (issue 13: one answer per declaration); those wait (no finding before the timeout)
    assert len(_decisions(home, answers)) == len(sealed) - len(waiting)
    assert recheck_once(vn_in, None) == []
    late = recheck_once(vn_in, None, now=int(time.time() * 1000) + int(home.settings.mirror_import_timeout_s * 1000))
    assert len(late) == len(waiting)
    mark_produced(vn_in, late)
    assert recheck_once(vn_in, None, now=2**62) == []  # decided once, produced once
    expected = Counter(code for c in consignments for code in c.expected_findings)
    found = mirror_summary(vn_in.store.connection, RUN)
    assert found["by_code"] == dict(expected)
    assert found["waiting"] == 0
    assert found["clean"] == sum(1 for c in consignments if c.seeded is None)
    # the decisions (in Receipts v2 now, in business responses after the re-check) carry the findings as reasons
    reasons = Counter(code for _status, codes in _decisions(home, [*answers, *late]) for code in codes)
    # issue 15 PEN-6: each manifest follows its export -- HELD when the export is held or its check still waits
    held_manifests = reasons.pop("LINKED_DECLARATION_HELD", 0)
    assert held_manifests == sum(1 for c in consignments if c.expected_findings or not c.vn_has_import)
    assert reasons == expected
    vn_in.close()


def test_an_ida_taken_in_after_the_export_is_matched_on_the_recheck(home: Home) -> None:
    consignments = list(generate_cn_exports(3, 8))
    cn_out, outputs = _cn_sends(home, consignments)
    cn_out.close()
    vn_in = NanningProcessor(home.settings.for_role("VN", "CN"), home.vn, home.vn_trust, Faults(), authority="VN")
    answers = vn_in.process(_as_incoming([o for o in outputs if o.topic.startswith("xb.cn-vn.")])).outputs
    assert not [o for o in answers if o.header("xbg-kind") == b"business-response"
                and o.header("xbg-doc-type") == b"CN_EXPORT"]
    assert mirror_summary(vn_in.store.connection, RUN)["waiting"] == 3
    _vn_takes_in(home, consignments)  # VN's IDAs arrive later
    decided = recheck_once(vn_in, None)
    assert len(decided) == 3
    summary = mirror_summary(vn_in.store.connection, RUN)
    assert (summary["waiting"], summary["clean"], summary["by_code"]) == (0, 3, {})
    vn_in.close()


def test_cn_tracker_delivers_from_vns_receipts(home: Home) -> None:
    consignments = list(generate_cn_exports(5, 3, mismatch_ratio=1.0))
    vn_in, sealed, answers = _direction(home, consignments)
    late = recheck_once(vn_in, None, now=2**62)
    view = home.settings.for_role("CN", "CN")
    tracker = ReceiptTracker(view, home.cn, home.cn_trust, "CN")
    res = tracker.consume(_as_incoming(sealed) + _as_incoming([*answers, *late], len(sealed)))
    assert res.counts["delivered"] == len(sealed)
    assert {o.topic for o in res.outputs} == {"cn.declarations.status"}
    summary = summarize_run(tracker.conn, RUN, vn_in.store.connection)
    assert summary.delivered == len(sealed)
    # the export with findings and (issue 15 PEN-6) its road manifest, which follows it
    assert summary.business.get("HELD", 0) == 2 * sum(1 for c in consignments if c.expected_findings)
    assert {e.authority for e in res.events} == {"CN"}
    tracker.close()
    vn_in.close()


@pytest.mark.parametrize("authority", ["VN", "CN"])
def test_each_authority_audits_under_its_own_name(home: Home, authority: str) -> None:
    consignments = list(generate_cn_exports(2, 4))
    if authority == "CN":
        cn_out, _outputs = _cn_sends(home, consignments)
        events = cn_out.process(_intake(cn_out.settings.topic_intake, [("K", b"junk")])).events
        cn_out.close()
    else:
        vn_in, _sealed, _answers = _direction(home, consignments)
        events = vn_in.process(_as_incoming([Outgoing("xb.cn-vn.exchange", b"k", b"junk")])).events
        vn_in.close()
    assert events
    assert {e.authority for e in events} == {authority}


def test_publish_authority_cn_puts_cn_samples_on_cns_intake(home: Home, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from xborder_gateway._cli import main
    from xborder_gateway.intake import take_cn_avro
    from xborder_gateway.transport import memory_broker

    bootstrap = "memory://publish-cn"
    monkeypatch.setenv("XBG_KAFKA_BOOTSTRAP", bootstrap)
    assert main(["--home", str(home.path), "publish", "--authority", "CN", "--generate", "3", "--seed", "2"]) == 0
    assert capsys.readouterr().out.strip() == "6"
    broker = memory_broker(bootstrap)
    records = broker.records("cn.declarations.raw")
    assert len(records) == 6  # an export declaration and a road manifest per truck
    assert {take_cn_avro(r.value).schema_name for r in records} == {"CnExportDeclaration", "CnRoadManifest"}
    assert all(r.key for r in records)
    assert broker.records("vn.declarations.raw") == []


def test_an_export_labelled_envelope_of_another_schema_is_rejected_not_retried(home: Home) -> None:
    """MIR-2: a CN_EXPORT whose payload is not a CnExportDeclaration is a permanent business rejection (an
    ACK with REJECTED), never an INTERNAL_ERROR NACK that the sender would resend until it dead-letters."""
    from datetime import UTC, datetime

    from xborder_gateway.envelope import open_receipt, seal

    payload = avro.encode("BusinessResponse", {"message_id": "00000000-0000-0000-0000-000000000000",
                                               "business_key": "X", "document_type": "CN_EXPORT",
                                               "status": "ACCEPTED", "reasons": [], "responded_at": datetime.now(UTC)})
    env = seal(payload, sender=home.cn, recipient="VN", trust=home.cn_trust, document_type="CN_EXPORT",
               schema_fingerprint=payload[2:10])
    vn_in = NanningProcessor(home.settings.for_role("VN", "CN"), home.vn, home.vn_trust, Faults(), authority="VN")
    res = vn_in.process(_as_incoming([Outgoing("xb.cn-vn.exchange", b"k", env.data)]))
    assert res.counts["processed"] == 1
    assert "failed" not in res.counts
    kinds = {o.header("xbg-kind"): o for o in res.outputs}
    _opened, receipt = open_receipt(kinds[b"receipt"].value, me=home.cn, trust=home.cn_trust, replay=None)
    assert receipt["outcome"] == "ACK"
    # the immediate decision rides in the Receipt v2 (issue 13), the same one a BusinessResponse would carry
    assert _decisions(home, res.outputs) == [("REJECTED", ["DOCUMENT_SCHEMA_MISMATCH"])]
    assert mirror_summary(vn_in.store.connection, RUN)["checked"] == 0
    vn_in.close()
