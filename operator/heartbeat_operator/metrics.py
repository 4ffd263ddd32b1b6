"""Prometheus metrics of the operator, served with ``/healthz`` and ``/readyz``.

Labels are bounded: one series per simulation (``namespace``, ``simulation``), removed
when the simulation is gone; results and condition types are known in advance and
created at zero.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge

from heartbeat.metrics import register_build_info
from heartbeat_operator.status import CONDITION_TYPES

RESULTS = ("ok", "invalid", "error")


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        register_build_info(registry, "operator")
        self.simulations = Gauge(
            "heartbeat_operator_simulations",
            "HeartbeatSimulations the operator serves.",
            registry=registry,
        )
        self.desired_replicas = Gauge(
            "heartbeat_operator_desired_replicas",
            "Generator pods the simulation's StatefulSet asks for (its spec.replicas; "
            "0 while paused, or with no StatefulSet of its own).",
            ["namespace", "simulation"],
            registry=registry,
        )
        self.ready_replicas = Gauge(
            "heartbeat_operator_ready_replicas",
            "Generator pods of the simulation that are ready.",
            ["namespace", "simulation"],
            registry=registry,
        )
        self.condition = Gauge(
            "heartbeat_operator_condition",
            "1 while the simulation's condition of this type is True, else 0.",
            ["namespace", "simulation", "type"],
            registry=registry,
        )
        self.reconciles = Counter(
            "heartbeat_operator_reconcile_total",
            "Reconciliations by result: ok, invalid (a spec problem was reported), error "
            "(an API call failed, or the StatefulSet was refused).",
            ["result"],
            registry=registry,
        )
        self.drift_repaired = Counter(
            "heartbeat_operator_drift_repaired_total",
            "StatefulSets put back after someone else changed or deleted them.",
            registry=registry,
        )
        for result in RESULTS:
            self.reconciles.labels(result)

    def observe(
        self,
        namespace: str,
        name: str,
        *,
        desired: int,
        ready: int,
        conditions: dict[str, bool],
    ) -> None:
        self.desired_replicas.labels(namespace, name).set(desired)
        self.ready_replicas.labels(namespace, name).set(ready)
        for kind in CONDITION_TYPES:
            self.condition.labels(namespace, name, kind).set(1 if conditions.get(kind) else 0)

    def forget(self, namespace: str, name: str) -> None:
        """Drop the series of a simulation that no longer exists."""
        for gauge in (self.desired_replicas, self.ready_replicas):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)
        for kind in CONDITION_TYPES:
            with contextlib.suppress(KeyError):
                self.condition.remove(namespace, name, kind)
