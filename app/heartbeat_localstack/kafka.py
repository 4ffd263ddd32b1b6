"""A real Apache Kafka broker: one KRaft node acting as broker and controller.

The jars come from Maven Central (see `heartbeat_localstack.maven`); the broker runs as a detached
``java ... kafka.Kafka server.properties`` process whose files all live in its state dir:

    server.properties, log4j2.properties   generated at every start
    data/                                  the log dir, formatted once
    server.log                             the broker's own log
    stdout.log                             the JVM's stdout and stderr
    kafka.pid, state.json                  pid, ports and cluster id, to find it again

As one node of a `heartbeat_localstack.kafka_cluster.KafkaCluster`, a `Seat` fixes its id,
ports and cluster id.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._scram import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from heartbeat_localstack.exceptions import MissingToolError, ServiceStartError
from heartbeat_localstack.maven import KAFKA_VERSION, kafka_libs
from heartbeat_localstack.ports import HOST, accepts_connections, free_port, reuse_or_pick
from heartbeat_localstack.process import DetachedProcess, tail

logger = logging.getLogger(__name__)

COMPONENT = "Kafka"


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (Kafka's Uuid)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka avoids these too: they read as a CLI flag
            return text


@dataclass(frozen=True)
class Seat:
    """One node's place in a multi-node cluster: fixed by the cluster, the same at every start."""

    node_id: int
    port: int
    controller_port: int
    voters: str  # controller.quorum.voters: "<id>@<host>:<controller port>,..."
    cluster_id: str
    replication: int  # replication factor of new and internal topics


def min_insync_replicas(replication: int) -> int:
    """One replica may be lost without refusing acks=all writes: 2 of 3, 1 of 1 or 2."""
    return max(1, replication - 1)


def server_properties(
    port: int,
    controller_port: int,
    data_dir: Path,
    *,
    node_id: int = 1,
    voters: str | None = None,
    replication: int = 1,
) -> str:
    """A combined KRaft node on the loopback address, sized for tests and development.

    Alone by default; with `voters` (and `replication`), one node of a cluster.
    """
    rf = str(replication)
    min_isr = str(min_insync_replicas(replication))
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters or f"{node_id}@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": rf,
        "min.insync.replicas": min_isr,
        # The defaults (3) would leave a single node without a group or transaction coordinator.
        "offsets.topic.replication.factor": rf,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": min_isr,
        # Small internal topics start fast; one node gains nothing from more partitions.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        # The application creates its own topics, with the partitions it wants.
        "auto.create.topics.enable": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


@dataclass(frozen=True)
class KafkaSecurity:
    """Listeners beside PLAINTEXT: SASL_SSL with SCRAM-SHA-512, and SSL with client certificates.

    `tls_dir` is a `heartbeat_localstack.tls.Authority` folder (its server.pem and ca.crt);
    the SCRAM user is created through the broker's admin API once it answers.
    """

    tls_dir: Path
    scram_username: str
    scram_password: str = field(repr=False)


def security_properties(
    security: KafkaSecurity, sasl_ssl_port: int, ssl_port: int
) -> dict[str, str]:
    """The broker settings that add the two secured listeners (merged over the plain ones)."""
    keystore = security.tls_dir / "server.pem"
    truststore = security.tls_dir / "ca.crt"
    return {
        "listeners": f"SASL_SSL://{HOST}:{sasl_ssl_port},SSL://{HOST}:{ssl_port}",
        "advertised.listeners": f"SASL_SSL://{HOST}:{sasl_ssl_port},SSL://{HOST}:{ssl_port}",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,SSL:SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(truststore),
        "listener.name.sasl_ssl.ssl.client.auth": "none",
        "listener.name.ssl.ssl.client.auth": "required",
    }


def merge_listeners(plain: str, extra: dict[str, str]) -> str:
    """`plain` properties with the listener lists extended and the other `extra` keys added."""
    lines = []
    listed = ("listeners", "advertised.listeners", "listener.security.protocol.map")
    for line in plain.splitlines():
        key, _, value = line.partition("=")
        if key in listed:
            value = f"{value},{extra[key]}"
        lines.append(f"{key}={value}")
    lines += [f"{key}={value}" for key, value in extra.items() if key not in listed]
    return "".join(f"{line}\n" for line in lines)


def log4j2_properties(log_file: Path) -> str:
    """Broker logs to `log_file`, rolled at 10 MB, three files kept."""
    return f"""\
status = warn
# Kafka stops on SIGTERM through its own hook; log4j's would only warn that it came late.
shutdownHook = disable
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.filePattern = {log_file}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 10MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.statechange.name = state.change.logger
logger.statechange.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
"""


class KafkaBroker:
    """One Kafka broker process whose files live in `state_dir`.

    Alone it picks its ports (keeping them across restarts while they are free); as one node
    of a `KafkaCluster` its `seat` fixes id, ports and cluster id.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        version: str = KAFKA_VERSION,
        heap: str = "512m",
        ready_timeout: float = 60.0,
        seat: Seat | None = None,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.security = security
        self.sasl_ssl_port: int | None = None
        self.ssl_port: int | None = None
        self.version = version
        self.heap = heap
        self.ready_timeout = ready_timeout
        self.seat = seat
        self.port: int | None = seat.port if seat else None
        self.controller_port: int | None = seat.controller_port if seat else None
        self.cluster_id: str | None = seat.cluster_id if seat else None
        self._process = DetachedProcess(self.state_dir / "kafka.pid", str(self.config_path))
        self._load_saved()

    @property
    def config_path(self) -> Path:
        return self.state_dir / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "server.log"

    @property
    def stdout_path(self) -> Path:
        return self.state_dir / "stdout.log"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def _saved_path(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None:
            raise RuntimeError("the broker has no address before start()")
        return f"{HOST}:{self.port}"

    @property
    def sasl_ssl_bootstrap_servers(self) -> str:
        if self.sasl_ssl_port is None:
            raise RuntimeError("the broker has no SASL_SSL listener")
        return f"{HOST}:{self.sasl_ssl_port}"

    @property
    def ssl_bootstrap_servers(self) -> str:
        if self.ssl_port is None:
            raise RuntimeError("the broker has no SSL listener")
        return f"{HOST}:{self.ssl_port}"

    def is_running(self) -> bool:
        return self._process.is_running()

    def start(self, *, wait: bool = True) -> None:
        """Start the broker, or adopt the one already running from this state dir."""
        if self.is_running():
            self._load_saved()
            logger.info("Kafka already runs at %s (pid %s)", self.bootstrap_servers, self.pid)
        else:
            self._launch()
        if wait:
            self.wait_ready()

    @property
    def pid(self) -> int | None:
        return self._process.pid()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a clean shutdown), SIGKILL after `timeout` seconds. Idempotent."""
        if self.is_running():
            logger.info("stopping Kafka at %s", self.bootstrap_servers if self.port else "?")
        self._process.stop(timeout)

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL, as a crash would: no clean shutdown, nothing flushed. Returns once it is gone.

        `start()` afterwards brings it back on the same port and data dir (log recovery runs).
        """
        pid = self.pid
        if pid is not None:
            logger.info("killing Kafka at %s (pid %d)", self.bootstrap_servers, pid)
        self._process.kill(timeout)

    def wait_ready(self) -> None:
        """Return once the broker answers a metadata request; raise if it died or hung."""
        started = time.monotonic()
        deadline = started + self.ready_timeout
        admin: AdminClient | None = None
        while True:
            if not self.is_running():
                raise self._start_error("the process exited")
            if self.port is not None and accepts_connections(self.port):
                if admin is None:
                    # librdkafka's own log lines go through logging instead of stderr.
                    config: dict[str, Any] = {
                        "bootstrap.servers": self.bootstrap_servers,
                        "logger": logger,
                    }
                    admin = AdminClient(config)
                try:
                    admin.list_topics(timeout=2)
                except KafkaException:
                    pass
                else:
                    if self.security is not None:
                        self._create_scram_user(admin)
                    logger.info(
                        "Kafka %s answers at %s after %.1f s",
                        self.version,
                        self.bootstrap_servers,
                        time.monotonic() - started,
                    )
                    return
            if time.monotonic() > deadline:
                self.stop(timeout=10)
                raise self._start_error(f"no answer within {self.ready_timeout:.0f} s")
            time.sleep(0.25)

    def _create_scram_user(self, admin: AdminClient) -> None:
        """Create (or reset) the SCRAM-SHA-512 user through the broker's admin API."""
        assert self.security is not None
        credential = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        upsert = UserScramCredentialUpsertion(
            self.security.scram_username, credential, self.security.scram_password.encode()
        )
        for future in admin.alter_user_scram_credentials([upsert]).values():
            try:
                future.result(timeout=30)
            except KafkaException as error:
                raise self._start_error(f"creating the SCRAM user failed: {error}") from None

    def _start_error(self, reason: str) -> ServiceStartError:
        log_tail = tail(self.log_path)
        output = tail(self.stdout_path, 10)
        if output:
            log_tail = f"{log_tail}\n--- {self.stdout_path}:\n{output}"
        return ServiceStartError(COMPONENT, reason, self.log_path, log_tail.strip())

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise MissingToolError("Java 17+ is needed to run Kafka; run make system-deps")
        return java

    def _launch(self) -> None:
        java = self._java()
        libs = kafka_libs(self.version)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._load_saved()
        if self.seat is None:
            self.port = reuse_or_pick(self.port)
            self.controller_port = reuse_or_pick(self.controller_port)
            while self.controller_port == self.port:
                self.controller_port = free_port()
            self.cluster_id = self.cluster_id or new_cluster_id()
            properties = server_properties(self.port, self.controller_port, self.data_dir)
            if self.security is not None:
                taken = {self.port, self.controller_port}  # both set just above
                self.sasl_ssl_port = _pick_other(self.sasl_ssl_port, taken)
                self.ssl_port = _pick_other(self.ssl_port, taken | {self.sasl_ssl_port})
                extra = security_properties(self.security, self.sasl_ssl_port, self.ssl_port)
                properties = merge_listeners(properties, extra)
        else:  # the other voters know this node by its ports: they never change
            seat = self.seat
            properties = server_properties(
                seat.port,
                seat.controller_port,
                self.data_dir,
                node_id=seat.node_id,
                voters=seat.voters,
                replication=seat.replication,
            )
        self.config_path.write_text(properties)
        log4j = self.state_dir / "log4j2.properties"
        log4j.write_text(log4j2_properties(self.log_path))
        common = [f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*"]
        if not (self.data_dir / "meta.properties").exists():
            self._format([java, *common])
        self._save()
        argv = [
            java,
            f"-Xmx{self.heap}",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            *common,
            "kafka.Kafka",
            str(self.config_path),
        ]
        pid = self._process.spawn(argv, self.stdout_path, cwd=self.state_dir)
        logger.info("started Kafka %s as pid %d on %s", self.version, pid, self.bootstrap_servers)

    def _format(self, java_and_classpath: list[str]) -> None:
        command = [
            *java_and_classpath,
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            str(self.cluster_id),
            "--config",
            str(self.config_path),
            "--ignore-formatted",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise ServiceStartError(
                COMPONENT, "formatting its storage failed", self.log_path, output[-3000:]
            )

    def _load_saved(self) -> None:
        """Take ports and cluster id from the last start, unless this object already has them."""
        try:
            saved: dict[str, object] = json.loads(self._saved_path.read_text())
        except (OSError, ValueError):
            return
        self.port = self.port or _int(saved.get("port"))
        self.controller_port = self.controller_port or _int(saved.get("controller_port"))
        self.sasl_ssl_port = self.sasl_ssl_port or _int(saved.get("sasl_ssl_port"))
        self.ssl_port = self.ssl_port or _int(saved.get("ssl_port"))
        cluster_id = saved.get("cluster_id")
        self.cluster_id = self.cluster_id or (cluster_id if isinstance(cluster_id, str) else None)

    def _save(self) -> None:
        saved = {
            "version": self.version,
            "port": self.port,
            "controller_port": self.controller_port,
            "cluster_id": self.cluster_id,
            "sasl_ssl_port": self.sasl_ssl_port,
            "ssl_port": self.ssl_port,
        }
        self._saved_path.write_text(json.dumps(saved, indent=2) + "\n")


def _pick_other(port: int | None, taken: set[int]) -> int:
    chosen = reuse_or_pick(port)
    while chosen in taken:
        chosen = free_port()
    return chosen


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None
