"""One pod spec for every workload, and the checks across values whatever is enabled."""

from __future__ import annotations

from typing import Any

import pytest

from .helm import CHART, RELEASE, Helm, RenderError
from .manifests import container, env_of, ident, named, of_kind, pod_spec, pods

pytestmark = pytest.mark.chart

DEPLOYMENTS = ("producer", "consumer", "operator")
EVERYTHING_OFF = {
    "producer.enabled": False,
    "consumer.enabled": False,
    "operator.enabled": False,
    "migrations.enabled": False,
    "maintenance.enabled": False,
    "dashboards.enabled": False,
}


def _deployment(manifests: Any, component: str) -> dict[str, Any]:
    return named(manifests, "Deployment", f"{RELEASE}-{component}")


def test_the_deployments_share_security_contexts_probes_and_volumes(defaults: Any) -> None:
    specs = {c: pod_spec(_deployment(defaults, c)) for c in DEPLOYMENTS}
    own = {c: container(_deployment(defaults, c), c) for c in DEPLOYMENTS}
    for field in ("securityContext", "volumes"):
        assert len({repr(spec[field]) for spec in specs.values()}) == 1, field
    for field in ("securityContext", "livenessProbe", "readinessProbe", "ports", "volumeMounts"):
        assert len({repr(c[field]) for c in own.values()}) == 1, field


def test_settings_of_the_chart_reach_every_deployment_through_the_one_pod_spec(
    helm: Helm,
) -> None:
    manifests = helm.render(
        CHART,
        sets={
            "podSecurityContext.runAsUser": 20002,
            "probes.liveness.periodSeconds": 17,
            "imagePullSecrets": [{"name": "regcred"}],
            "extraEnv": [{"name": "LOG_LEVEL", "value": "DEBUG"}],
        },
    )
    for component in DEPLOYMENTS:
        spec = pod_spec(_deployment(manifests, component))
        c = container(_deployment(manifests, component), component)
        assert spec["securityContext"]["runAsUser"] == 20002, component
        assert c["livenessProbe"]["periodSeconds"] == 17, component
        assert spec["imagePullSecrets"] == [{"name": "regcred"}], component
        assert [e for e in c["env"] if e["name"] == "LOG_LEVEL"][-1]["value"] == "DEBUG"


def test_extra_env_from_and_volumes_reach_every_container(helm: Helm) -> None:
    volume = {"name": "vault", "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": True}}
    mount = {"name": "vault", "mountPath": "/mnt/vault", "readOnly": True}
    env_from = [{"secretRef": {"name": "heartbeat-settings"}}]
    manifests = helm.render(
        CHART,
        sets={"extraEnvFrom": env_from, "extraVolumes": [volume], "extraVolumeMounts": [mount]},
    )
    seen = set()
    for manifest, spec in pods(manifests):
        assert volume in spec["volumes"], ident(manifest)
        for c in spec["containers"]:
            assert c["envFrom"] == env_from, f"{ident(manifest)} {c['name']}"
            assert mount in c["volumeMounts"], f"{ident(manifest)} {c['name']}"
        seen.add(manifest["kind"])
    assert {"Deployment", "Job", "CronJob", "Pod"} <= seen


def test_consumers_spread_over_zones_with_their_own_selector_by_default(helm: Helm) -> None:
    constraint = {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway",
    }
    chosen = {**constraint, "topologyKey": "kubernetes.io/hostname", "labelSelector": {"x": "y"}}
    manifests = helm.render(
        CHART, sets={"consumer.topologySpreadConstraints": [constraint, chosen]}
    )
    consumer = _deployment(manifests, "consumer")
    spread = pod_spec(consumer)["topologySpreadConstraints"]
    selector = consumer["spec"]["selector"]["matchLabels"]
    assert spread == [{**constraint, "labelSelector": {"matchLabels": selector}}, chosen]
    assert "topologySpreadConstraints" not in pod_spec(_deployment(manifests, "producer"))


def test_consumer_disruption_budget_lets_one_consumer_go_at_a_time(helm: Helm) -> None:
    assert not of_kind(helm.render(CHART), "PodDisruptionBudget"), "off by default"
    manifests = helm.render(CHART, sets={"consumer.podDisruptionBudget.enabled": True})
    (budget,) = of_kind(manifests, "PodDisruptionBudget")
    consumer = _deployment(manifests, "consumer")
    assert budget["spec"] == {
        "selector": {"matchLabels": consumer["spec"]["selector"]["matchLabels"]},
        "maxUnavailable": 1,
    }
    manifests = helm.render(
        CHART,
        sets={
            "consumer.podDisruptionBudget": {
                "enabled": True,
                "minAvailable": "50%",
                "maxUnavailable": None,
            }
        },
    )
    (budget,) = of_kind(manifests, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == "50%"
    assert "maxUnavailable" not in budget["spec"]


def test_disruption_budget_with_both_bounds_fails_to_render(helm: Helm) -> None:
    with pytest.raises(RenderError, match="minAvailable or maxUnavailable, not both"):
        helm.render(
            CHART,
            sets={"consumer.podDisruptionBudget": {"enabled": True, "minAvailable": 1}},
        )


def test_without_consumers_nothing_of_theirs_is_rendered(helm: Helm) -> None:
    manifests = helm.render(
        CHART,
        sets={
            "consumer.enabled": False,
            "consumer.podDisruptionBudget.enabled": True,
            "networkPolicy.enabled": True,
        },
    )
    assert not [m for m in manifests if m["metadata"]["name"] == f"{RELEASE}-consumer"]
    test_pod = named(manifests, "Pod", f"{RELEASE}-test")
    assert [c["name"] for c in pod_spec(test_pod)["containers"]] == ["migrations"]
    assert _deployment(manifests, "producer")


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            {
                "kafka.securityProtocol": "SSL",
                "kafka.tls.caConfigMap": "ca",
                "operator.enabled": True,
            },
            "OPERATOR_KAFKA_TLS_SECRET",
        ),
        ({"kafka.tls.caSecret": "kafka-ca"}, "kafka.securityProtocol is PLAINTEXT"),
        ({"postgresql.sslMode": "verify-full"}, "postgresql.tls.caSecret"),
        ({"consumer.replicas": 9}, "consumer.replicas (9) is more than kafka.topicPartitions"),
        (
            {"maintenance.rawRetentionDays": 30, "maintenance.rollupRetentionDays": 7},
            "maintenance.rollupRetentionDays",
        ),
    ],
    ids=["operator-tls", "tls-without-ssl", "verify-full", "replicas", "retention"],
)
def test_a_bad_combination_fails_even_with_the_consumer_disabled(
    helm: Helm, sets: dict[str, Any], message: str
) -> None:
    with pytest.raises(RenderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        helm.render(CHART, sets={**EVERYTHING_OFF, **sets})


def test_with_every_component_disabled_the_chart_still_renders(helm: Helm) -> None:
    manifests = helm.render(CHART, sets=EVERYTHING_OFF)
    assert not [m for m in manifests if m["kind"] in {"Deployment", "Job", "CronJob"}]


def test_the_validation_template_renders_no_manifest(helm: Helm) -> None:
    result = helm.run(
        "template",
        RELEASE,
        str(CHART),
        "--kube-version",
        "1.34.0",
        "--show-only",
        "templates/validate.yaml",
    )
    assert result.returncode != 0
    assert "could not find template" in result.stderr


def test_migrations_read_the_hooks_copy_of_the_credentials_and_the_rest_the_releases(
    defaults: Any,
) -> None:
    job = named(defaults, "Job", f"{RELEASE}-migrations")
    env = env_of(container(job, "migrate"))
    assert env["PGPASSWORD"] == {
        "secretKeyRef": {"name": f"{RELEASE}-migrations", "key": "postgres-password"}
    }
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert "serviceAccountName" not in pod_spec(job), "its account does not exist yet"
