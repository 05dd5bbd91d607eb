"""Issue 12 item 4: `xborder audit trace DECL` and `/v1/trace/{decl}` across both logs.

Two homes, VN and CN, as two sites: each log witnessed by the other (the trust bundle exchanged), CN's
`audit serve` answering VN's trace with a token CN issued to VN (role counterpart). Every event of both logs
comes in time order, each with its log, index and inclusion proof, verified against VN's pinned keys; a
CN entry changed behind CN's back is flagged, the rest stay verified.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from xborder_gateway._cli import main
from xborder_gateway.audit import AuditEvent, AuditLog, EventType
from xborder_gateway.audit._keys import load_or_create_witness_signer
from xborder_gateway.audit.http import AuditApi, AuditHttpServer, TokenStore, make_server, serve_in_thread
from xborder_gateway.audit.note import NoteSigner
from xborder_gateway.audit.trace import build_trace, local_part, verify_part
from xborder_gateway.audit.witness import Witness, WitnessStore
from xborder_gateway.config import Settings

from .conftest import RawDb
from .test_split_view import Site, publish
from .test_witness_kafka import exchange_trust

DECL = "305000000123"
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
VN_FLOW = ["received", "validated", "mapped", "sealed", "sent", "receipt_received", "delivered"]
CN_FLOW = ["opened", "verified", "business_response", "receipt_sent"]


def _ev(authority: str, kind: str, seconds: float, *, decl: str | None, mid: str, process: str) -> AuditEvent:
    return AuditEvent(time=T0 + timedelta(seconds=seconds), authority=authority, process=process,
                      event_type=EventType(kind), message_id=mid, business_key=decl, document_type="IDA",
                      outcome="ok", raw_sha256=f"{int(seconds * 10):064x}")


def _free_port() -> int:
    for port in range(30620, 30700):  # this worktree's port range
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 30620-30699")


@dataclass
class Sites:
    vn: Site
    cn: Site
    cn_server: AuditHttpServer
    cn_url: str
    cn_auditor_token: str
    vn_token: str  # issued by CN to VN (role counterpart)


def _fill(vn: Site, cn: Site) -> None:
    """One declaration through both sites (plus another one, which must not show), as the connectors log it."""
    vn_events, cn_events = [], []
    for n, (decl, mid) in enumerate(((DECL, "m-0001"), ("305000000999", "m-0002"))):
        base = n * 100
        vn_events += [_ev("VN", k, base + i, decl=decl, mid=mid, process="outbound") for i, k in enumerate(VN_FLOW[:5])]
        # the receiving side's first event knows only the message id (the envelope is not opened yet)
        cn_events.append(_ev("CN", "opened", base + 5.5, decl=None, mid=mid, process="nanning"))
        cn_events += [_ev("CN", k, base + 6 + i, decl=decl, mid=mid, process="nanning")
                      for i, k in enumerate(CN_FLOW[1:])]
        vn_events += [_ev("VN", k, base + 10 + i, decl=decl, mid=mid, process="receipts")
                      for i, k in enumerate(VN_FLOW[5:])]
    vn.log.append(vn_events)
    cn.log.append(cn_events)
    vn.log.checkpoint_now()
    cn.log.checkpoint_now()


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[Sites]:
    with two_sites(tmp_path) as made:
        yield made


@contextmanager
def two_sites(tmp_path: Path) -> Iterator[Sites]:
    """VN and CN homes, each log witnessed by the other, CN's `audit serve` with a counterpart token for VN."""
    def site(a: str) -> Site:
        s = Settings(home=tmp_path / a.lower(), audit_url=None, audit_checkpoint_entries=1000,
                     audit_checkpoint_seconds=3600.0)
        return Site(s, a, AuditLog.open(s, a, background_checkpoints=False))

    vn, cn = site("VN"), site("CN")
    exchange_trust(vn, cn)
    _fill(vn, cn)
    for me, other in ((vn, cn), (cn, vn)):  # each log witnessed by the other site's witness
        assert other.log.verifier is not None
        w = Witness(load_or_create_witness_signer(me.settings, me.authority), {other.log.origin: other.log.verifier},
                    WitnessStore(me.settings.home / "audit" / "w.sqlite"))
        publish(other.log, w)
        w.store.close()
    tokens = TokenStore(cn.settings.home / "audit" / "api-tokens.json")
    vn_token = tokens.add("vn-customs", "counterpart")
    auditor = tokens.add("cn-auditor")
    server = make_server(AuditApi(AuditLog.open(cn.settings, "CN", read_only=True), tokens), "127.0.0.1",
                         _free_port())
    serve_in_thread(server)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    token_file = vn.settings.home / "audit" / "cn-counterpart.token"
    token_file.write_text(vn_token + "\n")
    vn.settings = vn.settings.model_copy(update={"audit_counterpart_url": url,
                                                 "audit_counterpart_token_file": token_file})
    try:
        yield Sites(vn, cn, server, url, auditor, vn_token)
    finally:
        server.shutdown()
        server.server_close()
        vn.log.close()
        cn.log.close()


def _get(url: str, token: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310 - http://127.0.0.1
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - http://127.0.0.1
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _cli_trace(settings: Settings, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    env = {"XBG_AUDIT_COUNTERPART_URL": settings.audit_counterpart_url or "",
           "XBG_AUDIT_COUNTERPART_TOKEN_FILE": str(settings.audit_counterpart_token_file or "")}
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        if v:
            mp.setenv(k, v)
    try:
        capsys.readouterr()
        code = main(["--home", str(settings.home), "audit", "trace", DECL, *extra])
        out, err = capsys.readouterr()
    finally:
        mp.undo()
    return code, out, err


def test_trace_shows_both_logs_in_time_order_each_verified(sites: Sites, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli_trace(sites.vn.settings, capsys, "--json")
    assert code == 0, err
    report = json.loads(out)
    events = report["events"]
    assert [(e["log"], e["entry"]["event_type"]) for e in events] == \
        [("VN", k) for k in VN_FLOW[:5]] + [("CN", k) for k in CN_FLOW] + [("VN", k) for k in VN_FLOW[5:]]
    assert all(e["verified"] and e["cosigned"] for e in events), events
    assert report["counterpart"] == {"source": "api", "problem": None}
    times = [e["entry"]["time"] for e in events]
    assert times == sorted(times)
    assert {e["entry"]["message_id"] for e in events} == {"m-0001"}
    # each event names its log and index; the parts carry the proofs and checkpoints for the browser
    assert {p["authority"] for p in report["parts"]} == {"VN", "CN"}
    code, table, _ = _cli_trace(sites.vn.settings, capsys)
    assert code == 0
    assert table.count("OK cosigned") == len(VN_FLOW) + len(CN_FLOW)


def test_a_tampered_counterpart_entry_is_flagged(sites: Sites, capsys: pytest.CaptureFixture[str]) -> None:
    cn_index = next(e.index for e in sites.cn.log.search(business_key=DECL, event_type="business_response"))
    raw = RawDb(sites.cn.settings, "CN")
    raw.drop_triggers()
    entry = sites.cn.log.get(cn_index).entry
    raw.run("UPDATE entries SET entry = ? WHERE idx = ?", entry.replace(b'"outcome":"ok"', b'"outcome":"no"'),
            cn_index)
    code, out, err = _cli_trace(sites.vn.settings, capsys, "--json")
    assert code == 1
    failed = [(e["log"], e["index"], e["problem"]) for e in json.loads(out)["events"] if not e["verified"]]
    assert failed == [("CN", cn_index, "INCLUSION_FAILED")]
    assert f"CN#{cn_index} INCLUSION_FAILED" in err


def test_a_counterpart_checkpoint_signed_by_another_key_fails_every_counterpart_event(sites: Sites) -> None:
    part = local_part(sites.cn.log, DECL)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from xborder_gateway.audit.note import sign_note

    forger = NoteSigner(sites.cn.log.origin, Ed25519PrivateKey.generate())
    part["checkpoints"] = {k: sign_note(v.split("\n\n")[0] + "\n", forger) for k, v in part["checkpoints"].items()}
    events, problem = verify_part(part, authority="CN", declaration=DECL, log_key=sites.cn.log.verifier,
                                  witness_key=None)
    assert problem is None
    assert events
    assert {e.problem for e in events} == {"CHECKPOINT_NOTE_UNKNOWN_SIGNER"}


def test_parts_that_lie_about_who_or_what_are_refused(sites: Sites) -> None:
    part = local_part(sites.cn.log, DECL)
    key = sites.cn.log.verifier
    assert verify_part(part, authority="VN", declaration=DECL, log_key=key, witness_key=None)[1] == \
        "PART_WRONG_AUTHORITY"
    assert verify_part(part, authority="CN", declaration="X1", log_key=key, witness_key=None)[1] == \
        "PART_WRONG_DECLARATION"
    assert verify_part([], authority="CN", declaration=DECL, log_key=key, witness_key=None)[1] == "PART_MALFORMED"
    # an entry of another declaration slipped into the part: proven in the log, but not this declaration's
    other = local_part(sites.cn.log, "305000000999")
    part["entries"].append(other["entries"][-1])
    part["checkpoints"].update(other["checkpoints"])
    events, _ = verify_part(part, authority="CN", declaration=DECL, log_key=key, witness_key=None)
    assert [e.problem for e in events if not e.verified] == ["NOT_THIS_DECLARATION"]


def test_the_counterpart_token_reads_trace_parts_only(sites: Sites) -> None:
    code, body = _get(f"{sites.cn_url}/v1/trace/{DECL}?scope=local", sites.vn_token)
    assert code == 200
    assert json.loads(body)["parts"][0]["authority"] == "CN"
    for path in ("/v1/entries?declaration=" + DECL, "/v1/entries/0", "/v1/bundle/0", f"/v1/trace/{DECL}",
                 "/v1/checkpoint"):
        assert _get(sites.cn_url + path, sites.vn_token)[0] == 403, path
    assert _get(f"{sites.cn_url}/v1/trace/{DECL}?scope=local", "not-a-token")[0] == 401
    assert _get(f"{sites.cn_url}/v1/trace/bad%20decl?scope=local", sites.vn_token)[0] == 400


def test_checkpoint_endpoint_serves_the_cosigned_form(sites: Sites) -> None:
    code, plain = _get(f"{sites.cn_url}/v1/checkpoint", sites.cn_auditor_token)
    assert code == 200
    code, cosigned = _get(f"{sites.cn_url}/v1/checkpoint?cosigned=1", sites.cn_auditor_token)
    assert code == 200
    assert plain.decode().count("\n\u2014 ") == 1
    assert cosigned.decode().count("\n\u2014 ") == 2
    assert cosigned.startswith(plain)
    assert _get(f"{sites.cn_url}/v1/checkpoint?cosigned=maybe", sites.cn_auditor_token)[0] == 400


def test_the_trace_endpoint_of_the_vn_site_merges_both_logs(sites: Sites) -> None:
    tokens = TokenStore(sites.vn.settings.home / "audit" / "api-tokens.json")
    token = tokens.add("vn-auditor")
    api = AuditApi(sites.vn.log, tokens, sites.vn.settings)
    response = api.handle("GET", f"/v1/trace/{DECL}", f"Bearer {token}")
    assert response.status == 200
    report = json.loads(response.body)
    assert report["ok"] is True
    assert len(report["events"]) == len(VN_FLOW) + len(CN_FLOW)


def test_an_unreachable_counterpart_is_an_error_not_a_traceback(sites: Sites,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    sites.vn.settings = sites.vn.settings.model_copy(update={"audit_counterpart_url": "http://127.0.0.1:30699"})
    code, out, err = _cli_trace(sites.vn.settings, capsys)
    assert code == 1
    assert "TRACE_COUNTERPART_UNREACHABLE" in err
    assert "Traceback" not in err
    assert out.count("OK cosigned") == len(VN_FLOW)  # our own log's events are still shown, verified


def test_in_a_home_with_both_logs_the_counterpart_is_read_from_the_home(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, audit_url=None, audit_checkpoint_entries=1000, audit_checkpoint_seconds=3600.0)
    vn = Site(s, "VN", AuditLog.open(s, "VN", background_checkpoints=False))
    cn = Site(s, "CN", AuditLog.open(s, "CN", background_checkpoints=False))
    _fill(vn, cn)
    report = build_trace(s, "VN", DECL)
    assert report.counterpart_source == "home"
    assert len(report.events) == len(VN_FLOW) + len(CN_FLOW)
    assert all(e.verified and not e.cosigned for e in report.events)  # signed, not witnessed in this home
    vn.log.close()
    cn.log.close()


def test_trace_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path), "audit", "trace", "bad decl"]) == 2
    assert main(["--home", str(tmp_path), "audit", "trace", DECL]) == 1  # no log in this home
    assert "AUDIT_NO_LOG" in capsys.readouterr().err


def test_entries_not_covered_by_a_checkpoint_are_flagged(tmp_path: Path, make_event: Any) -> None:
    s = Settings(home=tmp_path, audit_url=None, audit_checkpoint_entries=1000, audit_checkpoint_seconds=3600.0)
    with AuditLog.open(s, "VN", background_checkpoints=False) as log:
        log.append([_ev("VN", "received", 0, decl=DECL, mid="m-1", process="outbound")])
        log.checkpoint_now()
        log.append([_ev("VN", "validated", 1, decl=DECL, mid="m-1", process="outbound")])
        part = local_part(log, DECL)
        events, _ = verify_part(part, authority="VN", declaration=DECL, log_key=log.verifier, witness_key=None)
    assert [(e.index, e.verified, e.problem) for e in events] == [(0, True, None), (1, False, "NOT_YET_CHECKPOINTED")]
