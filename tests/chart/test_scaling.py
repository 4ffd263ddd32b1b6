"""Never more consumers than partitions; the autoscalers are wired to the consumer."""

from __future__ import annotations

from typing import Any

import pytest

from .helm import CHART, RELEASE, Helm, RenderError
from .manifests import named, of_kind

pytestmark = pytest.mark.chart


def test_consumer_replicas_up_to_the_partition_count_render(helm: Helm) -> None:
    manifests = helm.render(CHART, sets={"kafka.topicPartitions": 3, "consumer.replicas": 3})
    assert named(manifests, "Deployment", f"{RELEASE}-consumer")["spec"]["replicas"] == 3


def test_consumer_replicas_above_the_partition_count_fail_to_render(helm: Helm) -> None:
    with pytest.raises(RenderError, match=r"consumer.replicas \(4\) is more than .*\(3\)"):
        helm.render(CHART, sets={"kafka.topicPartitions": 3, "consumer.replicas": 4})


@pytest.mark.parametrize(
    ("sets", "named_value"),
    [
        (
            {"consumer.autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 7}},
            "consumer.autoscaling.maxReplicas",
        ),
        (
            {"consumer.keda": {"enabled": True, "maxReplicaCount": 7}},
            "consumer.keda.maxReplicaCount",
        ),
    ],
    ids=["hpa", "keda"],
)
def test_autoscaler_maximum_above_the_partition_count_fails_to_render(
    helm: Helm, sets: dict[str, Any], named_value: str
) -> None:
    with pytest.raises(RenderError, match=named_value):
        helm.render(CHART, sets={"kafka.topicPartitions": 6, **sets})


def test_values_schema_caps_consumer_replicas(helm: Helm) -> None:
    with pytest.raises(RenderError, match="replicas"):
        helm.render(CHART, sets={"kafka.topicPartitions": 10000, "consumer.replicas": 10001})


def test_hpa_and_keda_together_fail_to_render(helm: Helm) -> None:
    with pytest.raises(RenderError, match="cannot both be enabled"):
        helm.render(
            CHART,
            sets={"consumer.autoscaling.enabled": True, "consumer.keda.enabled": True},
        )


def test_hpa_scales_the_consumer_deployment_which_then_leaves_replicas_to_it(
    rendered: Any,
) -> None:
    manifests = rendered(CHART / "ci" / "hpa-values.yaml")
    (hpa,) = of_kind(manifests, "HorizontalPodAutoscaler")
    consumer = named(manifests, "Deployment", f"{RELEASE}-consumer")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": consumer["metadata"]["name"],
    }
    assert hpa["spec"]["maxReplicas"] == 12
    assert "replicas" not in consumer["spec"]


def test_keda_scales_the_consumers_on_their_group_lag_without_idle_consumers(
    rendered: Any,
) -> None:
    manifests = rendered(CHART / "ci" / "all-integrations-values.yaml")
    (scaled,) = of_kind(manifests, "ScaledObject")
    consumer = named(manifests, "Deployment", f"{RELEASE}-consumer")
    assert scaled["spec"]["scaleTargetRef"]["name"] == consumer["metadata"]["name"]
    assert scaled["spec"]["maxReplicaCount"] == 6
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == "heartbeat-consumer"
    assert trigger["metadata"]["topic"] == "heartbeats"
    assert trigger["metadata"]["allowIdleConsumers"] == "false"
    assert "replicas" not in consumer["spec"]


def test_keda_authenticates_like_the_consumers_on_a_secured_kafka(rendered: Any) -> None:
    manifests = rendered(CHART / "ci" / "sasl-tls-values.yaml")
    (scaled,) = of_kind(manifests, "ScaledObject")
    (auth,) = of_kind(manifests, "TriggerAuthentication")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["sasl"] == "scram_sha512"
    assert trigger["metadata"]["tls"] == "enable"
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    parameters = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
    assert parameters.keys() == {"password", "ca", "cert", "key"}
    assert parameters["password"]["name"] == RELEASE
    assert parameters["ca"] == {"parameter": "ca", "name": "heartbeat-kafka-tls", "key": "ca.crt"}
