"""Configuration: one home directory, a TOML file, environment variables, command-line flags.

Precedence, highest first:

1. command-line flags (``--home``, ``--kafka-port`` …, passed as overrides);
2. environment variables ``XBG_<FIELD>`` (e.g. ``XBG_HOME``, ``XBG_KAFKA_BOOTSTRAP``, ``XBG_KAFKA_PORT``);
3. the TOML file: ``--config FILE``, else ``$XBG_CONFIG``, else ``<home>/config.toml`` if it exists;
4. the defaults below.

In the TOML file, a table flattens into its fields' prefix, so these two are the same::

    kafka_port = 9092

    [kafka]
    port = 9092

Everything the gateway keeps (keys, databases, the local broker's data and logs) lives under the
home directory (``--home``, ``$XBG_HOME``, default ``~/.xborder``) unless configured otherwise.
The downloaded Kafka jars are the exception: they are a cache shared by every home
(``$XBG_KAFKA_CACHE``, default ``~/.cache/xborder``).
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from xborder_gateway.errors import ConfigError

__all__ = ["AUTHORITIES", "DirectionTopics", "Settings", "SiteTopics", "counterpart", "default_home", "load_settings"]

#: the two authorities of the exchange
AUTHORITIES = ("VN", "CN")


def counterpart(authority: str) -> str:
    """The other authority of the exchange (VN <-> CN); a ConfigError for anything else."""
    a = authority.upper()
    if a not in AUTHORITIES:
        raise ConfigError(f"unknown authority {authority!r}", code="AUTHORITY_UNKNOWN", hint="use VN or CN")
    return "CN" if a == "VN" else "VN"


@dataclass(frozen=True)
class DirectionTopics:
    """What crosses the border for one direction ``sender -> receiver`` (issue 10 item 1)."""

    exchange: str
    """``xb.<from>-<to>.exchange``: sealed envelopes"""
    priority: str
    """``xb.<from>-<to>.exchange.priority``: the perishable lane, served first"""
    receipts: str
    """``xb.<to>-<from>.receipts``: the receiver's receipts and business responses"""


@dataclass(frozen=True)
class SiteTopics:
    """What never leaves an authority's site: ``<a>.declarations.raw|rejected|status``, ``<a>.exchange.dead-letter``."""

    intake: str
    rejected: str
    status: str
    dead_letter: str

    def all(self) -> tuple[str, ...]:
        return (self.intake, self.rejected, self.status, self.dead_letter)


# broker client, KRaft controller, link listener, MirrorMaker REST: a site's defaults (docs/link.md)
SITE_PORTS: dict[str, tuple[int, int, int, int]] = {"VN": (9092, 9093, 9094, 9095), "CN": (9192, 9193, 9194, 9195)}


def default_home() -> Path:
    return Path(os.environ.get("XBG_HOME") or Path.home() / ".xborder").expanduser()


def _default_cache() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "xborder"


class Settings(BaseSettings):
    """All settings of the gateway. Field ``x_y`` is ``XBG_X_Y`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="XBG_", extra="forbid", frozen=True)
    #: the settings a role view (:meth:`for_role`) was made from: direction/site names always come from it
    _base: Settings | None = PrivateAttr(default=None)

    home: Path = Field(default_factory=default_home, description="where all state lives")

    # --- the local broker (xborder kafka …) and the Kafka clients -----------------------------
    kafka_bootstrap: str | None = Field(
        default=None,
        description="bootstrap servers of an external broker; unset = the local broker under <home>/kafka",
    )
    kafka_host: str = Field(default="127.0.0.1", description="address the local broker binds to")
    kafka_port: int = Field(default=9092, ge=1, le=65535, description="local broker client port")
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535, description="local KRaft controller port")
    kafka_version: str = Field(default="4.1.1", description="Apache Kafka version fetched from Maven Central")
    kafka_scala: str = Field(default="2.13", description="Scala build of the kafka artifact")
    kafka_cache: Path = Field(
        default_factory=_default_cache, description="jar cache shared by every home ($XBG_KAFKA_CACHE)"
    )
    kafka_heap: str = Field(default="512m", description="broker JVM heap (-Xmx)")
    kafka_jit: Literal["quick", "full"] = Field(
        default="quick",
        description="JIT compilation of the JVMs this project starts (broker, MirrorMaker). quick: the client "
        "compiler only (-XX:TieredStopAtLevel=1); a broker that runs for minutes (the demo, the tests, a "
        "benchmark on the same cores) otherwise spends about half its CPU in the optimising compiler, and "
        "measured after 5,000 declarations it still used 1.6x the CPU per declaration of a quick one "
        "(docs/benchmarks.md). full: HotSpot's default tiered compilation, for a broker that runs for days")
    kafka_start_timeout: float = Field(default=90.0, gt=0, description="seconds to wait for the broker")
    kafka_fetch_max_wait_ms: int = Field(
        default=50, ge=1, le=5000,
        description="consumers' fetch.max.wait.ms: how long the broker holds a fetch that has no data. aiokafka "
        "keeps one fetch in flight per broker, so a record on a partition outside that fetch waits up to this "
        "long: it bounds the per-hop latency of a quiet partition (docs/benchmarks.md, issue 14)")

    # --- topics (names are configuration; partition count applies to every gateway topic) -----
    topic_intake: str = Field(default="vn.declarations.raw", description="VN customs systems publish XML here")
    topic_rejected: str = Field(default="vn.declarations.rejected",
                                description="refused input: raw bytes + structured reasons")
    topic_exchange: str = Field(default="xb.vn-cn.exchange", description="sealed envelopes VN -> CN")
    topic_exchange_priority: str = Field(default="xb.vn-cn.exchange.priority",
                                         description="priority lane for perishable goods, served first")
    topic_receipts: str = Field(default="xb.cn-vn.receipts", description="signed receipts and business responses")
    topic_dead_letter: str = Field(default="vn.exchange.dead-letter",
                                   description="messages never acknowledged after every resend (a site topic: "
                                   "never in a link's allow-list)")
    topic_status: str = Field(default="vn.declarations.status",
                              description="the status feed for senders: one record per state change (key = "
                              "declaration number); never leaves the site")
    topic_partitions: int = Field(default=3, ge=1, description="partitions of every gateway topic")
    topic_vn_audit_checkpoints: str = Field(default="xb.vn.audit.checkpoints",
                                            description="VN's signed audit checkpoints, VN -> CN (CN's witness)")
    topic_cn_audit_checkpoints: str = Field(default="xb.cn.audit.checkpoints",
                                            description="CN's signed audit checkpoints, CN -> VN (VN's witness)")
    topic_vn_audit_cosignatures: str = Field(default="xb.vn.audit.cosignatures",
                                             description="VN's cosignatures of CN's checkpoints, VN -> CN")
    topic_cn_audit_cosignatures: str = Field(default="xb.cn.audit.cosignatures",
                                             description="CN's cosignatures of VN's checkpoints, CN -> VN")
    # the CN -> VN direction and CN's site topics (issue 10 item 1; Settings.direction_topics / site_topics)
    topic_cn_vn_exchange: str = Field(default="xb.cn-vn.exchange", description="sealed envelopes CN -> VN")
    topic_cn_vn_exchange_priority: str = Field(default="xb.cn-vn.exchange.priority",
                                               description="CN -> VN priority lane (perishable goods)")
    topic_cn_vn_receipts: str = Field(default="xb.vn-cn.receipts",
                                      description="VN's receipts and business responses for CN's envelopes")
    topic_cn_intake: str = Field(default="cn.declarations.raw",
                                 description="CN customs systems publish framed Avro (CnExportDeclaration, "
                                 "CnRoadManifest) here")
    topic_cn_rejected: str = Field(default="cn.declarations.rejected",
                                   description="CN's refused input: raw bytes + structured reasons")
    topic_cn_status: str = Field(default="cn.declarations.status", description="CN's status feed for senders")
    topic_cn_dead_letter: str = Field(default="cn.exchange.dead-letter",
                                      description="CN's messages never acknowledged after every resend")

    # --- exchange (connectors: outbound, nanning endpoint, receipt tracker) --------------------
    exchange_batch_max: int = Field(default=500, ge=1, le=10_000,
                                    description="most records one connector transaction handles")
    exchange_poll_ms: int = Field(default=200, ge=10, description="consumer poll timeout (ms)")
    exchange_txn_timeout_s: float = Field(default=30.0, gt=0,
                                          description="seconds a batch transaction may take before it is redone")
    exchange_receipt_timeout_s: float = Field(default=10.0, gt=0,
                                              description="seconds without a receipt before the first resend")
    exchange_resend_max_attempts: int = Field(default=5, ge=1,
                                              description="sends (first + resends) before a message is dead-lettered")
    exchange_backoff_initial_s: float = Field(default=1.0, gt=0, description="first resend backoff (s)")
    exchange_backoff_max_s: float = Field(default=30.0, gt=0, description="longest resend backoff (s)")
    exchange_backoff_jitter_s: float = Field(default=1.0, ge=0, description="random jitter added to a backoff (s)")
    exchange_group_prefix: str = Field(default="xbg", description="prefix of consumer groups / transactional ids")
    exchange_duplicate_window_days: float = Field(
        default=30.0, gt=0,
        description="days the outbound connector remembers a sealed document's bytes: the same bytes published "
        "again within them are rejected as DUPLICATE_SUBMISSION (ADR 0401)")
    exchange_linked_grace_s: float = Field(
        default=600.0, gt=0, le=86_400,
        description="seconds the endpoint keeps a vehicle declaration PENDING for linked declarations it has not "
        "received, counted from when it processed the vehicle declaration; then REJECTED "
        "LINKED_DECLARATION_UNKNOWN (issue 15)")
    exchange_dead_letter_after: Literal["expiry", "attempts"] = Field(
        default="expiry",
        description="when the receipt tracker dead-letters a message that got no receipt after its "
        "exchange_resend_max_attempts sends: 'expiry' = only once the envelope has expired at the receiver "
        "(its expiry + twice the clock skew), so a link outage never becomes a dead letter that the receiver "
        "would still process (ADR 0601); 'attempts' = at once (one outcome is no longer guaranteed when "
        "copies wait in a link)")

    # --- VN's mirror checks of CN exports (exchange/_mirror.py, _mirror_store.mirror_config; issue 10) ---
    mirror_rates: str = Field(default="USD=1,CNY=7.1,VND=25400",
                              description="rate table of the mirror checks: units of each currency per US dollar "
                              "(CODE=RATE, comma-separated); a currency not in it gives RATE_UNKNOWN")
    mirror_value_tolerance: float = Field(default=0.03, ge=0, le=1,
                                          description="relative value difference allowed within one Incoterm group")
    mirror_freight_insurance_allowance: float = Field(
        default=0.10, ge=0, le=1, description="how much a C/D (CIF, DAP…) value may add to an E/F (FOB…) value")
    mirror_quantity_tolerance: float = Field(default=0.005, ge=0, le=1,
                                             description="relative quantity difference allowed after unit conversion")
    mirror_import_timeout_s: float = Field(
        default=21_600.0, gt=0, description="seconds after an export is first seen before it is flagged "
        "NO_IMPORT_DECLARATION when no VN import declaration matches it (re-checked on every tick)")
    mirror_recheck_s: float = Field(default=1.0, gt=0,
                                    description="seconds between the VN endpoint's re-checks of waiting exports")

    # --- documents (intake bounds; IntakeLimits.from_settings) ---------------------------------
    documents_max_bytes: int = Field(default=1_048_576, ge=1, description="XML size cap, checked before parsing")
    documents_max_depth: int = Field(default=16, ge=1, description="maximum XML element depth")
    documents_max_elements: int = Field(default=10_000, ge=1, description="maximum number of XML elements")

    # --- keys ----------------------------------------------------------------------------------
    key_passphrase: str | None = Field(
        default=None, description="passphrase of the private keys at rest ($XBG_KEY_PASSPHRASE)", repr=False
    )
    key_passphrase_file: Path | None = Field(
        default=None, description="file whose first line is the key passphrase; wins over key_passphrase "
        "(--passphrase-file wins over both)",
    )
    key_insecure_no_passphrase: bool = Field(
        default=False, description="allow private keys at rest without encryption (never by default; tests, demos)",
    )
    hsm_module: Path | None = Field(
        default=None, description="PKCS#11 module (.so) holding the signing keys of `keys init --hsm` "
        "(default: SoftHSM2's where installed)",
    )
    hsm_token: str | None = Field(default=None, description="label of the PKCS#11 token holding the signing keys")
    hsm_pin_file: Path | None = Field(default=None, description="file whose first line is the token's user PIN")
    hsm_pin: str | None = Field(default=None, description="the token's user PIN (prefer hsm_pin_file)", repr=False)

    # --- envelope -------------------------------------------------------------------------------
    envelope_suite: int = Field(
        default=2, ge=1, le=2, description="envelope suite this side seals: 1 = one signature and HPKE per envelope, "
        "2 = batch (one signature over a Merkle root, one HPKE per batch; docs/envelope.md §8); both open")
    envelope_receipt_version: int = Field(
        default=2, ge=1, le=2, description="receipts the receiving endpoint writes: 2 = a Receipt v2 carries an "
        "immediate business decision (one answer per declaration; later decisions are BusinessResponses), 1 = a "
        "Receipt v1 and a separate BusinessResponse for every declaration; the tracker reads both")

    # --- audit ---------------------------------------------------------------------------------
    audit_url: str | None = Field(
        default=None,
        description="audit database URL (postgresql://…); unset = SQLite under <home>/audit/",
    )
    audit_pg_schema: str = Field(
        default="xbg_audit", pattern=r"^[a-z][a-z0-9_]{0,40}$",
        description="PostgreSQL schema prefix; each authority's log lives in <prefix>_<vn|cn>",
    )
    audit_origin: str = Field(
        default="xborder-gateway.local/audit", pattern=r"^[^\s+]+$",
        description="checkpoint origin (and note key name) prefix; the log's origin is <prefix>/<vn|cn>",
    )
    audit_checkpoint_entries: int = Field(default=1000, ge=1, description="sign a checkpoint every N entries")
    audit_checkpoint_seconds: float = Field(
        default=10.0, gt=0, description="…or when an append comes T seconds after the last checkpoint"
    )
    audit_api_host: str = Field(default="127.0.0.1", description="address of `xborder audit serve`")
    audit_api_port: int = Field(default=8441, ge=0, le=65535, description="port of `xborder audit serve`")
    audit_counterpart_url: str | None = Field(
        default=None, description="the counterpart site's `xborder audit serve` (http(s)://host:port): "
        "`audit trace` and /v1/trace fetch its entries about a declaration from there; unset = this home only")
    audit_counterpart_token_file: Path | None = Field(
        default=None, description="file whose content is the bearer token the counterpart issued to this site "
        "(role counterpart) for audit_counterpart_url")
    audit_console_max_lag_entries: int = Field(
        default=1000, ge=0, le=2**63 - 1, description="the console's checkpoint panel shows a log red when more "
        "entries than this are not covered by a cosigned checkpoint (like `audit verify --max-lag-entries`)")
    audit_console_max_lag_seconds: float = Field(
        default=900.0, ge=0, le=10**9, description="the console's checkpoint panel shows a log red when its oldest "
        "entry not covered by a cosigned checkpoint waited longer than this (like `audit verify --max-lag-seconds`)")

    # --- CN business rules (exchange/_rules_cn.py, CnRulesConfig.from_settings) ---------------------
    cn_licence_required_hs6: str = Field(
        default="100199,100590,100610,100620,100630,100640,170114,170199,310210,520100",
        description="comma-separated HS-6 subheadings China admits only with a licence or quota certificate: "
        "an entering goods line without a licence number is HELD LICENCE_REQUIRED (simulated TRQ selection)")
    cn_sps_registry: str = Field(
        default="cn_sps_registry_2026-11-30",
        description="code list (mappings/codelists/NAME.csv) of the registered planting areas (PUC) and "
        "pack-houses (PHC) the CN rules accept (simulated)")
    # --- smart gate (xborder run gate, docs/gate.md) ------------------------------------------------
    topic_gate_arrivals: str = Field(default="vn.gate.arrivals", description="gate cameras publish arrivals here")
    topic_gate_decisions: str = Field(default="vn.gate.decisions",
                                      description="GREEN/YELLOW/RED decisions, superseding ones included")
    topic_gate_feed: str = Field(default="vn.declarations.status",
                                 description="the status feed the gate builds its view from")
    gate_min_confidence: float = Field(default=0.85, ge=0, le=1,
                                       description="plate reads below this confidence are YELLOW")
    gate_grace_s: float = Field(default=600.0, gt=0,
                                description="seconds an outstanding counterpart answer is AWAITING (then OVERDUE)")
    gate_supersede_window_s: float = Field(default=43_200.0, gt=0,
                                           description="arrivals younger than this are re-decided on a view change")
    gate_feed_batch_max: int = Field(
        default=20, ge=1, le=10_000,
        description="gate_delivery=outbox: the most status-feed records the gate applies in one batch; the feed "
        "has a loop of its own beside the arrivals', and a smaller batch is a shorter wait for an arrival that "
        "lands while one is being applied")
    gate_delivery: Literal["outbox", "transaction"] = Field(
        default="outbox",
        description="how `run gate` delivers decisions: `outbox` = the SQLite commit holds them, an idempotent "
        "producer sends them at once and a restart first looks on the topic for those it may have sent (no "
        "Kafka transaction on an arrival's path: ADR 0701); `transaction` = decisions and input offsets in one "
        "Kafka transaction per batch (ADR 0700; four more broker round trips per batch)")
    # --- sites and the link between them (xborder link …; docs/link.md) -----------------------
    site_authority: str | None = Field(
        default=None, pattern=r"^(VN|CN)$",
        description="the authority whose site this home is (VN or CN); decides the default ports "
        "(VN 9092/9093/9094/9095, CN 9192/9193/9194/9195); unset = a single-site home with today's defaults")
    kafka_link_port: int = Field(default=9094, ge=1, le=65535,
                                 description="the local broker's mutual-TLS listener for the counterpart's link")
    link_remote_bootstrap: str | None = Field(
        default=None, description="the counterpart's link listener (host:port); unset = 127.0.0.1 and the "
        "counterpart site's default link port")
    link_topics_vn_cn: list[str] = Field(
        default=["xb.vn-cn.exchange", "xb.vn-cn.exchange.priority", "xb.vn-cn.receipts",
                 "xb.vn.audit.checkpoints", "xb.vn.audit.cosignatures"],
        description="allow-list: the only topics that cross from the VN site to the CN site")
    link_topics_cn_vn: list[str] = Field(
        default=["xb.cn-vn.exchange", "xb.cn-vn.exchange.priority", "xb.cn-vn.receipts",
                 "xb.cn.audit.checkpoints", "xb.cn.audit.cosignatures"],
        description="allow-list: the only topics that cross from the CN site to the VN site")
    link_rest_port: int = Field(default=9095, ge=1, le=65535,
                                description="MirrorMaker's internal REST listener (bound to 127.0.0.1 only)")
    link_heap: str = Field(default="384m", description="MirrorMaker JVM heap (-Xmx)")
    link_start_timeout: float = Field(default=120.0, gt=0, description="seconds to wait for MirrorMaker's tasks")
    link_exactly_once: bool = Field(default=True,
                                    description="exactly-once replication; false only for the control test")
    link_isolation_level: str = Field(
        default="read_committed", pattern=r"^read_(un)?committed$",
        description="the link consumer's isolation; read_uncommitted only for the control test")
    link_transaction_timeout_ms: int = Field(
        default=10_000, ge=1000, description="MirrorMaker's producer transaction timeout: how long a restart "
        "after kill -9 waits for the dead worker's transaction")
    link_cert_validity_days: int = Field(default=365, ge=1, le=36_500,
                                         description="validity of new link CA and certificates")
    link_internal_topics_suffix: str = Field(
        default="", pattern=r"^[A-Za-z0-9_-]{0,40}$",
        description="suffix of MirrorMaker's own topics in this site's cluster (mm2-configs/offsets/status."
        "<COUNTERPART><suffix>.internal): a fresh suffix starts the link without its stored connector "
        "configuration and source offsets (replicates from the start); for the control tests only")
    link_offset_flush_interval_ms: int = Field(
        default=1000, ge=100, description="how often MirrorMaker commits its source offsets without "
        "exactly-once (with exactly-once they commit with each transaction)")
    # `xborder demo --sites 2` (issue 11 item 4; _cli/_demo_sites.py)
    demo_port_base: int | None = Field(
        default=None, ge=1024, le=65527, description="the two-site demo's ports: VN broker/controller/link/"
        "MirrorMaker REST on B..B+3, CN's on B+5..B+8; unset = each site's defaults (VN 9092-9095, CN 9192-9195)")

    @model_validator(mode="before")
    @classmethod
    def _site_ports(cls, data: Any) -> Any:
        """A site's authority decides the ports it has not been given explicitly."""
        if isinstance(data, dict) and data.get("site_authority") in SITE_PORTS:
            for name, port in zip(("kafka_port", "kafka_controller_port", "kafka_link_port", "link_rest_port"),
                                  SITE_PORTS[data["site_authority"]], strict=True):
                data.setdefault(name, port)
        return data

    @field_validator("home", "kafka_cache", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    # --- derived paths ---------------------------------------------------------------------------
    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    def keys_dir(self, authority: str) -> Path:
        return self.home / "keys" / authority.upper()

    def state_db(self, authority: str) -> Path:
        return self.home / "state" / f"{authority.lower()}.sqlite"

    def audit_db(self, authority: str) -> Path:
        return self.home / "audit" / f"{authority.lower()}.sqlite"

    @property
    def site(self) -> str:
        """This home's site authority (``site_authority``); a ConfigError when the home is not a site."""
        if self.site_authority is None:
            raise ConfigError("this home is not a site: site_authority is unset", code="LINK_NO_SITE",
                              hint="set site_authority = \"VN\" or \"CN\" in <home>/config.toml "
                              "(or XBG_SITE_AUTHORITY)")
        return self.site_authority

    @property
    def link_counterpart(self) -> str:
        """The other site's authority (requires ``site_authority``)."""
        return "CN" if self.site == "VN" else "VN"

    @property
    def link_remote(self) -> str:
        """The counterpart's link listener, host:port."""
        if self.link_remote_bootstrap:
            return self.link_remote_bootstrap
        return f"127.0.0.1:{SITE_PORTS[self.link_counterpart][2]}"

    def link_topics(self, source: str, target: str) -> list[str]:
        """The allow-listed topics that flow from site ``source`` to site ``target``."""
        pair = (source.upper(), target.upper())
        if pair == ("VN", "CN"):
            return list(self.link_topics_vn_cn)
        if pair == ("CN", "VN"):
            return list(self.link_topics_cn_vn)
        raise ConfigError(f"no link from {source} to {target}", code="LINK_DIRECTION", hint="use VN or CN")

    # --- topics per direction and per site (issue 10 item 1) ---------------------------------------
    def direction_topics(self, sender: str, receiver: str) -> DirectionTopics:
        """The cross-border topics of the direction ``sender -> receiver``. VN -> CN is the configured
        ``topic_exchange`` / ``topic_exchange_priority`` / ``topic_receipts``; CN -> VN is ``topic_cn_vn_*`` (defaults
        ``xb.cn-vn.exchange``, ``xb.cn-vn.exchange.priority``, ``xb.vn-cn.receipts``)."""
        if self._base is not None:
            return self._base.direction_topics(sender, receiver)
        f, t = sender.upper(), receiver.upper()
        if counterpart(f) != t:
            raise ConfigError(f"no direction {sender} -> {receiver}", code="DIRECTION_UNKNOWN",
                              hint="use VN -> CN or CN -> VN")
        if (f, t) == ("VN", "CN"):
            return DirectionTopics(self.topic_exchange, self.topic_exchange_priority, self.topic_receipts)
        return DirectionTopics(self.topic_cn_vn_exchange, self.topic_cn_vn_exchange_priority, self.topic_cn_vn_receipts)

    def site_topics(self, authority: str) -> SiteTopics:
        """The topics that never leave ``authority``'s site. VN's are the configured ``topic_intake`` /
        ``topic_rejected`` / ``topic_status`` / ``topic_dead_letter``; CN's are ``topic_cn_*`` (``cn.`` prefix)."""
        if self._base is not None:
            return self._base.site_topics(authority)
        a = authority.upper()
        counterpart(a)  # a ConfigError for an unknown authority
        if a == "VN":
            return SiteTopics(self.topic_intake, self.topic_rejected, self.topic_status, self.topic_dead_letter)
        return SiteTopics(self.topic_cn_intake, self.topic_cn_rejected, self.topic_cn_status, self.topic_cn_dead_letter)

    def for_role(self, site: str, sender: str) -> Settings:
        """These settings as one role of ``site`` sees them: the ``topic_intake`` / ``topic_rejected`` /
        ``topic_status`` / ``topic_dead_letter`` fields are ``site``'s, and ``topic_exchange`` /
        ``topic_exchange_priority`` / ``topic_receipts`` those of the direction ``sender -> counterpart``.
        A sending role (outbound, receipts) passes ``sender=site``, the receiving endpoint the counterpart.
        For VN's sending roles (today's names) it returns ``self`` unchanged."""
        site, sender = site.upper(), sender.upper()
        d = self.direction_topics(sender, counterpart(sender))
        st = self.site_topics(site)
        update = {"topic_intake": st.intake, "topic_rejected": st.rejected, "topic_status": st.status,
                  "topic_dead_letter": st.dead_letter, "topic_exchange": d.exchange,
                  "topic_exchange_priority": d.priority, "topic_receipts": d.receipts}
        if all(getattr(self, k) == v for k, v in update.items()):
            return self
        view = self.model_copy(update=update)
        view._base = self._base or self
        return view

    @property
    def bootstrap_local(self) -> str:
        """The address of the local broker (``xborder kafka start``)."""
        return f"{self.kafka_host}:{self.kafka_port}"

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients use: the external broker's, else the local one's."""
        return self.kafka_bootstrap or self.bootstrap_local

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))


# The file the TOML source reads, for the duration of one load_settings() call (safe across threads/tasks).
_config_file: ContextVar[Path | None] = ContextVar("xbg_config_file", default=None)


class _TomlSource(PydanticBaseSettingsSource):
    """Lowest-priority source: the TOML config file, with tables flattened into field prefixes."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data().get(field_name), field_name, False

    def _data(self) -> dict[str, Any]:
        path = _config_file.get()
        if path is None or not path.is_file():
            return {}
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}", code="CONFIG_FILE") from exc
        flat: dict[str, Any] = {}
        for key, value in raw.items():
            if isinstance(value, dict):
                for sub, subvalue in value.items():
                    flat[f"{key}_{sub}".replace("-", "_")] = subvalue
            else:
                flat[key.replace("-", "_")] = value
        return flat

    def __call__(self) -> dict[str, Any]:
        return self._data()


def load_settings(
    home: Path | str | None = None, config_file: Path | str | None = None, **overrides: Any
) -> Settings:
    """Build the settings: flags (``home``/``overrides``) > environment > TOML file > defaults."""
    if home is not None:
        overrides["home"] = Path(home)
    resolved_home = Path(overrides.get("home") or default_home()).expanduser()
    if config_file is None:
        env_file = os.environ.get("XBG_CONFIG")
        config_file = Path(env_file) if env_file else resolved_home / "config.toml"
        explicit = bool(env_file)
    else:
        explicit = True
    path = Path(config_file).expanduser()
    if explicit and not path.is_file():
        raise ConfigError(f"config file {path} does not exist", code="CONFIG_FILE",
                          hint="pass an existing file to --config / XBG_CONFIG, or leave it unset")
    token = _config_file.set(path)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}", code="CONFIG_INVALID",
                          hint=f"fix the flag, the XBG_* variable or {path}") from exc
    finally:
        _config_file.reset(token)
