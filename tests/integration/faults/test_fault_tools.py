"""The fault tools work on real processes: a broker killed and back, a cluster that loses a node,
PostgreSQL crashed and PostgreSQL frozen."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from heartbeat_localstack.kafka import KafkaBroker
from heartbeat_localstack.kafka_cluster import KafkaCluster
from heartbeat_localstack.ports import accepts_connections
from heartbeat_localstack.postgres import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _create_topic(servers: str, replication: int) -> str:
    topic = f"faults-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": servers})
    new = NewTopic(topic, num_partitions=3, replication_factor=replication)
    admin.create_topics([new])[topic].result(timeout=30)
    return topic


def _produce(servers: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": servers, "acks": "all", "enable.idempotence": True})
    failures: list[str] = []
    for value in values:
        producer.produce(
            topic, value=value, on_delivery=lambda err, _: err and failures.append(err.str())
        )
    assert producer.flush(60) == 0
    assert not failures, failures[:3]


def _read_all(servers: str, topic: str, expected: int, timeout: float = 60) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"{topic}-reader",
            "auto.offset.reset": "earliest",
        }
    )
    values: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(values) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
        consumer.commit(asynchronous=False)  # the group coordinator works too
    finally:
        consumer.close()
    return values


def test_a_killed_broker_is_gone_at_once_and_starts_again_on_its_port_with_its_data(
    tmp_path: Path,
) -> None:
    broker = KafkaBroker(tmp_path / "kafka")
    broker.start()
    try:
        port, pid = broker.port, broker.pid
        assert port is not None
        assert pid is not None
        topic = _create_topic(broker.bootstrap_servers, 1)
        _produce(broker.bootstrap_servers, topic, [b"before-%d" % i for i in range(100)])

        broker.kill()

        assert not broker.is_running()
        assert not Path(f"/proc/{pid}").exists()
        assert not accepts_connections(port)
        broker.start()
        assert broker.port == port
        assert broker.pid != pid
        _produce(broker.bootstrap_servers, topic, [b"after"])
        values = _read_all(broker.bootstrap_servers, topic, 101)
        assert sorted(values) == sorted([b"before-%d" % i for i in range(100)] + [b"after"])
    finally:
        broker.stop()


def test_a_three_node_cluster_takes_acks_all_writes_with_one_node_killed_and_heals(
    tmp_path: Path,
) -> None:
    cluster = KafkaCluster(tmp_path / "cluster", nodes=3)
    cluster.start()
    try:
        servers = cluster.bootstrap_servers
        assert len(servers.split(",")) == 3
        metadata = AdminClient({"bootstrap.servers": servers}).list_topics(timeout=10)
        assert sorted(metadata.brokers) == [1, 2, 3]
        topic = _create_topic(servers, 3)
        _produce(servers, topic, [b"first-%d" % i for i in range(200)])

        cluster.node(2).kill()
        assert not cluster.node(2).is_running()
        _produce(servers, topic, [b"degraded-%d" % i for i in range(200)])
        assert cluster.under_replicated(), "node 2's replicas fell out of sync"

        cluster.node(2).start()
        deadline = time.monotonic() + 90
        while cluster.under_replicated() and time.monotonic() < deadline:
            time.sleep(1)
        assert cluster.under_replicated() == []
        values = _read_all(servers, topic, 400)
        assert len(values) == 400
        # The group's offsets topic, created by that read, is replicated to all three too.
        metadata = AdminClient({"bootstrap.servers": servers}).list_topics(timeout=10)
        internal = metadata.topics["__consumer_offsets"].partitions.values()
        assert {len(p.replicas) for p in internal} == {3}
    finally:
        cluster.stop()


def test_a_crashed_postgres_cuts_its_sessions_and_recovers_committed_rows_on_start(
    own_postgres: PostgresServer,
) -> None:
    with psycopg.connect(own_postgres.conninfo, autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS crash_probe (n int)")
        setup.execute("INSERT INTO crash_probe VALUES (1)")
    session = psycopg.connect(own_postgres.conninfo, autocommit=True)
    try:
        own_postgres.crash()
        assert not own_postgres.is_running()
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
    finally:
        session.close()
        own_postgres.start()
    with psycopg.connect(own_postgres.conninfo, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM crash_probe").fetchone() == (1,)
        conn.execute("DROP TABLE crash_probe")
    assert "database system was interrupted" in own_postgres.log_path.read_text()


def test_a_hung_postgres_accepts_connections_but_answers_nothing_until_resumed(
    own_postgres: PostgresServer,
) -> None:
    session = psycopg.connect(own_postgres.conninfo, autocommit=True)
    answered = threading.Event()

    def query() -> None:
        session.execute("SELECT 1")
        answered.set()

    own_postgres.hang()
    try:
        assert own_postgres.port is not None
        assert accepts_connections(own_postgres.port), "the kernel still accepts connections"
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(own_postgres.conninfo, connect_timeout=2).close()
        waiting = threading.Thread(target=query, daemon=True)
        waiting.start()
        assert not answered.wait(3), "a query got an answer from a hung server"
    finally:
        own_postgres.resume()
    assert answered.wait(10), "the query was answered after resume()"
    session.close()
    with psycopg.connect(own_postgres.conninfo, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
