"""Kafka and PostgreSQL settings from values; credentials from a generated or existing Secret."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from .helm import CHART, RELEASE, Helm
from .manifests import container, env_of, named, of_kind, pod_spec

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


def test_kafka_tls_files_are_mounted_where_the_settings_point(rendered: Any) -> None:
    manifests = rendered(CHART / "ci" / "sasl-tls-values.yaml")
    consumer = named(manifests, "Deployment", f"{RELEASE}-consumer")
    env = env_of(container(consumer, "consumer"))
    (mount,) = [
        m for m in container(consumer, "consumer")["volumeMounts"] if m["name"] == "kafka-tls"
    ]
    (volume,) = [v for v in pod_spec(consumer)["volumes"] if v["name"] == "kafka-tls"]
    assert volume["secret"]["secretName"] == "heartbeat-kafka-tls"
    assert mount["readOnly"] is True
    for variable, key in [
        ("KAFKA_SSL_CA_LOCATION", "ca.crt"),
        ("KAFKA_SSL_CERTIFICATE_LOCATION", "tls.crt"),
        ("KAFKA_SSL_KEY_LOCATION", "tls.key"),
    ]:
        assert env[variable] == f"{mount['mountPath']}/{key}"
    assert env["KAFKA_SASL_PASSWORD"] == {
        "secretKeyRef": {"name": RELEASE, "key": "kafka-sasl-password"}
    }


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
