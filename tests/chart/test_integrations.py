"""Operator RBAC and CRD, metrics Services, monitoring and dashboards."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.support.kube import SIMULATION_CRD

from .helm import CHART, NAMESPACE, Helm
from .manifests import of_kind

pytestmark = pytest.mark.chart


def _rules(role: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    ]


def test_operator_rbac_is_a_role_in_the_release_namespace_by_default(defaults: Any) -> None:
    (role,) = of_kind(defaults, "Role")
    (binding,) = of_kind(defaults, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    (subject,) = binding["subjects"]
    (account,) = [
        a for a in of_kind(defaults, "ServiceAccount") if a["metadata"]["name"] == subject["name"]
    ]
    assert subject["namespace"] == NAMESPACE
    assert account["metadata"]["name"].endswith("-operator")


def test_operator_may_manage_its_resources_and_nothing_else(defaults: Any) -> None:
    (role,) = of_kind(defaults, "Role")
    granted = _rules(role)
    assert not [rule for rule in granted if "*" in rule], "no wildcards"
    resources = {(group, resource) for group, resource, _ in granted}
    assert resources == {
        ("heartbeat.dev", "heartbeatsimulations"),
        ("heartbeat.dev", "heartbeatsimulations/status"),
        ("heartbeat.dev", "heartbeatsimulations/finalizers"),
        ("apps", "statefulsets"),
        ("", "events"),
        ("", "pods"),
    }
    assert ("heartbeat.dev", "heartbeatsimulations", "watch") in granted
    assert ("apps", "statefulsets", "create") in granted
    assert ("", "events", "create") in granted
    assert ("heartbeat.dev", "heartbeatsimulations", "delete") not in granted


def test_cluster_wide_operator_gets_the_same_rules_in_a_cluster_role(helm: Helm) -> None:
    manifests = helm.render(CHART, sets={"operator.rbac.clusterWide": True})
    (cluster_role,) = of_kind(manifests, "ClusterRole")
    (binding,) = of_kind(manifests, "ClusterRoleBinding")
    assert not of_kind(manifests, "Role")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": cluster_role["metadata"]["name"],
    }
    assert NAMESPACE in cluster_role["metadata"]["name"], "two releases must not collide"
    (role,) = of_kind(helm.render(CHART), "Role")
    assert _rules(cluster_role) == _rules(role)


def test_no_operator_means_no_operator_rbac(helm: Helm) -> None:
    manifests = helm.render(CHART, sets={"operator.enabled": False})
    names = {m["metadata"]["name"] for m in manifests}
    assert not {n for n in names if n.endswith("-operator")}


def test_crd_is_namespaced_versioned_with_a_status_subresource() -> None:
    crd = yaml.safe_load(SIMULATION_CRD.read_text())
    assert crd["metadata"]["name"] == "heartbeatsimulations.heartbeat.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["kind"] == "HeartbeatSimulation"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    assert "status" in version["subresources"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["customers"]
    assert spec["properties"]["customers"]["minimum"] == 1
    assert spec["properties"]["replicas"]["minimum"] == 0
    assert spec["properties"]["paused"]["type"] == "boolean"


def test_dashboards_configmap_holds_every_dashboard_file_for_grafanas_sidecar(
    defaults: Any,
) -> None:
    (configmap,) = [
        m for m in of_kind(defaults, "ConfigMap") if m["metadata"]["name"].endswith("-dashboards")
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    files = {p.name for p in (CHART / "dashboards").glob("*.json")}
    assert files
    assert set(configmap["data"]) == files
    for name, text in configmap["data"].items():
        dashboard = json.loads(text)
        assert dashboard["title"], name
        assert dashboard["uid"], name


def test_service_monitor_scrapes_the_metrics_port_of_the_release_services(helm: Helm) -> None:
    manifests = helm.render(CHART, sets={"serviceMonitor.enabled": True})
    (monitor,) = of_kind(manifests, "ServiceMonitor")
    services = of_kind(manifests, "Service")
    assert len(services) == 3
    selector = monitor["spec"]["selector"]["matchLabels"]
    for service in services:
        assert selector.items() <= service["metadata"]["labels"].items()
        assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]


def test_prometheus_rule_carries_exactly_the_rules_of_grafana_alerts(helm: Helm) -> None:
    manifests = helm.render(CHART, sets={"prometheusRule.enabled": True})
    (rule,) = of_kind(manifests, "PrometheusRule")
    source = yaml.safe_load((CHART.parents[1] / "grafana/alerts/heartbeat.rules.yaml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert alerts
    for alert in alerts:
        assert alert["alert"].startswith("Heartbeat")
        assert alert["labels"]["severity"]


def test_chart_dashboards_are_the_dashboards_in_grafana(helm: Helm) -> None:
    ours = {p.name: p.read_text() for p in (CHART / "dashboards").glob("*.json")}
    source = {
        p.name: p.read_text() for p in (CHART.parents[1] / "grafana/dashboards").glob("*.json")
    }
    assert ours == source, "run: python grafana/build_dashboards.py"
