"""Several Kafka nodes on the loopback address, one cluster: for tests that lose a broker.

Each node is a `KafkaBroker` acting as broker and controller, all of them voters. Files:

    state.json      ports and cluster id, chosen once
    node-<id>/      one broker's state dir (see `heartbeat_localstack.kafka`)
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from heartbeat_localstack.exceptions import ServiceStartError
from heartbeat_localstack.kafka import COMPONENT, KafkaBroker, Seat, new_cluster_id
from heartbeat_localstack.maven import KAFKA_VERSION
from heartbeat_localstack.ports import HOST, free_port
from heartbeat_localstack.process import tail

logger = logging.getLogger(__name__)


class KafkaCluster:
    """`nodes` Kafka nodes, each broker and controller (ids 1..n), all of them voters.

    New and internal topics get replication factor `nodes` (at most 3) and min ISR one less,
    so acks=all writes carry on while one node is down. Files: ``state.json`` (ports and
    cluster id, chosen once) and ``node-<id>/`` (one `KafkaBroker` state dir per node). A node
    is killed and started again through `node(id)`; it comes back on its own ports and data.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        nodes: int = 3,
        version: str = KAFKA_VERSION,
        heap: str = "512m",
        ready_timeout: float = 120.0,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.state_dir = Path(state_dir).resolve()
        self.ready_timeout = ready_timeout
        self.nodes = [
            KafkaBroker(
                self.state_dir / f"node-{seat.node_id}",
                version=version,
                heap=heap,
                ready_timeout=ready_timeout,
                seat=seat,
            )
            for seat in self._seats(nodes)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def node(self, node_id: int) -> KafkaBroker:
        for node in self.nodes:
            if node.seat is not None and node.seat.node_id == node_id:
                return node
        raise KeyError(f"no node {node_id} in a cluster of {len(self.nodes)}")

    def is_running(self) -> bool:
        return all(node.is_running() for node in self.nodes)

    def start(self, *, wait: bool = True) -> None:
        """Start every node that does not run (the JVMs boot side by side), then wait for all."""
        for node in self.nodes:
            node.start(wait=False)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Return once every node answers and the cluster's metadata lists all of them."""
        for node in self.nodes:
            node.wait_ready()
        admin = self._admin()
        deadline = time.monotonic() + self.ready_timeout
        while True:
            try:
                registered = len(admin.list_topics(timeout=5).brokers)
            except KafkaException:
                registered = 0
            if registered == len(self.nodes):
                return
            if time.monotonic() > deadline:
                raise ServiceStartError(
                    COMPONENT,
                    f"{registered} of {len(self.nodes)} brokers registered "
                    f"within {self.ready_timeout:.0f} s",
                    self.nodes[0].log_path,
                    tail(self.nodes[0].log_path),
                )
            time.sleep(0.5)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node at once: one by one, the last ones would wait for a lost quorum."""
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            for stopped in [pool.submit(node.stop, timeout) for node in self.nodes]:
                stopped.result()

    def under_replicated(self, timeout: float = 10.0) -> list[tuple[str, int]]:
        """(topic, partition) of every partition with fewer in-sync replicas than replicas."""
        topics = self._admin().list_topics(timeout=timeout).topics
        return sorted(
            (name, partition.id)
            for name, topic in topics.items()
            for partition in topic.partitions.values()
            if len(partition.isrs) < len(partition.replicas)
        )

    def _admin(self) -> AdminClient:
        # librdkafka's own log lines go through logging instead of stderr.
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers, "logger": logger}
        return AdminClient(config)

    def _seats(self, count: int) -> list[Seat]:
        """Each node's id and ports: those saved by an earlier run, else new ones, saved."""
        saved_path = self.state_dir / "state.json"
        try:
            saved: dict[str, Any] = json.loads(saved_path.read_text())
        except (OSError, ValueError):
            saved = {}
        ports = saved.get("ports")
        cluster_id = saved.get("cluster_id")
        if not (isinstance(ports, list) and len(ports) == count and isinstance(cluster_id, str)):
            picked: set[int] = set()
            while len(picked) < 2 * count:
                picked.add(free_port())
            ordered = sorted(picked)
            ports = [[ordered[2 * i], ordered[2 * i + 1]] for i in range(count)]
            cluster_id = new_cluster_id()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            saved_path.write_text(
                json.dumps({"ports": ports, "cluster_id": cluster_id}, indent=2) + "\n"
            )
        voters = ",".join(f"{i + 1}@{HOST}:{controller}" for i, (_, controller) in enumerate(ports))
        replication = min(count, 3)
        return [
            Seat(i + 1, port, controller, voters, cluster_id, replication)
            for i, (port, controller) in enumerate(ports)
        ]
