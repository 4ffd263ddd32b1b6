"""The reconciler against an in-memory API server: what it writes, reports and counts."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from heartbeat_operator.exceptions import KubeError
from heartbeat_operator.manifests import GeneratorConfig, SimulationRef, statefulset
from heartbeat_operator.metrics import OperatorMetrics
from heartbeat_operator.reconcile import Reconciler
from heartbeat_operator.spec import parse_spec

from .fakes import FakeKube

NS = "wards"


class World:
    def __init__(self) -> None:
        self.kube = FakeKube()
        self.registry = CollectorRegistry()
        self.generator = GeneratorConfig(image="heartbeat:test")
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self.reconciler = Reconciler(
            self.kube,  # type: ignore[arg-type]
            self.generator,
            OperatorMetrics(self.registry),
            clock=lambda: self.now,
            events=self.kube.post_event,
        )

    def reconcile(self, name: str = "ward") -> str:
        return self.reconciler.reconcile(NS, name, trigger="test")

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def sts(self, name: str = "ward") -> dict:  # type: ignore[type-arg]
        return self.kube.statefulsets[(NS, name)]


@pytest.fixture
def world() -> World:
    return World()


def test_a_new_simulation_gets_its_statefulset_then_becomes_ready(world: World) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    assert world.reconcile() == "ok"
    assert world.sts()["spec"]["replicas"] == 3
    assert world.kube.condition("ward", "Ready") == ("False", "RollingOut")
    assert world.kube.condition("ward", "Progressing") == ("True", "RollingOut")
    assert world.kube.reasons() == ["Created"]

    world.kube.settle("ward")
    world.reconcile()
    status = world.kube.status("ward")
    assert world.kube.condition("ward", "Ready") == ("True", "AllReplicasReady")
    assert world.kube.condition("ward", "Progressing") == ("False", "RolloutComplete")
    assert (status["observedGeneration"], status["replicas"], status["readyReplicas"]) == (1, 3, 3)
    assert status["customers"] == 10
    assert world.kube.reasons() == ["Created", "AllReplicasReady"]
    assert world.metric("heartbeat_operator_ready_replicas", namespace=NS, simulation="ward") == 3
    assert (
        world.metric("heartbeat_operator_condition", namespace=NS, simulation="ward", type="Ready")
        == 1
    )
    assert world.metric("heartbeat_operator_simulations") == 1


def test_reconciling_a_settled_simulation_again_writes_and_posts_nothing(world: World) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    world.reconcile()
    world.kube.settle("ward")
    world.reconcile()
    writes, events = list(world.kube.writes), list(world.kube.events)
    for _ in range(3):
        assert world.reconcile() == "ok"
    assert world.kube.writes == writes
    assert world.kube.events == events
    assert world.metric("heartbeat_operator_reconcile_total", result="ok") == 5


CRASH_LOOPING = {
    "conditions": [{"type": "Ready", "status": "False"}],
    "containerStatuses": [
        {
            "name": "generator",
            "ready": False,
            "restartCount": 6,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
        }
    ],
}


def test_a_crash_looping_generator_pod_shows_in_ready_and_is_reported_once(world: World) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    world.reconcile()
    world.kube.settle("ward")
    world.reconcile()
    world.sts()["status"]["readyReplicas"] = 2  # ward-2 stopped being ready...
    world.kube.unready["ward-2"] = CRASH_LOOPING  # ...and crash-loops (it keeps exiting)

    world.reconcile()
    (ready,) = [c for c in world.kube.status("ward")["conditions"] if c["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "GeneratorCrashLooping")
    assert "ward-2: crash-looping, restarted 6 times, last exit code 1 (Error)" in ready["message"]
    (warning,) = [e for e in world.kube.events if e[0] == "Warning"]
    assert warning[1] == "GeneratorCrashLooping"
    assert "ward-2" in warning[2]
    assert (
        world.metric("heartbeat_operator_condition", namespace=NS, simulation="ward", type="Ready")
        == 0
    )

    world.reconcile()
    assert [e[1] for e in world.kube.events].count("GeneratorCrashLooping") == 1

    del world.kube.unready["ward-2"]  # fixed: the pod runs and is ready again
    world.kube.settle("ward")
    world.reconcile()
    assert world.kube.condition("ward", "Ready") == ("True", "AllReplicasReady")
    assert world.kube.reasons()[-1] == "AllReplicasReady"


def not_ready_since(started: datetime) -> dict[str, object]:
    """A pod status: the generator runs, its readiness probe failing since ``started``."""
    stamp = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": stamp}],
        "containerStatuses": [
            {"name": "generator", "ready": False, "state": {"running": {"startedAt": stamp}}}
        ],
    }


def test_a_generator_running_not_ready_shows_in_ready_after_a_minute_once(world: World) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    world.reconcile()
    world.kube.settle("ward")
    world.reconcile()
    world.sts()["status"]["readyReplicas"] = 2  # ward-2 restarted and stays not ready
    world.kube.unready["ward-2"] = not_ready_since(world.now)

    world.now += timedelta(seconds=30)
    world.reconcile()
    assert world.kube.condition("ward", "Ready") == ("False", "ReplicasNotReady")

    world.now += timedelta(seconds=30)
    world.reconcile()
    (ready,) = [c for c in world.kube.status("ward")["conditions"] if c["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "GeneratorNotReady")
    assert "ward-2: running, not ready since 2026-01-01T00:00:00Z" in ready["message"]
    (warning,) = [e for e in world.kube.events if e[1] == "GeneratorNotReady"]
    assert warning[0] == "Warning"
    assert "ward-2" in warning[2]

    writes = len(world.kube.writes)
    world.now += timedelta(minutes=5)
    world.reconcile()
    assert len(world.kube.writes) == writes, "the status stays as it is while nothing changes"
    assert world.kube.reasons().count("GeneratorNotReady") == 1

    del world.kube.unready["ward-2"]  # Kafka answers: the pod is ready again
    world.kube.settle("ward")
    world.reconcile()
    assert world.kube.condition("ward", "Ready") == ("True", "AllReplicasReady")


def test_a_spec_change_is_an_update_not_drift(world: World) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    world.reconcile()
    world.kube.settle("ward")
    world.reconcile()
    world.kube.apply("ward", {"customers": 20, "replicas": 4})
    world.reconcile()
    env = {
        e["name"]: e["value"]
        for e in world.sts()["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert (env["PRODUCER_CUSTOMERS"], env["PRODUCER_SHARD_COUNT"]) == ("20", "4")
    assert world.sts()["spec"]["replicas"] == 4
    assert world.kube.events[-1][:2] == ("Normal", "Updated")
    assert "3 -> 4 replicas, rolling out a new pod template" in world.kube.events[-1][2]
    assert world.kube.status("ward")["observedGeneration"] == 2
    assert world.metric("heartbeat_operator_drift_repaired_total") == 0


def test_someone_scaling_the_statefulset_is_put_back_and_reported(world: World) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    world.reconcile()
    world.kube.settle("ward")
    world.reconcile()
    world.kube.edit_statefulset("ward", replicas=7)
    world.reconcile()
    assert world.sts()["spec"]["replicas"] == 3
    (message,) = [
        m for kind, r, m in world.kube.events if (kind, r) == ("Warning", "DriftRepaired")
    ]
    assert "spec.replicas" in message
    assert world.kube.condition("ward", "Ready") == ("False", "RollingOut")
    assert world.metric("heartbeat_operator_drift_repaired_total") == 1


def test_a_deleted_statefulset_is_created_again_and_reported(world: World) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    world.reconcile()
    world.kube.settle("ward")
    world.reconcile()
    del world.kube.statefulsets[(NS, "ward")]
    world.reconcile()
    assert world.sts()["spec"]["replicas"] == 3
    assert ("Warning", "DriftRepaired") in [e[:2] for e in world.kube.events]
    assert world.metric("heartbeat_operator_drift_repaired_total") == 1


@pytest.mark.parametrize(
    "statefulset_now",
    ["collected", "scaled by someone", "still there"],
)
def test_a_simulation_being_deleted_is_never_converged(world: World, statefulset_now: str) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    world.reconcile()
    world.kube.settle("ward")
    world.reconcile()
    world.kube.simulations[(NS, "ward")]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    if statefulset_now == "collected":  # foreground deletion: dependents go first
        del world.kube.statefulsets[(NS, "ward")]
    elif statefulset_now == "scaled by someone":
        world.kube.edit_statefulset("ward", replicas=7)
    before = dict(world.kube.statefulsets)
    writes, events = list(world.kube.writes), list(world.kube.events)

    assert world.reconcile() == "ok"
    assert world.kube.statefulsets == before
    assert world.kube.writes == writes
    assert world.kube.events == events
    assert world.metric("heartbeat_operator_drift_repaired_total") == 0


def test_more_replicas_than_customers_runs_one_each_and_says_so_once(world: World) -> None:
    world.kube.apply("ward", {"customers": 3, "replicas": 5})
    assert world.reconcile() == "invalid"
    world.kube.settle("ward")
    world.reconcile()
    world.reconcile()
    assert world.sts()["spec"]["replicas"] == 3
    assert world.kube.condition("ward", "Ready") == ("False", "TooManyReplicas")
    assert world.kube.status("ward")["customers"] == 3
    warnings = [e for e in world.kube.events if e[0] == "Warning"]
    assert [e[1] for e in warnings] == ["TooManyReplicas"]
    assert world.metric("heartbeat_operator_reconcile_total", result="invalid") == 3

    world.kube.apply("ward", {"customers": 3, "replicas": 2})
    world.reconcile()
    world.kube.settle("ward")
    world.reconcile()
    assert world.kube.condition("ward", "Ready") == ("True", "AllReplicasReady")


def test_a_spec_that_fails_validation_leaves_the_statefulset_alone(world: World) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 2})
    world.reconcile()
    before = dict(world.sts())
    world.kube.apply("ward", {"customers": 0})
    assert world.reconcile() == "invalid"
    assert world.sts() == before
    assert world.kube.condition("ward", "Ready") == ("False", "InvalidSpec")
    assert world.kube.condition("ward", "Progressing") == ("False", "InvalidSpec")
    assert world.metric("heartbeat_operator_desired_replicas", namespace=NS, simulation="ward") == 2


def test_a_statefulset_someone_else_owns_is_never_overwritten(world: World) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 2})
    foreign = statefulset(
        SimulationRef(NS, "ward", "someone-else"), parse_spec({"customers": 1}), world.generator
    )
    world.kube.create_statefulset(foreign)
    before = copy.deepcopy(world.sts())
    world.kube.writes.clear()
    world.reconcile()
    world.reconcile()
    assert world.sts() == before
    assert world.kube.writes == ["status ward"]
    assert world.kube.condition("ward", "Ready") == ("False", "StatefulSetNotOwned")
    assert world.kube.reasons() == ["StatefulSetNotOwned"], "warned once, nothing repaired"


@pytest.mark.parametrize(
    ("then", "desired", "ready"),
    [
        ({"customers": 10, "replicas": 2}, 2, 2),
        ({"customers": 0}, 2, 2),  # InvalidSpec: the pods of the last good spec still run
        ({"customers": 10, "replicas": 2, "paused": True}, 0, 0),
        ({"customers": 1, "replicas": 2}, 1, 1),  # TooManyReplicas: one per customer
    ],
)
def test_desired_replicas_is_what_the_statefulset_asks_for(
    world: World, then: dict[str, object], desired: int, ready: int
) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 2})
    world.reconcile()
    world.kube.apply("ward", then)
    world.reconcile()
    world.kube.settle("ward")
    world.reconcile()
    series = {"namespace": NS, "simulation": "ward"}
    assert world.metric("heartbeat_operator_desired_replicas", **series) == desired
    assert world.metric("heartbeat_operator_ready_replicas", **series) == ready


def test_a_simulation_without_a_statefulset_of_its_own_wants_and_has_no_replicas(
    world: World,
) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 2})
    foreign = statefulset(
        SimulationRef(NS, "ward", "someone-else"), parse_spec({"customers": 3}), world.generator
    )
    world.kube.create_statefulset(foreign)
    world.kube.settle("ward")
    world.reconcile()
    series = {"namespace": NS, "simulation": "ward"}
    assert world.metric("heartbeat_operator_desired_replicas", **series) == 0
    assert world.metric("heartbeat_operator_ready_replicas", **series) == 0


def test_pausing_scales_to_zero_without_rolling_and_resuming_scales_back(world: World) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    world.reconcile()
    world.kube.settle("ward")
    world.reconcile()
    template = world.sts()["spec"]["template"]

    world.kube.apply("ward", {"customers": 10, "replicas": 3, "paused": True})
    world.reconcile()
    world.kube.settle("ward")
    world.reconcile()
    assert world.sts()["spec"]["replicas"] == 0
    assert world.sts()["spec"]["template"] == template
    assert world.kube.condition("ward", "Paused") == ("True", "Paused")
    assert world.kube.condition("ward", "Ready") == ("False", "Paused")
    assert world.kube.status("ward")["customers"] == 0
    assert "Paused" in world.kube.reasons()

    world.kube.apply("ward", {"customers": 10, "replicas": 3, "paused": False})
    world.reconcile()
    world.kube.settle("ward")
    world.reconcile()
    assert world.sts()["spec"]["replicas"] == 3
    assert world.kube.condition("ward", "Paused") == ("False", "NotPaused")
    assert world.kube.condition("ward", "Ready") == ("True", "AllReplicasReady")
    assert world.kube.reasons()[-2:] == ["Resumed", "AllReplicasReady"]


def test_a_deleted_simulation_loses_its_metric_series(world: World) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    world.kube.apply("clinic", {"customers": 10, "replicas": 1})
    assert world.reconciler.reconcile_all() == 0
    assert world.metric("heartbeat_operator_simulations") == 2
    del world.kube.simulations[(NS, "ward")]
    world.reconciler.reconcile_all()
    assert world.metric("heartbeat_operator_simulations") == 1
    assert (
        world.metric("heartbeat_operator_desired_replicas", namespace=NS, simulation="ward") is None
    )
    assert (
        world.metric("heartbeat_operator_desired_replicas", namespace=NS, simulation="clinic") == 1
    )


def test_an_api_failure_is_counted_and_raised_for_a_retry(world: World) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    world.kube.failing = "create_statefulset"
    with pytest.raises(KubeError):
        world.reconcile()
    assert world.metric("heartbeat_operator_reconcile_total", result="error") == 1
    assert world.kube.status("ward") == {}
    world.kube.failing = None
    assert world.reconcile() == "ok"


WEBHOOK = 'admission webhook "policy.example" denied the request: image not signed'


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (422, 'StatefulSet.apps "ward" is invalid: spec.template.spec.containers[0].image'),
        (403, WEBHOOK),
        (400, "the request body is not a StatefulSet"),
    ],
)
@pytest.mark.parametrize("call", ["create_statefulset", "replace_statefulset"])
def test_a_statefulset_the_api_server_refuses_for_good_is_reported_in_the_status(
    world: World, call: str, status: int, message: str
) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    if call == "replace_statefulset":
        world.reconcile()
        world.kube.apply("ward", {"customers": 10, "replicas": 4})
    world.kube.fail(call, status, message)
    assert world.reconcile() == "error"
    ready = next(c for c in world.kube.status("ward")["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "StatefulSetRejected")
    assert message in ready["message"]
    assert world.kube.condition("ward", "Progressing") == ("False", "StatefulSetRejected")
    assert ("Warning", "StatefulSetRejected") in [e[:2] for e in world.kube.events]
    assert world.metric("heartbeat_operator_reconcile_total", result="error") == 1

    world.kube.failing = None
    assert world.reconcile() == "ok"
    assert world.kube.condition("ward", "Ready") == ("False", "RollingOut")


@pytest.mark.parametrize("status", [500, 503, 429, 408, 404])
def test_a_statefulset_write_that_may_work_later_is_raised_for_a_retry(
    world: World, status: int
) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    world.kube.fail("create_statefulset", status, "try again")
    with pytest.raises(KubeError):
        world.reconcile()
    assert world.kube.status("ward") == {}


@pytest.fixture
def held(world: World) -> Iterator[Callable[[], threading.Thread]]:
    """``held()`` starts a reconcile of ward in a thread; returns once it reads the StatefulSet."""
    world.kube.gate = threading.Event()
    started: list[threading.Thread] = []

    def start() -> threading.Thread:
        thread = threading.Thread(target=world.reconcile, daemon=True)
        thread.start()
        started.append(thread)
        assert world.kube.waiting.wait(5)
        return thread

    yield start
    world.kube.gate.set()
    for thread in started:
        thread.join(10)


def in_thread(call: Callable[[], str]) -> tuple[threading.Thread, list[str]]:
    results: list[str] = []
    thread = threading.Thread(target=lambda: results.append(call()), daemon=True)
    thread.start()
    thread.join(2)
    return thread, results


def test_a_reconcile_of_a_simulation_being_reconciled_returns_at_once_and_is_not_lost(
    world: World, held: Callable[[], threading.Thread]
) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    running = held()
    world.kube.apply("ward", {"customers": 10, "replicas": 4})  # while the first one reads
    second, results = in_thread(world.reconcile)
    assert not second.is_alive(), "the second reconcile waited for the first"
    assert results == ["skipped"]
    assert world.kube.gate is not None
    world.kube.gate.set()
    running.join(10)
    assert world.sts()["spec"]["replicas"] == 4, "the running reconcile went round again"
    assert world.kube.most_reading == 1


def test_forgetting_a_simulation_being_reconciled_never_lets_another_run_beside_it(
    world: World, held: Callable[[], threading.Thread]
) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    held()
    del world.kube.simulations[(NS, "ward")]
    world.reconciler.reconcile_all()  # forgets ward, whose reconcile is still running
    world.kube.apply("ward", {"customers": 10, "replicas": 3})  # and ward comes back
    third, _ = in_thread(world.reconcile)
    assert world.kube.most_reading == 1
    assert not third.is_alive()


def test_the_resync_counts_failures_and_goes_on_with_the_others(world: World) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    world.kube.apply("clinic", {"customers": 10, "replicas": 1})
    world.kube.failing = "create_statefulset"
    assert world.reconciler.reconcile_all() == 2
    world.kube.failing = None
    assert world.reconciler.reconcile_all() == 0
    assert {name for _, name in world.kube.statefulsets} == {"ward", "clinic"}


def test_a_write_conflict_is_retried_at_once_with_a_fresh_read(world: World) -> None:
    world.kube.apply("ward", {"customers": 10, "replicas": 3})
    world.reconcile()
    world.kube.apply("ward", {"customers": 10, "replicas": 4})
    world.kube.conflicts = 2
    assert world.reconcile() == "ok"
    assert world.sts()["spec"]["replicas"] == 4
    assert world.metric("heartbeat_operator_reconcile_total", result="error") == 0

    world.kube.apply("ward", {"customers": 10, "replicas": 5})
    world.kube.conflicts = 3
    with pytest.raises(KubeError):
        world.reconcile()
    assert world.metric("heartbeat_operator_reconcile_total", result="error") == 1
