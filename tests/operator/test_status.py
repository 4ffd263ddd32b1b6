"""The status: observed from the StatefulSet and its pods, conditions by the convention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from heartbeat_operator.spec import Problem, parse_spec
from heartbeat_operator.status import (
    PodFailure,
    Workload,
    assess,
    build_status,
    changed_conditions,
    failures_message,
    merge_conditions,
    observe,
    pod_failure,
    pod_failures,
    simulated_customers,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = datetime(2026, 1, 2, 3, 9, 0, tzinfo=UTC)


def pod(
    ordinal: int,
    customers: int,
    shards: int,
    *,
    ready: bool = True,
    first: int = 1,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"sim-{ordinal}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T03:04:05Z"
    return {
        "metadata": meta,
        "spec": {
            "containers": [
                {
                    "name": "generator",
                    "env": [
                        {"name": "KAFKA_TOPIC", "value": "t"},
                        {"name": "PRODUCER_CUSTOMERS", "value": str(customers)},
                        {"name": "PRODUCER_FIRST_CUSTOMER", "value": str(first)},
                        {"name": "PRODUCER_SHARD_COUNT", "value": str(shards)},
                    ],
                }
            ]
        },
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def sts(
    desired: int, *, ready: int, updated: int | None = None, same_revision: bool = True
) -> dict[str, Any]:
    return {
        "metadata": {"generation": 4},
        "spec": {"replicas": desired},
        "status": {
            "observedGeneration": 4,
            "replicas": desired,
            "readyReplicas": ready,
            "updatedReplicas": desired if updated is None else updated,
            "currentRevision": "sim-1",
            "updateRevision": "sim-1" if same_revision else "sim-2",
        },
    }


@pytest.mark.parametrize(
    ("pods", "customers"),
    [
        ([], 0),
        ([pod(0, 10, 2), pod(1, 10, 2)], 10),
        ([pod(0, 10, 2), pod(1, 10, 2, ready=False)], 5),
        ([pod(0, 10, 2), pod(1, 10, 2, deleting=True)], 5),
        # mid-rollout from 2 to 3 replicas: old pod 0 has 1-5, new pod 2 has 8-10
        ([pod(0, 10, 2), pod(2, 10, 3)], 8),
        # old pods of a bigger simulation still run: they count, it is what runs
        ([pod(0, 20, 1), pod(0, 10, 1)], 20),
        ([pod(0, 10, 1, first=100), pod(0, 10, 1, first=1)], 20),
        ([{"metadata": {"name": "stranger-0"}, "spec": {"containers": []}}], 0),
    ],
)
def test_customers_are_counted_from_what_the_ready_pods_simulate(
    pods: list[dict[str, Any]], customers: int
) -> None:
    assert simulated_customers(pods) == customers


def test_a_settled_statefulset_is_rolled_out() -> None:
    workload = observe(sts(2, ready=2), [pod(0, 10, 2), pod(1, 10, 2)])
    assert workload == Workload(
        exists=True, desired=2, replicas=2, ready=2, updated=2, settled=True, customers=10
    )
    assert workload.rolled_out


@pytest.mark.parametrize(
    "statefulset",
    [
        sts(3, ready=2),
        sts(3, ready=3, updated=1),
        sts(3, ready=3, same_revision=False),
        {**sts(3, ready=3), "metadata": {"generation": 5}},
    ],
)
def test_a_statefulset_still_moving_is_not_rolled_out(statefulset: dict[str, Any]) -> None:
    assert not observe(statefulset, []).rolled_out


def test_a_statefulset_scaled_to_zero_is_rolled_out_without_revisions() -> None:
    statefulset = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 0},
        "status": {
            "observedGeneration": 2,
            "replicas": 0,
            "currentRevision": "a",
            "updateRevision": "b",
        },
    }
    assert observe(statefulset, []).rolled_out


SETTLED = Workload(
    exists=True, desired=3, replicas=3, ready=3, updated=3, settled=True, customers=10
)
MOVING = Workload(exists=True, desired=3, replicas=3, ready=1, updated=1, customers=4)
STARTING = Workload(
    exists=True, desired=3, replicas=3, ready=1, updated=3, settled=True, customers=4
)
PAUSED = Workload(exists=True, desired=0, replicas=0, settled=True)
ABSENT = Workload(exists=False)
TOO_MANY = Problem("TooManyReplicas", "too many", blocking=False)
INVALID = Problem("InvalidSpec", "spec.customers: missing", blocking=True)


@pytest.mark.parametrize(
    ("spec", "problem", "workload", "expected"),
    [
        (
            {},
            None,
            SETTLED,
            [("True", "AllReplicasReady"), ("False", "RolloutComplete"), ("False", "NotPaused")],
        ),
        (
            {},
            None,
            MOVING,
            [("False", "RollingOut"), ("True", "RollingOut"), ("False", "NotPaused")],
        ),
        (
            {},
            None,
            STARTING,
            [("False", "ReplicasNotReady"), ("True", "RollingOut"), ("False", "NotPaused")],
        ),
        ({}, None, ABSENT, [("False", "Creating"), ("True", "Creating"), ("False", "NotPaused")]),
        (
            {"paused": True},
            None,
            PAUSED,
            [("False", "Paused"), ("False", "RolloutComplete"), ("True", "Paused")],
        ),
        (
            {},
            TOO_MANY,
            SETTLED,
            [("False", "TooManyReplicas"), ("False", "RolloutComplete"), ("False", "NotPaused")],
        ),
        (
            None,
            INVALID,
            SETTLED,
            [("False", "InvalidSpec"), ("False", "InvalidSpec"), ("False", "NotPaused")],
        ),
    ],
)
def test_conditions_say_what_runs_and_why_not(
    spec: dict[str, Any] | None,
    problem: Problem | None,
    workload: Workload,
    expected: list[tuple[str, str]],
) -> None:
    parsed = None if spec is None else parse_spec({"customers": 10, "replicas": 3, **spec})
    conditions = assess(parsed, problem, workload)
    assert [c.type for c in conditions] == ["Ready", "Progressing", "Paused"]
    assert [("True" if c.status else "False", c.reason) for c in conditions] == expected
    assert all(c.message for c in conditions)
    assert all(c.reason[0].isupper() and " " not in c.reason for c in conditions)


def test_last_transition_time_moves_only_when_the_status_flips() -> None:
    ready = assess(parse_spec({"customers": 10, "replicas": 3}), None, SETTLED)
    first = merge_conditions([], ready, generation=1, now=T0)
    assert {c["lastTransitionTime"] for c in first} == {"2026-01-02T03:04:05Z"}
    assert {c["observedGeneration"] for c in first} == {1}

    same_status_new_generation = merge_conditions(first, ready, generation=2, now=T1)
    assert [c["lastTransitionTime"] for c in same_status_new_generation] == [
        c["lastTransitionTime"] for c in first
    ]
    assert {c["observedGeneration"] for c in same_status_new_generation} == {2}

    rolling = assess(parse_spec({"customers": 10, "replicas": 3}), None, MOVING)
    flipped = merge_conditions(first, rolling, generation=2, now=T1)
    by_type = {c["type"]: c for c in flipped}
    assert by_type["Ready"]["lastTransitionTime"] == "2026-01-02T03:09:00Z"
    assert by_type["Progressing"]["lastTransitionTime"] == "2026-01-02T03:09:00Z"
    assert by_type["Paused"]["lastTransitionTime"] == "2026-01-02T03:04:05Z"


def test_only_conditions_whose_status_or_reason_changed_deserve_an_event() -> None:
    spec = parse_spec({"customers": 10, "replicas": 3})
    before = merge_conditions([], assess(spec, None, SETTLED), 1, T0)
    assert (
        changed_conditions(before, merge_conditions(before, assess(spec, None, SETTLED), 2, T1))
        == []
    )
    after = merge_conditions(before, assess(spec, TOO_MANY, SETTLED), 2, T1)
    assert [c["type"] for c in changed_conditions(before, after)] == ["Ready"]


def test_the_status_reports_the_workload_not_the_spec() -> None:
    status = build_status(generation=7, workload=MOVING, conditions=[], selector="a=b")
    assert status == {
        "observedGeneration": 7,
        "replicas": 3,
        "readyReplicas": 1,
        "customers": 4,
        "selector": "a=b",
        "conditions": [],
    }


# --- Pods that cannot run --------------------------------------------------------------


def failing_pod(ordinal: int, **status: Any) -> dict[str, Any]:
    found = pod(ordinal, 10, 3, ready=False)
    found["status"].update(status)
    return found


def waiting(
    why: str,
    message: str = "",
    restarts: int = 0,
    exit_code: int | None = None,
    ended: str = "",
) -> dict[str, Any]:
    """A pod status whose container waits for ``why`` (and last ended ``ended``)."""
    container: dict[str, Any] = {
        "name": "generator",
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": why, "message": message}},
    }
    if exit_code is not None:
        container["lastState"] = {"terminated": {"exitCode": exit_code, "reason": ended}}
    return {"containerStatuses": [container]}


UNSCHEDULED = {
    "conditions": [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient memory.",
        }
    ]
}


@pytest.mark.parametrize(
    ("status", "reason", "detail"),
    [
        (
            waiting("CrashLoopBackOff", "back-off 40s", restarts=4, exit_code=1, ended="Error"),
            "GeneratorCrashLooping",
            "crash-looping, restarted 4 times, last exit code 1 (Error)",
        ),
        (
            waiting("CrashLoopBackOff", restarts=1),
            "GeneratorCrashLooping",
            "crash-looping, restarted 1 time",
        ),
        (
            waiting("CreateContainerConfigError", 'secret "kafka-user" not found'),
            "GeneratorConfigError",
            'CreateContainerConfigError: secret "kafka-user" not found',
        ),
        (
            waiting("ImagePullBackOff", 'Back-off pulling image "heartbeat:nope"'),
            "GeneratorImageNotPulled",
            'ImagePullBackOff: Back-off pulling image "heartbeat:nope"',
        ),
        (
            waiting("ErrImagePull"),
            "GeneratorImageNotPulled",
            "ErrImagePull: ErrImagePull",
        ),
        (
            UNSCHEDULED,
            "GeneratorUnschedulable",
            "not scheduled: 0/1 nodes are available: 1 Insufficient memory.",
        ),
    ],
)
def test_a_pod_that_cannot_run_says_why_as_kubectl_would(
    status: dict[str, Any], reason: str, detail: str
) -> None:
    assert pod_failure(failing_pod(1, **status)) == PodFailure("sim-1", reason, detail)


@pytest.mark.parametrize(
    "status",
    [
        waiting("ContainerCreating"),  # starting: passes by itself
        waiting("PodInitializing"),
        {"containerStatuses": [{"name": "generator", "state": {"running": {}}}]},
        {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]},
        {},
    ],
)
def test_a_pod_that_starts_or_runs_is_no_failure(status: dict[str, Any]) -> None:
    assert pod_failure(failing_pod(0, **status)) is None


def test_a_pod_going_away_is_no_failure() -> None:
    going = failing_pod(0, **waiting("CrashLoopBackOff", restarts=9))
    going["metadata"]["deletionTimestamp"] = "2026-01-02T03:04:05Z"
    assert pod_failure(going) is None


def test_the_most_pressing_failure_comes_first_then_the_pods_by_ordinal() -> None:
    pods = [
        failing_pod(10, **waiting("CrashLoopBackOff", restarts=2)),
        failing_pod(2, **waiting("CrashLoopBackOff", restarts=3)),
        failing_pod(5, **waiting("CreateContainerConfigError", "no key")),
        pod(0, 10, 3),
    ]
    assert [(f.pod, f.reason) for f in pod_failures(pods)] == [
        ("sim-5", "GeneratorConfigError"),
        ("sim-2", "GeneratorCrashLooping"),
        ("sim-10", "GeneratorCrashLooping"),
    ]


def test_a_crash_looping_pod_makes_the_simulation_not_ready_naming_the_pod() -> None:
    statefulset = sts(3, ready=2)
    pods = [
        pod(0, 10, 3),
        failing_pod(1, **waiting("CrashLoopBackOff", restarts=5, exit_code=1, ended="Error")),
        pod(2, 10, 3),
    ]
    workload = observe(statefulset, pods)
    ready, progressing, _ = assess(parse_spec({"customers": 10, "replicas": 3}), None, workload)
    assert (ready.status, ready.reason) == (False, "GeneratorCrashLooping")
    assert ready.message.startswith(
        "generator pod failing: sim-1: crash-looping, restarted 5 times, last exit code 1 (Error)"
    )
    assert "2 of 3 replicas ready" in ready.message
    assert (progressing.status, progressing.reason) == (True, "RollingOut")


def test_many_failing_pods_are_named_up_to_three() -> None:
    failures = pod_failures(
        [failing_pod(i, **waiting("CrashLoopBackOff", restarts=1)) for i in range(5)]
    )
    message = failures_message(failures)
    assert message.startswith("generator pods failing: sim-0: ")
    assert "sim-2" in message
    assert "sim-3" not in message
    assert message.endswith("; and 2 more")


def test_a_long_message_of_the_kubelet_is_cut() -> None:
    (failure,) = pod_failures([failing_pod(0, **waiting("CreateContainerError", "x" * 5000))])
    assert len(failure.detail) < 300


def test_the_spec_problem_and_the_pause_come_before_the_pods() -> None:
    workload = observe(sts(3, ready=2), [failing_pod(1, **waiting("CrashLoopBackOff", restarts=5))])
    spec = parse_spec({"customers": 10, "replicas": 3, "paused": True})
    assert assess(spec, None, workload)[0].reason == "Paused"
    assert assess(None, INVALID, workload)[0].reason == "InvalidSpec"


# --- Pods that run and are not ready -----------------------------------------------------

STARTED = "2026-01-02T03:04:05Z"


def running_unready(
    ordinal: int, started: str = STARTED, unready_since: str | None = None, kafka: str = "k:9092"
) -> dict[str, Any]:
    """A generator pod whose container runs and whose readiness probe fails."""
    found = pod(ordinal, 10, 3, ready=False)
    found["spec"]["containers"][0]["env"].append(
        {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": kafka}
    )
    found["status"]["conditions"][0]["lastTransitionTime"] = unready_since or started
    found["status"]["containerStatuses"] = [
        {
            "name": "generator",
            "ready": False,
            "restartCount": 0,
            "started": True,
            "state": {"running": {"startedAt": started}},
        }
    ]
    return found


def test_a_pod_running_not_ready_for_a_minute_fails_naming_its_kafka() -> None:
    assert pod_failure(running_unready(1), T0 + timedelta(seconds=60)) == PodFailure(
        "sim-1",
        "GeneratorNotReady",
        "running, not ready since 2026-01-02T03:04:05Z: its readiness check, "
        "Kafka at k:9092, fails",
    )


@pytest.mark.parametrize(
    ("pod_status", "now"),
    [
        (running_unready(1), T0 + timedelta(seconds=59)),  # starting: a first answer may come
        (running_unready(1), None),  # no clock: not judged
        # ready a long time, not ready for 30 s only (a broker restarting)
        (running_unready(1, unready_since="2026-01-02T03:08:30Z"), T1),
        # restarted 10 s ago, whenever the pod last turned not ready
        (running_unready(1, started="2026-01-02T03:08:50Z"), T1),
        (pod(1, 10, 3), T1),  # ready
    ],
)
def test_a_pod_starting_or_briefly_not_ready_is_no_failure(
    pod_status: dict[str, Any], now: datetime | None
) -> None:
    assert pod_failure(pod_status, now) is None


def test_the_message_of_a_pod_not_ready_stays_the_same_from_one_resync_to_the_next() -> None:
    statefulset, pods = sts(2, ready=1), [pod(0, 10, 2), running_unready(1)]
    spec = parse_spec({"customers": 10, "replicas": 2})
    first = assess(spec, None, observe(statefulset, pods, T0 + timedelta(minutes=2)))[0]
    later = assess(spec, None, observe(statefulset, pods, T0 + timedelta(minutes=30)))[0]
    assert (first.status, first.reason) == (False, "GeneratorNotReady")
    assert first.message == later.message
    assert first.message.startswith("generator pod failing: sim-1: running, not ready since ")
    assert "1 of 2 replicas ready" in first.message


def test_a_crash_loop_comes_before_pods_not_ready() -> None:
    pods = [running_unready(0), failing_pod(1, **waiting("CrashLoopBackOff", restarts=2))]
    assert [f.reason for f in pod_failures(pods, T1)] == [
        "GeneratorCrashLooping",
        "GeneratorNotReady",
    ]
