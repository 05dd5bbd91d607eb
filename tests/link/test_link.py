"""The link on real brokers and real MirrorMakers: what crosses, exactly once, and who may connect.

Non-destructive: every test shares the session's two sites (tests/link/conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from .harness import LOCAL_ONLY, TwoSites, count_ids, list_topics, produce

pytestmark = pytest.mark.integration


def _internal(topic: str) -> bool:
    """Kafka's and this site's own MirrorMaker's topics (``heartbeats`` is created empty by its heartbeat
    connector even with emission off; nothing replicates into it: the source's is not allow-listed)."""
    return topic.startswith(("__", "mm2-")) or topic.endswith(".internal") or topic == "heartbeats"


def test_the_topics_arriving_at_each_site_are_exactly_the_allow_list(two_sites: TwoSites) -> None:
    """Records on every topic of each site; what appears at the other site is the allow-list, nothing else."""
    run = uuid.uuid4().hex[:8]
    for site, other in (("VN", "CN"), ("CN", "VN")):
        s = two_sites.site(site)
        for topic in s.settings.link_topics(site, other) + LOCAL_ONLY[site]:
            asyncio.run(produce(s.bootstrap, topic, [f"{run}-{topic}"], batch=1))
    for site, other in (("VN", "CN"), ("CN", "VN")):
        source, target = two_sites.site(site), two_sites.site(other)
        allowed = source.settings.link_topics(site, other)
        for topic in allowed:
            got = asyncio.run(count_ids(target.bootstrap, topic, f"{run}-", expect=1, settle=0))
            assert got == {f"{run}-{topic}": 1}, f"{topic} did not cross {site} -> {other} exactly once"
        at_target = {t for t in asyncio.run(list_topics(target.bootstrap)) if not _internal(t)}
        # the target's topics = its own (which it created) + what arrived; what arrived is the allow-list
        own = set(target.settings.link_topics(other, site)) | set(LOCAL_ONLY[other])
        assert at_target - own == set(allowed)
        for local in LOCAL_ONLY[site]:  # intake / rejected / status / dead letters never leave their site
            assert local not in at_target


def test_records_replicate_exactly_once_per_message_id(two_sites: TwoSites) -> None:
    """2,000 records in 20 transactions: each message id exactly once at the target, read_committed."""
    prefix = f"eo-{uuid.uuid4().hex[:8]}-"
    ids = [f"{prefix}{i:05d}" for i in range(2000)]
    vn, cn = two_sites.vn, two_sites.cn
    asyncio.run(produce(vn.bootstrap, "xb.vn-cn.exchange", ids, batch=100))
    counts = asyncio.run(count_ids(cn.bootstrap, "xb.vn-cn.exchange", prefix, expect=len(ids)))
    assert set(counts) == set(ids), f"lost: {len(set(ids) - set(counts))}"
    assert max(counts.values()) == 1, f"doubled: {sum(1 for c in counts.values() if c > 1)}"


def test_an_aborted_transaction_at_the_source_never_crosses(two_sites: TwoSites) -> None:
    prefix = f"ab-{uuid.uuid4().hex[:8]}-"
    aborted = [f"{prefix}aborted-{i}" for i in range(50)]
    committed = [f"{prefix}committed-{i}" for i in range(50)]
    vn, cn = two_sites.vn, two_sites.cn
    asyncio.run(produce(vn.bootstrap, "xb.vn-cn.exchange.priority", aborted, batch=50, abort=True))
    asyncio.run(produce(vn.bootstrap, "xb.vn-cn.exchange.priority", committed, batch=50))
    got = asyncio.run(count_ids(cn.bootstrap, "xb.vn-cn.exchange.priority", prefix, expect=len(committed),
                                isolation="read_uncommitted"))
    # read even read_uncommitted at the target: the aborted records were never written there at all
    assert set(got) == set(committed)


def test_link_status_reports_no_lag_once_replicated_and_exits_0(two_sites: TwoSites) -> None:
    prefix = f"st-{uuid.uuid4().hex[:8]}-"
    ids = [f"{prefix}{i}" for i in range(300)]
    vn, cn = two_sites.vn, two_sites.cn
    asyncio.run(produce(vn.bootstrap, "xb.vn-cn.receipts", ids, batch=30))  # 10 transactions = 10 markers
    asyncio.run(count_ids(cn.bootstrap, "xb.vn-cn.receipts", prefix, expect=len(ids), settle=1.5))
    from xborder_gateway.link import measure_lag
    from xborder_gateway.link._lag import read_committed_offsets

    deadline = time.monotonic() + 60  # MirrorMaker's offsets become visible with its transaction's commit
    while True:
        report = asyncio.run(measure_lag(cn.settings))
        assert report.reachable, report.error
        flow = next(f for f in report.flows if f.topic == "xb.vn-cn.receipts")
        if flow.records == 0 or time.monotonic() > deadline:
            break
        time.sleep(3)
    committed = asyncio.run(read_committed_offsets(cn.bootstrap, "mm2-offsets.VN.internal", "VN"))
    # LSO - committed offsets would show one phantom record per commit marker; the count shows none
    assert flow.records == 0, (flow, committed)
    assert sum(p.stable_end for p in flow.partitions) > 0
    out = _cli(cn, "link", "status")
    assert out.returncode == 0, out.stderr
    assert "xb.vn-cn.receipts" in out.stdout


def _cli(site: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XBG_")}
    for name, value in site._overrides.items():
        if name != "home":
            env[f"XBG_{name.upper()}"] = str(value)
    return subprocess.run([sys.executable, "-m", "xborder_gateway._cli", "--home", str(site.settings.home), *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


# --- who may connect: mutual TLS ---------------------------------------------------------------------------
def _api_versions(ctx: ssl.SSLContext, address: str) -> bytes:
    """One Kafka ApiVersions v0 request over TLS; the response bytes (raises when the broker refuses)."""
    host, port = address.rsplit(":", 1)
    client_id = b"link-test"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(struct.pack(">i", len(body)) + body)
        size = tls.recv(4)
        if len(size) < 4:
            raise ConnectionError("the broker closed the connection")
        return tls.recv(struct.unpack(">i", size)[0])


def _context(trust: Path, cert: Path | None = None, key: Path | None = None, password: str | None = None
             ) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(trust))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key), password=password)
    return ctx


def _refused(ctx: ssl.SSLContext, address: str) -> bool:
    try:
        _api_versions(ctx, address)
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    return False


def test_the_link_identity_is_accepted(two_sites: TwoSites) -> None:
    """The control for the refusals below: CN's link identity gets an ApiVersions answer from VN."""
    from xborder_gateway.link import link_client_ssl_context

    assert len(_api_versions(link_client_ssl_context(two_sites.cn.settings), two_sites.vn.link_address)) > 6


def test_no_client_certificate_is_refused(two_sites: TwoSites) -> None:
    from xborder_gateway.link import link_files

    trust = link_files(two_sites.cn.settings, "CN").truststore  # CN trusts VN's link CA
    assert _refused(_context(trust), two_sites.vn.link_address)


def test_a_certificate_of_another_ca_is_refused(two_sites: TwoSites, tmp_path: Path) -> None:
    """Same subject as CN's MirrorMaker (CN=link-CN), but issued by a CA VN does not trust."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from xborder_gateway.link import link_files
    from xborder_gateway.link._pki import LINK_ORG

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, LINK_ORG),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("CN link CA")).issuer_name(name("CN link CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - timedelta(hours=1))
          .not_valid_after(now + timedelta(days=1)).add_extension(x509.BasicConstraints(True, 0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("link-CN")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1)).sign(ca_key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                                     + ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    trust = link_files(two_sites.cn.settings, "CN").truststore
    assert _refused(_context(trust, tmp_path / "c.pem", tmp_path / "k.pem"), two_sites.vn.link_address)
    # VN's own link CA does not vouch for a client at VN's link listener either (only the counterpart's does)
    vn_files = link_files(two_sites.vn.settings, "VN")
    own = _context(link_files(two_sites.vn.settings, "VN").truststore, vn_files.client_cert, vn_files.client_key,
                   vn_files.secret("client.keystore.password"))
    own.check_hostname = False
    own.verify_mode = ssl.CERT_NONE
    assert _refused(own, two_sites.vn.link_address)


# --- what the link principal may do: ACLs ------------------------------------------------------------------
async def _as_link_principal(two_sites: TwoSites) -> dict[str, str]:
    """CN's link identity at VN's link listener: try reading every kind of topic and writing the allowed one."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from xborder_gateway.link import link_client_ssl_context

    ctx = link_client_ssl_context(two_sites.cn.settings)
    remote = two_sites.vn.link_address
    outcome: dict[str, str] = {}
    for topic in ["xb.vn-cn.exchange", *LOCAL_ONLY["VN"]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=remote, security_protocol="SSL", ssl_context=ctx,
                                    group_id="link-CN", enable_auto_commit=False, auto_offset_reset="earliest",
                                    isolation_level="read_committed",
                                    # a refused partition's offset lookup is retried until this timeout
                                    # (aiokafka's 40 s default made this test take 3 minutes)
                                    request_timeout_ms=5000)
        await consumer.start()
        try:
            # every partition: the one record produced for this test lands on any of them by its key
            tps = [TopicPartition(topic, p) for p in range(two_sites.vn.settings.topic_partitions)]
            consumer.assign(tps)
            await consumer.getmany(timeout_ms=3000)
            await consumer.seek_to_beginning(*tps)
            got = await consumer.getmany(timeout_ms=3000)
            outcome[f"read {topic}"] = "ok" if any(got.values()) else "nothing"
        except Exception as exc:  # noqa: BLE001 - the refusal is what is measured
            outcome[f"read {topic}"] = type(exc).__name__
        finally:
            await consumer.stop()
    producer = AIOKafkaProducer(bootstrap_servers=remote, security_protocol="SSL", ssl_context=ctx,
                                request_timeout_ms=8000)
    await producer.start()
    for topic in ("xb.vn-cn.exchange", "xb.cn-vn.receipts", "vn.declarations.raw"):
        try:
            await producer.send_and_wait(topic, b"x")
            outcome[f"write {topic}"] = "ok"
        except Exception as exc:  # noqa: BLE001 - the refusal is what is measured
            outcome[f"write {topic}"] = type(exc).__name__
    await producer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=remote, security_protocol="SSL", ssl_context=ctx)
    await admin.start()
    for meta in await admin.describe_topics(["xb.vn-cn.exchange", *LOCAL_ONLY["VN"]]):
        outcome[f"describe {meta['topic']}"] = str(meta.get("error_code", 0))
    try:
        resp = await admin.create_topics([NewTopic("link-made-this", 1, 1)])
        outcome["create topic"] = "ok" if not resp.topic_errors[0][1] else f"error {resp.topic_errors[0][1]}"
    except Exception as exc:  # noqa: BLE001 - the refusal is what is measured
        outcome["create topic"] = type(exc).__name__
    finally:
        await admin.close()
    return outcome


def test_the_link_principal_reads_only_the_allow_list_and_writes_nothing(two_sites: TwoSites) -> None:
    asyncio.run(produce(two_sites.vn.bootstrap, "xb.vn-cn.exchange", [f"acl-{uuid.uuid4().hex}"], batch=1))
    for topic in LOCAL_ONLY["VN"]:
        asyncio.run(produce(two_sites.vn.bootstrap, topic, [f"acl-{uuid.uuid4().hex}"], batch=1))
    outcome = asyncio.run(_as_link_principal(two_sites))
    assert outcome["read xb.vn-cn.exchange"] == "ok", outcome  # the control: the allow-list is readable
    assert outcome["describe xb.vn-cn.exchange"] == "0", outcome
    for topic in LOCAL_ONLY["VN"]:
        # the broker hides the topic (TOPIC_AUTHORIZATION_FAILED = 29) and a consumer gets none of its records,
        # although each holds one (produced above)
        assert outcome[f"describe {topic}"] == "29", outcome
        assert outcome[f"read {topic}"] in {"nothing", "TopicAuthorizationFailedError"}, outcome
    for key in ("write xb.vn-cn.exchange", "write xb.cn-vn.receipts", "write vn.declarations.raw"):
        assert outcome[key] == "TopicAuthorizationFailedError", outcome
    assert outcome["create topic"] in {"error 29", "TopicAuthorizationFailedError"}, outcome
