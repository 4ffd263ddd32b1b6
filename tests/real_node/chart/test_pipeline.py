"""The charts on a real node: pods that really run, store, refuse, scale, recover and go away.

The tests share one install (see conftest.py) and run in this order; each sends a batch of
its own customers (batches.py) and checks what PostgreSQL holds against what the batch says,
row by row. The last one uninstalls.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.kube import condition, is_ready, wait_until

from .batches import Batch
from .release import CHART_PRODUCER_CUSTOMERS, DEPS, PRODUCERS, RELEASE, Release

pytestmark = [
    pytest.mark.integration,
    pytest.mark.real_node,
    pytest.mark.slow,
    # The first test also waits for the install; the 2 cores are shared with everything else.
    pytest.mark.timeout(1800),
]

# Readings an hour old: well inside the consumer's allowed past, never in its future.
START = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
# While a batch is sent at this rate, there is time for the action under test to hit it.
PACED = 15.0


def test_helm_install_waited_for_pods_running_on_the_real_node(release: Release) -> None:
    nodes = {
        n["metadata"]["name"]: n["status"]["nodeInfo"]["containerRuntimeVersion"]
        for n in release.kube.items("nodes")
    }
    # Not the migration hook's pod, which helm deletes with its Job once it succeeded.
    pods = [p for p in release.kube.items("pods") if p["status"].get("phase") != "Succeeded"]
    assert len(pods) >= 4, release.kube.diagnostics()  # Kafka, PostgreSQL, producer, consumer
    for pod in pods:
        name = pod["metadata"]["name"]
        assert is_ready(pod), f"{name} is not Running and Ready\n{release.kube.diagnostics()}"
        assert nodes[pod["spec"]["nodeName"]].startswith("containerd://"), name
        for status in pod["status"]["containerStatuses"]:
            assert "running" in status["state"], (name, status["state"])
    consumer = release.consumers()[0]["metadata"]["name"]
    version = release.kube.exec(consumer, "heartbeat", "--version")
    assert version.startswith("heartbeat "), version


def test_the_migration_hook_job_migrated_the_real_postgresql(release: Release) -> None:
    # The migrations the image ships (the hook ran that image), each recorded in PostgreSQL.
    consumer = release.consumers()[0]["metadata"]["name"]
    listing = (
        "from heartbeat.migrations import default_dir\n"
        "for p in sorted(default_dir().glob('*.sql')):\n"
        "    if not p.name.endswith('.rollback.sql'): print(p.name.removesuffix('.sql'))\n"
    )
    shipped = release.kube.exec(consumer, "python", "-c", listing).split()
    assert shipped, "the image ships no migrations"
    assert release.db.applied_migrations() == shipped
    completed = [
        e
        for e in release.kube.items("events", "--field-selector", "involvedObject.kind=Job")
        if e["involvedObject"]["name"] == f"{RELEASE}-migrations" and e["reason"] == "Completed"
    ]
    assert completed, f"no Completed event of the migration Job\n{release.kube.diagnostics()}"


def test_the_chart_producer_produces_and_the_consumer_stores_its_readings(
    release: Release,
) -> None:
    producer = release.pods(PRODUCERS)[0]["metadata"]["name"]
    wait_until(
        release.kube,
        "the chart's producer acknowledged readings",
        lambda: release.metric(producer, "heartbeat_produced_total") > 0,
        120,
    )
    stored = (
        "SELECT count(DISTINCT customer_id) FROM heartbeats "
        f"WHERE customer_id <= {CHART_PRODUCER_CUSTOMERS}"
    )
    wait_until(
        release.kube,
        f"readings of each of the chart producer's {CHART_PRODUCER_CUSTOMERS} customers stored",
        lambda: release.db.count(stored) == CHART_PRODUCER_CUSTOMERS,
        180,
    )


def test_a_known_batch_is_stored_exactly_once_and_its_bad_messages_dead_lettered(
    release: Release,
) -> None:
    batch = Batch("known", first_customer=10_001, customers=50, rounds=20, rate=0, start=START)
    release.send(batch)
    release.wait_sent(batch)
    release.wait_stored(batch)

    # The dead-letter topic too: at least once, so a message may appear twice, each time
    # naming the same source; counted once per source, it is exactly the refused set.
    keys = {str(c) for c in batch.customer_ids}
    consumer = release.consumers()[0]["metadata"]["name"]
    by_source = {
        (m["headers"]["source_partition"], m["headers"]["source_offset"]): (
            m["key"],
            m["headers"]["reason"],
        )
        for m in release.dead_letter_topic(consumer)
        if m["key"] in keys
    }
    assert Counter(by_source.values()) == batch.expected().dead_letters


def test_readyz_takes_a_consumer_out_while_postgresql_is_scaled_to_zero(release: Release) -> None:
    (pod,) = release.wait_consumers(1)
    restarts = _restarts(release, pod)
    batch = Batch("outage", first_customer=20_001, customers=20, rounds=60, rate=PACED, start=START)
    release.send(batch)
    release.wait_flowing(batch)

    release.kube.run("scale", "deployment/postgresql", "--replicas=0")
    wait_until(
        release.kube,
        "PostgreSQL's pod gone",
        lambda: not release.kube.items("pods", "--selector", "app.kubernetes.io/name=postgresql"),
        180,
    )
    wait_until(
        release.kube,
        f"{pod} NotReady while PostgreSQL is away",
        lambda: condition(release.kube.get(f"pod/{pod}"), "Ready") == "False",
        180,
    )
    status, body = release.http_get(pod, "/readyz")
    assert status == 503, body
    assert '"postgres": {"ok": false' in body, body

    release.kube.run("scale", "deployment/postgresql", "--replicas=1")
    release.kube.run("rollout", "status", "deployment/postgresql", "--timeout=300s", timeout=330)
    wait_until(
        release.kube,
        f"{pod} Ready again once PostgreSQL is back",
        lambda: condition(release.kube.get(f"pod/{pod}"), "Ready") == "True",
        240,
    )
    # Not ready is not dead: the liveness probe left the container alone.
    assert _restarts(release, pod) == restarts
    release.wait_sent(batch)
    release.wait_stored(batch)


def test_scaling_consumers_1_to_3_to_1_with_helm_upgrade_under_load_loses_and_doubles_nothing(
    release: Release,
) -> None:
    release.wait_consumers(1)
    up = Batch("scale-up", first_customer=30_001, customers=20, rounds=60, rate=PACED, start=START)
    release.send(up)
    release.wait_flowing(up)
    release.upgrade("consumer.replicas=3")
    three = release.wait_consumers(3)
    # The three really share the partitions: each owns some.
    wait_until(
        release.kube,
        "each of 3 consumers owning partitions",
        lambda: all(release.metric(p, "heartbeat_assigned_partitions") > 0 for p in three),
        180,
    )

    down = Batch(
        "scale-down", first_customer=40_001, customers=20, rounds=60, rate=PACED, start=START
    )
    release.send(down)
    release.wait_flowing(down)
    release.upgrade("consumer.replicas=1")
    release.wait_consumers(1)
    for batch in (up, down):
        release.wait_sent(batch)
        release.wait_stored(batch)


def test_deleting_a_consumer_pod_mid_stream_loses_and_doubles_nothing(release: Release) -> None:
    (pod,) = release.wait_consumers(1)
    batch = Batch("delete", first_customer=50_001, customers=20, rounds=60, rate=PACED, start=START)
    release.send(batch)
    release.wait_flowing(batch)
    release.kube.run("delete", "pod", pod, "--timeout=120s", timeout=150)
    (replacement,) = release.wait_consumers(1)
    assert replacement != pod
    release.wait_sent(batch)
    release.wait_stored(batch)


def test_helm_test_runs_its_test_pod_for_real(release: Release) -> None:
    out = release.kube.helm_ok("test", RELEASE, "--timeout", "5m", timeout=600)
    assert re.search(r"Phase:\s+Succeeded", out), out
    # Helm deletes the pod once it succeeded (so `--logs` cannot be used); the kubelet's
    # Events say that each of its containers really started.
    started = {
        e["message"]
        for e in release.kube.items(
            "events", "--field-selector", f"involvedObject.name={RELEASE}-test,reason=Started"
        )
    }
    for container in ("migrations", "consumer-ready"):
        assert any(container in message for message in started), (container, started)


def test_helm_uninstall_leaves_nothing_running(release: Release) -> None:
    release.kube.run(
        "delete", "jobs", "--selector", "app.kubernetes.io/name=send-batch", "--wait=true"
    )
    assert release.on_node(), "crictl sees no container of the release before the uninstall"
    release.uninstall()
    wait_until(
        release.kube,
        "no pod left in the namespace",
        lambda: not release.kube.items("pods"),
        240,
    )
    # Nor a container on the node: the kubelet really stopped them.
    wait_until(
        release.kube,
        "no container of the namespace running on the node",
        lambda: not release.on_node(),
        120,
    )
    left = release.kube.items(
        "deployments,statefulsets,jobs,cronjobs,services,secrets,configmaps",
        "--selector",
        f"app.kubernetes.io/instance in ({RELEASE},{DEPS})",
    )
    assert not left, [f"{o['kind']}/{o['metadata']['name']}" for o in left]


def _restarts(release: Release, pod: str) -> int:
    statuses = release.kube.get(f"pod/{pod}")["status"]["containerStatuses"]
    return sum(int(s["restartCount"]) for s in statuses)
