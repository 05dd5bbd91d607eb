"""The status feed for senders (issue 10 item 4): records, partitioning, and ``xborder status``.

The CLI is run against the in-memory broker in the unit suite and against the real broker (as a
subprocess) in the integration suite, over the same records.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from xborder_gateway._cli import main
from xborder_gateway.exchange import (
    StatusChange,
    StatusKind,
    StatusVehicle,
    normalise_plate,
    read_status,
    status_partition,
    status_record,
    unknown_key,
)
from xborder_gateway.transport import ensure_topics, make_producer, memory_broker

DECL = "102345678901"


def history(number: str = DECL) -> list[StatusChange]:
    t0 = 1_780_000_000_000
    return [
        StatusChange(number, "VN", StatusKind.TAKEN_IN, t0, "IDA", intake=("vn.declarations.raw", 2, 41)),
        StatusChange(number, "VN", StatusKind.SENT, t0 + 30, "IDA", message_id="0190a1b2-0000-7000-8000-000000000001",
                     attempt=1),
        StatusChange(number, "VN", StatusKind.RESENT, t0 + 10_030, "IDA",
                     message_id="0190a1b2-0000-7000-8000-000000000001", attempt=2),
        StatusChange(number, "VN", StatusKind.DELIVERED, t0 + 10_100, "IDA",
                     message_id="0190a1b2-0000-7000-8000-000000000001"),
        StatusChange(number, "VN", StatusKind.BUSINESS_OUTCOME, t0 + 10_101, "IDA",
                     message_id="0190a1b2-0000-7000-8000-000000000001", business_status="HELD",
                     reasons=(("SPS_PUC_NOT_REGISTERED", "mã vùng trồng VN-DRF-9999 chưa đăng ký"),)),
    ]


def test_a_status_record_round_trips_every_field() -> None:
    vehicle = StatusChange("300000000017", "VN", StatusKind.TAKEN_IN, 5, "TIR",
                           vehicle=StatusVehicle("29h1-234.56", ("MSKU1234565",), ("102345678901",), True))
    import dataclasses

    for change in [*history(), vehicle]:
        record = status_record("vn.declarations.status", change)
        assert record.key == change.declaration_number.encode()
        back = read_status(record.value)
        expected = change
        if change.vehicle is not None:  # the plate is normalised on the feed
            assert back.vehicle == StatusVehicle("29H123456", ("MSKU1234565",), ("102345678901",), True)
            expected = dataclasses.replace(change, vehicle=back.vehicle)
        assert back == expected


def test_business_outcome_needs_its_status() -> None:
    with pytest.raises(ValueError, match="business_status"):
        status_record("t", StatusChange(DECL, "VN", StatusKind.BUSINESS_OUTCOME, 1))


@pytest.mark.parametrize(("raw", "normal"), [("29H1-234.56", "29H123456"), ("桂A·12345", "桂A12345"),
                                             (" 12c 345 67 ", "12C34567"), ("桂a•12345", "桂A12345")])
def test_plates_are_normalised(raw: str, normal: str) -> None:
    assert normalise_plate(raw) == normal


def test_unreadable_input_gets_a_stable_key() -> None:
    assert unknown_key(b"x") == unknown_key(b"x")
    assert unknown_key(b"x") != unknown_key(b"y")
    assert unknown_key(b"x").startswith("unknown:")


async def _publish(bootstrap: str, topic: str, changes: list[StatusChange]) -> None:
    await ensure_topics(bootstrap, (topic,), 3)
    producer = make_producer(bootstrap, client_id="t-status")
    await producer.start()
    try:
        for change in changes:
            record = status_record(topic, change)
            await (await producer.send(topic, value=record.value, key=record.key, headers=list(record.headers)))
    finally:
        await producer.stop()


def test_status_partition_is_where_the_producer_puts_the_key() -> None:
    boot = f"memory://{uuid.uuid4().hex}"
    numbers = [f"1023456789{i:02d}" for i in range(30)]
    asyncio.run(_publish(boot, "s", [history(n)[0] for n in numbers]))
    placed = {r.key.decode(): r.partition for r in memory_broker(boot).records("s") if r.key}
    assert placed == {n: status_partition(n, 3) for n in numbers}


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], home: Path, boot: str,
         *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("XBG_KAFKA_BOOTSTRAP", boot)
    code = main(["--home", str(home), "status", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_status_cli_prints_the_history_and_exits_0(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str], tmp_home: Path) -> None:
    boot = f"memory://{uuid.uuid4().hex}"
    other = history("102345678999")
    asyncio.run(_publish(boot, "vn.declarations.status", history() + other))
    code, out, _ = _cli(monkeypatch, capsys, tmp_home, boot, DECL)
    assert code == 0
    lines = [ln for ln in out.splitlines() if not ln.startswith("    ")]
    assert [ln.split()[1] for ln in lines] == ["TAKEN_IN", "SENT", "RESENT", "DELIVERED", "BUSINESS_OUTCOME"]
    assert "SPS_PUC_NOT_REGISTERED" in out
    assert "102345678999" not in out
    code, out, _ = _cli(monkeypatch, capsys, tmp_home, boot, DECL, "--json")
    assert code == 0
    data = json.loads(out)
    assert [d["state"] for d in data] == ["TAKEN_IN", "SENT", "RESENT", "DELIVERED", "BUSINESS_OUTCOME"]
    assert data[-1]["business_status"] == "HELD"
    assert data[0]["at"].endswith("Z")
    assert data[0]["intake"] == {"topic": "vn.declarations.raw", "partition": 2, "offset": 41}


def test_status_cli_not_found_exits_1(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                      tmp_home: Path) -> None:
    boot = f"memory://{uuid.uuid4().hex}"
    asyncio.run(_publish(boot, "vn.declarations.status", history()))
    code, out, err = _cli(monkeypatch, capsys, tmp_home, boot, "999999999999")
    assert (code, out) == (1, "")
    assert "no record for 999999999999" in err
    code, _, err = _cli(monkeypatch, capsys, tmp_home, f"memory://{uuid.uuid4().hex}", DECL, "--timeout", "0.5")
    assert code == 1
    assert "does not exist" in err


@pytest.mark.parametrize("bad", [["x" * 65], [""], ["12\x00"], [DECL, "--timeout", "0"], [DECL, "--timeout", "nan"]])
def test_status_cli_usage_errors_exit_2(bad: list[str], tmp_home: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--home", str(tmp_home), "status", *bad])
    assert info.value.code == 2


@pytest.mark.integration
def test_status_cli_on_the_real_broker(kafka_bootstrap: str, topic_prefix: str, tmp_home: Path) -> None:
    topic = f"{topic_prefix}.status"
    asyncio.run(_publish(kafka_bootstrap, topic, history() + history("102345678999")))
    env = {**os.environ, "XBG_KAFKA_BOOTSTRAP": kafka_bootstrap}
    done = subprocess.run([sys.executable, "-m", "xborder_gateway._cli", "--home", str(tmp_home), "status", DECL,
                           "--json", "--topic", topic], capture_output=True, text=True, env=env, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert [d["state"] for d in json.loads(done.stdout)] == [
        "TAKEN_IN", "SENT", "RESENT", "DELIVERED", "BUSINESS_OUTCOME"]
    missing = subprocess.run([sys.executable, "-m", "xborder_gateway._cli", "--home", str(tmp_home), "status",
                              "999999999999", "--topic", topic], capture_output=True, text=True, env=env,
                             timeout=60, check=False)
    assert missing.returncode == 1


# --- wired into the outbound connector: its transaction carries the feed's records --------------------------
def test_outbound_writes_taken_in_sent_and_rejected_to_the_feed(tmp_path: Path) -> None:
    from xborder_gateway.connectors import OutboundProcessor
    from xborder_gateway.samples import generate
    from xborder_gateway.transport import Incoming

    from .conftest import make_home

    home = make_home(tmp_path / "home")
    s = home.settings
    ida = next(iter(generate("IDA", 1, seed=5)))
    tir = next(iter(generate("TIR", 1, seed=5)))
    bad = b"<IDA>not a declaration"
    ob = OutboundProcessor(s, home.vn, home.vn_trust)
    try:
        res = ob.process([Incoming(s.topic_intake, 0, 1, ida.business_key.encode(), ida.xml),
                          Incoming(s.topic_intake, 0, 2, tir.business_key.encode(), tir.xml),
                          Incoming(s.topic_intake, 1, 9, None, bad)])
    finally:
        ob.close()
    feed = [read_status(o.value) for o in res.outputs if o.topic == s.topic_status]
    by_key = {(c.declaration_number, c.kind.value): c for c in feed}
    assert {k for k in by_key if k[0] == ida.business_key} == {(ida.business_key, "TAKEN_IN"),
                                                                (ida.business_key, "SENT")}
    sent = by_key[(ida.business_key, "SENT")]
    exchange_ids = {o.header("xbg-message-id") for o in res.outputs if o.topic in (s.topic_exchange,
                                                                                   s.topic_exchange_priority)}
    assert sent.message_id is not None
    assert sent.message_id.encode() in exchange_ids
    assert by_key[(ida.business_key, "TAKEN_IN")].intake == (s.topic_intake, 0, 1)
    vehicle = by_key[(tir.business_key, "SENT")].vehicle
    assert vehicle is not None
    assert vehicle.plate
    assert vehicle.linked_declarations
    # the feed's vehicle is what the sealed payload says (read from the mapped record, not decoded again)
    from xborder_gateway.avro import decode
    from xborder_gateway.documents import translate_xml

    envelope_payload = decode(translate_xml(tir.xml).payload).record
    assert vehicle.plate == normalise_plate(str(envelope_payload["vehicle"]["plate"]))
    assert vehicle.containers == tuple(str(c["number"]) for c in envelope_payload["containers"])
    rejected = [c for c in feed if c.kind is StatusKind.REJECTED]
    assert len(rejected) == 1
    assert rejected[0].declaration_number == unknown_key(bad)
    assert rejected[0].reasons
    assert rejected[0].intake == (s.topic_intake, 1, 9)


def test_run_summary_counts_business_outcomes_by_reason(tmp_path: Path) -> None:
    """The demo's `business_by_reason` (issue 15 item 5): delivered messages' HELD/REJECTED reasons."""
    from xborder_gateway.exchange import VN_SCHEMA, connect, summarize_run

    conn = connect(tmp_path / "vn.sqlite", VN_SCHEMA)
    rows = [("m1", "HELD", '[{"code": "SPS_PUC_NOT_REGISTERED", "text": "x"}]'),
            ("m2", "HELD", '[{"code": "SPS_PUC_NOT_REGISTERED", "text": "x"}, '
                           '{"code": "LICENCE_REQUIRED", "text": "y"}]'),
            ("m3", "REJECTED", '[{"code": "SPS_PRODUCT_NOT_ADMITTED", "text": "z"}]'),
            ("m4", "ACCEPTED", "[]")]
    for mid, status, reasons in rows:
        conn.execute("INSERT INTO xbg_messages (message_id, state, attempts, data, run, business_status, "
                     "business_reasons) VALUES (?, 'delivered', 1, x'00', 'r', ?, ?)", (mid, status, reasons))
    conn.commit()
    summary = summarize_run(conn, "r")
    assert summary.business_by_reason == {"HELD LICENCE_REQUIRED": 1, "HELD SPS_PUC_NOT_REGISTERED": 2,
                                          "REJECTED SPS_PRODUCT_NOT_ADMITTED": 1}
    assert summary.business == {"ACCEPTED": 1, "HELD": 2, "REJECTED": 1}


def test_settled_count_is_the_summarys_settled(tmp_path: Path) -> None:
    """The benches' cheap poll counts exactly what ``summarize_run(...).settled`` counts: delivered and dead
    messages whose envelope is known, and rejected records -- of this run only."""
    from xborder_gateway.exchange import VN_SCHEMA, connect, settled_count, summarize_run

    conn = connect(tmp_path / "vn.sqlite", VN_SCHEMA)
    for mid, state, data, run in [("m1", "delivered", b"\x00", "r"), ("m2", "dead", b"\x00", "r"),
                                  ("m3", "pending", b"\x00", "r"), ("m4", "delivered", None, "r"),
                                  ("m5", "delivered", b"\x00", "other")]:
        conn.execute("INSERT INTO xbg_messages (message_id, state, attempts, data, run) VALUES (?, ?, 1, ?, ?)",
                     (mid, state, data, run))
    for offset, run in [(1, "r"), (2, "r"), (3, "other")]:
        conn.execute("INSERT INTO xbg_rejected (topic, part, offs, run, reason_code) VALUES ('t', 0, ?, ?, 'X')",
                     (offset, run))
    conn.commit()
    assert settled_count(conn, "r") == summarize_run(conn, "r").settled == 4
    assert settled_count(conn, "none") == summarize_run(conn, "none").settled == 0
