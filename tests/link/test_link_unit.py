"""The link's pure parts, without a broker: site ports, PKI files, the bundle, ACLs, generated configs, lag parsing."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs12

from xborder_gateway.config import Settings, load_settings
from xborder_gateway.errors import ConfigError

PW = b"unit-passphrase"


def _site(home: Path, site: str, **kw: object) -> Settings:
    return load_settings(home=home / site.lower(), site_authority=site, **kw)


# --- site ports --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("site", "ports"), [("VN", (9092, 9093, 9094, 9095)), ("CN", (9192, 9193, 9194, 9195))])
def test_a_sites_authority_decides_its_default_ports(tmp_path: Path, site: str, ports: tuple[int, ...]) -> None:
    s = _site(tmp_path, site)
    assert (s.kafka_port, s.kafka_controller_port, s.kafka_link_port, s.link_rest_port) == ports
    other = 9094 if site == "CN" else 9194
    assert s.link_remote == f"127.0.0.1:{other}"


def test_explicit_ports_win_over_the_sites_defaults_and_a_plain_home_keeps_todays(tmp_path: Path) -> None:
    s = _site(tmp_path, "CN", kafka_port=29150)
    assert (s.kafka_port, s.kafka_link_port) == (29150, 9194)
    plain = load_settings(home=tmp_path / "plain")
    assert (plain.kafka_port, plain.kafka_controller_port, plain.site_authority) == (9092, 9093, None)
    with pytest.raises(ConfigError) as info:
        _ = plain.link_counterpart
    assert info.value.code == "LINK_NO_SITE"


def test_site_ports_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XBG_SITE_AUTHORITY", "CN")
    assert load_settings(home=tmp_path).kafka_port == 9192
    monkeypatch.setenv("XBG_SITE_AUTHORITY", "XX")
    with pytest.raises(ConfigError):
        load_settings(home=tmp_path)


def test_each_direction_has_its_own_allow_list(tmp_path: Path) -> None:
    s = _site(tmp_path, "VN")
    vn_cn, cn_vn = s.link_topics("VN", "CN"), s.link_topics("CN", "VN")
    assert not set(vn_cn) & set(cn_vn)  # IdentityReplicationPolicy is safe only so
    assert {"xb.vn-cn.exchange", "xb.vn-cn.exchange.priority", "xb.vn-cn.receipts"} <= set(vn_cn)
    assert {"xb.cn-vn.exchange", "xb.cn-vn.exchange.priority", "xb.cn-vn.receipts"} <= set(cn_vn)
    assert not any(t.endswith(("dead-letter", ".raw", ".rejected", ".status")) for t in vn_cn + cn_vn)


# --- PKI -----------------------------------------------------------------------------------------------------
def test_link_pki_files_and_their_protection(tmp_path: Path) -> None:
    from xborder_gateway.link import init_link_pki, link_files

    s = _site(tmp_path, "VN")
    ca = init_link_pki(s, PW)
    files = link_files(s, "VN")
    assert stat.S_IMODE(files.dir.stat().st_mode) == 0o700
    for secret in (files.ca_key, files.broker_p12, files.client_p12, files.client_key, files.secrets):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert b"ENCRYPTED PRIVATE KEY" in files.ca_key.read_bytes()
    bc = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca
    assert bc.path_length == 0
    # the client keystore opens with its password from secrets.properties, and not without it
    client = pkcs12.load_pkcs12(files.client_p12.read_bytes(), files.secret("client.keystore.password").encode())
    assert client.cert is not None
    assert client.cert.certificate.subject.rfc4514_string() == "CN=link-VN,O=xborder-gateway-link"
    assert client.cert.certificate.issuer == ca.certificate.subject
    with pytest.raises(ValueError, match=r"(?i)password|decrypt|mac|invalid"):
        pkcs12.load_pkcs12(files.client_p12.read_bytes(), b"wrong")
    broker = pkcs12.load_pkcs12(files.broker_p12.read_bytes(), files.secret("broker.keystore.password").encode())
    assert broker.cert is not None
    sans = broker.cert.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)


def test_reissuing_keeps_the_ca_unless_renewed_and_needs_the_passphrase(tmp_path: Path) -> None:
    from xborder_gateway.link import init_link_pki

    s = _site(tmp_path, "CN")
    first = init_link_pki(s, PW)
    assert init_link_pki(s, PW).fingerprint == first.fingerprint
    with pytest.raises(ConfigError) as info:
        init_link_pki(s, b"not-the-passphrase")
    assert info.value.code == "KEYS_PASSPHRASE"
    assert init_link_pki(s, PW, renew=True).fingerprint != first.fingerprint


def test_the_principal_rule_maps_only_link_subjects() -> None:
    from xborder_gateway.link._pki import PRINCIPAL_RULE

    pattern, replacement = PRINCIPAL_RULE.removeprefix("RULE:").split("/")[:2]
    assert "DEFAULT" not in PRINCIPAL_RULE  # LINK-2: an unmatched subject must fail, not become a principal
    for dn, principal in [("CN=link-CN,O=xborder-gateway-link", "link-CN"),
                          ("CN=link-VN,O=xborder-gateway-link", "link-VN"),
                          ("CN=link-CN,O=evil", None), ("CN=admin,O=xborder-gateway-link", None),
                          ("CN=link-CN,O=xborder-gateway-link,OU=x", None)]:
        m = re.fullmatch(pattern, dn)
        assert (m.expand(replacement.replace("$1", r"\1")) if m else None) == principal, dn


# --- bundle ---------------------------------------------------------------------------------------------------
def test_the_bundle_carries_the_link_ca_and_import_keeps_it(tmp_path: Path) -> None:
    from xborder_gateway.envelope import export_bundle, import_bundle, init_authority, split_bundle
    from xborder_gateway.link import init_link_pki
    from xborder_gateway.link._pki import trusted_link_cas

    vn, cn = _site(tmp_path, "VN"), _site(tmp_path, "CN")
    init_authority(vn, "VN", PW)
    ca = init_link_pki(vn, PW)
    bundle = export_bundle(vn, "VN")
    authority_certs, link_cas = split_bundle(bundle)
    assert len(authority_certs) == 1
    assert [c.fingerprint(hashes.SHA256()) for c in link_cas] == [ca.fingerprint]
    import_bundle(cn, "CN", bundle)
    assert [c.fingerprint for c in trusted_link_cas(cn, "CN", "VN")] == [ca.fingerprint]
    with pytest.raises(ConfigError) as info:  # VN's own bundle, link CA included, is refused at VN
        import_bundle(vn, "VN", bundle)
    assert info.value.code == "KEYS_BUNDLE_SELF"


def test_a_bundle_without_a_link_ca_still_imports(tmp_path: Path) -> None:
    from xborder_gateway.envelope import export_bundle, import_bundle, init_authority
    from xborder_gateway.link._pki import trusted_link_cas

    vn, cn = _site(tmp_path, "VN"), _site(tmp_path, "CN")
    init_authority(vn, "VN", PW)
    assert len(import_bundle(cn, "CN", export_bundle(vn, "VN"))) == 1
    assert trusted_link_cas(cn, "CN", "VN") == []


def test_the_fingerprint_ceremony_covers_the_link_ca(tmp_path: Path) -> None:
    """--expect-fingerprint with only the authority's fingerprint refuses a bundle that also carries a link CA."""
    from xborder_gateway._cli import main
    from xborder_gateway.envelope import export_bundle, init_authority
    from xborder_gateway.link import init_link_pki

    vn, cn = _site(tmp_path, "VN"), _site(tmp_path, "CN")
    auth = init_authority(vn, "VN", PW)
    ca = init_link_pki(vn, PW)
    path = tmp_path / "vn.bundle.pem"
    path.write_bytes(export_bundle(vn, "VN"))
    base = ["--home", str(cn.home), "keys", "import", str(path), "--authority", "CN"]
    assert main([*base, "--expect-fingerprint", auth.fingerprint.hex()]) == 1
    assert not (cn.keys_dir("CN") / "trust").exists()
    assert main([*base, "--expect-fingerprint", auth.fingerprint.hex(),
                 "--expect-fingerprint", ca.fingerprint.hex()]) == 0


# --- ACLs and generated configs -------------------------------------------------------------------------------
def _linked(tmp_path: Path, site: str = "CN") -> Settings:
    from xborder_gateway.envelope import export_bundle, import_bundle, init_authority
    from xborder_gateway.link import init_link_pki

    other = "VN" if site == "CN" else "CN"
    me, them = _site(tmp_path, site), _site(tmp_path, other)
    for s, name in ((me, site), (them, other)):
        init_authority(s, name, PW)
        init_link_pki(s, PW)
    import_bundle(me, site, export_bundle(them, other))
    return me


def test_the_link_principal_is_granted_reads_of_the_allow_list_and_nothing_else(tmp_path: Path) -> None:
    from xborder_gateway.kafka_local import LocalKafka
    from xborder_gateway.kafka_local._acl import OP_DESCRIBE, OP_DESCRIBE_CONFIGS, OP_READ, desired_acls

    s = _linked(tmp_path, "VN")
    link, why = LocalKafka(s).link_listener()
    assert link is not None, why
    acls = desired_acls(link)
    assert {a.principal for a in acls} == {"User:link-CN"}
    assert {a.operation for a in acls} == {OP_READ, OP_DESCRIBE, OP_DESCRIBE_CONFIGS}  # no WRITE, CREATE, ALL
    topics = {a.resource_name for a in acls if a.resource_type == 2}
    assert topics == set(s.link_topics("VN", "CN"))
    assert {(a.resource_type, a.resource_name, a.operation) for a in acls if a.resource_type != 2} == {
        (3, "link-CN", OP_READ)}


def test_the_broker_opens_a_link_listener_only_when_the_pki_and_the_counterparts_ca_are_there(
        tmp_path: Path) -> None:
    from xborder_gateway.kafka_local import LocalKafka
    from xborder_gateway.link import init_link_pki

    lone = _site(tmp_path / "lone", "VN")
    assert LocalKafka(lone).link_listener()[0] is None
    init_link_pki(lone, PW)
    link, why = LocalKafka(lone).link_listener()
    assert link is None
    assert "not trusted" in why
    assert LocalKafka(load_settings(home=tmp_path / "plain")).link_listener()[0] is None
    assert "LINK" not in LocalKafka(load_settings(home=tmp_path / "plain"))._server_properties()


def test_the_broker_properties_of_a_linked_site(tmp_path: Path) -> None:
    from xborder_gateway.kafka_local import LocalKafka
    from xborder_gateway.link import link_files

    s = _linked(tmp_path, "VN")
    broker = LocalKafka(s)
    link, _ = broker.link_listener()
    assert link is not None
    props = dict(line.split("=", 1) for line in broker._server_properties(link).splitlines()
                 if "=" in line and not line.startswith("#"))
    assert props["listeners"].endswith(",LINK://127.0.0.1:9094")
    assert props["listener.security.protocol.map"].endswith(",LINK:SSL")
    assert props["listener.name.link.ssl.client.auth"] == "required"
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["listener.name.link.ssl.keystore.password"].startswith("${file:")
    password = link_files(s, "VN").secret("broker.keystore.password")
    assert password not in broker._server_properties(link)  # LINK-3: never inline
    assert Path(props["listener.name.link.ssl.truststore.location"]).read_bytes().count(b"BEGIN CERTIFICATE") == 1


def test_mm2_properties(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xborder_gateway.link import LinkMirror, link_files

    monkeypatch.delenv("XBG_KAFKA_BOOTSTRAP", raising=False)  # make test exports the session broker's
    s = _linked(tmp_path, "CN")
    text = LinkMirror(s).mm2_properties()
    props = {k.strip(): v.strip() for k, v in (line.split("=", 1) for line in text.splitlines()
                                               if "=" in line and not line.startswith("#"))}
    assert props["clusters"] == "VN, CN"
    assert props["VN.bootstrap.servers"] == "127.0.0.1:9094"
    assert props["VN.security.protocol"] == "SSL"
    assert props["CN.bootstrap.servers"] == "127.0.0.1:9192"
    assert props["VN->CN.enabled"] == "true"
    assert props["CN->VN.enabled"] == "false"
    assert props["CN->VN.emit.heartbeats.enabled"] == "false"  # would write into VN's cluster
    assert props["CN.exactly.once.source.support"] == "enabled"
    assert props["VN.consumer.isolation.level"] == "read_committed"
    assert props["VN->CN.offset-syncs.topic.location"] == "target"
    assert props["replication.policy.class"].endswith("IdentityReplicationPolicy")
    assert props["listeners"] == "http://127.0.0.1:9195"
    assert props["CN.producer.transaction.timeout.ms"] == "10000"
    assert link_files(s, "CN").secret("client.keystore.password") not in text
    # the topics regex (a .properties value: backslashes doubled) matches exactly the allow-list
    regex = props["VN->CN.topics"].replace("\\\\", "\\")
    allowed = s.link_topics("VN", "CN")
    for topic in allowed:
        assert re.fullmatch(regex, topic)
    for topic in ["xb.vn-cn.exchangeX", "xbXvn-cn.exchange", "xb.vn-cn.dead-letter", "vn.declarations.raw",
                  "xb.cn-vn.exchange", "heartbeats", "x" + allowed[0]]:
        assert not re.fullmatch(regex, topic), topic


def test_control_settings_reach_mirrormaker(tmp_path: Path) -> None:
    from xborder_gateway.link import LinkMirror

    s = _linked(tmp_path, "CN")
    s2 = load_settings(home=s.home, site_authority="CN", link_isolation_level="read_uncommitted",
                       link_exactly_once=False)
    text = LinkMirror(s2).mm2_properties()
    assert "VN.consumer.isolation.level = read_uncommitted" in text
    assert "CN.exactly.once.source.support = disabled" in text


def test_offsets_topic_records_are_parsed_strictly() -> None:
    from xborder_gateway.link._lag import _apply_offset_record

    out: dict[tuple[str, int], int] = {}
    key = b'["MirrorSourceConnector",{"cluster":"VN","partition":2,"topic":"xb.vn-cn.exchange"}]'
    _apply_offset_record(out, key, b'{"offset":41}', "VN")
    _apply_offset_record(out, key, b'{"offset":42}', "VN")
    _apply_offset_record(out, key.replace(b'"VN"', b'"XX"'), b'{"offset":99}', "VN")  # another source
    _apply_offset_record(out, b'["MirrorCheckpointConnector",{}]', b'{"offset":7}', "VN")
    _apply_offset_record(out, b"not json", b"{}", "VN")
    _apply_offset_record(out, key, b'{"offset":"43"}', "VN")  # not an integer: ignored
    assert out == {("xb.vn-cn.exchange", 2): 42}
    _apply_offset_record(out, key, None, "VN")  # tombstone
    assert out == {}


# --- MirrorMaker's start-up, read from its log ------------------------------------------------------------------
def _herder(flow: str, text: str) -> str:
    return f"[2026-12-02 15:59:31,379] INFO [Worker clientId={flow}, groupId=VN-mm2] {text} (org.apache.kafka.x)"


def _joined(flow: str, generation: int, connectors: str) -> str:
    return _herder(flow, f"Joined group at generation {generation} with protocol version 2 and got assignment: "
                         f"Assignment{{error=0, leader='{flow}-1', leaderUrl='http://127.0.0.1:1/', offset=1, "
                         f"connectorIds=[{connectors}], taskIds=[], revokedConnectorIds=[], delay=0}}")


_STARTED = "[2026-12-02 15:59:31,380] INFO Kafka MirrorMaker started (org.apache.kafka.connect.mirror.MirrorMaker)"
_FINISHED = "Finished starting connectors and tasks"
_LOST = ("[2026-12-02 15:59:46,900] INFO This node lost leadership for MirrorSourceConnector while trying to update "
         "the connector configuration for VN->CN. Using existing connector configuration. (org.apache.kafka.x)")
_SOURCE = "MirrorSourceConnector, MirrorHeartbeatConnector"


@pytest.mark.parametrize(("lines", "state"), [
    # the CI run of 2026-12-02: the herder's first start has no connector; configuring them stalled, the
    # herder lost the group and rejoined with none -- it never replicates (the old check said "ready")
    ([_joined("VN->CN", 1, ""), _herder("VN->CN", _FINISHED), _STARTED, _LOST, _joined("VN->CN", 3, ""),
      _herder("VN->CN", _FINISHED)], "stuck"),
    # a healthy start with no source topic yet: the source connector is assigned, and started
    ([_joined("VN->CN", 1, ""), _herder("VN->CN", _FINISHED), _STARTED, _joined("VN->CN", 2, _SOURCE),
      _herder("VN->CN", _FINISHED)], "ready"),
    # the first start (no connector yet) is not a start of the flow
    ([_joined("VN->CN", 1, ""), _herder("VN->CN", _FINISHED), _STARTED], "starting"),
    # a restart on an existing configuration: leadership lost, rejoined WITH the connector -> fine
    ([_STARTED, _LOST, _joined("VN->CN", 4, _SOURCE), _herder("VN->CN", _FINISHED)], "ready"),
    # the other flow's herder (disabled at this site) proves nothing
    ([_STARTED, _joined("CN->VN", 2, _SOURCE), _herder("CN->VN", _FINISHED)], "starting"),
    # started but MirrorMaker has not said so yet
    ([_joined("VN->CN", 2, _SOURCE), _herder("VN->CN", _FINISHED)], "starting"),
    # the replication task runs: ready whatever else was logged
    ([_LOST, "[x] INFO WorkerSourceTask{id=MirrorSourceConnector-0} Source task finished initialization and start"],
     "ready"),
])
def test_mirrormaker_start_state_read_from_its_log(tmp_path: Path, lines: list[str], state: str) -> None:
    from xborder_gateway.link import LinkMirror

    mirror = LinkMirror(_site(tmp_path, "CN"))
    mirror.log_dir.mkdir(parents=True)
    before = "[2026-12-02 15:00:00,000] INFO an earlier run's lines are skipped\n" + _STARTED + "\n"
    mirror.log_file.write_text(before + "\n".join(lines) + "\n", encoding="utf-8")
    assert mirror._start_state(len(before.encode())) == state
