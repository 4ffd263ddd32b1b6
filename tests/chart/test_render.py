"""The chart renders for every scenario, and what it renders is valid Kubernetes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .helm import CHART, CHARTS, KUBE_VERSION, RELEASE, Helm, RenderError
from .manifests import ident

pytestmark = pytest.mark.chart

# Kinds whose schemas come from other projects' CRDs, which kubernetes-validate does not ship;
# the tests of the integrations check their shape instead.
THIRD_PARTY_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
}


def test_chart_renders_every_ci_scenario(rendered: Any, scenario: Path) -> None:
    manifests = rendered(scenario)
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "Service", "Job", "CustomResourceDefinition"} <= kinds


def test_every_manifest_has_a_unique_kind_and_name(rendered: Any, scenario: Path) -> None:
    names = [ident(m) for m in rendered(scenario)]
    assert len(names) == len(set(names)), sorted(names)


def test_rendered_manifests_are_valid_against_the_kubernetes_schemas(
    rendered: Any, scenario: Path
) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed"
    )
    problems = []
    for manifest in rendered(scenario):
        if (manifest["apiVersion"], manifest["kind"]) in THIRD_PARTY_KINDS:
            continue
        try:
            kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{ident(manifest)}: {'.'.join(map(str, exc.path))}: {exc.message}")
    assert not problems, "\n".join(problems)


def test_dev_dependencies_render_valid_kubernetes_manifests(helm: Helm) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed"
    )
    manifests = helm.render(CHARTS / "dev-deps")
    assert {ident(m) for m in manifests} >= {
        "Deployment/kafka",
        "Service/kafka",
        "Deployment/postgresql",
        "Service/postgresql",
    }
    for manifest in manifests:
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)


def test_dev_kafka_ignores_the_service_link_variables_kubernetes_would_add(helm: Helm) -> None:
    # The apache/kafka image reads every KAFKA_* variable as a setting; KAFKA_PORT from a
    # Service called kafka would be one.
    kafka = next(m for m in helm.render(CHARTS / "dev-deps") if ident(m) == "Deployment/kafka")
    assert kafka["spec"]["template"]["spec"]["enableServiceLinks"] is False


def test_default_install_leaves_every_optional_integration_out(defaults: Any) -> None:
    kinds = {m["kind"] for m in defaults}
    assert not kinds & {
        "ServiceMonitor",
        "PrometheusRule",
        "ScaledObject",
        "TriggerAuthentication",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "ClusterRole",
        "ClusterRoleBinding",
    }


def test_all_integrations_scenario_renders_each_integration(rendered: Any) -> None:
    manifests = rendered(CHART / "ci" / "all-integrations-values.yaml")
    kinds = {m["kind"] for m in manifests}
    assert {"ServiceMonitor", "PrometheusRule", "ScaledObject", "NetworkPolicy"} <= kinds
    assert {"ClusterRole", "ClusterRoleBinding"} <= kinds
    assert "HorizontalPodAutoscaler" not in kinds, "KEDA runs its own autoscaler"


def test_release_name_prefixes_every_namespaced_resource(defaults: Any) -> None:
    for manifest in defaults:
        if manifest["kind"] == "CustomResourceDefinition":
            continue
        assert manifest["metadata"]["name"].startswith(RELEASE), ident(manifest)


def test_values_schema_rejects_an_unknown_key(helm: Helm) -> None:
    with pytest.raises(RenderError, match=r"consumerz|additional"):
        helm.render(CHART, sets={"consumerz": {"replicas": 2}})


def test_values_schema_rejects_a_wrong_type(helm: Helm) -> None:
    with pytest.raises(RenderError, match="replicas"):
        helm.render(CHART, sets={"consumer.replicas": "two"})


def test_sasl_protocol_without_a_mechanism_fails_to_render(helm: Helm) -> None:
    with pytest.raises(RenderError, match="mechanism"):
        helm.render(
            CHART,
            sets={"kafka.securityProtocol": "SASL_SSL", "kafka.sasl.username": "heartbeat"},
        )
