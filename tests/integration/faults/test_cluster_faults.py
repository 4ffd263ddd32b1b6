"""A three-broker cluster (replication factor 3, min.insync.replicas 2, acks=all) losing one
broker under load and getting it back.

The module runs its own cluster (`KafkaCluster`, whose behaviour this test also checks: three
brokers, writes acknowledged with a node lost, replicas back in sync after its restart, the
internal topics replicated three times); the `pipeline` fixture's topics are replaced by
ones with three replicas.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import AdminClient

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
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def kafka_service(own_kafka_cluster: KafkaCluster) -> KafkaCluster:
    return own_kafka_cluster


# --- the fault ---------------------------------------------------------------------------


@pytest.mark.timeout(420)
def test_a_broker_of_three_killed_under_load_and_restarted_loses_nothing(
    pipeline, kafka_service, tmp_path
):
    cluster = kafka_service
    assert len(cluster.bootstrap_servers.split(",")) == 3
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    assert sorted(admin.list_topics(timeout=10).brokers) == [1, 2, 3]
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
        assert not cluster.node(victim).is_running()
        delivered = feeder.delivered
        # The controller fences the node after its session timeout; on a loaded machine, later.
        wait_for(cluster.under_replicated, 90, "the lost node's replicas out of sync")
        time.sleep(max(0.0, killed_at + 15 - time.monotonic()))
        # Two in-sync replicas of three still take the producer's acks=all writes.
        assert feeder.delivered > delivered, "no write was acknowledged with one node down"
        cluster.node(victim).start()
        feeder.wait(120)
        drained = lag.wait_drained(feeder, 180)
        wait_for(lambda: not cluster.under_replicated(), 90, "every replica back in sync")
        offsets = admin.list_topics(timeout=10).topics["__consumer_offsets"].partitions
        assert {len(p.replicas) for p in offsets.values()} == {3}
        assert not consumers.crashed()
        consumers.terminate_all()
    account(pipeline, workload, feeder)
    report(
        "cluster-broker-sigkill",
        drained - killed_at,
        workload.readings,
        f"node {victim} of 3 (the group coordinator) down 15 s; RF 3, min ISR 2, acks=all",
    )
