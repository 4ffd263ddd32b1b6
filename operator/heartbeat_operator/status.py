"""What a HeartbeatSimulation's status says: observed from the StatefulSet and its pods.

Pure functions. The status reports what is running, never a copy of the spec:
``replicas`` and ``readyReplicas`` come from the StatefulSet's status, and ``customers``
counts the customers the *ready* pods simulate, read from each pod's own environment and
ordinal (during a rollout, old and new pods can cover more or fewer customers than the
spec asks). Conditions follow Kubernetes' convention (``type``, ``status``, CamelCase
``reason``, ``message``, ``lastTransitionTime`` that changes only when ``status`` flips,
``observedGeneration``), so ``kubectl wait --for=condition=Ready`` works.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from heartbeat.generator import customer_slice
from heartbeat_operator.spec import Problem, SimulationSpec

READY, PROGRESSING, PAUSED = "Ready", "Progressing", "Paused"
CONDITION_TYPES = (READY, PROGRESSING, PAUSED)


@dataclass(frozen=True)
class Workload:
    """The StatefulSet as observed: absent, rolling out, or settled.

    ``settled`` means the StatefulSet controller has seen the latest spec and every pod
    runs the current template; only then can missing readiness be blamed on the pods.
    """

    exists: bool
    desired: int = 0
    replicas: int = 0
    ready: int = 0
    updated: int = 0
    settled: bool = False
    customers: int = 0

    @property
    def rolled_out(self) -> bool:
        return self.settled and self.ready == self.desired

    @property
    def summary(self) -> str:
        return (
            f"{self.ready} of {self.desired} replicas ready, {self.updated} at the current "
            f"spec, simulating {self.customers} customers"
        )


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str


def observe(statefulset: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]]) -> Workload:
    """The workload from the StatefulSet (None when absent) and the pods it selects."""
    if statefulset is None:
        return Workload(exists=False)
    meta = statefulset.get("metadata", {})
    status = statefulset.get("status") or {}
    desired = int(statefulset.get("spec", {}).get("replicas", 1))
    replicas = int(status.get("replicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    seen = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    same_revision = status.get("currentRevision") == status.get("updateRevision")
    settled = (
        seen and replicas == desired and (desired == 0 or (updated == desired and same_revision))
    )
    return Workload(
        exists=True,
        desired=desired,
        replicas=replicas,
        ready=ready,
        updated=updated,
        settled=settled,
        customers=simulated_customers(pods),
    )


def simulated_customers(pods: Iterable[Mapping[str, Any]]) -> int:
    """Distinct customers the ready pods simulate, each by its own env and ordinal."""
    ranges = sorted(
        (r.start, r.stop) for pod in pods if is_ready(pod) and (r := pod_slice(pod)) is not None
    )
    total, reach = 0, None
    for start, stop in ranges:
        if reach is None or start > reach:
            total += stop - start
            reach = stop
        elif stop > reach:
            total += stop - reach
            reach = stop
    return total


def is_ready(pod: Mapping[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_slice(pod: Mapping[str, Any]) -> range | None:
    """The customers a generator pod simulates, or None if it does not say."""
    containers = pod.get("spec", {}).get("containers") or []
    env = {
        item["name"]: item.get("value")
        for container in containers[:1]
        for item in container.get("env") or []
    }
    ordinal = str(pod.get("metadata", {}).get("name", "")).rsplit("-", 1)[-1]
    try:
        return customer_slice(
            int(env["PRODUCER_CUSTOMERS"] or ""),
            int(env.get("PRODUCER_SHARD_COUNT") or 1),
            int(ordinal),
            int(env.get("PRODUCER_FIRST_CUSTOMER") or 1),
        )
    except (KeyError, ValueError):
        return None


def assess(
    spec: SimulationSpec | None, problem: Problem | None, workload: Workload
) -> list[Condition]:
    """The Ready, Progressing and Paused conditions, in that order."""
    return [_ready(spec, problem, workload), _progressing(problem, workload), _paused(spec)]


def _ready(spec: SimulationSpec | None, problem: Problem | None, workload: Workload) -> Condition:
    if problem is not None:
        return Condition(READY, False, problem.reason, problem.message)
    if spec is not None and spec.paused:
        return Condition(READY, False, "Paused", "spec.paused is true; no generator runs")
    if not workload.exists:
        return Condition(READY, False, "Creating", "the generator StatefulSet is being created")
    if not workload.rolled_out:
        reason = "ReplicasNotReady" if workload.settled else "RollingOut"
        return Condition(READY, False, reason, workload.summary)
    return Condition(READY, True, "AllReplicasReady", workload.summary)


def _progressing(problem: Problem | None, workload: Workload) -> Condition:
    if problem is not None and problem.blocking:
        return Condition(PROGRESSING, False, problem.reason, "nothing is rolled out until fixed")
    if not workload.exists:
        return Condition(PROGRESSING, True, "Creating", "creating the generator StatefulSet")
    if not workload.rolled_out:
        return Condition(PROGRESSING, True, "RollingOut", workload.summary)
    return Condition(
        PROGRESSING, False, "RolloutComplete", f"{workload.desired} replicas at the current spec"
    )


def _paused(spec: SimulationSpec | None) -> Condition:
    if spec is not None and spec.paused:
        return Condition(PAUSED, True, "Paused", "spec.paused is true; generators scaled to zero")
    return Condition(PAUSED, False, "NotPaused", "spec.paused is false")


def merge_conditions(
    previous: Sequence[Mapping[str, Any]],
    current: Sequence[Condition],
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Conditions as stored: ``lastTransitionTime`` moves only when ``status`` flips."""
    before = {c.get("type"): c for c in previous}
    merged = []
    for condition in current:
        status = "True" if condition.status else "False"
        old = before.get(condition.type)
        since = (
            old.get("lastTransitionTime")
            if old is not None and old.get("status") == status and old.get("lastTransitionTime")
            else now.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        merged.append(
            {
                "type": condition.type,
                "status": status,
                "reason": condition.reason,
                "message": condition.message,
                "lastTransitionTime": since,
                "observedGeneration": generation,
            }
        )
    return merged


def changed_conditions(
    previous: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """Conditions whose status or reason differ from before: what deserves an Event."""
    before = {c.get("type"): (c.get("status"), c.get("reason")) for c in previous}
    return [c for c in current if before.get(c["type"]) != (c["status"], c["reason"])]


def build_status(
    *, generation: int, workload: Workload, conditions: list[dict[str, Any]], selector: str
) -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "replicas": workload.replicas,
        "readyReplicas": workload.ready,
        "customers": workload.customers,
        "selector": selector,
        "conditions": conditions,
    }
