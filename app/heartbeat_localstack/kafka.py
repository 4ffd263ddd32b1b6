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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

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
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
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
        cluster_id = saved.get("cluster_id")
        self.cluster_id = self.cluster_id or (cluster_id if isinstance(cluster_id, str) else None)

    def _save(self) -> None:
        saved = {
            "version": self.version,
            "port": self.port,
            "controller_port": self.controller_port,
            "cluster_id": self.cluster_id,
        }
        self._saved_path.write_text(json.dumps(saved, indent=2) + "\n")


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None
