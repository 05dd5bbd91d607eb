from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from xborder_gateway._private import private_dir, write_private
from xborder_gateway.config import Settings
from xborder_gateway.errors import ConfigError, TransportError

MIN_JAVA = 17
READY_LINE = "Kafka Server started"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
LOG4J2_VERSION = "2.24.3"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    home: Path
    log_file: Path
    started_in_s: float | None = None

    def describe(self) -> str:
        if self.running:
            return f"kafka: running (pid {self.pid}), data under {self.home}"
        return f"kafka: not running (home {self.home})"


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise ConfigError(
            "Java was not found",
            code="JAVA_MISSING",
            hint=f"install a Java {MIN_JAVA}+ runtime (Debian: apt-get install openjdk-17-jre-headless) "
            "or set JAVA_HOME",
        )
    return found


def jit_options(settings: Settings) -> tuple[str, ...]:
    """The JVM's JIT flags for ``settings.kafka_jit`` (the broker's and MirrorMaker's command lines)."""
    return ("-XX:TieredStopAtLevel=1",) if settings.kafka_jit == "quick" else ()


def java_major_version(java: str | None = None) -> int:
    """The major version of ``java`` (8 for "1.8.0_392", 17 for "17.0.15")."""
    exe = java or java_executable()
    try:
        out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot run {exe} -version: {exc}", code="JAVA_MISSING") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise ConfigError(f"cannot read the Java version from: {out.stderr.strip()[:200]}", code="JAVA_UNKNOWN")
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    return major


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not a running broker.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


@dataclass(frozen=True)
class LinkListener:
    """The broker's mutual-TLS listener for the counterpart's MirrorMaker (docs/link.md)."""

    site: str
    counterpart: str
    host: str
    port: int
    keystore: Path
    truststore: Path
    secrets: Path
    topics: tuple[str, ...]  # what the counterpart may read: the allow-list towards it

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class LocalKafka:
    """The local broker of one home directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.kafka_dir
        self.data_dir = self.dir / "data"
        self.log_dir = self.dir / "logs"
        self.pid_file = self.dir / "broker.pid"
        self.properties = self.dir / "server.properties"
        self.log4j = self.dir / "log4j2.properties"
        self.log_file = self.log_dir / "server.log"
        self.stdout_file = self.log_dir / "stdout.log"

    # --- jars ------------------------------------------------------------------------------------
    @property
    def jar_dir(self) -> Path:
        s = self.settings
        return s.kafka_cache / f"kafka_{s.kafka_scala}-{s.kafka_version}" / "libs"

    def jars_present(self) -> bool:
        return (self.jar_dir / ".complete").is_file()

    def fetch(self, progress: Progress = _quiet) -> Path:
        """Fetch the broker's jars with Maven into the cache (once; concurrent callers wait)."""
        if self.jars_present():
            return self.jar_dir
        mvn = shutil.which("mvn")
        if not mvn:
            raise ConfigError(
                "Maven (mvn) was not found; it fetches the Kafka broker's jars from Maven Central",
                code="MAVEN_MISSING",
                hint="install Maven (Debian: apt-get install maven), or put the jars of "
                f"kafka_{self.settings.kafka_scala}:{self.settings.kafka_version} in {self.jar_dir} "
                "and create the file .complete there",
            )
        root = self.jar_dir.parent
        root.mkdir(parents=True, exist_ok=True)
        with _file_lock(root / ".lock"):
            if self.jars_present():
                return self.jar_dir
            progress(f"fetching Apache Kafka {self.settings.kafka_version} jars with Maven into {self.jar_dir}")
            with tempfile.TemporaryDirectory(dir=root, prefix="fetch-") as tmp:
                pom = Path(tmp) / "pom.xml"
                pom.write_text(self._pom(), encoding="utf-8")
                out_dir = Path(tmp) / "libs"
                started = time.monotonic()
                proc = subprocess.run(
                    [mvn, "-B", "-q", "-f", str(pom), DEPENDENCY_PLUGIN, "-DincludeScope=runtime",
                     f"-DoutputDirectory={out_dir}"],
                    capture_output=True, text=True, check=False,
                )
                if proc.returncode != 0 or not any(out_dir.glob("kafka_*.jar")):
                    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                    raise ConfigError(
                        f"Maven could not fetch the Kafka jars (exit {proc.returncode}):\n{tail}",
                        code="KAFKA_FETCH_FAILED",
                        hint="check that Maven Central is reachable (mvn -v; ~/.m2/settings.xml mirrors)",
                    )
                (out_dir / ".complete").write_text(f"{self.settings.kafka_version}\n")
                if self.jar_dir.exists():
                    shutil.rmtree(self.jar_dir)
                out_dir.rename(self.jar_dir)
                progress(f"fetched {len(list(self.jar_dir.glob('*.jar')))} jars in {time.monotonic() - started:.1f}s")
        return self.jar_dir

    def _pom(self) -> str:
        s = self.settings
        deps = [
            ("org.apache.kafka", f"kafka_{s.kafka_scala}", s.kafka_version),
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
            "  <groupId>local.xborder</groupId><artifactId>kafka-runtime</artifactId><version>1</version>\n"
            "  <packaging>pom</packaging>\n"
            f"  <dependencies>\n{body}\n  </dependencies>\n</project>\n"
        )

    # --- configuration ---------------------------------------------------------------------------
    def link_listener(self) -> tuple[LinkListener | None, str]:
        """The link listener this broker opens, or None and why not (a home that is not a site, or whose
        link PKI or the counterpart's link CA is missing)."""
        s = self.settings
        if s.site_authority is None:
            return None, "not a site home (site_authority unset)"
        from xborder_gateway.link._pki import link_files, write_truststore

        files = link_files(s, s.site)
        if not files.complete():
            return None, f"no link certificates under {files.dir} (run `xborder link certs`)"
        trust = write_truststore(s)
        if trust is None:
            return None, (f"{s.link_counterpart}'s link CA is not trusted yet (import its bundle: "
                          "`xborder keys import`)")
        return LinkListener(s.site, s.link_counterpart, s.kafka_host, s.kafka_link_port, files.broker_p12,
                            trust, files.secrets, tuple(s.link_topics(s.site, s.link_counterpart))), ""

    def _link_properties(self, link: LinkListener) -> list[str]:
        from xborder_gateway.link._pki import PRINCIPAL_RULE

        secret = f"${{file:{link.secrets}:broker.keystore.password}}"
        pre = "listener.name.link."
        return [
            # LINK-3: keystore passwords come from a 0600 file through a config provider, never inline
            "config.providers=file",
            "config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider",
            f"{pre}ssl.keystore.type=PKCS12",
            f"{pre}ssl.keystore.location={link.keystore}",
            f"{pre}ssl.keystore.password={secret}",
            f"{pre}ssl.key.password={secret}",
            # LINK-4: only the counterpart's link CA may vouch for a client (PEM truststore, no password)
            f"{pre}ssl.truststore.type=PEM",
            f"{pre}ssl.truststore.location={link.truststore}",
            # LINK-5: mutual TLS — a client without a certificate of that CA is refused in the handshake
            f"{pre}ssl.client.auth=required",
            f"{pre}ssl.enabled.protocols=TLSv1.3,TLSv1.2",
            f"{pre}ssl.principal.mapping.rules={PRINCIPAL_RULE}",
            # LINK-6: ACLs decide what the counterpart's principal may do; our own listeners (PLAINTEXT on
            # 127.0.0.1 for this site's processes, CONTROLLER) authenticate as ANONYMOUS, the only super user
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:ANONYMOUS",
            "allow.everyone.if.no.acl.found=false",
        ]

    def _server_properties(self, link: LinkListener | None = None) -> str:
        s = self.settings
        host, port, cport = s.kafka_host, s.kafka_port, s.kafka_controller_port
        extra = f",LINK://{link.address}" if link else ""
        return "\n".join(
            [
                "# written by `xborder kafka start`; edits are overwritten at the next start",
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers={host}:{cport}",
                f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}{extra}",
                f"advertised.listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}{extra}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
                + (",LINK:SSL" if link else ""),
                *(self._link_properties(link) if link else []),
                f"log.dirs={self.data_dir}",
                f"num.partitions={s.topic_partitions}",
                "auto.create.topics.enable=true",
                # a single node: every internal topic has one replica
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=10",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=10",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=168",
                "",
            ]
        )

    def _log4j_properties(self) -> str:
        return "\n".join(
            [
                "status = warn",
                "appender.file.type = RollingFile",
                "appender.file.name = FILE",
                "appender.file.fileName = ${sys:kafka.logs.dir}/server.log",
                "appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i",
                "appender.file.layout.type = PatternLayout",
                "appender.file.layout.pattern = [%d] %p %m (%c)%n",
                "appender.file.policies.type = Policies",
                "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
                "appender.file.policies.size.size = 20MB",
                "appender.file.strategy.type = DefaultRolloverStrategy",
                "appender.file.strategy.max = 3",
                "rootLogger.level = INFO",
                "rootLogger.appenderRef.file.ref = FILE",
                "logger.kafka.name = kafka",
                "logger.kafka.level = INFO",
                "logger.state.name = state.change.logger",
                "logger.state.level = WARN",
                "",
            ]
        )

    # --- lifecycle -------------------------------------------------------------------------------
    def _read_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _pid_alive(pid):
            return None
        # Guard against pid reuse: the process must be our broker, started with our properties file.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return pid
        if str(self.properties).encode() in cmdline:
            return pid
        return None

    def status(self) -> BrokerStatus:
        pid = self._read_pid()
        running = pid is not None and _port_in_use(self.settings.kafka_host, self.settings.kafka_port)
        return BrokerStatus(running, pid, self.settings.bootstrap_local, self.dir, self.log_file)

    def start(self, progress: Progress = _quiet, timeout: float | None = None) -> BrokerStatus:
        """Start the broker and wait until it serves; a running broker is left alone."""
        current = self.status()
        if current.running:
            progress(f"kafka already running (pid {current.pid}) at {current.bootstrap}")
            return current
        if current.pid is not None:  # alive but not (yet) serving: wait for it rather than start twice
            return self._wait_ready(current.pid, time.monotonic(), progress, timeout)
        java = java_executable()
        major = java_major_version(java)
        if major < MIN_JAVA:
            raise ConfigError(
                f"Java {major} found at {java}; Apache Kafka {self.settings.kafka_version} needs Java {MIN_JAVA}+",
                code="JAVA_TOO_OLD",
                hint="install Java 17 (Debian: apt-get install openjdk-17-jre-headless) and/or set JAVA_HOME",
            )
        s = self.settings
        link, why_not = self.link_listener()
        if link is None and s.site_authority is not None:
            progress(f"kafka: no link listener: {why_not}")
        for port in (s.kafka_port, s.kafka_controller_port, *([link.port] if link else [])):
            if _port_in_use(s.kafka_host, port):
                raise ConfigError(
                    f"port {port} on {s.kafka_host} is already in use by another process",
                    code="KAFKA_PORT_IN_USE",
                    hint="stop that process, or choose other ports: --port/--controller-port, "
                    "XBG_KAFKA_PORT/XBG_KAFKA_CONTROLLER_PORT, or kafka_port in config.toml",
                )
        jars = self.fetch(progress)
        for d in (self.data_dir, self.log_dir):
            private_dir(d)  # under the home: 0700 (issue 9 item 7)
        write_private(self.properties, self._server_properties(link).encode("utf-8"))  # 0600 (issue 9 item 7)
        write_private(self.log4j, self._log4j_properties().encode("utf-8"))
        classpath = f"{jars}/*"
        self._format_storage(java, classpath, progress)
        progress(f"starting Apache Kafka {s.kafka_version} (KRaft, single node) at {s.bootstrap_local}")
        cmd = [
            java, f"-Xmx{s.kafka_heap}", "-Xms128m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            *jit_options(s), "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j}", f"-Dkafka.logs.dir={self.log_dir}",
            "-cp", classpath, "kafka.Kafka", str(self.properties),
        ]
        started = time.monotonic()
        ready_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.stdout_file.open("ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.dir,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        status = self._wait_ready(proc.pid, started, progress, timeout, log_offset=ready_offset, proc=proc)
        if link is not None:
            from xborder_gateway.kafka_local._acl import apply_link_acls

            apply_link_acls(s.bootstrap_local, link)
            progress(f"link listener (mutual TLS) at {link.address}; {link.counterpart} may read "
                     f"{len(link.topics)} allow-listed topics")
        return status

    def _format_storage(self, java: str, classpath: str, progress: Progress) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = self.dir / "cluster.id"
        if not cluster_id.exists():
            out = subprocess.run([java, "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
                                 capture_output=True, text=True, check=False)
            if out.returncode != 0:
                raise ConfigError(f"kafka-storage random-uuid failed: {out.stderr.strip()[-500:]}",
                                  code="KAFKA_FORMAT_FAILED")
            cluster_id.write_text(out.stdout.strip() + "\n")
        progress("formatting KRaft storage")
        out = subprocess.run(
            [java, f"-Dlog4j2.configurationFile={self.log4j}", f"-Dkafka.logs.dir={self.log_dir}",
             "-cp", classpath, "kafka.tools.StorageTool", "format",
             "-t", cluster_id.read_text().strip(), "-c", str(self.properties), "--standalone", "--ignore-formatted"],
            capture_output=True, text=True, check=False,
        )
        if out.returncode != 0:
            raise ConfigError(f"formatting KRaft storage failed: {(out.stdout + out.stderr).strip()[-800:]}",
                              code="KAFKA_FORMAT_FAILED",
                              hint=f"remove {self.data_dir} to start from empty storage")

    def _wait_ready(
        self,
        pid: int,
        started: float,
        progress: Progress,
        timeout: float | None,
        *,
        log_offset: int = 0,
        proc: subprocess.Popen[bytes] | None = None,
    ) -> BrokerStatus:
        limit = timeout if timeout is not None else self.settings.kafka_start_timeout
        deadline = started + limit
        s = self.settings
        while time.monotonic() < deadline:
            exited = proc.poll() is not None if proc is not None else not _pid_alive(pid)
            if exited:
                self.pid_file.unlink(missing_ok=True)
                raise TransportError(
                    f"the Kafka broker exited during start-up; last log lines:\n{self.tail(25)}",
                    code="KAFKA_START_FAILED", retriable=False,
                    hint=f"read {self.log_file} and {self.stdout_file}",
                )
            if self._log_has_ready_line(log_offset) and _port_in_use(s.kafka_host, s.kafka_port):
                took = time.monotonic() - started
                progress(f"kafka ready at {s.bootstrap_local} in {took:.1f}s (pid {pid})")
                return BrokerStatus(True, pid, s.bootstrap_local, self.dir, self.log_file, took)
            time.sleep(0.1)
        raise TransportError(
            f"the Kafka broker did not become ready within {limit:.0f}s; last log lines:\n{self.tail(25)}",
            code="KAFKA_START_TIMEOUT", retriable=False,
            hint="raise kafka_start_timeout, or read the broker log with `xborder kafka logs`",
        )

    def _log_has_ready_line(self, offset: int) -> bool:
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(offset)
                return READY_LINE.encode() in fh.read()
        except OSError:
            return False

    def stop(self, progress: Progress = _quiet, timeout: float = 60.0) -> bool:
        """Stop the broker: SIGTERM (a clean, controlled shutdown), wait, SIGKILL after ``timeout``.

        Returns True when a broker was running.
        """
        pid = self._read_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        progress(f"stopping kafka (pid {pid})")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            _reap(pid)
            time.sleep(0.1)
        if _pid_alive(pid):
            progress(f"kafka did not stop within {timeout:.0f}s; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        progress("kafka stopped")
        return True

    def tail(self, lines: int = 50) -> str:
        for path in (self.log_file, self.stdout_file):
            if path.exists() and path.stat().st_size > 0:
                with path.open("rb") as fh:
                    fh.seek(max(0, path.stat().st_size - 256 * lines))
                    text = fh.read().decode("utf-8", "replace")
                return "\n".join(text.splitlines()[-lines:])
        return "(no broker log yet)"


def _reap(pid: int) -> None:
    """Collect the exit status if the broker is our own child (started in this process)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
