"""The operator deployed by the chart runs as a pod on the real node, and a HeartbeatSimulation
yields generator pods whose readings reach PostgreSQL through the chart's consumer.

Every check reads what really happened: the generators' slices from their own start-up log
lines, the customers from the `heartbeats` table of the dev-deps PostgreSQL.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest

from tests.support.kube import condition

from .pipeline import PRODUCER_FIRST_CUSTOMER, Pipeline, eventually

# The first test also waits for the cluster and the two releases to come up.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.real_node,
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

SIMULATION = "ward"
CUSTOMERS = 500
GENERATORS = f"app.kubernetes.io/name=heartbeat-simulation,app.kubernetes.io/instance={SIMULATION}"
SLICE_LINE = re.compile(r"producing to \S+: customers (\d+)\.\.(\d+)")


def _simulation(replicas: int) -> str:
    return json.dumps(
        {
            "apiVersion": "heartbeat.dev/v1alpha1",
            "kind": "HeartbeatSimulation",
            "metadata": {"name": SIMULATION},
            "spec": {
                "customers": CUSTOMERS,
                "firstCustomer": 1,
                "replicas": replicas,
                "ratePerReplica": 100,
                # Every reading valid (the baselines stay within range without spikes): each
                # one is stored, none goes to the dead-letter topic.
                "anomalyRate": 0,
                "seed": 11,
            },
        }
    )


def _slices(pipeline: Pipeline, pods: list[str]) -> dict[str, range]:
    """Each generator pod's customers, as its own log line says."""
    found: dict[str, range] = {}
    for pod in pods:
        match = SLICE_LINE.search(pipeline.kube.run("logs", pod, "-c", "generator").stdout)
        if match is None:
            return {}
        found[pod] = range(int(match[1]), int(match[2]) + 1)
    return found


def _ready_generators(pipeline: Pipeline, count: int) -> dict[str, range]:
    """Once `count` generators are Ready on slices of CUSTOMERS / count: their slices."""

    def check() -> dict[str, range]:
        pods = pipeline.ready(GENERATORS, count)
        if not pods:
            return {}
        slices = _slices(pipeline, pods)
        sizes = {len(part) for part in slices.values()}
        return slices if len(slices) == count and max(sizes) <= -(-CUSTOMERS // count) else {}

    slices: dict[str, range] = eventually(check, f"{count} Ready generator pods")
    return slices


def _assert_partition(slices: dict[str, range]) -> None:
    """The slices are disjoint and together exactly customers 1..CUSTOMERS."""
    every = sorted(customer for part in slices.values() for customer in part)
    assert every == list(range(1, CUSTOMERS + 1)), slices


def _customers_since(pipeline: Pipeline, since: str) -> list[int]:
    """Customers (below the chart's own producer's) with a reading stored after `since`."""
    rows = pipeline.sql(
        "SELECT DISTINCT customer_id FROM heartbeats "
        f"WHERE ts > '{since}' AND customer_id < {PRODUCER_FIRST_CUSTOMER} ORDER BY 1"
    )
    return [int(row) for row in rows]


def _every_customer_since(pipeline: Pipeline, since: str) -> list[int]:
    def check() -> list[int]:
        customers = _customers_since(pipeline, since)
        return customers if len(customers) >= CUSTOMERS else []

    customers: list[int] = eventually(check, "readings of every customer in PostgreSQL")
    return customers


def _simulated_count(pipeline: Pipeline) -> int:
    query = f"SELECT count(*) FROM heartbeats WHERE customer_id < {PRODUCER_FIRST_CUSTOMER}"
    return int(pipeline.sql(query)[0])


def _settled(pipeline: Pipeline) -> Callable[[], int | None]:
    """A check giving the simulated readings' count once two reads 10 s apart agree."""

    def check() -> int | None:
        first = _simulated_count(pipeline)
        time.sleep(10)
        return first if _simulated_count(pipeline) == first else None

    return check


def test_the_operator_runs_as_a_pod(pipeline: Pipeline) -> None:
    operator = eventually(
        lambda: pipeline.ready("app.kubernetes.io/component=operator", 1), "a Ready operator pod"
    )
    assert operator[0].startswith("heartbeat-operator-")


def test_kubectl_exec_runs_a_command_inside_a_consumer_pod(pipeline: Pipeline) -> None:
    out = pipeline.kube.exec("deploy/heartbeat-consumer", "heartbeat", "--version")
    assert out.strip()


def test_two_generators_store_exactly_customers_1_to_500(pipeline: Pipeline) -> None:
    started = pipeline.now()
    pipeline.kube.run("apply", "-f", "-", stdin=_simulation(replicas=2))
    slices = _ready_generators(pipeline, 2)
    assert sorted(slices) == [f"{SIMULATION}-0", f"{SIMULATION}-1"]
    _assert_partition(slices)
    assert _every_customer_since(pipeline, started) == list(range(1, CUSTOMERS + 1))
    simulation = f"heartbeatsimulation/{SIMULATION}"
    ready = eventually(
        lambda: condition(pipeline.kube.get(simulation), "Ready") == "True",
        "the simulation's Ready condition",
    )
    assert ready


def test_scaling_to_three_redraws_the_slices_without_losing_a_customer(pipeline: Pipeline) -> None:
    pipeline.kube.run("scale", f"heartbeatsimulation/{SIMULATION}", "--replicas=3")
    slices = _ready_generators(pipeline, 3)
    _assert_partition(slices)
    rolled = pipeline.now()
    assert _every_customer_since(pipeline, rolled) == list(range(1, CUSTOMERS + 1))


def test_paused_stops_new_readings(pipeline: Pipeline) -> None:
    patch = json.dumps({"spec": {"paused": True}})
    pipeline.kube.run("patch", f"heartbeatsimulation/{SIMULATION}", "--type=merge", "-p", patch)
    eventually(lambda: pipeline.pods(GENERATORS) == [], "no generator pod while paused")
    # The consumer drains what was produced before the pods stopped; then nothing more comes.
    settled = eventually(_settled(pipeline), "the stored count to settle")
    time.sleep(15)
    assert _simulated_count(pipeline) == settled


def test_deleting_the_simulation_stops_its_readings_and_removes_its_pods(
    pipeline: Pipeline,
) -> None:
    patch = json.dumps({"spec": {"paused": False}})
    pipeline.kube.run("patch", f"heartbeatsimulation/{SIMULATION}", "--type=merge", "-p", patch)
    _ready_generators(pipeline, 3)
    pipeline.kube.run("delete", f"heartbeatsimulation/{SIMULATION}", "--wait=true", timeout=180)
    eventually(lambda: pipeline.pods(GENERATORS) == [], "the generator pods gone")
    eventually(
        lambda: pipeline.kube.run("get", "statefulsets", "-o", "name").stdout.strip() == "" or None,
        "the generators' StatefulSet gone",
    )
    settled = eventually(_settled(pipeline), "the stored count to settle")
    time.sleep(15)
    assert _simulated_count(pipeline) == settled
