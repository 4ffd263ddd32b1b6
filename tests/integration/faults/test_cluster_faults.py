"""A three-broker cluster (replication factor 3, min.insync.replicas 2, acks=all) losing one
broker under load and getting it back.

The module runs its own cluster; the `pipeline` fixture's topics are replaced by ones with
three replicas.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from heartbeat_localstack.kafka_cluster import KafkaCluster
from tests.integration.faults.harness import (
    Feeder,
    Lag,
    account,
    fleet,
    group_coordinator,
    make_workload,
    report,
    retopic,
)
from tests.integration.pipeline import unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def kafka_service(own_kafka_cluster: KafkaCluster) -> KafkaCluster:
    return own_kafka_cluster


# --- the tool ----------------------------------------------------------------------------


def test_a_three_node_cluster_takes_acks_all_writes_with_one_node_killed_and_heals(
    kafka_service: KafkaCluster,
) -> None:
    cluster = kafka_service
    servers = cluster.bootstrap_servers
    assert len(servers.split(",")) == 3
    admin = AdminClient({"bootstrap.servers": servers})
    assert sorted(admin.list_topics(timeout=10).brokers) == [1, 2, 3]
    topic = unique("cluster-probe")
    admin.create_topics([NewTopic(topic, 3, 3)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": servers, "acks": "all", "enable.idempotence": True})
    failures: list[str] = []

    def produce(prefix: bytes) -> None:
        for i in range(200):
            producer.produce(
                topic,
                value=prefix + b"%d" % i,
                on_delivery=lambda err, _: err and failures.append(err.str()),
            )
        assert producer.flush(60) == 0

    produce(b"first-")
    cluster.node(2).kill()
    assert not cluster.node(2).is_running()
    produce(b"degraded-")  # two in-sync replicas still take acks=all writes
    assert cluster.under_replicated(), "node 2's replicas fell out of sync"
    cluster.node(2).start()
    wait_for(lambda: not cluster.under_replicated(), 90, "node 2 back in sync")
    assert not failures, failures[:3]

    reader = Consumer(
        {"bootstrap.servers": servers, "group.id": topic, "auto.offset.reset": "earliest"}
    )
    values = []
    try:
        reader.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(values) < 400 and time.monotonic() < deadline:
            message = reader.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
        reader.commit(asynchronous=False)  # creates the group's offsets topic
    finally:
        reader.close()
    assert len(values) == 400
    internal = admin.list_topics(timeout=10).topics["__consumer_offsets"].partitions.values()
    assert {len(p.replicas) for p in internal} == {3}


# --- the fault ---------------------------------------------------------------------------


@pytest.mark.timeout(420)
def test_a_broker_of_three_killed_under_load_and_restarted_loses_nothing(
    pipeline, kafka_service, tmp_path
):
    cluster = kafka_service
    retopic(pipeline, replication=3)
    workload = make_workload(customers=240, rounds=100, seed=91)  # 24,000 messages
    feeder = Feeder(pipeline.settings, workload, rate=800)
    lag = Lag(pipeline)
    with fleet(pipeline, tmp_path) as consumers:
        consumers.spawn()
        consumers.spawn()
        wait_for(lambda: all(m.ready() for m in consumers.members), 90, "both consumers ready")
        feeder.start()
        wait_for(lambda: pipeline.row_count() > 2000, 60, "storing under way")
        victim = group_coordinator(pipeline.settings)  # the hardest one to lose
        killed_at = time.monotonic()
        cluster.node(victim).kill()
        time.sleep(15)
        cluster.node(victim).start()
        feeder.wait(120)
        drained = lag.wait_drained(feeder, 180)
        wait_for(lambda: not cluster.under_replicated(), 90, "every replica back in sync")
        assert not consumers.crashed()
        consumers.terminate_all()
    account(pipeline, workload, feeder)
    report(
        "cluster-broker-sigkill",
        drained - killed_at,
        workload.readings,
        f"node {victim} of 3 (the group coordinator) down 15 s; RF 3, min ISR 2, acks=all",
    )
