"""The operator's generator pods run as locked down, and are probed, as the chart's own pods.

The chart is rendered (``helm template``, as the chart tests do) and the generator
StatefulSet is built from the environment the chart gives the operator's Deployment, so
the two are compared exactly as they would be installed together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from heartbeat.settings import Settings
from heartbeat_operator.manifests import generator_config
from heartbeat_operator.reconcile import desired_statefulset
from heartbeat_operator.settings import OperatorSettings
from heartbeat_operator.spec import parse_spec
from tests.chart.helm import CHART, CI_VALUES, Helm, find_helm, scenario_id

Manifest = dict[str, Any]
SIMULATION = {
    "apiVersion": "heartbeat.dev/v1alpha1",
    "kind": "HeartbeatSimulation",
    "metadata": {"namespace": "pipeline", "name": "ward", "uid": "ward-uid"},
}
PROBES = ("livenessProbe", "readinessProbe")


@pytest.fixture(scope="module")
def helm() -> Helm:
    binary = find_helm()
    if binary is None:
        pytest.skip("no helm binary: run `make cluster` (.stack/bin/helm) or put helm on PATH")
    return Helm(binary)


def deployment(manifests: list[Manifest], command: str) -> Manifest | None:
    """The chart's Deployment whose container runs ``heartbeat <command>``."""
    for m in manifests:
        if m["kind"] == "Deployment" and m["spec"]["template"]["spec"]["containers"][0].get(
            "args"
        ) == [command]:
            return m
    return None


def generators_of(operator: Manifest) -> Manifest:
    """The StatefulSet the chart's operator would write, from the environment it is given."""
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    given = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    pipeline = {k.lower(): v for k, v in given.items() if not k.startswith("OPERATOR_")}
    own = {
        k.removeprefix("OPERATOR_").lower(): v
        for k, v in given.items()
        if k.startswith("OPERATOR_")
    }
    settings = Settings(_env_file=None, **pipeline)  # type: ignore[call-arg]
    config = OperatorSettings(_env_file=None, **own)  # type: ignore[call-arg]
    spec = parse_spec({"customers": 100, "replicas": 2})
    return desired_statefulset(SIMULATION, spec, generator_config(settings, config))


@pytest.mark.parametrize("values", CI_VALUES, ids=[scenario_id(p) for p in CI_VALUES])
def test_generator_pods_get_the_security_context_and_probes_of_the_charts_pods(
    helm: Helm, values: Path
) -> None:
    manifests = helm.render(CHART, [values])
    operator = deployment(manifests, "operator")
    if operator is None:
        pytest.skip(f"{values.name} does not deploy the operator")
    pod = generators_of(operator)["spec"]["template"]["spec"]
    (generator,) = pod["containers"]

    charts = [m for c in ("produce", "consume", "operator") if (m := deployment(manifests, c))]
    for chart_pod in (m["spec"]["template"]["spec"] for m in charts):
        (chart_container,) = chart_pod["containers"]
        assert pod["securityContext"] == chart_pod["securityContext"]
        assert generator["securityContext"] == chart_container["securityContext"]
        for probe in PROBES:
            assert generator[probe] == chart_container[probe], probe
        assert {"name": "tmp", "mountPath": "/tmp"} in chart_container["volumeMounts"]
        assert {"name": "tmp", "mountPath": "/tmp"} in generator["volumeMounts"]

    # What was compared is the lock-down itself, not two empty dicts.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = generator["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert generator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert generator["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    # Like the producer's, and unlike the operator's own, no generator talks to the API.
    producer = deployment(manifests, "produce")
    if producer is not None:
        assert pod["automountServiceAccountToken"] is False
        assert producer["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_the_charts_network_policy_for_generators_selects_the_operators_pods(helm: Helm) -> None:
    manifests = helm.render(
        CHART, [CHART / "ci" / "default-values.yaml"], sets={"networkPolicy.enabled": True}
    )
    operator = deployment(manifests, "operator")
    assert operator is not None
    labels = generators_of(operator)["spec"]["template"]["metadata"]["labels"]
    policies = [m for m in manifests if m["kind"] == "NetworkPolicy"]
    selecting = [
        p["metadata"]["name"]
        for p in policies
        if p["spec"]["podSelector"].get("matchLabels")
        and p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    ]
    assert len(selecting) == 1, (selecting, [p["metadata"]["name"] for p in policies])
    assert "generator" in selecting[0]


def kafka_env(container: Manifest) -> dict[str, Any]:
    return {
        e["name"]: e.get("value", e.get("valueFrom"))
        for e in container["env"]
        if e["name"].startswith(("KAFKA_SECURITY", "KAFKA_SASL", "KAFKA_SSL"))
    }


@pytest.mark.parametrize("values", CI_VALUES, ids=[scenario_id(p) for p in CI_VALUES])
def test_generator_pods_reach_kafka_with_the_charts_credentials_and_files(
    helm: Helm, values: Path
) -> None:
    """The generators get the chart's consumer's Kafka security settings, the password from
    the same Secret key, and the TLS files from the same Secret at the paths the settings
    name."""
    manifests = helm.render(CHART, [values])
    operator, consumer = deployment(manifests, "operator"), deployment(manifests, "consume")
    if operator is None or consumer is None:
        pytest.skip(f"{values.name} does not deploy the operator and the consumer")
    pod = generators_of(operator)["spec"]["template"]["spec"]
    (generator,) = pod["containers"]
    chart_pod = consumer["spec"]["template"]["spec"]
    (chart_container,) = chart_pod["containers"]

    assert kafka_env(generator) == kafka_env(chart_container)
    locations = [v for k, v in kafka_env(generator).items() if k.endswith("_LOCATION")]
    if not locations:
        return
    (chart_volume,) = [v for v in chart_pod["volumes"] if v["name"] == "kafka-tls"]
    (source,) = chart_volume["projected"]["sources"]  # the chart refuses more with the operator
    files = {item["path"] for item in source["secret"]["items"]}
    assert all(item["key"] == item["path"] for item in source["secret"]["items"])
    (volume,) = [v for v in pod["volumes"] if v["name"] == "kafka-tls"]
    assert volume["secret"]["secretName"] == source["secret"]["name"]
    (mounted,) = [m for m in generator["volumeMounts"] if m["name"] == "kafka-tls"]
    for location in locations:
        folder, name = str(location).rsplit("/", 1)
        assert folder == mounted["mountPath"], location
        assert name in files, location
