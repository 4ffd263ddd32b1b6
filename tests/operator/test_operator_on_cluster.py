"""The operator against the real local control plane, running with only the chart's Role.

kwok's fake nodes make the generator pods Running and Ready without running them, so
what is tested is the operator's side: the StatefulSet it writes, the status it reports,
its Events and metrics, and how it repairs, pauses, scales and restarts.
"""

from __future__ import annotations

import itertools
import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from heartbeat_localstack.cluster.control_plane import Cluster
from heartbeat_operator.status import pod_slice
from tests.support.kube import ON_THE_CLUSTER, Kubectl, simulation_namespace
from tests.support.polling import wait_for

from .cluster import (
    EXAMPLE,
    OperatorProcess,
    crash_looping,
    operator_kubeconfig,
    ready_again,
    simulation,
)

pytest_plugins = ["heartbeat_localstack.cluster.fixtures"]

pytestmark = ON_THE_CLUSTER


@pytest.fixture(scope="module")
def kube(kube_cluster: Cluster) -> Iterator[Kubectl]:
    """A fresh namespace, with the CRD installed from the chart."""
    kube = simulation_namespace(kube_cluster, "sim")
    yield kube
    Kubectl(kube_cluster).run("delete", "namespace", kube.namespace, "--wait=false")


@pytest.fixture(scope="module")
def operator(kube: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("operator")
    kubeconfig = operator_kubeconfig(kube, kube.namespace, workdir / "kubeconfig")
    process = OperatorProcess(kubeconfig, kube.namespace, workdir).start()
    yield process
    assert process.stop() == 0, process.logged()[-3000:]
    assert "Traceback" not in process.logged(), process.logged()[-3000:]


def status(kube: Kubectl, name: str) -> dict[str, Any]:
    found = kube.find("heartbeatsimulation", name)
    assert found is not None
    return dict(found.get("status") or {})


def condition(kube: Kubectl, name: str, kind: str) -> dict[str, Any]:
    (found,) = [c for c in status(kube, name).get("conditions", []) if c["type"] == kind]
    return dict(found)


def statefulset(kube: Kubectl, name: str) -> dict[str, Any]:
    found = kube.find("statefulset", name)
    assert found is not None, f"no StatefulSet {name}"
    return found


def ready_pods(kube: Kubectl, name: str) -> list[dict[str, Any]]:
    pods = kube.items("pods", "-l", f"app.kubernetes.io/instance={name}")
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions", [])
        )
    ]


def events(kube: Kubectl, name: str) -> list[tuple[str, str, str]]:
    found = kube.items(
        "events",
        f"--field-selector=involvedObject.kind=HeartbeatSimulation,involvedObject.name={name}",
    )
    return [(e["type"], e["reason"], e["message"]) for e in found]


def wait_ready(kube: Kubectl, name: str) -> dict[str, Any]:
    """Ready for the current generation (kubectl wait compares observedGeneration)."""
    kube.wait(f"heartbeatsimulation/{name}", "condition=Ready")
    current = status(kube, name)
    assert (
        current["observedGeneration"]
        == kube.get("heartbeatsimulation", name)["metadata"]["generation"]
    )
    return current


def assert_slices_cover(pods: list[dict[str, Any]], first: int, customers: int) -> None:
    slices = sorted((s.start, s.stop) for p in pods if (s := pod_slice(p)) is not None)
    assert len(slices) == len(pods)
    assert slices[0][0] == first
    assert slices[-1][1] == first + customers
    assert all(a[1] == b[0] for a, b in itertools.pairwise(slices)), slices


def test_a_simulation_runs_a_statefulset_of_disjoint_slices_and_becomes_ready(
    kube: Kubectl, operator: OperatorProcess
) -> None:
    kube.apply(simulation("ward", customers=10, replicas=3, firstCustomer=100, seed=7))
    current = wait_ready(kube, "ward")

    sim = kube.get("heartbeatsimulation", "ward")
    sts = statefulset(kube, "ward")
    (owner,) = sts["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"], owner["blockOwnerDeletion"]) == (
        "HeartbeatSimulation",
        sim["metadata"]["uid"],
        True,
        True,
    )
    assert sts["spec"]["replicas"] == 3
    pods = ready_pods(kube, "ward")
    assert sorted(p["metadata"]["name"] for p in pods) == ["ward-0", "ward-1", "ward-2"]
    assert_slices_cover(pods, first=100, customers=10)

    assert (current["replicas"], current["readyReplicas"], current["customers"]) == (3, 3, 10)
    assert current["selector"] == (
        "app.kubernetes.io/instance=ward,app.kubernetes.io/name=heartbeat-simulation"
    )
    for c in current["conditions"]:
        assert set(c) >= {"type", "status", "reason", "message", "lastTransitionTime"}
    assert condition(kube, "ward", "Progressing")["reason"] == "RolloutComplete"
    assert condition(kube, "ward", "Paused")["status"] == "False"
    printed = kube.run("get", "heartbeatsimulation", "ward").stdout
    assert "AllReplicasReady" in printed
    assert ("Normal", "Created") in [e[:2] for e in events(kube, "ward")]
    assert (
        operator.metric(
            f'heartbeat_operator_ready_replicas{{namespace="{kube.namespace}",simulation="ward"}}'
        )
        == 3
    )


def test_changing_customers_and_replicas_rolls_out_and_the_status_follows(
    kube: Kubectl, operator: OperatorProcess
) -> None:
    kube.apply(simulation("clinic", customers=6, replicas=2))
    wait_ready(kube, "clinic")
    kube.apply(simulation("clinic", customers=12, replicas=4))
    current = wait_ready(kube, "clinic")

    assert (current["readyReplicas"], current["customers"], current["observedGeneration"]) == (
        4,
        12,
        2,
    )
    pods = ready_pods(kube, "clinic")
    assert len(pods) == 4
    for pod in pods:
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert (env["PRODUCER_CUSTOMERS"], env["PRODUCER_SHARD_COUNT"]) == ("12", "4")
    assert_slices_cover(pods, first=1, customers=12)
    assert ("Normal", "Updated") in [e[:2] for e in events(kube, "clinic")]


def test_kubectl_scale_goes_through_the_scale_subresource(
    kube: Kubectl, operator: OperatorProcess
) -> None:
    kube.apply(simulation("icu", customers=9, replicas=1))
    wait_ready(kube, "icu")
    kube.run("scale", "heartbeatsimulation/icu", "--replicas=3")
    current = wait_ready(kube, "icu")
    assert statefulset(kube, "icu")["spec"]["replicas"] == 3
    assert current["readyReplicas"] == 3
    scale = json.loads(
        kube.run(
            "get", "--raw",
            f"/apis/heartbeat.dev/v1alpha1/namespaces/{kube.namespace}/heartbeatsimulations/icu/scale",
        ).stdout
    )  # fmt: skip
    assert scale["spec"]["replicas"] == 3
    assert scale["status"]["replicas"] == 3
    assert scale["status"]["selector"] == current["selector"]


def test_pausing_scales_to_zero_and_resuming_brings_the_same_pods_back(
    kube: Kubectl, operator: OperatorProcess
) -> None:
    kube.apply(simulation("night", customers=8, replicas=2))
    wait_ready(kube, "night")
    revision = statefulset(kube, "night")["status"]["updateRevision"]

    kube.run("patch", "heartbeatsimulation/night", "--type=merge", "-p", '{"spec":{"paused":true}}')
    kube.wait("heartbeatsimulation/night", "condition=Paused")
    wait_for(
        lambda: status(kube, "night").get("replicas") == 0, 60, "no generator pods", interval=0.3
    )
    assert statefulset(kube, "night")["spec"]["replicas"] == 0
    assert condition(kube, "night", "Ready")["reason"] == "Paused"
    assert status(kube, "night")["customers"] == 0

    kube.run(
        "patch", "heartbeatsimulation/night", "--type=merge", "-p", '{"spec":{"paused":false}}'
    )
    current = wait_ready(kube, "night")
    assert (current["readyReplicas"], current["customers"]) == (2, 8)
    assert condition(kube, "night", "Paused")["status"] == "False"
    assert statefulset(kube, "night")["status"]["updateRevision"] == revision, "no rollout"
    reasons = [e[1] for e in events(kube, "night")]
    assert "Paused" in reasons
    assert "Resumed" in reasons


def test_someone_elses_edits_and_deletion_of_the_statefulset_are_repaired(
    kube: Kubectl, operator: OperatorProcess
) -> None:
    kube.apply(simulation("drift", customers=10, replicas=2))
    wait_ready(kube, "drift")
    repaired = operator.metric("heartbeat_operator_drift_repaired_total") or 0

    kube.run("scale", "statefulset/drift", "--replicas=5")
    wait_for(
        lambda: statefulset(kube, "drift")["spec"]["replicas"] == 2,
        30,
        "replicas back",
        interval=0.3,
    )
    kube.run("set", "env", "statefulset/drift", "PRODUCER_CUSTOMERS=999")
    wait_for(
        lambda: "999" not in json.dumps(statefulset(kube, "drift")["spec"]["template"]),
        30,
        "env back",
        interval=0.3,
    )
    uid = statefulset(kube, "drift")["metadata"]["uid"]
    kube.run("delete", "statefulset/drift", "--wait=false")
    wait_for(
        lambda: (s := kube.find("statefulset", "drift")) and s["metadata"]["uid"] != uid,
        30,
        "a new StatefulSet",
        interval=0.3,
    )
    wait_ready(kube, "drift")

    drift_events = [e for e in events(kube, "drift") if e[1] == "DriftRepaired"]
    assert {e[0] for e in drift_events} == {"Warning"}
    assert any("deleted" in e[2] for e in drift_events)
    assert (operator.metric("heartbeat_operator_drift_repaired_total") or 0) >= repaired + 3


def test_deleting_a_simulation_garbage_collects_its_statefulset_and_pods(
    kube: Kubectl, operator: OperatorProcess
) -> None:
    kube.apply(simulation("gone", customers=4, replicas=2))
    wait_ready(kube, "gone")
    kube.run("delete", "heartbeatsimulation/gone")
    wait_for(
        lambda: kube.find("statefulset", "gone") is None,
        60,
        "the StatefulSet collected",
        interval=0.3,
    )
    wait_for(
        lambda: not kube.items("pods", "-l", "app.kubernetes.io/instance=gone"),
        60,
        "pods gone",
        interval=0.3,
    )
    series = (
        f'heartbeat_operator_desired_replicas{{namespace="{kube.namespace}",simulation="gone"}}'
    )
    wait_for(lambda: operator.metric(series) is None, 30, "its metric series dropped", interval=0.3)


def test_invalid_specs_are_refused_by_the_api_server(
    kube: Kubectl, operator: OperatorProcess
) -> None:
    for spec, field in (
        ({"customers": 0}, "spec.customers"),
        ({"customers": 5, "replicas": -1}, "spec.replicas"),
        ({"customers": 5, "anomalyRate": 2}, "spec.anomalyRate"),
        ({"replicas": 2}, "spec.customers"),
    ):
        refused = kube.run(
            "apply", "-f", "-", stdin=json.dumps(simulation("bad", **spec)), check=False
        )
        assert refused.returncode != 0
        assert field in refused.stderr, refused.stderr
    refused = kube.run(
        "apply", "-f", "-", stdin=json.dumps(simulation("x" * 53, customers=1)), check=False
    )
    assert "at most 52 characters" in refused.stderr


def test_more_replicas_than_customers_is_reported_and_runs_one_per_customer(
    kube: Kubectl, operator: OperatorProcess
) -> None:
    errors = operator.metric('heartbeat_operator_reconcile_total{result="error"}')
    kube.apply(simulation("crowd", customers=2, replicas=5))
    kube.wait(
        "heartbeatsimulation/crowd",
        'jsonpath={.status.conditions[?(@.type=="Ready")].reason}=TooManyReplicas',
    )
    wait_for(
        lambda: status(kube, "crowd").get("readyReplicas") == 2, 60, "two pods ready", interval=0.3
    )
    ready = condition(kube, "crowd", "Ready")
    assert ready["status"] == "False"
    assert "spec.replicas (5) is more than spec.customers (2)" in ready["message"]
    assert statefulset(kube, "crowd")["spec"]["replicas"] == 2
    assert status(kube, "crowd")["customers"] == 2
    warnings = [e for e in events(kube, "crowd") if e[1] == "TooManyReplicas"]
    assert len(warnings) == 1, "reported once, not on every resync"
    assert operator.metric('heartbeat_operator_reconcile_total{result="error"}') == errors

    kube.run("scale", "heartbeatsimulation/crowd", "--replicas=2")
    wait_ready(kube, "crowd")


def test_a_crash_looping_generator_pod_shows_in_the_ready_condition_naming_it(
    kube: Kubectl, operator: OperatorProcess
) -> None:
    """The kubelet's report of a crash loop, set through the API (kwok runs no container):
    Ready turns False with the reason and the pod's name, once, and back when it runs."""
    kube.apply(simulation("flaky", customers=10, replicas=2))
    wait_ready(kube, "flaky")
    pod = kube.find("pod", "flaky-1")
    assert pod is not None
    patch = ("patch", "pod", "flaky-1", "--subresource=status", "--type=merge")
    kube.run(*patch, "-p", json.dumps(crash_looping(pod, restarts=4)))

    kube.wait(
        "heartbeatsimulation/flaky",
        'jsonpath={.status.conditions[?(@.type=="Ready")].reason}=GeneratorCrashLooping',
    )
    ready = condition(kube, "flaky", "Ready")
    assert ready["status"] == "False"
    assert (
        "flaky-1: crash-looping, restarted 4 times, last exit code 1 (Error)" in (ready["message"])
    )
    assert "flaky-0" not in ready["message"]
    warnings = wait_for(
        lambda: [e for e in events(kube, "flaky") if e[1] == "GeneratorCrashLooping"],
        30,
        "a GeneratorCrashLooping Event",
        interval=0.3,
    )
    assert warnings[0][0] == "Warning"
    assert "flaky-1" in warnings[0][2]

    kube.run(*patch, "-p", json.dumps(ready_again(pod)))
    wait_ready(kube, "flaky")
    assert condition(kube, "flaky", "Ready")["reason"] == "AllReplicasReady"
    crash_events = [e for e in events(kube, "flaky") if e[1] == "GeneratorCrashLooping"]
    assert len(crash_events) == 1, "reported once, not on every resync"
    posted = kube.items(
        "events",
        "--field-selector=involvedObject.kind=HeartbeatSimulation,involvedObject.name=flaky",
    )
    assert {e["reportingComponent"] for e in posted} == {"heartbeat-operator"}


def test_an_operator_killed_mid_way_converges_when_it_comes_back(
    kube: Kubectl, operator: OperatorProcess
) -> None:
    kube.apply(simulation("restart", customers=10, replicas=1))
    wait_ready(kube, "restart")
    operator.stop(signal.SIGKILL)

    kube.apply(simulation("restart", customers=10, replicas=3))
    kube.apply(simulation("late", customers=5, replicas=2))
    kube.run("delete", "statefulset/restart", "--wait=false")
    operator.start()

    assert wait_ready(kube, "restart")["readyReplicas"] == 3
    assert wait_ready(kube, "late")["customers"] == 5
    assert_slices_cover(ready_pods(kube, "restart"), first=1, customers=10)


def test_the_example_resource_becomes_ready(kube: Kubectl, operator: OperatorProcess) -> None:
    kube.run("apply", "-f", str(EXAMPLE))
    current = wait_ready(kube, "ward-7")
    assert (current["readyReplicas"], current["customers"]) == (4, 1000)


def test_the_operator_serves_health_and_metrics(kube: Kubectl, operator: OperatorProcess) -> None:
    assert operator.get("/healthz")[0] == 200
    assert operator.get("/readyz")[0] == 200
    assert operator.metric("heartbeat_operator_simulations") == len(
        kube.items("heartbeatsimulations")
    )
    series = f'namespace="{kube.namespace}",simulation="ward"'
    assert operator.metric(f"heartbeat_operator_desired_replicas{{{series}}}") == 3
    assert operator.metric(f'heartbeat_operator_condition{{{series},type="Ready"}}') == 1
    assert operator.metric(f'heartbeat_operator_condition{{{series},type="Paused"}}') == 0
    assert (operator.metric('heartbeat_operator_reconcile_total{result="ok"}') or 0) > 0
