"""The generator StatefulSet: what it runs, how the customers are split, what counts as drift."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest

from heartbeat.generator import customer_slice
from heartbeat.producer import shard_index
from heartbeat.settings import Settings
from heartbeat_operator.manifests import (
    SPEC_HASH,
    GeneratorConfig,
    SimulationRef,
    changed_spec,
    drift,
    generator_config,
    is_controlled_by,
    selector_labels,
    selector_string,
)
from heartbeat_operator.reconcile import desired_statefulset
from heartbeat_operator.settings import OperatorSettings
from heartbeat_operator.spec import parse_spec
from heartbeat_operator.status import pod_slice

SIM = SimulationRef(namespace="wards", name="ward-7", uid="0f6c-uid")
SIMULATION = {
    "apiVersion": "heartbeat.dev/v1alpha1",
    "kind": "HeartbeatSimulation",
    "metadata": {"namespace": SIM.namespace, "name": SIM.name, "uid": SIM.uid},
}
GENERATOR = GeneratorConfig(image="heartbeat:test", env=(("KAFKA_BOOTSTRAP_SERVERS", "k:9092"),))


def build(generator: GeneratorConfig = GENERATOR, **spec: Any) -> dict[str, Any]:
    """The StatefulSet as the reconciler writes it: built, then adopted by the simulation."""
    return desired_statefulset(SIMULATION, parse_spec({"customers": 10, **spec}), generator)


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env(manifest: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(manifest)["env"]}


def producer_slices(manifest: dict[str, Any]) -> list[range]:
    """The customers of each pod, computed exactly as ``heartbeat produce`` does from its
    environment and its HOSTNAME (``<statefulset>-<ordinal>``)."""
    values = {k.lower(): v for k, v in env(manifest).items() if isinstance(v, str)}
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    name = manifest["metadata"]["name"]
    return [
        customer_slice(
            settings.producer_customers,
            settings.producer_shard_count,
            shard_index(settings, f"{name}-{ordinal}"),
            settings.producer_first_customer,
        )
        for ordinal in range(manifest["spec"]["replicas"])
    ]


# --- The split of the customers -------------------------------------------------------


@pytest.mark.parametrize("customers", range(1, 31))
def test_every_replica_count_splits_the_customers_into_disjoint_complete_slices(
    customers: int,
) -> None:
    for replicas in range(0, customers + 6):
        manifest = build(customers=customers, replicas=replicas, firstCustomer=500)
        pods = manifest["spec"]["replicas"]
        assert pods == min(replicas, customers)
        seen: list[int] = []
        for ordinal, part in enumerate(producer_slices(manifest)):
            assert len(part) >= 1, (customers, replicas, ordinal)
            seen.extend(part)
        if pods:
            assert sorted(seen) == list(range(500, 500 + customers)), (customers, replicas)
            assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    ("customers", "replicas"), [(10_000_000, 1000), (9_999_999, 7), (1001, 1000), (1, 1)]
)
def test_large_splits_are_contiguous_balanced_and_complete(customers: int, replicas: int) -> None:
    manifest = build(customers=customers, replicas=replicas)
    parts = producer_slices(manifest)
    assert parts[0].start == 1
    assert parts[-1].stop == customers + 1
    assert all(a.stop == b.start for a, b in itertools.pairwise(parts))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_the_status_reads_a_pods_slice_as_the_producer_computes_it() -> None:
    manifest = build(customers=17, replicas=4, firstCustomer=3)
    for ordinal, part in enumerate(producer_slices(manifest)):
        pod = {
            "metadata": {"name": f"ward-7-{ordinal}"},
            "spec": manifest["spec"]["template"]["spec"],
        }
        assert pod_slice(pod) == part


# --- What the StatefulSet runs ---------------------------------------------------------


def test_the_statefulset_is_owned_by_its_simulation_so_deleting_it_collects_the_pods() -> None:
    manifest = build()
    assert manifest["metadata"]["name"] == "ward-7"
    assert manifest["metadata"]["namespace"] == "wards"
    assert manifest["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "heartbeat.dev/v1alpha1",
            "kind": "HeartbeatSimulation",
            "name": "ward-7",
            "uid": "0f6c-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert is_controlled_by(manifest, SIM)
    assert not is_controlled_by(manifest, SimulationRef("wards", "ward-7", "another-uid"))


def test_the_selector_picks_the_pods_and_is_what_the_status_reports() -> None:
    manifest = build()
    selector = manifest["spec"]["selector"]["matchLabels"]
    assert selector == selector_labels("ward-7")
    assert selector.items() <= manifest["spec"]["template"]["metadata"]["labels"].items()
    assert selector_string("ward-7") == (
        "app.kubernetes.io/instance=ward-7,app.kubernetes.io/name=heartbeat-simulation"
    )
    labels = manifest["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "heartbeat-operator"
    assert labels["app.kubernetes.io/component"] == "generator"
    assert "helm.sh/chart" not in selector


def test_generators_run_heartbeat_produce_locked_down_like_the_charts_pods() -> None:
    manifest = build()
    pod = manifest["spec"]["template"]["spec"]
    gen = container(manifest)
    assert gen["command"] == ["heartbeat"]
    assert gen["args"] == ["produce"]
    assert gen["image"] == "heartbeat:test"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert gen["securityContext"]["readOnlyRootFilesystem"] is True
    assert gen["securityContext"]["allowPrivilegeEscalation"] is False
    assert gen["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in gen["volumeMounts"]
    assert gen["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert gen["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert gen["ports"] == [{"name": "metrics", "containerPort": 8000, "protocol": "TCP"}]
    assert gen["resources"]["requests"] == {"cpu": "50m", "memory": "96Mi"}
    assert gen["resources"]["limits"] == {"memory": "256Mi"}
    assert manifest["spec"]["podManagementPolicy"] == "Parallel"


def test_the_spec_becomes_the_producers_environment() -> None:
    values = env(build(customers=12, replicas=3, ratePerReplica=2.5, anomalyRate=0.1, seed=7))
    assert values["PRODUCER_CUSTOMERS"] == "12"
    assert values["PRODUCER_SHARD_COUNT"] == "3"
    assert values["PRODUCER_RATE"] == "2.5"
    assert values["PRODUCER_ANOMALY_RATE"] == "0.1"
    assert values["PRODUCER_SEED"] == "7"
    assert values["KAFKA_BOOTSTRAP_SERVERS"] == "k:9092"
    assert "PRODUCER_SHARD_INDEX" not in values, "each pod reads its ordinal from HOSTNAME"


def test_the_topic_is_the_operators_unless_the_spec_overrides_it() -> None:
    assert env(build())["KAFKA_TOPIC"] == "heartbeats"
    assert env(build(topic="ward.readings"))["KAFKA_TOPIC"] == "ward.readings"
    assert "PRODUCER_SEED" not in env(build())


def test_kafka_settings_are_copied_but_the_password_only_referenced() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        kafka_bootstrap_servers="broker-0:9093,broker-1:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="sim",
        kafka_sasl_password="hunter2",
        kafka_ssl_ca_location="/etc/heartbeat/kafka-tls/ca.crt",
        kafka_topic="readings",
    )
    config = OperatorSettings(
        _env_file=None,  # type: ignore[call-arg]
        kafka_sasl_secret="kafka-creds",
        kafka_tls_secret="kafka-tls",
        generator_image="registry.example/heartbeat:1.2.3",
    )
    manifest = build(generator_config(settings, config))
    values = env(manifest)
    assert values["KAFKA_BOOTSTRAP_SERVERS"] == "broker-0:9093,broker-1:9093"
    assert values["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert values["KAFKA_SASL_USERNAME"] == "sim"
    assert values["KAFKA_SSL_CA_LOCATION"] == "/etc/heartbeat/kafka-tls/ca.crt"
    assert values["KAFKA_TOPIC"] == "readings"
    assert values["KAFKA_SASL_PASSWORD"] == {
        "secretKeyRef": {"name": "kafka-creds", "key": "kafka-sasl-password"}
    }
    assert "hunter2" not in json.dumps(manifest)
    gen = container(manifest)
    assert gen["image"] == "registry.example/heartbeat:1.2.3"
    assert {"name": "kafka-tls", "mountPath": "/etc/heartbeat/kafka-tls", "readOnly": True} in gen[
        "volumeMounts"
    ]
    volumes = manifest["spec"]["template"]["spec"]["volumes"]
    assert {"name": "kafka-tls", "secret": {"secretName": "kafka-tls", "defaultMode": 0o440}} in (
        volumes
    )


SASL_PASSWORD = "kafka-s3cret-Pa55"
DATABASE_PASSWORD = "db-s3cret-Pa55"


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [("SASL_SSL", "SCRAM-SHA-512"), ("SASL_SSL", "PLAIN"), ("SSL", None)],
)
def test_every_kafka_security_setting_reaches_the_generators_and_no_password_is_written(
    protocol: str, mechanism: str | None
) -> None:
    """SASL over TLS and mutual TLS: what the operator was given, its generators get, the
    password by reference to a Secret, the certificate files from a Secret mounted where
    the KAFKA_SSL_*_LOCATION settings point."""
    mount = "/var/run/heartbeat/kafka"
    sasl = protocol.startswith("SASL_")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        kafka_bootstrap_servers="kafka-0.example:9094",
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="simulator" if sasl else None,
        kafka_sasl_password=SASL_PASSWORD if sasl else None,
        kafka_ssl_ca_location=f"{mount}/ca.crt",
        kafka_ssl_certificate_location=f"{mount}/tls.crt",
        kafka_ssl_key_location=f"{mount}/tls.key",
        database_url=f"postgresql://heartbeat:{DATABASE_PASSWORD}@db.example/heartbeat",
    )
    config = OperatorSettings(
        _env_file=None,  # type: ignore[call-arg]
        kafka_sasl_secret="kafka-user" if sasl else "",
        kafka_sasl_secret_key="password",
        kafka_tls_secret="kafka-client-tls",
        kafka_tls_mount_path=mount,
    )
    manifest = build(generator_config(settings, config))
    values = env(manifest)

    assert values["KAFKA_BOOTSTRAP_SERVERS"] == "kafka-0.example:9094"
    assert values["KAFKA_SECURITY_PROTOCOL"] == protocol
    if sasl:
        assert values["KAFKA_SASL_MECHANISM"] == mechanism
        assert values["KAFKA_SASL_USERNAME"] == "simulator"
        assert values["KAFKA_SASL_PASSWORD"] == {
            "secretKeyRef": {"name": "kafka-user", "key": "password"}
        }
    else:
        assert not {"KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"} & set(
            values
        )
    locations = {
        "KAFKA_SSL_CA_LOCATION": f"{mount}/ca.crt",
        "KAFKA_SSL_CERTIFICATE_LOCATION": f"{mount}/tls.crt",
        "KAFKA_SSL_KEY_LOCATION": f"{mount}/tls.key",
    }
    assert {name: values.get(name) for name in locations} == locations

    # The files are where the locations point: the Secret, read-only, not world-readable.
    gen = container(manifest)
    (mounted,) = [m for m in gen["volumeMounts"] if m["mountPath"] == mount]
    assert mounted["readOnly"] is True
    (volume,) = [
        v for v in manifest["spec"]["template"]["spec"]["volumes"] if v["name"] == mounted["name"]
    ]
    assert volume["secret"] == {"secretName": "kafka-client-tls", "defaultMode": 0o440}
    assert all(path.rsplit("/", 1)[0] == mount for path in locations.values())

    # No password as a literal value: not the SASL one, not the database's (the
    # generators need no database), anywhere in the StatefulSet.
    rendered = json.dumps(manifest)
    assert SASL_PASSWORD not in rendered
    assert DATABASE_PASSWORD not in rendered
    literal = {e["name"] for e in gen["env"] if "value" in e}
    assert not {"KAFKA_SASL_PASSWORD", "DATABASE_URL", "PGPASSWORD"} & literal


# --- Rollouts and drift ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "rolls"),
    [
        ({"customers": 20}, True),
        ({"replicas": 2}, True),
        ({"ratePerReplica": 1}, True),
        ({"paused": True}, False),
    ],
)
def test_changing_customers_or_replicas_rolls_the_pods_but_pausing_only_scales(
    change: dict[str, Any], rolls: bool
) -> None:
    before, after = build(replicas=3), build(**{"replicas": 3, **change})
    assert (before["spec"]["template"] != after["spec"]["template"]) is rolls
    assert changed_spec(after, before)
    assert drift(after, before)


def test_the_same_spec_gives_the_same_manifest_and_hash() -> None:
    assert build(replicas=3) == build(replicas=3)
    assert (
        build(replicas=3)["metadata"]["annotations"][SPEC_HASH]
        != (build(replicas=4)["metadata"]["annotations"][SPEC_HASH])
    )


def served(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as the API server returns it: with defaults, status and bookkeeping."""
    actual = copy.deepcopy(manifest)
    actual["metadata"].update(resourceVersion="42", generation=3, uid="sts-uid")
    actual["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Retain"}
    pod = actual["spec"]["template"]["spec"]
    pod.update(restartPolicy="Always", dnsPolicy="ClusterFirst", schedulerName="default")
    gen = pod["containers"][0]
    gen["terminationMessagePath"] = "/dev/termination-log"
    gen["livenessProbe"]["successThreshold"] = 1
    gen["livenessProbe"]["httpGet"]["scheme"] = "HTTP"
    actual["status"] = {"replicas": 1, "readyReplicas": 1}
    return actual


def test_defaults_the_api_server_adds_are_not_drift() -> None:
    desired = build()
    assert drift(desired, served(desired)) == []
    assert not changed_spec(desired, served(desired))


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (lambda m: m["spec"].update(replicas=9), "spec.replicas"),
        (
            lambda m: m["spec"]["template"]["spec"]["containers"][0]["env"].append(
                {"name": "EXTRA", "value": "1"}
            ),
            "spec.template.spec.containers[0].env",
        ),
        (
            lambda m: m["spec"]["template"]["spec"]["containers"][0].update(image="other:1"),
            "spec.template.spec.containers[0].image",
        ),
        (
            lambda m: m["metadata"]["labels"].pop("app.kubernetes.io/managed-by"),
            "metadata.labels.app.kubernetes.io/managed-by",
        ),
        (lambda m: m["metadata"].pop("ownerReferences"), "metadata.ownerReferences"),
    ],
)
def test_someone_elses_edit_is_drift_not_a_spec_change(edit: Any, path: str) -> None:
    desired = build()
    actual = served(desired)
    edit(actual)
    assert drift(desired, actual) == [path]
    assert not changed_spec(desired, actual)


@pytest.mark.parametrize(
    ("cpu", "memory", "limit", "served_as"),
    [
        ("0.1", "1024Mi", "2048Mi", ("100m", "1Gi", "2Gi")),
        ("100m", "96Mi", "256Mi", ("100m", "96Mi", "256Mi")),
        ("1", "1000000k", "1e9", ("1", "1G", "1G")),
    ],
)
def test_resource_quantities_the_api_server_rewrites_are_not_drift(
    cpu: str, memory: str, limit: str, served_as: tuple[str, str, str]
) -> None:
    generator = GeneratorConfig(
        image="heartbeat:test", cpu_request=cpu, memory_request=memory, memory_limit=limit
    )
    desired = build(generator)
    actual = served(desired)
    resources = actual["spec"]["template"]["spec"]["containers"][0]["resources"]
    resources["requests"].update(cpu=served_as[0], memory=served_as[1])
    resources["limits"]["memory"] = served_as[2]
    assert drift(desired, actual) == []


def test_a_different_resource_quantity_is_drift() -> None:
    desired = build(GeneratorConfig(image="heartbeat:test", cpu_request="0.1"))
    actual = served(desired)
    actual["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "200m"
    assert drift(desired, actual) == ["spec.template.spec.containers[0].resources.requests.cpu"]
