"""Kafka and PostgreSQL settings from values; credentials from a generated or existing Secret."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from heartbeat.settings import Settings
from heartbeat_operator.manifests import SimulationRef

from .helm import CHART, RELEASE, Helm, RenderError
from .manifests import container, env_of, ident, mounted_file, named, of_kind, pod_spec, pods
from .readme import readme_example_secrets, readme_managed_example

pytestmark = pytest.mark.chart


def _consumer_env(manifests: Any) -> dict[str, Any]:
    return env_of(container(named(manifests, "Deployment", f"{RELEASE}-consumer"), "consumer"))


def test_postgresql_password_goes_into_the_generated_secret_not_the_pod(helm: Helm) -> None:
    manifests = helm.render(CHART, sets={"postgresql.password": "s3cret"})
    secret = named(manifests, "Secret", RELEASE)
    assert base64.b64decode(secret["data"]["postgres-password"]) == b"s3cret"
    env = _consumer_env(manifests)
    assert env["PGPASSWORD"] == {"secretKeyRef": {"name": RELEASE, "key": "postgres-password"}}
    assert env["PGHOST"] == "postgresql"
    assert env["PGPORT"] == "5432"
    assert "DATABASE_URL" not in env


def test_a_database_url_replaces_the_libpq_variables(rendered: Any) -> None:
    manifests = rendered(CHART / "ci" / "database-url-values.yaml")
    env = _consumer_env(manifests)
    assert env["DATABASE_URL"] == {"secretKeyRef": {"name": RELEASE, "key": "database-url"}}
    assert not {"PGHOST", "PGPASSWORD"} & env.keys()
    url = base64.b64decode(named(manifests, "Secret", RELEASE)["data"]["database-url"]).decode()
    assert url.startswith("postgresql://heartbeat:")


def test_existing_secrets_are_referenced_with_their_own_keys(rendered: Any) -> None:
    manifests = rendered(CHART / "ci" / "existing-secret-values.yaml")
    env = _consumer_env(manifests)
    assert env["PGPASSWORD"] == {"secretKeyRef": {"name": "heartbeat-db", "key": "db-password"}}
    assert env["KAFKA_SASL_PASSWORD"] == {
        "secretKeyRef": {"name": "heartbeat-kafka", "key": "sasl-password"}
    }
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-256"
    assert not of_kind(manifests, "Secret")


def test_kafka_tls_files_are_mounted_read_only_where_the_settings_point(rendered: Any) -> None:
    manifests = rendered(CHART / "ci" / "sasl-tls-values.yaml")
    for component in ("producer", "consumer"):
        deployment = named(manifests, "Deployment", f"{RELEASE}-{component}")
        spec, c = pod_spec(deployment), container(deployment, component)
        env = env_of(c)
        for variable, key in [
            ("KAFKA_SSL_CA_LOCATION", "ca.crt"),
            ("KAFKA_SSL_CERTIFICATE_LOCATION", "tls.crt"),
            ("KAFKA_SSL_KEY_LOCATION", "tls.key"),
        ]:
            source = mounted_file(spec, c, env[variable])
            assert source == ("secret", "heartbeat-kafka-tls", key, 0o440), (component, variable)
        assert env["KAFKA_SASL_PASSWORD"] == {
            "secretKeyRef": {"name": RELEASE, "key": "kafka-sasl-password"}
        }


def test_the_operator_passes_the_kafka_tls_paths_on_without_mounting_the_files(
    rendered: Any,
) -> None:
    # It connects to no broker: the client key stays out of the pod that can reach the API.
    manifests = rendered(CHART / "ci" / "sasl-tls-values.yaml")
    operator = named(manifests, "Deployment", f"{RELEASE}-operator")
    c = container(operator, "operator")
    assert env_of(c)["KAFKA_SSL_KEY_LOCATION"] == "/etc/heartbeat/kafka-tls/tls.key"
    assert env_of(c)["OPERATOR_KAFKA_TLS_MOUNT_PATH"] == "/etc/heartbeat/kafka-tls"
    assert [m["name"] for m in c["volumeMounts"]] == ["tmp"]
    assert [v["name"] for v in pod_spec(operator)["volumes"]] == ["tmp"]


def test_postgresql_ca_and_client_certificate_reach_every_postgresql_client(
    rendered: Any,
) -> None:
    manifests = rendered(CHART / "ci" / "sasl-tls-values.yaml")
    clients = [
        (named(manifests, "Deployment", f"{RELEASE}-consumer"), "consumer"),
        (named(manifests, "Job", f"{RELEASE}-migrations"), "migrate"),
        (named(manifests, "CronJob", f"{RELEASE}-maintenance"), "maintain"),
        (named(manifests, "Pod", f"{RELEASE}-test"), "migrations"),
    ]
    for manifest, name in clients:
        spec, c = pod_spec(manifest), container(manifest, name)
        env = env_of(c)
        where = ident(manifest)
        assert env["PGSSLMODE"] == "verify-full", where
        assert mounted_file(spec, c, env["PGSSLROOTCERT"]) == (
            "configMap",
            "heartbeat-db-ca",
            "root.crt",
            0o440,
        ), where
        assert mounted_file(spec, c, env["PGSSLCERT"])[:3] == (
            "secret",
            "heartbeat-db-client",
            "tls.crt",
        ), where
        assert mounted_file(spec, c, env["PGSSLKEY"])[:3] == (
            "secret",
            "heartbeat-db-client",
            "tls.key",
        ), where
        if name != "consumer":
            assert not [k for k in env if k.startswith("KAFKA_")], f"{where} is no Kafka client"
    producer = env_of(container(named(manifests, "Deployment", f"{RELEASE}-producer"), "producer"))
    assert not [k for k in producer if k.startswith("PGSSL")], "the producer never talks to it"


def test_tls_file_names_follow_the_keys_of_their_secret(helm: Helm) -> None:
    manifests = helm.render(
        CHART,
        sets={
            "kafka.securityProtocol": "SSL",
            "kafka.tls": {
                "caSecret": "kafka-certs",
                "caKey": "bundle.pem",
                "clientCertSecret": "kafka-certs",
                "clientCertKey": "client.pem",
                "clientKeyKey": "client.key",
            },
        },
    )
    consumer = named(manifests, "Deployment", f"{RELEASE}-consumer")
    spec, c = pod_spec(consumer), container(consumer, "consumer")
    env = env_of(c)
    assert env["KAFKA_SSL_CA_LOCATION"] == "/etc/heartbeat/kafka-tls/bundle.pem"
    assert mounted_file(spec, c, env["KAFKA_SSL_KEY_LOCATION"])[:3] == (
        "secret",
        "kafka-certs",
        "client.key",
    )
    (volume,) = [v for v in spec["volumes"] if v["name"] == "kafka-tls"]
    assert len(volume["projected"]["sources"]) == 1, "one Secret, one source"


def test_operator_hands_its_generators_the_secret_holding_every_kafka_tls_file(
    rendered: Any,
) -> None:
    from heartbeat_operator.manifests import generator_config, statefulset
    from heartbeat_operator.settings import OperatorSettings
    from heartbeat_operator.spec import parse_spec

    manifests = rendered(CHART / "ci" / "sasl-tls-values.yaml")
    env = env_of(container(named(manifests, "Deployment", f"{RELEASE}-operator"), "operator"))
    plain = {k: v for k, v in env.items() if isinstance(v, str) and not k.startswith("POD_")}
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        kafka_sasl_password="from-a-secret",
        **{k.lower(): v for k, v in plain.items() if not k.startswith("OPERATOR_")},
    )
    config = OperatorSettings(
        _env_file=None,  # type: ignore[call-arg]
        **{
            k.removeprefix("OPERATOR_").lower(): v
            for k, v in plain.items()
            if k.startswith("OPERATOR_")
        },
    )
    simulation = SimulationRef(namespace="pipeline", name="ward-7", uid="0000")
    generator = statefulset(
        simulation, parse_spec({"customers": 10}), generator_config(settings, config)
    )
    spec = pod_spec(generator)
    (c,) = spec["containers"]
    generator_env = env_of(c)
    for variable in (
        "KAFKA_SSL_CA_LOCATION",
        "KAFKA_SSL_CERTIFICATE_LOCATION",
        "KAFKA_SSL_KEY_LOCATION",
    ):
        kind, name, key, _ = mounted_file(spec, c, generator_env[variable])
        assert (kind, name) == ("secret", "heartbeat-kafka-tls"), variable
        assert key == generator_env[variable].rsplit("/", 1)[1], variable


def test_kafka_ca_from_a_configmap_reaches_the_pods_when_the_operator_is_off(
    helm: Helm,
) -> None:
    sets = {
        "kafka.securityProtocol": "SSL",
        "kafka.tls.caConfigMap": "kafka-ca-bundle",
        "operator.enabled": False,
    }
    manifests = helm.render(CHART, sets=sets)
    consumer = named(manifests, "Deployment", f"{RELEASE}-consumer")
    c = container(consumer, "consumer")
    source = mounted_file(pod_spec(consumer), c, env_of(c)["KAFKA_SSL_CA_LOCATION"])
    assert source == ("configMap", "kafka-ca-bundle", "ca.crt", 0o440)
    assert "KAFKA_SSL_CERTIFICATE_LOCATION" not in env_of(c)


@pytest.mark.parametrize(
    ("sets", "named_value"),
    [
        ({"kafka.tls.caConfigMap": "kafka-ca"}, "kafka.tls.caConfigMap"),
        (
            {"kafka.tls.caSecret": "kafka-ca", "kafka.tls.clientCertSecret": "kafka-client"},
            "OPERATOR_KAFKA_TLS_SECRET",
        ),
    ],
    ids=["ca-in-a-configmap", "two-secrets"],
)
def test_kafka_tls_files_the_operators_generators_cannot_mount_fail_to_render(
    helm: Helm, sets: dict[str, Any], named_value: str
) -> None:
    with pytest.raises(RenderError, match=named_value):
        helm.render(CHART, sets={"kafka.securityProtocol": "SSL", **sets})


@pytest.mark.parametrize(
    ("sets", "named_value"),
    [
        ({"postgresql.sslMode": "verify-full"}, "postgresql.tls.caSecret"),
        ({"postgresql.sslMode": "verify-ca"}, "postgresql.tls.caSecret"),
        (
            {"postgresql.sslMode": "disable", "postgresql.tls.caSecret": "db-ca"},
            "postgresql.sslMode is disable",
        ),
        (
            {"postgresql.tls": {"caSecret": "db-ca", "caConfigMap": "db-ca"}},
            "postgresql.tls.caConfigMap",
        ),
        ({"kafka.tls.caSecret": "kafka-ca"}, "kafka.securityProtocol is PLAINTEXT"),
        (
            {
                "kafka.securityProtocol": "SSL",
                "kafka.tls": {"clientCertSecret": "c", "clientCertKey": "x", "clientKeyKey": "x"},
            },
            "kafka.tls.clientKeyKey",
        ),
        (
            {
                "kafka.securityProtocol": "SASL_SSL",
                "kafka.sasl": {"mechanism": "SCRAM-SHA-512", "username": "heartbeat"},
            },
            "kafka.sasl.existingSecret",
        ),
    ],
    ids=[
        "verify-full-without-a-ca",
        "verify-ca-without-a-ca",
        "tls-files-with-sslmode-disable",
        "two-places-for-one-ca",
        "kafka-tls-without-an-ssl-protocol",
        "certificate-and-key-one-file",
        "sasl-without-a-password",
    ],
)
def test_tls_and_credential_values_that_cannot_work_fail_naming_the_value(
    helm: Helm, sets: dict[str, Any], named_value: str
) -> None:
    with pytest.raises(RenderError, match=re.escape(named_value)):
        helm.render(CHART, sets=sets)


def test_readme_managed_example_takes_every_credential_and_ca_from_its_secrets(
    helm: Helm, tmp_path: Path
) -> None:
    values = tmp_path / "managed-values.yaml"
    values.write_text(yaml.safe_dump(readme_managed_example()))
    manifests = helm.render(CHART, [values])
    secrets = readme_example_secrets()
    assert set(secrets) == {
        "heartbeat-kafka",
        "heartbeat-kafka-ca",
        "heartbeat-db",
        "heartbeat-db-ca",
    }
    assert not of_kind(manifests, "Secret"), "the chart creates no Secret of its own"

    used: set[tuple[str, str]] = set()
    for manifest, spec in pods(manifests):
        for c in spec["containers"]:
            where = f"{ident(manifest)} {c['name']}"
            env = env_of(c)
            for value in env.values():
                if isinstance(value, dict) and "secretKeyRef" in value:
                    ref = value["secretKeyRef"]
                    assert ref["key"] in secrets[ref["name"]], where
                    used.add((ref["name"], ref["key"]))
            mounted = ["KAFKA_SSL_CA_LOCATION", "PGSSLROOTCERT"]
            if "OPERATOR_KAFKA_TLS_SECRET" in env:
                # Passed on to the generators, which mount that Secret where the path points.
                mounted.remove("KAFKA_SSL_CA_LOCATION")
                ca = env["KAFKA_SSL_CA_LOCATION"]
                assert ca.startswith(env["OPERATOR_KAFKA_TLS_MOUNT_PATH"] + "/"), where
                tls_secret = env["OPERATOR_KAFKA_TLS_SECRET"]
                assert ca.rsplit("/", 1)[1] in secrets[tls_secret], where
            for variable in mounted:
                if variable in env:
                    kind, name, key, mode = mounted_file(spec, c, env[variable])
                    assert kind == "secret", where
                    assert key in secrets[name], where
                    assert mode == 0o440, where
                    used.add((name, key))
            if "PGPASSWORD" in env:
                assert env["PGSSLMODE"] == "verify-full", where
                assert "PGSSLROOTCERT" in env, where
            if "KAFKA_SECURITY_PROTOCOL" in env:
                assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", where
                assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", where
                assert "KAFKA_SSL_CA_LOCATION" in env, where
    assert used == {(name, key) for name, keys in secrets.items() for key in keys}
    operator = env_of(container(named(manifests, "Deployment", f"{RELEASE}-operator"), "operator"))
    assert operator["OPERATOR_KAFKA_SASL_SECRET"] == "heartbeat-kafka"
    assert operator["OPERATOR_KAFKA_TLS_SECRET"] == "heartbeat-kafka-ca"


def test_plaintext_kafka_gets_no_sasl_or_tls_settings(defaults: Any) -> None:
    env = _consumer_env(defaults)
    assert env["KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert not [name for name in env if name.startswith(("KAFKA_SASL_", "KAFKA_SSL_"))]


def test_kafka_settings_reach_every_kafka_client(helm: Helm) -> None:
    manifests = helm.render(
        CHART,
        sets={
            "kafka.bootstrapServers": "b1:9092,b2:9092",
            "kafka.topic": "hr",
            "kafka.topicPartitions": 12,
        },
    )
    for component in ("producer", "consumer", "operator"):
        env = env_of(container(named(manifests, "Deployment", f"{RELEASE}-{component}"), component))
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "b1:9092,b2:9092", component
        assert env["KAFKA_TOPIC"] == "hr", component
        assert env["KAFKA_TOPIC_PARTITIONS"] == "12", component
