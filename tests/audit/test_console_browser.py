"""The auditor console in a real headless Chromium (Debian's, driven by Playwright), over a demo run's log.

One browser session for every check (issue 12 asks the console tests to stay cheap): sign in with a token
and a pinned key, search a declaration from the demo, open its timeline, verify its proofs in the browser
(green), tamper with the database behind the server's back, reload, and see it flagged (red). Also: the
token never reaches web storage or cookies, the CSP header is strict, the layout holds at 390 px, the
keyboard reaches the form, and the standalone verifier page (opened from disk) accepts a genuine bundle and
refuses a tampered one.

Screenshots go to the test's tmp dir; with XBG_UPDATE_SCREENSHOTS=1 also to docs/ (docs/audit.md shows them).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (dev extra; scripts/bootstrap.sh installs it)")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/system-packages.sh installs it)")
    return sync_playwright


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Path:
    prefix = f"t.console.{os.getpid()}"
    env = {**os.environ, "XBG_KAFKA_BOOTSTRAP": kafka_bootstrap, "XBG_EXCHANGE_GROUP_PREFIX": prefix,
           "XBG_TOPIC_INTAKE": f"{prefix}.raw", "XBG_TOPIC_REJECTED": f"{prefix}.rejected",
           "XBG_TOPIC_EXCHANGE": f"{prefix}.exchange", "XBG_TOPIC_EXCHANGE_PRIORITY": f"{prefix}.exchange.priority",
           "XBG_TOPIC_RECEIPTS": f"{prefix}.receipts", "XBG_TOPIC_DEAD_LETTER": f"{prefix}.dead-letter",
           "XBG_TOPIC_STATUS": f"{prefix}.status"}
    env.pop("XBG_CONFIG", None)
    home = tmp_path_factory.mktemp("console") / "home"
    done = subprocess.run([sys.executable, "-m", "xborder_gateway._cli", "--home", str(home), "demo", "--sites", "1",
                           "--count", "40", "--seed", "11", "--json"], capture_output=True, text=True, env=env,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return home


def cn_home_from(demo_home: Path, cn_home: Path) -> Path:
    """The demo's CN log moved into a home of its own: the CN site (issue 12 item 4: sites stay isolated)."""
    (cn_home / "audit").mkdir(parents=True)
    for name in ("cn.sqlite", "cn.sqlite-wal", "cn.sqlite-shm", "cn.vkey"):
        if (demo_home / "audit" / name).exists():
            shutil.copy(demo_home / "audit" / name, cn_home / "audit" / name)
    return cn_home


@pytest.fixture(scope="module")
def served(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from xborder_gateway.audit import AuditLog, CosignatureSigner
    from xborder_gateway.audit._keys import witness_name
    from xborder_gateway.audit.http import AuditApi, TokenStore, make_server, serve_in_thread
    from xborder_gateway.config import Settings

    # the CN site: its own home and its own `audit serve`; it issues VN a counterpart token
    cn_settings = Settings(home=cn_home_from(demo_home, tmp_path_factory.mktemp("cn-site") / "home"), audit_url=None)
    cn_log = AuditLog.open(cn_settings, "CN", read_only=True)
    cn_tokens = TokenStore(cn_settings.home / "audit" / "api-tokens.json")
    token_file = demo_home / "audit" / "cn-counterpart.token"
    token_file.write_text(cn_tokens.add("vn-customs", "counterpart") + "\n")
    cn_server = make_server(AuditApi(cn_log, cn_tokens), "127.0.0.1", 0)
    serve_in_thread(cn_server)
    cn_url = "http://{}:{}".format(*cn_server.server_address[:2])

    settings = Settings(home=demo_home, audit_url=None, audit_counterpart_url=cn_url,
                        audit_counterpart_token_file=token_file)
    # issue 12 item 5: CN's witness cosigns VN's latest checkpoint (what `run witness` does over the link);
    # CN's log stays uncosigned, so the main panel shows one log green and the counterpart's amber
    cn_witness = CosignatureSigner(witness_name(settings, "CN"), Ed25519PrivateKey.generate())
    vn_witness = CosignatureSigner(witness_name(settings, "VN"), Ed25519PrivateKey.generate())
    log = AuditLog.open(settings, "VN", read_only=True)
    latest = log.latest_checkpoint()
    assert latest is not None
    log.add_cosignature(latest.checkpoint.size, cn_witness.cosign(latest.note.split("\n\n")[0] + "\n",
                                                                   int(time.time())), cn_witness.verifier)
    tokens = TokenStore(demo_home / "audit" / "api-tokens.json")
    token = tokens.add("browser-test")
    delivered = [e for e in log.search(event_type="delivered", limit=1000) if e.event.document_type == "IDA"]
    assert delivered, "the demo delivered no IDA declaration"
    declaration = str(delivered[0].event.business_key)
    server = make_server(AuditApi(log, tokens, settings), "127.0.0.1", 0)
    serve_in_thread(server)
    host, port = server.server_address[:2]
    try:
        yield {"base": f"http://{host}:{port}", "token": token,
               "key": f"{log.verifier}\n{cn_log.verifier}\n{cn_witness.verifier}\n{vn_witness.verifier}",
               "log": log, "declaration": declaration, "db": settings.audit_db("VN"),
               "cn_db": cn_settings.audit_db("CN"), "settings": settings, "cn_log": cn_log, "cn_server": cn_server}
    finally:
        for s in (server, cn_server):  # twice is harmless: the console test stops CN's server itself
            s.shutdown()
            s.server_close()
        log.close()
        cn_log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for every console check of this module (issue 12: keep the browser tests cheap)."""
    sync_playwright = _playwright()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


_TIMING = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const res = performance.getEntriesByType("resource");
  return {dom_content_loaded_ms: nav.domContentLoadedEventEnd - nav.startTime,
          load_ms: nav.loadEventEnd - nav.startTime, requests: 1 + res.length,
          bytes: nav.decodedBodySize + res.reduce((n, r) => n + r.decodedBodySize, 0),
          urls: res.map((r) => r.name)};
}"""


def _rewrite_entry_time(db: Path, index: int) -> None:
    """What a dishonest operator does: change an entry (here: its time by 1 µs), keeping it canonical."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("DROP TRIGGER IF EXISTS entries_no_update")
        (raw,) = conn.execute("SELECT entry FROM entries WHERE idx = ?", (index,)).fetchone()
        entry = json.loads(bytes(raw))
        last = entry["time"][-2]
        entry["time"] = entry["time"][:-2] + ("1" if last != "1" else "2") + "Z"
        new = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        conn.execute("UPDATE entries SET entry = ? WHERE idx = ?", (new, index))
        conn.commit()
    finally:
        conn.close()


def _shot(page: Any, tmp_path: Path, name: str, selector: str | None = None) -> None:
    target = page.locator(selector) if selector else page
    extra = {} if selector else {"full_page": True}
    target.screenshot(path=str(tmp_path / name), **extra)
    if os.environ.get("XBG_UPDATE_SCREENSHOTS") == "1":
        target.screenshot(path=str(DOCS / name), **extra)


def _sign_in(page: Any, served: dict[str, Any]) -> None:
    page.fill("#token", served["token"])
    page.fill("#keys", served["key"])
    page.click("#signin-form button[type=submit]")
    try:
        page.wait_for_selector("[data-testid=status-CN], #checkpoint-body > p.bad", timeout=20_000)
    except Exception as exc:
        raise AssertionError(f"sign-in failed: {page.text_content('#status')}") from exc
    assert page.query_selector("#checkpoint-body > p.bad") is None, page.text_content("#checkpoint-body")
    assert "ok" in page.get_attribute("[data-testid=checkpoint-log]", "class"), page.text_content("#checkpoint-body")


def _check_status_panel(page: Any, served: dict[str, Any]) -> None:
    """Issue 12 item 5: both logs in the main panel, each with its lag, checked against the pinned keys."""
    levels = {a: page.get_attribute(f"[data-testid=status-{a}]", "data-level") for a in ("VN", "CN")}
    texts = {a: page.text_content(f"[data-testid=status-{a}]") or "" for a in ("VN", "CN")}
    # VN: cosigned by CN's pinned witness key (verified in the browser), within the lag: green
    assert levels["VN"] == "ok", texts
    lag = served["log"].size() - served["log"].cosigned_sizes()[-1]
    assert f"cosigned, lag {lag} entries" in texts["VN"], texts
    assert "/witness/cn @ " in (page.text_content("[data-testid=checkpoint-witness]") or "")
    # CN (from CN's own audit serve): its checkpoint has no cosignature yet: amber, with its lag figure
    assert levels["CN"] == "warn", texts
    assert texts["CN"].startswith("▲ not cosigned yet, lag "), texts
    assert " entries / " in texts["CN"], texts
    lag_cn = page.text_content("[data-testid=lag-CN]") or ""
    assert lag_cn.split(" ")[0] == str(served["cn_log"].size()), lag_cn


def _search(page: Any, declaration: str) -> None:
    page.fill("#q-declaration", declaration)
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("[data-testid=timeline] li")


def _verify_all(page: Any) -> list[str]:
    page.click("#verify-all")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=timeline] .badge')].every(b => b.textContent !== '…')")
    return page.eval_on_selector_all("[data-testid=timeline] .badge", "bs => bs.map(b => b.className)")


def test_trace_of_a_demo_declaration_from_two_homes_is_verified(served: dict[str, Any],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`audit trace` on the VN home: VN's events from its log, CN's from the CN home's `audit serve`."""
    from xborder_gateway.audit.trace import build_trace

    report = build_trace(served["settings"], "VN", served["declaration"])
    assert report.counterpart_source == "api"
    assert report.ok, [(e.log, e.index, e.problem) for e in report.events if not e.verified]
    kinds = {(e.log, e.event.event_type.value) for e in report.events if e.event is not None}
    assert {("VN", "received"), ("VN", "sent"), ("CN", "opened"), ("CN", "receipt_sent"), ("VN", "delivered")} <= kinds
    times = [e.time for e in report.events]
    assert times == sorted(times)  # type: ignore[type-var]


def test_console_signs_in_searches_verifies_and_flags_tampering(served: dict[str, Any], tmp_path: Path,
                                                                browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        response = page.goto(served["base"] + "/console/")
        assert response is not None
        assert response.ok
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self'" in csp
        assert "connect-src 'self'" in csp
        assert "unsafe-inline" not in csp
        page.wait_for_load_state("load")
        timing = page.evaluate(_TIMING)  # measured, not asserted (docs/benchmarks.md records it)
        print(f"console page: {json.dumps(timing)}")
        (tmp_path / "console-timing.json").write_text(json.dumps(timing))
        # index.html, app.js, verify.js, style.css (+ the browser's favicon probe): nothing from elsewhere
        assert all(u.startswith(served["base"] + "/") for u in timing["urls"]), timing

        # keyboard: Tab reaches the token field from the top of the page
        for _ in range(12):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement && document.activeElement.id") == "token":
                break
        else:
            pytest.fail("the keyboard never reached the token field")

        # a wrong token is refused and says so
        page.fill("#token", "not-a-token")
        page.fill("#keys", served["key"])
        page.click("#signin-form button[type=submit]")
        page.wait_for_selector("#status.bad")
        assert page.is_visible("#signin")

        page.click("[data-lang=en]")
        _sign_in(page, served)
        _check_status_panel(page, served)
        _shot(page, tmp_path, "console-status.png", "section[aria-labelledby=cp-h]")
        storage = page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie")
        assert served["token"] not in storage
        assert served["token"] not in page.content()

        _search(page, served["declaration"])
        badges = _verify_all(page)
        assert badges
        assert all("ok" in b for b in badges), badges
        # the checkpoint status of both logs, each checked in the browser against its own pinned key
        for authority in ("VN", "CN"):
            assert "ok" in page.get_attribute(f"[data-testid=trace-checkpoint-{authority}]", "class"), authority
        _shot(page, tmp_path, "console-timeline.png")
        types = page.eval_on_selector_all("[data-testid=timeline] li strong", "xs => xs.map(x => x.textContent)")
        logs = page.eval_on_selector_all("[data-testid=timeline] li", "ls => ls.map(l => l.dataset.log)")
        target = int(page.get_attribute("[data-testid=timeline] li[data-log=VN]", "data-index"))
        cn_target = int(page.get_attribute("[data-testid=timeline] li[data-log=CN]", "data-index"))
        assert {"received", "sealed", "delivered"} <= set(types)
        # the cross-border timeline: CN's events (from CN's own server) between VN's sealed and delivered (VN
        # audits `sent` after its Kafka commit, so CN may open the envelope before VN's `sent` is written)
        assert {"opened", "receipt_sent"} <= set(types), types
        assert logs.index("CN") > types.index("sealed")
        assert logs.index("CN") < types.index("delivered")
        page.click("#results button.link")
        page.click("#verify-btn")
        page.wait_for_selector("[data-testid=verdict]")
        assert "ok" in page.get_attribute("[data-testid=verdict]", "class")
        page.click("[data-lang=vi]")
        # the status panel is redrawn in Vietnamese (existing i18n): "cosigned" / "not cosigned yet"
        page.wait_for_function("() => (document.querySelector('[data-testid=status-VN]')?.textContent || '')"
                               ".startsWith('✔ đã đồng xác nhận, độ trễ ')")
        assert (page.text_content("[data-testid=status-CN]") or "").startswith("▲ chưa được đồng xác nhận")
        _shot(page, tmp_path, "console-verified.png")

        # 390 px: nothing wider than the screen
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 392

        # tamper with one entry of this declaration in each log, behind each server's back
        _rewrite_entry_time(served["db"], target)
        _rewrite_entry_time(served["cn_db"], cn_target)

        page.set_viewport_size({"width": 1280, "height": 900})
        page.reload()
        _sign_in(page, served)
        _search(page, served["declaration"])
        badges = _verify_all(page)
        bad = page.eval_on_selector_all(
            "[data-testid=timeline] li",
            "ls => ls.filter(l => l.querySelector('.badge.bad')).map(l => l.dataset.log + '#' + l.dataset.index)")
        assert sorted(bad) == sorted([f"VN#{target}", f"CN#{cn_target}"]), (bad, badges)
        _shot(page, tmp_path, "console-timeline-tampered.png")
        page.click(f"#results button.link[data-index='{target}']")
        page.click("#verify-btn")
        page.wait_for_selector("[data-testid=verdict]")
        assert "bad" in page.get_attribute("[data-testid=verdict]", "class")
        page.click("[data-lang=en]")
        _shot(page, tmp_path, "console-tampered.png")

        # the counterpart's server goes away: its log turns red, naming why; ours stays green
        served["cn_server"].shutdown()
        served["cn_server"].server_close()
        page.click("#refresh")
        page.wait_for_selector("[data-testid=status-CN][data-level=bad]")
        assert "counterpart unreachable: STATUS_COUNTERPART_UNREACHABLE" in page.text_content("[data-testid=status-CN]")
        assert page.get_attribute("[data-testid=status-VN]", "data-level") == "ok"
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 392
        _shot(page, tmp_path, "console-status-unreachable.png", "section[aria-labelledby=cp-h]")
        assert errors == []
    finally:
        page.close()


def test_standalone_verifier_page_accepts_a_bundle_and_refuses_a_tampered_one(served: dict[str, Any],
                                                                             tmp_path: Path, browser: Any) -> None:
    from xborder_gateway.audit.console import standalone_verifier

    page_bytes, _ = standalone_verifier()
    page_file = tmp_path / "verifier.html"
    page_file.write_bytes(page_bytes)
    log = served["log"]
    index = next(e.index for e in log.search(event_type="sent", limit=50))
    bundle = log.bundle(index, issue=False)
    tampered = json.loads(json.dumps(bundle))
    tampered["inclusion_proof"]["hashes"][0] = "00" * 32
    page = browser.new_page()
    try:
        page.goto(page_file.as_uri())
        page.fill("#keys", served["key"])
        for sample, expect in ((bundle, "ok"), (tampered, "bad")):
            page.fill("#bundle", json.dumps(sample))
            page.click("#go")
            page.wait_for_selector("#out .box")
            assert expect in page.get_attribute("#out .box", "class")
    finally:
        page.close()
