"""MirrorMaker 2 for one site: it pulls the counterpart's allow-listed topics into this site's cluster.

One MirrorMaker per site, as in production (docs/link.md): the site's MirrorMaker consumes from the
counterpart's link listener (mutual TLS, ``User:link-<SITE>``, read-only ACLs) and produces into its own
cluster over the local listener — so no process of one site writes into the other's cluster. Connect's
worker state (configs, offsets, status) and the offset-syncs topic live in the target = this site's cluster.

Files under ``<home>/link/``: ``mm2.properties`` and ``log4j2.properties`` (rewritten at each start),
``mm2.pid``, ``logs/mirrormaker.log``, ``logs/stdout.log``. Jars: ``org.apache.kafka:connect-mirror`` from
Maven Central, cached beside the broker's under ``settings.kafka_cache``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from xborder_gateway.config import Settings
from xborder_gateway.errors import ConfigError, TransportError
from xborder_gateway.kafka_local._launcher import (
    DEPENDENCY_PLUGIN,
    LOG4J2_VERSION,
    MIN_JAVA,
    Progress,
    _file_lock,
    _pid_alive,
    _port_in_use,
    _quiet,
    _reap,
    java_executable,
    java_major_version,
    jit_options,
)
from xborder_gateway.link._pki import link_files, write_truststore

__all__ = [
    "MIRROR_READY_LINE",
    "TASK_READY_PATTERN",
    "LinkMirror",
    "MirrorStatus",
    "fetch_mirror_jars",
    "mirror_jar_dir",
    "topics_regex",
]

MIRROR_READY_LINE = "Kafka MirrorMaker started"
# the replication task is running (exactly-once or not): what `link start` waits for
TASK_READY_PATTERN = re.compile(
    rb"WorkerSourceTask\{id=MirrorSourceConnector-\d+\} Source task finished initialization")
IDENTITY_POLICY = "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
# what MirrorMaker logs when a flow's herder loses the group while writing its connectors' configuration
_LOST_LEADERSHIP = b"lost leadership for MirrorSourceConnector while trying to update the connector configuration"
#: start-ups of MirrorMaker in one `start` when one gets stuck (see LinkMirror._start_state)
_START_ATTEMPTS = 3


def topics_regex(topics: list[str]) -> str:
    """An anchored regex matching exactly ``topics`` (MirrorMaker's ``topics`` is a list of regexes)."""
    return "^(" + "|".join(re.escape(t) for t in sorted(topics)) + ")$"


def _prop_escape(value: str) -> str:
    """A value for a Java .properties file (backslashes doubled)."""
    return value.replace("\\", "\\\\")


def mirror_jar_dir(settings: Settings) -> Path:
    """Where MirrorMaker's jars are cached: beside the broker's, under ``settings.kafka_cache``."""
    return settings.kafka_cache / f"connect-mirror-{settings.kafka_version}" / "libs"


def _pom(settings: Settings) -> str:
    deps = [
        ("org.apache.kafka", "connect-mirror", settings.kafka_version),
        ("org.apache.logging.log4j", "log4j-core", LOG4J2_VERSION),
        ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J2_VERSION),
    ]
    body = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>local.xborder</groupId><artifactId>mirrormaker-runtime</artifactId><version>1</version>\n"
        "  <packaging>pom</packaging>\n"
        f"  <dependencies>\n{body}\n  </dependencies>\n</project>\n"
    )


def fetch_mirror_jars(settings: Settings, progress: Progress = _quiet) -> Path:
    """Fetch connect-mirror and log4j2 with Maven into the cache (once; concurrent callers wait)."""
    jar_dir = mirror_jar_dir(settings)
    if (jar_dir / ".complete").is_file():
        return jar_dir
    mvn = shutil.which("mvn")
    if not mvn:
        raise ConfigError("Maven (mvn) was not found; it fetches MirrorMaker's jars from Maven Central",
                          code="MAVEN_MISSING", hint="install Maven (Debian: apt-get install maven)")
    root = jar_dir.parent
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / ".lock"):
        if (jar_dir / ".complete").is_file():
            return jar_dir
        progress(f"fetching MirrorMaker 2 ({settings.kafka_version}) jars with Maven into {jar_dir}")
        with tempfile.TemporaryDirectory(dir=root, prefix="fetch-") as tmp:
            pom = Path(tmp) / "pom.xml"
            pom.write_text(_pom(settings), encoding="utf-8")
            out_dir = Path(tmp) / "libs"
            proc = subprocess.run(
                [mvn, "-B", "-q", "-f", str(pom), DEPENDENCY_PLUGIN, "-DincludeScope=runtime",
                 f"-DoutputDirectory={out_dir}"],
                capture_output=True, text=True, check=False,
            )
            if proc.returncode != 0 or not any(out_dir.glob("connect-mirror-*.jar")):
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                raise ConfigError(f"Maven could not fetch MirrorMaker's jars (exit {proc.returncode}):\n{tail}",
                                  code="LINK_FETCH_FAILED",
                                  hint="check that Maven Central is reachable (mvn -v; ~/.m2/settings.xml)")
            (out_dir / ".complete").write_text(f"{settings.kafka_version}\n")
            if jar_dir.exists():
                shutil.rmtree(jar_dir)
            out_dir.rename(jar_dir)
    return jar_dir


@dataclass(frozen=True)
class MirrorStatus:
    running: bool
    pid: int | None
    source: str  # the counterpart (where records come from)
    target: str  # this site
    log_file: Path
    started_in_s: float | None = None

    def describe(self) -> str:
        if self.running:
            return f"link: MirrorMaker running (pid {self.pid}), {self.source} -> {self.target}"
        return f"link: MirrorMaker not running ({self.source} -> {self.target})"


class LinkMirror:
    """The MirrorMaker 2 of one site home."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.target = settings.site  # LINK_NO_SITE unless this home is a site
        self.source = settings.link_counterpart
        self.dir = settings.home / "link"
        self.log_dir = self.dir / "logs"
        self.properties = self.dir / "mm2.properties"
        self.log4j = self.dir / "log4j2.properties"
        self.pid_file = self.dir / "mm2.pid"
        self.log_file = self.log_dir / "mirrormaker.log"
        self.stdout_file = self.log_dir / "stdout.log"

    @property
    def topics(self) -> list[str]:
        """The allow-list this site's MirrorMaker replicates: the topics flowing from the counterpart to here."""
        return self.settings.link_topics(self.source, self.target)

    @property
    def offsets_topic(self) -> str:
        return f"mm2-offsets.{self.source}{self.settings.link_internal_topics_suffix}.internal"

    # --- jars --------------------------------------------------------------------------------------
    @property
    def jar_dir(self) -> Path:
        return mirror_jar_dir(self.settings)

    def fetch(self, progress: Progress = _quiet) -> Path:
        return fetch_mirror_jars(self.settings, progress)

    # --- configuration -----------------------------------------------------------------------------
    def mm2_properties(self) -> str:
        s = self.settings
        src, tgt = self.source, self.target
        files = link_files(s, tgt)
        secret = f"${{file:{files.secrets}:client.keystore.password}}"
        flow = f"{src}->{tgt}"
        isolation = s.link_isolation_level
        lines = [
            "# written by `xborder link start`; edits are overwritten at the next start",
            "# LINK-3: secrets only through the file config provider (a 0600 file)",
            "config.providers = file",
            "config.providers.file.class = org.apache.kafka.common.config.provider.FileConfigProvider",
            f"clusters = {src}, {tgt}",
            # the source: the counterpart's link listener, mutual TLS with this site's link identity
            f"{src}.bootstrap.servers = {s.link_remote}",
            f"{src}.security.protocol = SSL",
            f"{src}.ssl.keystore.type = PKCS12",
            f"{src}.ssl.keystore.location = {_prop_escape(str(files.client_p12))}",
            f"{src}.ssl.keystore.password = {secret}",
            f"{src}.ssl.key.password = {secret}",
            f"{src}.ssl.truststore.type = PEM",
            f"{src}.ssl.truststore.location = {_prop_escape(str(files.truststore))}",
            f"{src}.ssl.endpoint.identification.algorithm = https",
            # LINK-7: an aborted transaction at the source never crosses (read_committed)
            f"{src}.consumer.isolation.level = {isolation}",
            f"{flow}.consumer.isolation.level = {isolation}",
            # the link is one more hop of the exchange: as the connectors' consumers (kafka_fetch_max_wait_ms),
            # a record on a quiet partition must not wait up to Kafka's 500 ms for the fetch in flight
            f"{src}.consumer.fetch.max.wait.ms = {s.kafka_fetch_max_wait_ms}",
            f"{flow}.consumer.fetch.max.wait.ms = {s.kafka_fetch_max_wait_ms}",
            # the target: this site's own cluster, over the local listener
            f"{tgt}.bootstrap.servers = {s.bootstrap}",
            # worker settings take effect only under the target cluster's prefix (Kafka 4.1.1)
            f"{tgt}.exactly.once.source.support = {'enabled' if s.link_exactly_once else 'disabled'}",
            f"{tgt}.plugin.discovery = service_load",
            "plugin.discovery = service_load",  # MirrorMaker's own first plugin scan reads the top level
            f"{tgt}.producer.transaction.timeout.ms = {s.link_transaction_timeout_ms}",
            f"{tgt}.offset.flush.interval.ms = {s.link_offset_flush_interval_ms}",
            # the flows: only counterpart -> this site, only the allow-list, names kept
            f"{flow}.enabled = true",
            f"{tgt}->{src}.enabled = false",
            f"{flow}.topics = {_prop_escape(topics_regex(self.topics))}",
            f"{flow}.topics.exclude = ^$",
            f"replication.policy.class = {IDENTITY_POLICY}",
            f"{flow}.offset-syncs.topic.location = target",
            # no heartbeats: a heartbeat herder for the disabled reverse flow would write into the
            # counterpart's cluster (its ACLs refuse it, and it is not this site's to write)
            "emit.heartbeats.enabled = false",
            f"{tgt}->{src}.emit.heartbeats.enabled = false",
            f"{flow}.emit.heartbeats.enabled = false",
            f"{flow}.emit.checkpoints.enabled = false",
            f"{flow}.sync.group.offsets.enabled = false",
            f"{flow}.sync.topic.acls.enabled = false",
            f"{flow}.sync.topic.configs.enabled = false",
            f"{flow}.refresh.topics.interval.seconds = 5",
            "sync.topic.acls.enabled = false",
            # one node per cluster: every internal topic has one replica
            "replication.factor = 1",
            "checkpoints.topic.replication.factor = 1",
            "heartbeats.topic.replication.factor = 1",
            "offset-syncs.topic.replication.factor = 1",
            "offset.storage.replication.factor = 1",
            "status.storage.replication.factor = 1",
            "config.storage.replication.factor = 1",
            # the internal REST listener (needed for exactly-once task fencing) on loopback only
            "dedicated.mode.enable.internal.rest = true",
            f"listeners = http://127.0.0.1:{s.link_rest_port}",
            f"{tgt}.listeners = http://127.0.0.1:{s.link_rest_port}",
            *self._internal_topics(),
            "",
        ]
        return "\n".join(lines)

    def _internal_topics(self) -> list[str]:
        """MirrorMaker's own topics in this site's cluster, renamed only with ``link_internal_topics_suffix``
        (the control tests: a fresh set forgets the stored connector configuration and source offsets)."""
        suffix = self.settings.link_internal_topics_suffix
        if not suffix:
            return []
        src, tgt = self.source, self.target
        return [f"{tgt}.{key}.storage.topic = mm2-{kind}.{src}{suffix}.internal"
                for key, kind in (("config", "configs"), ("offset", "offsets"), ("status", "status"))]

    def _log4j_properties(self) -> str:
        return "\n".join([
            "status = warn",
            "appender.file.type = RollingFile",
            "appender.file.name = FILE",
            f"appender.file.fileName = {self.log_file}",
            f"appender.file.filePattern = {self.log_file}.%i",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "appender.file.policies.type = Policies",
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
            "appender.file.policies.size.size = 20MB",
            "appender.file.strategy.type = DefaultRolloverStrategy",
            "appender.file.strategy.max = 3",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.file.ref = FILE",
            "logger.clients.name = org.apache.kafka.clients",
            "logger.clients.level = WARN",
            "logger.reflections.name = org.reflections",
            "logger.reflections.level = ERROR",
            "",
        ])

    # --- lifecycle ---------------------------------------------------------------------------------
    def _read_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _pid_alive(pid):
            return None
        # pid reuse: trust the pid only if its command line names this home's mm2.properties
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if str(self.properties).encode() in cmdline else None

    def status(self) -> MirrorStatus:
        pid = self._read_pid()
        return MirrorStatus(pid is not None, pid, self.source, self.target, self.log_file)

    def start(self, progress: Progress = _quiet, timeout: float | None = None) -> MirrorStatus:
        """Start MirrorMaker and wait until its replication task runs; a running one is left alone."""
        current = self.status()
        if current.running:
            progress(f"link already running (pid {current.pid})")
            return current
        s = self.settings
        files = link_files(s, self.target)
        if not files.complete():
            raise ConfigError(f"no link certificates under {files.dir}", code="LINK_PKI_MISSING",
                              hint="run `xborder link certs`, export the bundle and have the counterpart import it")
        if write_truststore(s) is None:
            raise ConfigError(f"{self.source}'s link CA is not trusted", code="LINK_PKI_MISSING",
                              hint=f"import {self.source}'s bundle (it carries the link CA): `xborder keys import`")
        if _port_in_use("127.0.0.1", s.link_rest_port):
            raise ConfigError(f"port {s.link_rest_port} on 127.0.0.1 is already in use", code="LINK_PORT_IN_USE",
                              hint="choose another: link_rest_port / XBG_LINK_REST_PORT")
        java = java_executable()
        if java_major_version(java) < MIN_JAVA:
            raise ConfigError(f"MirrorMaker needs Java {MIN_JAVA}+", code="JAVA_TOO_OLD",
                              hint="install Java 17 (Debian: apt-get install openjdk-17-jre-headless)")
        jars = self.fetch(progress)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.properties.write_text(self.mm2_properties(), encoding="utf-8")
        self.log4j.write_text(self._log4j_properties(), encoding="utf-8")
        cmd = [
            java, f"-Xmx{s.link_heap}", "-Xms64m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", *jit_options(s),
            "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={self.log4j}",
            "-cp", f"{jars}/*", "org.apache.kafka.connect.mirror.MirrorMaker", str(self.properties),
        ]
        progress(f"starting MirrorMaker 2: {self.source} ({s.link_remote}, mutual TLS) -> {self.target} "
                 f"({s.bootstrap}), {len(self.topics)} allow-listed topics")
        started = time.monotonic()
        limit = timeout if timeout is not None else s.link_start_timeout
        for attempt in range(1, _START_ATTEMPTS + 1):
            offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            with self.stdout_file.open("ab") as out:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True, cwd=self.dir)
            self.pid_file.write_text(f"{proc.pid}\n")
            state = "starting"
            while time.monotonic() < started + limit:
                if proc.poll() is not None:
                    self.pid_file.unlink(missing_ok=True)
                    raise TransportError(f"MirrorMaker exited during start-up; last log lines:\n{self.tail(25)}",
                                         code="LINK_START_FAILED", retriable=False,
                                         hint=f"read {self.log_file} and {self.stdout_file}")
                state = self._start_state(offset)
                if state == "ready":
                    took = time.monotonic() - started
                    progress(f"link running in {took:.1f}s (pid {proc.pid})")
                    return MirrorStatus(True, proc.pid, self.source, self.target, self.log_file, took)
                if state == "stuck":
                    break
                time.sleep(0.2)
            if state != "stuck" or attempt == _START_ATTEMPTS:
                break
            progress(f"MirrorMaker (pid {proc.pid}) lost its flow's leadership before it configured the "
                     f"{self.source}->{self.target} connectors and would never replicate; starting it again "
                     f"(attempt {attempt + 1} of {_START_ATTEMPTS})")
            self.stop(timeout=15)
        raise TransportError(f"MirrorMaker's replication task did not start within {limit:.0f}s; last log lines:\n"
                             f"{self.tail(25)}", code="LINK_START_TIMEOUT", retriable=False,
                             hint="is the counterpart's link listener reachable? `xborder link logs`")

    def _start_state(self, offset: int) -> str:
        """The start-up seen in the log written after ``offset``: ``ready`` when the replication task runs,
        or (no allow-listed topic exists at the source yet, so the source connector has no task) when the
        flow's herder has started connectors in an assignment that holds the source connector; ``stuck`` when
        the flow's herder lost its leadership while writing its connectors' configuration and rejoined with
        no connector (none had been configured before: MirrorMaker 4.1 then runs with no connector at all and
        never configures them again -- its KAFKA-15372 fix reconfigures on a change of leader only, and the node
        was the leader before and after; seen once in CI, 2026-12-02); else ``starting``.

        The herder's first "Finished starting connectors and tasks" comes before any connector is configured
        (config offset -1, no connector assigned): it does not count."""
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(offset)
                text = fh.read()
        except OSError:
            return "starting"
        if TASK_READY_PATTERN.search(text):
            return "ready"
        herder = f"[Worker clientId={self.source}->{self.target},".encode()
        flow = f"for {self.source}->{self.target}".encode()
        mirror_started = MIRROR_READY_LINE.encode() in text
        assigned = lost = False
        for line in text.splitlines():
            if herder in line and b"Joined group at generation" in line:
                assigned = b"MirrorSourceConnector" in line.partition(b"connectorIds=")[2].partition(b"]")[0]
                if lost and not assigned:  # rejoined with no connector (none was configured before)
                    return "stuck"
            elif herder in line and b"Finished starting connectors and tasks" in line:
                if assigned and mirror_started:
                    return "ready"
            elif flow in line and _LOST_LEADERSHIP in line:
                lost = True
        return "starting"

    def stop(self, progress: Progress = _quiet, timeout: float = 30.0) -> bool:
        """SIGTERM, wait, SIGKILL of the process group after ``timeout``. True when one was running."""
        pid = self._read_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        progress(f"stopping MirrorMaker (pid {pid})")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            _reap(pid)
            time.sleep(0.1)
        if _pid_alive(pid):
            progress(f"MirrorMaker did not stop within {timeout:.0f}s; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        progress("link stopped")
        return True

    def tail(self, lines: int = 50) -> str:
        for path in (self.log_file, self.stdout_file):
            if path.exists() and path.stat().st_size > 0:
                with path.open("rb") as fh:
                    fh.seek(max(0, path.stat().st_size - 300 * lines))
                    text = fh.read().decode("utf-8", "replace")
                return "\n".join(text.splitlines()[-lines:])
        return "(no MirrorMaker log yet)"
