"""Operator: the HeartbeatSimulations it serves, their generator replicas and conditions.

Every query reads the metrics of ``operator/heartbeat_operator/metrics.py``; the
monitoring tests run each one against a real Prometheus scraping a real ``heartbeat
operator`` on a local Kubernetes control plane. Per-simulation series carry the
``namespace`` and ``simulation`` labels; ``max by`` keeps one series per simulation
while an old and a new operator process briefly overlap.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from heartbeat_dashboards.datasources import PROMETHEUS, promql
from heartbeat_dashboards.panels import Panel, stat, state_timeline, timeseries

UID = "heartbeat-operator"
SIMULATION = "namespace, simulation"
LEGEND = "{{namespace}}/{{simulation}}"


def _per_simulation(metric: str, selector: str = "") -> str:
    return f"max by ({SIMULATION}) ({metric}{selector})"


READY = _per_simulation("heartbeat_operator_condition", '{type="Ready"}')
PAUSED = _per_simulation("heartbeat_operator_condition", '{type="Paused"}')
# Neither Ready nor deliberately paused; the alert HeartbeatSimulationNotReady reads the same.
NOT_READY = f"{READY} == 0 unless {PAUSED} == 1"


def simulations() -> list[Panel]:
    return [
        stat(
            "Simulations",
            "HeartbeatSimulations the operator serves, in the namespaces it watches.",
            PROMETHEUS,
            [promql("A", "max(heartbeat_operator_simulations)", "simulations")],
        ),
        stat(
            "Ready",
            "Simulations whose Ready condition is True: every generator pod ready at the "
            "current spec.",
            PROMETHEUS,
            [promql("A", f"sum({READY})", "ready")],
        ),
        stat(
            "Paused",
            "Simulations with spec.paused set: their generators are scaled to zero.",
            PROMETHEUS,
            [promql("A", f"sum({PAUSED})", "paused")],
            steps=((None, "blue"),),
        ),
        stat(
            "Not ready",
            "Simulations neither Ready nor paused: rolling out, pods not ready, or a spec "
            "problem (the Ready condition's reason says which: kubectl get "
            "heartbeatsimulations). The alert HeartbeatSimulationNotReady fires after 10 "
            "minutes.",
            PROMETHEUS,
            [promql("A", f"count({NOT_READY}) or vector(0)", "not ready")],
            steps=((None, "green"), (1, "orange")),
        ),
    ]


def replicas() -> list[Panel]:
    desired = _per_simulation("heartbeat_operator_desired_replicas")
    ready = _per_simulation("heartbeat_operator_ready_replicas")
    return [
        timeseries(
            "Generator replicas: desired and ready",
            "Generator pods the operator asks each simulation's StatefulSet for (0 while "
            "paused), and how many of them are ready.",
            PROMETHEUS,
            [
                promql("A", desired, f"{LEGEND} desired"),
                promql("B", ready, f"{LEGEND} ready"),
            ],
            unit="short",
        ),
        timeseries(
            "Generator replicas not ready",
            "Desired minus ready generator pods, per simulation: above zero during a "
            "rollout, and for as long as pods cannot start.",
            PROMETHEUS,
            [promql("A", f"{desired} - {ready}", LEGEND)],
            unit="short",
            threshold_lines=((None, "green"), (1, "orange")),
        ),
    ]


def conditions() -> list[Panel]:
    return [
        state_timeline(
            "Ready over time",
            "Each simulation's Ready condition over time.",
            PROMETHEUS,
            [promql("A", READY, LEGEND)],
            states={0: ("Not ready", "red"), 1: ("Ready", "green")},
        ),
        state_timeline(
            "Progressing and paused over time",
            "The other conditions of each simulation: Progressing is True while a rollout "
            "runs, Paused while spec.paused is set.",
            PROMETHEUS,
            [
                promql(
                    "A",
                    f'max by ({SIMULATION}, type) (heartbeat_operator_condition{{type!="Ready"}})',
                    f"{LEGEND} {{{{type}}}}",
                )
            ],
            states={0: ("False", "text"), 1: ("True", "blue")},
        ),
    ]


def reconciliation() -> list[Panel]:
    return [
        timeseries(
            "Reconciliations by result",
            "Reconciliations per second: ok; invalid (a spec problem, reported on the "
            "simulation's Ready condition); error (the Kubernetes API failed; retried at the "
            "next resync). The alert HeartbeatOperatorReconcileErrors fires on errors lasting "
            "10 minutes.",
            PROMETHEUS,
            [
                promql(
                    "A",
                    "sum by (result) (rate(heartbeat_operator_reconcile_total[$__rate_interval]))",
                    "{{result}}",
                )
            ],
            unit="ops",
        ),
        stat(
            "Drift repaired",
            "StatefulSets put back in the time range after someone else changed or deleted them.",
            PROMETHEUS,
            [
                promql(
                    "A",
                    "sum(increase(heartbeat_operator_drift_repaired_total[$__range]))",
                    "repaired",
                )
            ],
            height=8,
            steps=((None, "green"), (1, "orange")),
        ),
        stat(
            "Operator up",
            "Operator processes Prometheus scrapes; the chart runs exactly one.",
            PROMETHEUS,
            [
                promql(
                    "A",
                    'count(heartbeat_build_info{component="operator"}) or vector(0)',
                    "operators",
                )
            ],
            height=8,
            steps=((None, "red"), (1, "green")),
        ),
    ]


def build() -> Dashboard:
    dashboard = (
        Dashboard("Heartbeat operator")
        .uid(UID)
        .description(
            "HeartbeatSimulations the operator serves: desired and ready generator replicas, "
            "Ready, Progressing and Paused conditions, reconciliations and repairs."
        )
        .tags(["heartbeat"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
    )
    sections = {
        "Simulations": simulations(),
        "Generator replicas": replicas(),
        "Conditions": conditions(),
        "Reconciliation": reconciliation(),
    }
    for title, panels in sections.items():
        dashboard = dashboard.with_row(Row(title))
        for panel in panels:
            dashboard = dashboard.with_panel(panel)
    return dashboard
