"""Kafka as a container of the image built here, through testcontainers.

testcontainers' own ``KafkaContainer`` expects Confluent's image layout; `KafkaNode` runs the
KRaft image of `heartbeat_localstack.images.build.kafka_image` instead. One node, broker and
controller, reachable

    from the host              at 127.0.0.1:<port> (published on the same port inside, so
                               the address the broker advertises works on both sides)
    from containers on a user network   at <alias>:19092

Its data lives in the container: ``docker stop`` and ``docker start`` keep data and address.
Import this module only where testcontainers is installed (the test extra).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from heartbeat_localstack.exceptions import LocalStackError
from heartbeat_localstack.kafka import new_cluster_id, server_properties
from heartbeat_localstack.ports import HOST, free_port

# testcontainers reads its settings when first imported. Ryuk's image cannot be pulled where
# no registry is reachable (the fixtures remove their containers themselves), and a machine
# with /.dockerenv is not necessarily inside a container of the engine it talks to.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")

from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

logger = logging.getLogger(__name__)

NETWORK_PORT = 19092
CONTROLLER_PORT = 9093
DATA_DIR = Path("/var/lib/kafka/data")


def container_properties(port: int, alias: str) -> str:
    """server.properties for the container: the local broker's, with two client listeners."""
    base = server_properties(port, CONTROLLER_PORT, DATA_DIR)
    settings = dict(line.split("=", 1) for line in base.splitlines() if "=" in line)
    settings |= {
        "listeners": f"HOST://0.0.0.0:{port},NETWORK://0.0.0.0:{NETWORK_PORT},"
        f"CONTROLLER://{HOST}:{CONTROLLER_PORT}",
        "advertised.listeners": f"HOST://{HOST}:{port},NETWORK://{alias}:{NETWORK_PORT}",
        "listener.security.protocol.map": "HOST:PLAINTEXT,NETWORK:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "HOST",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


class KafkaNode(DockerContainer):
    """One KRaft node in a container; `start()` returns once it answers metadata requests."""

    def __init__(
        self,
        image: str,
        *,
        network: Network | None = None,
        alias: str = "kafka",
        port: int | None = None,
        heap: str = "512m",
        ready_timeout: float = 120.0,
    ) -> None:
        super().__init__(image)
        self.port = port or free_port()
        self.alias = alias
        self.ready_timeout = ready_timeout
        # Loopback only, on the same port inside and outside.
        self.ports[f"{self.port}/tcp"] = (HOST, self.port)  # type: ignore[assignment]
        self.with_env("KAFKA_SERVER_PROPERTIES", container_properties(self.port, alias))
        self.with_env("KAFKA_CLUSTER_ID", new_cluster_id())
        self.with_env("KAFKA_HEAP", heap)
        if network is not None:
            self.with_network(network).with_network_aliases(alias)

    @property
    def bootstrap_servers(self) -> str:
        """The address for clients on the host."""
        return f"{HOST}:{self.port}"

    @property
    def network_bootstrap_servers(self) -> str:
        """The address for containers on the same user network."""
        return f"{self.alias}:{NETWORK_PORT}"

    @property
    def network_name(self) -> str | None:
        """The user network it is on, if any."""
        return self._network.name if self._network is not None else None

    def start(self) -> KafkaNode:
        super().start()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Return once the broker answers from the host; raise if the container stopped."""
        started = time.monotonic()
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers, "logger": logger}
        admin = AdminClient(config)
        while True:
            container = self.get_wrapped_container()
            container.reload()
            if container.status in ("exited", "dead"):
                raise LocalStackError(
                    f"the Kafka container {container.short_id} stopped while starting:\n"
                    + self._log_tail()
                )
            try:
                admin.list_topics(timeout=2)
            except KafkaException:
                pass
            else:
                logger.info(
                    "Kafka container answers at %s after %.1f s",
                    self.bootstrap_servers,
                    time.monotonic() - started,
                )
                return
            if time.monotonic() - started > self.ready_timeout:
                raise LocalStackError(
                    f"the Kafka container gave no answer within {self.ready_timeout:.0f} s:\n"
                    + self._log_tail()
                )
            time.sleep(0.5)

    def _log_tail(self, lines: int = 20) -> str:
        output = self.get_wrapped_container().logs(tail=lines)
        return output.decode(errors="replace") if isinstance(output, bytes) else str(output)
