"""docs/asyncapi.yaml is the output of `xborder contract asyncapi` and describes every cross-border channel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from xborder_gateway import avro
from xborder_gateway.config import Settings
from xborder_gateway.contract import build_asyncapi, render_asyncapi
from xborder_gateway.contract._asyncapi import AVRO_SCHEMA_FORMAT

DOC = Path(__file__).parents[2] / "docs" / "asyncapi.yaml"
CROSS_BORDER = {
    "xb.vn-cn.exchange", "xb.vn-cn.exchange.priority", "xb.cn-vn.receipts",
    "xb.cn-vn.exchange", "xb.cn-vn.exchange.priority", "xb.vn-cn.receipts",
    "xb.vn.audit.checkpoints", "xb.cn.audit.checkpoints", "xb.vn.audit.cosignatures", "xb.cn.audit.cosignatures",
}
SITE_LOCAL = {"vn.declarations.raw", "vn.declarations.rejected", "vn.declarations.status", "vn.exchange.dead-letter",
              "cn.declarations.raw", "cn.declarations.rejected", "cn.declarations.status", "cn.exchange.dead-letter"}


@pytest.fixture(autouse=True)
def _defaults_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checked-in document is made from the defaults: no XBG_* variable of the environment may leak in."""
    import os

    for name in list(os.environ):
        if name.startswith("XBG_"):
            monkeypatch.delenv(name)


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(home=tmp_path, **kw)  # type: ignore[arg-type]


def test_checked_in_document_is_current(tmp_path: Path) -> None:
    assert DOC.read_text(encoding="utf-8") == render_asyncapi(_settings(tmp_path)), (
        "docs/asyncapi.yaml is stale: regenerate with `xborder contract asyncapi --out docs/asyncapi.yaml`")


def test_output_is_deterministic(tmp_path: Path) -> None:
    assert render_asyncapi(_settings(tmp_path)) == render_asyncapi(_settings(tmp_path / "other"))


def test_every_cross_border_channel_and_no_site_local_topic(tmp_path: Path) -> None:
    doc = build_asyncapi(_settings(tmp_path))
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == CROSS_BORDER
    assert not addresses & SITE_LOCAL  # intake, rejected, status and dead letter never leave a site


def test_channel_names_and_partitions_come_from_settings(tmp_path: Path) -> None:
    doc = build_asyncapi(_settings(tmp_path, topic_exchange="xb.vn-cn.exchange2", topic_partitions=7,
                                   topic_vn_audit_checkpoints="xb.vn.cp"))
    by_address = {c["address"]: c for c in doc["channels"].values()}
    assert "xb.vn-cn.exchange2" in by_address
    assert "xb.vn.cp" in by_address
    assert {c["bindings"]["kafka"]["partitions"] for c in doc["channels"].values()} == {7}
    assert by_address["xb.vn-cn.exchange2"]["bindings"]["kafka"]["topic"] == "xb.vn-cn.exchange2"


def test_servers_are_both_link_listeners_with_mtls(tmp_path: Path) -> None:
    doc = build_asyncapi(_settings(tmp_path))
    assert {s["host"] for s in doc["servers"].values()} == {"127.0.0.1:9094", "127.0.0.1:9194"}
    for server in doc["servers"].values():
        assert server["protocol"] == "kafka-secure"
        assert server["security"] == [{"$ref": "#/components/securitySchemes/mtls"}]
    assert doc["components"]["securitySchemes"]["mtls"]["type"] == "X509"


def test_envelope_messages_key_headers_and_payload(tmp_path: Path) -> None:
    doc = build_asyncapi(_settings(tmp_path))
    for channel in doc["channels"].values():
        msg = channel["messages"]["message"]
        if ".audit." in channel["address"]:
            assert msg["contentType"].startswith("text/plain")
            continue
        assert msg["contentType"] == "application/octet-stream"
        assert msg["payload"] == {"type": "string", "format": "binary", "description": msg["payload"]["description"]}
        assert msg["externalDocs"]["url"].endswith("docs/envelope.md")
        assert msg["bindings"]["kafka"]["key"]["type"] == "string"
        headers = set(msg["headers"]["properties"])
        assert {"xbg-message-id", "xbg-published-ms", "xbg-run"} <= headers
        if "exchange" in channel["address"]:
            assert {"xbg-attempt", "xbg-doc-type", "xbg-business-key"} <= headers
            assert "xbg-kind" not in headers
        else:
            assert "xbg-kind" in headers
            assert "xbg-attempt" not in headers


def test_avro_schemas_are_inlined_and_referenced(tmp_path: Path) -> None:
    doc = build_asyncapi(_settings(tmp_path))
    schemas = doc["components"]["schemas"]
    for entry in schemas.values():
        assert entry["schemaFormat"] == AVRO_SCHEMA_FORMAT
    names = {v["schema"]["name"] for v in schemas.values()}
    assert {"Declaration", "VehicleManifest", "CnExportDeclaration", "CnRoadManifest", "Receipt",
            "BusinessResponse"} <= names
    assert "DeclarationStatus" not in names  # site-local
    vn_cn = doc["channels"]["vnCnExchange"]["messages"]["message"]["x-xborder-payload-schemas"]
    for ref in vn_cn:
        key = ref["$ref"].rsplit("/", 1)[1]
        info = schemas[key]["schema"]
        assert ref["fingerprint"] == avro.fingerprint(info["name"], int(key.rsplit("V", 1)[1])).hex()
    assert {r["$ref"].rsplit("/", 1)[1] for r in vn_cn} == {
        f"{i.name}V{i.version}" for i in avro.known_schemas() if i.name in ("Declaration", "VehicleManifest")}


def test_operations_send_and_receive_per_site(tmp_path: Path) -> None:
    doc = build_asyncapi(_settings(tmp_path))
    for key, _channel in doc["channels"].items():
        ops = [o for o in doc["operations"].values() if o["channel"] == {"$ref": f"#/channels/{key}"}]
        assert sorted(o["action"] for o in ops) == ["receive", "send"], key
    sender = doc["operations"]["vnSendVnCnExchange"]
    assert sender["action"] == "send"
    assert doc["operations"]["cnReceiveVnCnExchange"]["action"] == "receive"


def test_cli_writes_the_same_document(tmp_path: Path) -> None:
    out = tmp_path / "a.yaml"
    run = subprocess.run([sys.executable, "-m", "xborder_gateway._cli", "--home", str(tmp_path), "contract",
                          "asyncapi", "--out", str(out)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["asyncapi"] == "3.0.0"


def test_cli_unwritable_out_is_a_diagnostic(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    run = subprocess.run([sys.executable, "-m", "xborder_gateway._cli", "--home", str(tmp_path), "contract",
                          "asyncapi", "--out", str(tmp_path / "f" / "a.yaml")], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 1
    assert "cannot write" in run.stderr
    assert "Traceback" not in run.stderr
