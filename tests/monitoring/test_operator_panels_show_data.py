"""The Operator dashboard and the operator's alerts, run against a real Prometheus scraping a
real ``heartbeat operator`` on the local Kubernetes control plane.

Every PromQL panel query must return series, and the panels a person reads first must say
what the cluster holds: three simulations, one Ready, one paused, one not Ready. Every
operator alert expression must evaluate and, with its threshold removed, see its series;
with the threshold, HeartbeatSimulationNotReady must pick exactly the simulation that is
neither Ready nor paused.
"""

from __future__ import annotations

import pytest

from heartbeat_localstack.prometheus import PrometheusQueryError
from tests.monitoring.operator_world import SIMULATIONS, Operated
from tests.monitoring.queries import (
    OPERATOR_RULE_GROUPS,
    PanelQuery,
    expand_promql,
    operator_alert_rules,
    operator_panel_queries,
    without_thresholds,
)
from tests.monitoring.world import GRAFANA_INTERVALS
from tests.support.kube import ON_THE_CLUSTER

pytestmark = ON_THE_CLUSTER


def _panel(title: str) -> list[PanelQuery]:
    found = [query for query in operator_panel_queries() if query.panel == title]
    assert found, f"no panel {title!r} on the operator dashboard"
    return found


def _shown(world: Operated, title: str) -> float:
    """What a stat panel with one query shows now."""
    (query,) = _panel(title)
    (item,) = world.prometheus.query(expand_promql(query.text, GRAFANA_INTERVALS))
    return float(item["value"][1])


def _per_simulation(world: Operated, query: PanelQuery) -> dict[str, float]:
    return world.by_simulation(expand_promql(query.text, GRAFANA_INTERVALS))


def test_every_operator_panel_query_returns_series_from_the_running_operator(operated):
    queries = [q for q in operator_panel_queries() if q.datasource == "prometheus"]
    assert len(queries) >= 10
    empty = []
    for query in queries:
        if not operated.prometheus.query(expand_promql(query.text, GRAFANA_INTERVALS)):
            empty.append(f"{query}: {query.text}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_the_stats_count_three_simulations_one_ready_one_paused_one_not_ready(operated):
    shown = {
        title: _shown(operated, title)
        for title in ("Simulations", "Ready", "Paused", "Not ready", "Operator up")
    }
    assert shown == {
        "Simulations": 3,
        "Ready": 1,
        "Paused": 1,
        "Not ready": 1,
        "Operator up": 1,
    }


def test_desired_and_ready_generator_replicas_are_shown_per_simulation(operated):
    desired, ready = _panel("Generator replicas: desired and ready")
    expected = {name: float(simulated.desired) for name, simulated in SIMULATIONS.items()}
    assert _per_simulation(operated, desired) == expected
    assert _per_simulation(operated, ready) == expected, "kwok makes every generator pod ready"
    (missing,) = _panel("Generator replicas not ready")
    assert _per_simulation(operated, missing) == dict.fromkeys(SIMULATIONS, 0.0)


def test_the_ready_timeline_shows_each_simulation_s_ready_condition(operated):
    (query,) = _panel("Ready over time")
    assert _per_simulation(operated, query) == {
        name: float(simulated.ready) for name, simulated in SIMULATIONS.items()
    }
    (others,) = _panel("Progressing and paused over time")
    shown = operated.prometheus.query(expand_promql(others.text, GRAFANA_INTERVALS))
    paused = {i["metric"]["simulation"] for i in shown if i["metric"]["type"] == "Paused"}
    assert paused == set(SIMULATIONS)
    assert {i["metric"]["type"] for i in shown} == {"Progressing", "Paused"}


def test_reconciliations_show_ok_and_invalid_and_no_error(operated):
    (query,) = _panel("Reconciliations by result")
    rates = {
        item["metric"]["result"]: float(item["value"][1])
        for item in operated.prometheus.query(expand_promql(query.text, GRAFANA_INTERVALS))
    }
    assert set(rates) == {"ok", "invalid", "error"}, "each result's series exists at zero"
    assert rates["ok"] > 0
    assert rates["invalid"] > 0, "crowd's spec problem is reported at every resync"
    assert rates["error"] == 0


def test_every_operator_alert_expression_evaluates_and_sees_its_series_without_the_threshold(
    operated,
):
    rules = operator_alert_rules()
    assert {rule["alert"] for rule in rules} >= {
        "HeartbeatSimulationNotReady",
        "HeartbeatOperatorReconcileErrors",
    }
    blind = []
    for rule in rules:
        try:
            operated.prometheus.query(rule["expr"])
        except PrometheusQueryError as error:
            pytest.fail(f"{rule['alert']} does not evaluate: {error}")
        for side in without_thresholds(rule["expr"]):
            if not operated.prometheus.query(side):
                blind.append(f"{rule['alert']}: {side}")
    assert not blind, "alert expressions that see no series:\n" + "\n".join(blind)


def test_only_the_simulation_neither_ready_nor_paused_meets_the_not_ready_alert(operated):
    rules = {rule["alert"]: rule["expr"] for rule in operator_alert_rules()}
    met = operated.prometheus.query(rules["HeartbeatSimulationNotReady"])
    assert [(i["metric"]["namespace"], i["metric"]["simulation"]) for i in met] == [
        (operated.namespace, "crowd")
    ]
    assert operated.prometheus.query(rules["HeartbeatOperatorReconcileErrors"]) == []


def test_prometheus_evaluates_the_operator_rules_without_error(operated):
    groups = {g["name"]: g for g in operated.prometheus.rule_groups()}
    assert set(groups) >= OPERATOR_RULE_GROUPS
    for name in OPERATOR_RULE_GROUPS:
        for rule in groups[name]["rules"]:
            assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
            assert not rule["lastEvaluation"].startswith("0001"), f"{rule['name']} not evaluated"
