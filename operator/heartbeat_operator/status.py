"""What a HeartbeatSimulation's status says: observed from the StatefulSet and its pods.

Pure functions. The status reports what is running, never a copy of the spec:
``replicas`` and ``readyReplicas`` come from the StatefulSet's status, and ``customers``
counts the customers the *ready* pods simulate, read from each pod's own environment and
ordinal (during a rollout, old and new pods can cover more or fewer customers than the
spec asks). Conditions follow Kubernetes' convention (``type``, ``status``, CamelCase
``reason``, ``message``, ``lastTransitionTime`` that changes only when ``status`` flips,
``observedGeneration``), so ``kubectl wait --for=condition=Ready`` works.

A generator pod that cannot run says why in the Ready condition, as ``kubectl get pods``
would: crash-looping (it keeps exiting: Kafka refuses to create its topic, say), its image
not pulled, its container not created (a missing Secret or key), no node for it, or running
but not ready for a minute (a generator's one readiness check is Kafka: an unreachable Kafka
is waited for, never a reason to exit); the message names the pods.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from heartbeat.generator import customer_slice
from heartbeat_operator.spec import Problem, SimulationSpec

READY, PROGRESSING, PAUSED = "Ready", "Progressing", "Paused"
CONDITION_TYPES = (READY, PROGRESSING, PAUSED)

# Reasons of the Ready condition when generator pods cannot run, in order of precedence
# when pods fail differently: what a person has to fix first comes first.
CONFIG_ERROR = "GeneratorConfigError"
IMAGE_NOT_PULLED = "GeneratorImageNotPulled"
CRASH_LOOPING = "GeneratorCrashLooping"
UNSCHEDULABLE = "GeneratorUnschedulable"
NOT_READY = "GeneratorNotReady"
FAILURE_REASONS = (CONFIG_ERROR, IMAGE_NOT_PULLED, CRASH_LOOPING, UNSCHEDULABLE, NOT_READY)
#: How long a running generator may be not ready before it counts as failing: well past its
#: readiness probe's first checks (after 5 s, then every 5 s) and a first answer of Kafka,
#: so that a pod starting or a broker restarting never turns the simulation Warning.
NOT_READY_AFTER = timedelta(seconds=60)
# A container's waiting reason (the kubelet's) and what it means for a generator pod.
WAITING = {
    "CreateContainerConfigError": CONFIG_ERROR,
    "CreateContainerError": CONFIG_ERROR,
    "InvalidImageName": IMAGE_NOT_PULLED,
    "ErrImagePull": IMAGE_NOT_PULLED,
    "ImagePullBackOff": IMAGE_NOT_PULLED,
    "CrashLoopBackOff": CRASH_LOOPING,
}
DETAIL_CHARS = 200  # of the kubelet's or scheduler's message, per pod
SHOWN_PODS = 3


@dataclass(frozen=True)
class PodFailure:
    """A generator pod that cannot run: its name, a condition reason, and why."""

    pod: str
    reason: str
    detail: str


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
    failures: tuple[PodFailure, ...] = ()

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


def observe(
    statefulset: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    now: datetime | None = None,
) -> Workload:
    """The workload from the StatefulSet (None when absent) and the pods it selects.

    ``now`` (the operator's clock) tells how long a running pod has been not ready; without
    it, no pod counts as failing for that.
    """
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
        failures=pod_failures(pods, now),
    )


def pod_failures(
    pods: Iterable[Mapping[str, Any]], now: datetime | None = None
) -> tuple[PodFailure, ...]:
    """The pods that cannot run, the most pressing reason first, then by ordinal."""
    found = [failure for pod in pods if (failure := pod_failure(pod, now)) is not None]
    return tuple(sorted(found, key=lambda f: (FAILURE_REASONS.index(f.reason), _ordinal(f.pod))))


def pod_failure(pod: Mapping[str, Any], now: datetime | None = None) -> PodFailure | None:
    """Why a generator pod cannot run, or None while it runs, starts or is going away.

    Read from what the kubelet and the scheduler report: a container waiting for a
    reason that does not pass by itself, a pod no node can take, or (given ``now``) a
    container running but not ready for ``NOT_READY_AFTER``.
    """
    meta = pod.get("metadata", {})
    if meta.get("deletionTimestamp"):
        return None
    name = str(meta.get("name", "?"))
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = WAITING.get(str(waiting.get("reason")))
        if reason == CRASH_LOOPING:
            return PodFailure(name, reason, _crash_detail(container))
        if reason is not None:
            said = _short(waiting.get("message")) or str(waiting["reason"])
            return PodFailure(name, reason, f"{waiting['reason']}: {said}")
    for condition in status.get("conditions") or []:
        if (condition.get("type"), condition.get("status"), condition.get("reason")) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        ):
            said = _short(condition.get("message")) or "no node fits"
            return PodFailure(name, UNSCHEDULABLE, f"not scheduled: {said}")
    since = not_ready_since(pod)
    if now is not None and since is not None and now - since >= NOT_READY_AFTER:
        return PodFailure(name, NOT_READY, _not_ready_detail(pod, since))
    return None


def not_ready_since(pod: Mapping[str, Any]) -> datetime | None:
    """Since when the generator container has been running without being ready, or None.

    The later of the container's start and the pod's turn to not ready: a pod that was
    ready and stopped being so (Kafka gone away) counts from then, a restarted container
    from its restart.
    """
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    if not containers or containers[0].get("ready"):
        return None
    running = (containers[0].get("state") or {}).get("running") or {}
    if "startedAt" not in running:
        return None
    times = [running["startedAt"]] + [
        c.get("lastTransitionTime")
        for c in status.get("conditions") or []
        if c.get("type") == "Ready" and c.get("status") == "False"
    ]
    try:
        return max(_instant(str(t)) for t in times if t)
    except ValueError:
        return None


def _instant(text: str) -> datetime:
    """An RFC 3339 instant of the API server (``2026-01-02T03:04:05Z``)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _not_ready_detail(pod: Mapping[str, Any], since: datetime) -> str:
    """Since when, and what a generator's readiness means: Kafka answers it (``/readyz``).

    An instant rather than a duration, so the message stays the same from one
    reconciliation to the next.
    """
    kafka = pod_env(pod).get("KAFKA_BOOTSTRAP_SERVERS")
    check = f"Kafka at {kafka}" if kafka else "Kafka"
    stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"running, not ready since {stamp}: its readiness check, {check}, fails"


def _crash_detail(container: Mapping[str, Any]) -> str:
    restarts = int(container.get("restartCount") or 0)
    detail = f"crash-looping, restarted {restarts} time{'s' if restarts != 1 else ''}"
    last = (container.get("lastState") or {}).get("terminated") or {}
    if "exitCode" in last:
        detail += f", last exit code {last['exitCode']}"
        if last.get("reason"):
            detail += f" ({last['reason']})"
    return detail


def _short(text: object) -> str:
    said = " ".join(str(text or "").split())
    return said if len(said) <= DETAIL_CHARS else said[: DETAIL_CHARS - 3] + "..."


def _ordinal(pod: str) -> int:
    tail = pod.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def failures_message(failures: Sequence[PodFailure]) -> str:
    """``generator pod sim-1 is failing: crash-looping, ...``, naming up to three pods."""
    shown = "; ".join(f"{f.pod}: {f.detail}" for f in failures[:SHOWN_PODS])
    more = len(failures) - SHOWN_PODS
    if more > 0:
        shown += f"; and {more} more"
    return f"generator pod{'s' if len(failures) != 1 else ''} failing: {shown}"


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
    env = pod_env(pod)
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


def pod_env(pod: Mapping[str, Any]) -> dict[str, str | None]:
    """The generator container's literal environment (values from Secrets are None)."""
    containers = pod.get("spec", {}).get("containers") or []
    return {
        item["name"]: item.get("value")
        for container in containers[:1]
        for item in container.get("env") or []
    }


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
    if workload.failures:
        message = f"{failures_message(workload.failures)} ({workload.summary})"
        return Condition(READY, False, workload.failures[0].reason, message)
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
