"""What every pod of the chart runs with: security context, probes, labels, settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from heartbeat.settings import documented_fields
from heartbeat_operator.settings import documented_fields as operator_fields

from .helm import CHART, RELEASE, Helm
from .manifests import container, env_of, ident, long_running, named, pods

pytestmark = pytest.mark.chart

STANDARD_LABELS = {
    "app.kubernetes.io/name": "heartbeat",
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/managed-by": "Helm",
    "app.kubernetes.io/part-of": "heartbeat",
}
# Variables the chart sets that are not heartbeat settings: libpq's own, and the downward API.
NOT_SETTINGS = {"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSSLMODE"}
NOT_SETTINGS |= {"PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"}
NOT_SETTINGS |= {"POD_NAMESPACE", "POD_NAME"}


def test_every_pod_runs_as_non_root_with_the_runtime_default_seccomp_profile(
    rendered: Any, scenario: Path
) -> None:
    for manifest, spec in pods(rendered(scenario)):
        assert spec["securityContext"]["runAsNonRoot"] is True, ident(manifest)
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_every_kind_of_pod_the_chart_runs_is_checked(rendered: Any, scenario: Path) -> None:
    # The checks below go over pods(...): it must see every pod-bearing kind rendered.
    kinds = {m["kind"] for m in rendered(scenario)}
    checked = {m["kind"] for m, _ in pods(rendered(scenario))}
    assert kinds & {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"} == checked
    assert {"Deployment", "Job", "CronJob", "Pod"} <= checked


def test_every_container_is_locked_down(rendered: Any, scenario: Path) -> None:
    for manifest, spec in pods(rendered(scenario)):
        for c in spec["containers"] + spec.get("initContainers", []):
            where = f"{ident(manifest)} container {c['name']}"
            context = c["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert c["resources"].get("requests"), f"{where} has no resource requests"


def test_every_long_running_container_probes_healthz_and_readyz_on_its_metrics_port(
    rendered: Any, scenario: Path
) -> None:
    workloads = long_running(rendered(scenario))
    assert workloads
    for manifest in workloads:
        for c in manifest["spec"]["template"]["spec"]["containers"]:
            where = f"{ident(manifest)} container {c['name']}"
            assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}, where
            assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}, where
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert ports["metrics"] == int(env_of(c)["METRICS_PORT"]), where


def test_default_install_runs_producer_consumer_and_operator(defaults: Any) -> None:
    names = {ident(m) for m in long_running(defaults)}
    assert names == {
        f"Deployment/{RELEASE}-producer",
        f"Deployment/{RELEASE}-consumer",
        f"Deployment/{RELEASE}-operator",
    }


def test_every_resource_carries_the_standard_labels(rendered: Any, scenario: Path) -> None:
    for manifest in rendered(scenario):
        labels = manifest["metadata"].get("labels", {})
        if manifest["kind"] == "CustomResourceDefinition":
            continue  # crds/ is not templated
        for key, value in STANDARD_LABELS.items():
            assert labels.get(key) == value, f"{ident(manifest)} label {key}"
        assert labels.get("helm.sh/chart", "").startswith("heartbeat-"), ident(manifest)
        assert "app.kubernetes.io/version" in labels, ident(manifest)


def test_selectors_match_their_pods_and_never_use_version_labels(
    rendered: Any, scenario: Path
) -> None:
    for manifest in long_running(rendered(scenario)):
        selector = manifest["spec"]["selector"]["matchLabels"]
        pod_labels = manifest["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items(), ident(manifest)
        assert not {"helm.sh/chart", "app.kubernetes.io/version"} & selector.keys()
    for service in (m for m in rendered(scenario) if m["kind"] == "Service"):
        assert (
            not {"helm.sh/chart", "app.kubernetes.io/version"} & service["spec"]["selector"].keys()
        )


def test_each_metrics_service_selects_exactly_one_component(defaults: Any) -> None:
    for component in ("producer", "consumer", "operator"):
        service = named(defaults, "Service", f"{RELEASE}-{component}")
        deployment = named(defaults, "Deployment", f"{RELEASE}-{component}")
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def test_every_environment_variable_is_a_setting_the_application_reads(
    rendered: Any, scenario: Path
) -> None:
    settings = {env for env, _, _ in [*documented_fields(), *operator_fields()]}
    for manifest, spec in pods(rendered(scenario)):
        for c in spec["containers"]:
            unknown = env_of(c).keys() - settings - NOT_SETTINGS
            assert not unknown, f"{ident(manifest)} container {c['name']} sets {unknown}"


def test_large_numbers_reach_the_application_as_plain_integers(helm: Helm) -> None:
    manifests = helm.render(
        CHART,
        sets={
            "producer.customers": 10_000_000,
            "consumer.batchMaxMessages": 1_000_000,
            "kafka.topicPartitions": 10_000,
        },
    )
    producer = env_of(container(named(manifests, "Deployment", f"{RELEASE}-producer"), "producer"))
    consumer = env_of(container(named(manifests, "Deployment", f"{RELEASE}-consumer"), "consumer"))
    assert producer["PRODUCER_CUSTOMERS"] == "10000000"
    assert consumer["CONSUMER_BATCH_MAX_MESSAGES"] == "1000000"
    assert consumer["KAFKA_TOPIC_PARTITIONS"] == "10000"


def test_rendered_settings_are_accepted_by_the_application(rendered: Any, scenario: Path) -> None:
    from heartbeat.settings import Settings
    from heartbeat_operator.__main__ import check_combinations
    from heartbeat_operator.settings import OperatorSettings

    operators = 0
    for manifest, spec in pods(rendered(scenario)):
        for c in spec["containers"]:
            where = f"{ident(manifest)} container {c['name']}"
            values = {
                name: value
                for name, value in env_of(c).items()
                if isinstance(value, str) and name not in NOT_SETTINGS
            }
            plain: dict[str, Any] = {
                name.lower(): value
                for name, value in values.items()
                if not name.startswith("OPERATOR_")
            }
            secret = {name for name, value in env_of(c).items() if isinstance(value, dict)}
            if "KAFKA_SASL_PASSWORD" in secret:
                plain["kafka_sasl_password"] = "from-a-secret"
            plain["_env_file"] = None  # only what the chart sets, not a developer's .env
            settings = Settings(**plain)  # raises on a value the application refuses

            # OPERATOR_* are the operator's own settings, which Settings ignores; they are
            # read by OperatorSettings, which ignores unknown names too: check both.
            own = {
                name.removeprefix("OPERATOR_").lower(): value
                for name, value in values.items()
                if name.startswith("OPERATOR_")
            }
            if not own:
                continue
            operators += 1
            unknown = sorted(set(own) - set(OperatorSettings.model_fields))
            assert not unknown, f"{where} sets OPERATOR_* settings that do not exist: {unknown}"
            config = OperatorSettings(_env_file=None, **own)  # type: ignore[call-arg]
            check_combinations(settings, config)  # raises as the operator would at start
    assert operators == 1, "exactly one container, the operator's, has OPERATOR_* settings"


def test_pods_restart_when_a_credential_changes(helm: Helm) -> None:
    def checksum(password: str) -> str:
        manifests = helm.render(CHART, sets={"postgresql.password": password})
        consumer = named(manifests, "Deployment", f"{RELEASE}-consumer")
        return str(consumer["spec"]["template"]["metadata"]["annotations"]["checksum/secret"])

    assert checksum("first") != checksum("second")


def test_only_the_operator_mounts_a_service_account_token(rendered: Any, scenario: Path) -> None:
    for manifest, spec in pods(rendered(scenario)):
        mounts = spec.get("automountServiceAccountToken", True)
        if manifest["metadata"]["name"].endswith("-operator"):
            assert mounts is True
        else:
            assert mounts is False, ident(manifest)


def test_operator_runs_alone_and_never_overlaps_its_successor(defaults: Any) -> None:
    operator = named(defaults, "Deployment", f"{RELEASE}-operator")
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    assert container(operator, "operator")["args"] == ["operator"]


def test_the_generators_rates_reach_the_producer(helm: Helm) -> None:
    manifests = helm.render(
        CHART,
        sets={
            "producer.anomalyRate": 0.1,
            "producer.invalidRate": 0,
            "producer.spikeProbability": 0.2,
        },
    )
    env = env_of(container(named(manifests, "Deployment", f"{RELEASE}-producer"), "producer"))
    assert env["PRODUCER_ANOMALY_RATE"] == "0.1"
    assert env["PRODUCER_INVALID_RATE"] == "0"
    assert env["PRODUCER_SPIKE_PROBABILITY"] == "0.2"
