"""Every command through a secured Kafka and PostgreSQL: SASL_SSL with SCRAM-SHA-512, mutual
TLS, and PostgreSQL with sslmode=verify-full (by password or by client certificate).

The servers are real local processes of this module's own (a throw-away CA per run); each
failure mode is tried as a user would meet it, through the `heartbeat` command. The
operator, given the same passwords, runs against the local Kubernetes control plane, and
no password may appear in its Events, the status it writes, its StatefulSets or its logs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer

from heartbeat_localstack.kafka import KafkaBroker, KafkaSecurity
from heartbeat_localstack.ports import free_port
from heartbeat_localstack.postgres import PostgresServer
from heartbeat_localstack.tls import (
    Authority,
    create_authority,
    create_client,
    create_server_for,
)
from tests.integration.pipeline import unique
from tests.operator.cluster import (
    OperatorProcess,
    crash_looping,
    operator_kubeconfig,
    simulation,
)
from tests.support.kube import Kubectl, simulation_namespace
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HEARTBEAT = str(Path(sys.executable).with_name("heartbeat"))
KAFKA_PASSWORD = "kafka-Pw-9f3c1e7a2b"
PG_PASSWORD = "pg-Pw-5d8e0b4c6a"
CERT_USER = "heartbeat_cert"


@dataclass(frozen=True)
class Secured:
    authority: Authority
    other_ca: Path
    kafka: KafkaBroker
    postgres: PostgresServer
    client_cert: Path
    client_key: Path

    def kafka_env(self, path: str) -> dict[str, str]:
        ca = str(self.authority.ca_cert)
        if path == "sasl_ssl":
            return {
                "KAFKA_BOOTSTRAP_SERVERS": self.kafka.sasl_ssl_bootstrap_servers,
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "KAFKA_SASL_USERNAME": "heartbeat",
                "KAFKA_SASL_PASSWORD": KAFKA_PASSWORD,
                "KAFKA_SSL_CA_LOCATION": ca,
            }
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.ssl_bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CA_LOCATION": ca,
            "KAFKA_SSL_CERTIFICATE_LOCATION": str(self.client_cert),
            "KAFKA_SSL_KEY_LOCATION": str(self.client_key),
        }

    def database_url(self, path: str, **overrides: str) -> str:
        parts = {
            "host": "localhost",
            "port": str(self.postgres.port),
            "sslmode": "verify-full",
            "sslrootcert": str(self.authority.ca_cert),
        }
        if path == "password":
            parts |= {"dbname": "heartbeat", "user": "heartbeat", "password": PG_PASSWORD}
        else:
            parts |= {"dbname": CERT_USER, "user": CERT_USER}
            parts |= {"sslcert": str(self.client_cert), "sslkey": str(self.client_key)}
        parts |= overrides
        return " ".join(f"{key}={value}" for key, value in parts.items() if value)


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("secured")
    authority = create_authority(root / "tls")
    other = create_authority(root / "other-tls", "another-ca")
    cert, key = create_client(authority, CERT_USER)
    security = KafkaSecurity(authority.root, "heartbeat", KAFKA_PASSWORD)
    kafka = KafkaBroker(root / "kafka", heap="384m", security=security)
    postgres = PostgresServer(root / "postgres", password=PG_PASSWORD, tls_dir=authority.root)
    kafka.start(wait=False)
    try:
        postgres.start()
        kafka.wait_ready()
        yield Secured(authority, other.ca_cert, kafka, postgres, cert, key)
    finally:
        kafka.stop(timeout=15)
        postgres.stop(mode="immediate")


def command_env(tmp_path: Path, *parts: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "KAFKA_", "DATABASE"))}
    env |= {"METRICS_PORT": str(free_port()), "HOME": str(tmp_path)}
    for part in parts:
        env |= part
    return env


def heartbeat(
    env: dict[str, str], *args: str, cwd: Path, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HEARTBEAT, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def errors_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if " ERROR " in line]


def raw_producer(env: dict[str, str]) -> Producer:
    names = {
        "KAFKA_BOOTSTRAP_SERVERS": "bootstrap.servers",
        "KAFKA_SECURITY_PROTOCOL": "security.protocol",
        "KAFKA_SASL_MECHANISM": "sasl.mechanism",
        "KAFKA_SASL_USERNAME": "sasl.username",
        "KAFKA_SASL_PASSWORD": "sasl.password",
        "KAFKA_SSL_CA_LOCATION": "ssl.ca.location",
        "KAFKA_SSL_CERTIFICATE_LOCATION": "ssl.certificate.location",
        "KAFKA_SSL_KEY_LOCATION": "ssl.key.location",
    }
    return Producer({librdkafka: env[name] for name, librdkafka in names.items() if name in env})


def count(conninfo: str, table: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0


@pytest.mark.parametrize(
    ("kafka_path", "database_path"), [("sasl_ssl", "password"), ("mutual_tls", "certificate")]
)
def test_every_command_works_through_the_secured_servers(
    secured, tmp_path, kafka_path, database_path
):
    topic, dlq = unique("secure"), unique("secure-dlq")
    database_url = secured.database_url(database_path)
    env = command_env(
        tmp_path,
        secured.kafka_env(kafka_path),
        {"DATABASE_URL": database_url, "KAFKA_TOPIC": topic, "KAFKA_DLQ_TOPIC": dlq},
        {"KAFKA_TOPIC_PARTITIONS": "2", "KAFKA_CONSUMER_GROUP": unique("group")},
        {"KAFKA_AUTO_OFFSET_RESET": "earliest"},
        # Every one of the 30 readings valid, so all 30 are stored: at the default rate a
        # faulty sensor's reading (dead-lettered) came among them in about one run in seven.
        {"PRODUCER_INVALID_RATE": "0"},
    )

    migrated = heartbeat(env, "migrate", cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    produced = heartbeat(env, "produce", "--count", "30", "--rate", "0", cwd=tmp_path)
    assert produced.returncode == 0, produced.stderr
    assert "delivered 30, failed 0" in produced.stderr
    malformed = raw_producer(env)
    malformed.produce(topic, key=b"1", value=b"not a reading")
    assert malformed.flush(30) == 0

    before = count(database_url, "heartbeats")
    consumer = subprocess.Popen(
        [HEARTBEAT, "consume"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        try:
            wait_for(lambda: count(database_url, "heartbeats") >= before + 30, 90, "30 readings")
        except AssertionError:
            consumer.kill()
            stored = count(database_url, "heartbeats") - before
            pytest.fail(
                f"the consumer stored {stored} of 30 readings; its log:\n"
                f"{consumer.communicate()[1]}"
            )
        dead_letters = heartbeat(
            env, "tail", "--dlq", "--from-beginning", "--max-messages", "1",
            "--idle-timeout", "30", cwd=tmp_path,
        )  # fmt: skip
    finally:
        consumer.send_signal(signal.SIGTERM)
        _, consumer_log = consumer.communicate(timeout=60)
    assert consumer.returncode == 0, consumer_log
    assert "Traceback" not in consumer_log
    assert dead_letters.returncode == 0, dead_letters.stderr
    assert "not a reading" in dead_letters.stdout

    tailed = heartbeat(
        env, "tail", "--from-beginning", "--max-messages", "31", "--idle-timeout", "20",
        cwd=tmp_path,
    )  # fmt: skip
    assert tailed.returncode == 0, tailed.stderr
    assert len(tailed.stdout.splitlines()) == 31
    stats = heartbeat(env, "stats", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert "no readings in the window" not in stats.stdout


KAFKA_REFUSALS = {
    "a CA that did not sign the broker's certificate": (
        "sasl_ssl",
        lambda s: {"KAFKA_SSL_CA_LOCATION": str(s.other_ca)},
        "KAFKA_SSL_CA_LOCATION",
    ),
    "a wrong SASL password": (
        "sasl_ssl",
        lambda s: {"KAFKA_SASL_PASSWORD": "not-the-password"},
        "KAFKA_SASL_PASSWORD",
    ),
    "no client certificate": (
        "mutual_tls",
        lambda s: {"KAFKA_SSL_CERTIFICATE_LOCATION": "", "KAFKA_SSL_KEY_LOCATION": ""},
        "KAFKA_SSL_CERTIFICATE_LOCATION",
    ),
}


@pytest.mark.parametrize("case", KAFKA_REFUSALS, ids=list(KAFKA_REFUSALS))
def test_a_refused_kafka_connection_is_one_error_naming_the_setting(secured, tmp_path, case):
    path, change, setting = KAFKA_REFUSALS[case]
    env = command_env(tmp_path, secured.kafka_env(path), change(secured))
    env = {key: value for key, value in env.items() if value}

    tailed = heartbeat(env, "tail", "--idle-timeout", "1", cwd=tmp_path)

    assert tailed.returncode == 1, tailed.stderr
    assert "Traceback" not in tailed.stderr
    errors = errors_of(tailed)
    assert len(errors) == 1, tailed.stderr
    assert setting in errors[0]


def test_the_producer_refused_by_kafka_retries_not_ready_and_says_which_setting(secured, tmp_path):
    port = free_port()
    env = command_env(
        tmp_path, secured.kafka_env("sasl_ssl"), {"KAFKA_SASL_PASSWORD": "not-the-password"}
    )
    env["METRICS_PORT"] = str(port)
    producer = subprocess.Popen(
        [HEARTBEAT, "produce", "--count", "5"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: _status(port, "/healthz") == 200, 30, "the health endpoint")
        time.sleep(14)  # the first metadata request gives up after 10 s, then it retries
        ready = _status(port, "/readyz")
        still_running = producer.poll() is None
    finally:
        producer.send_signal(signal.SIGTERM)
        _, log = producer.communicate(timeout=60)
    assert still_running, log
    assert ready == 503
    assert "KAFKA_SASL_PASSWORD" in log
    assert "retry" in log
    assert "Traceback" not in log


def test_a_kafka_ca_file_that_does_not_exist_is_a_wrong_setting(secured, tmp_path):
    env = command_env(
        tmp_path, secured.kafka_env("sasl_ssl"), {"KAFKA_SSL_CA_LOCATION": "/nowhere/ca.crt"}
    )

    tailed = heartbeat(env, "tail", "--idle-timeout", "1", cwd=tmp_path)

    assert tailed.returncode == 2
    assert "KAFKA_SSL_CA_LOCATION" in tailed.stderr
    assert "Traceback" not in tailed.stderr


POSTGRES_REFUSALS = {
    "a CA that did not sign the server's certificate": (
        "password",
        lambda s: {"sslrootcert": str(s.other_ca)},
        "certificate verify failed",
    ),
    "a server certificate for another host": (
        "password",
        lambda s: {"host": "db.example.org", "hostaddr": "127.0.0.1"},
        "does not match host name",
    ),
    "a wrong password": (
        "password",
        lambda s: {"password": "not-the-password"},
        "password authentication failed",
    ),
    "no client certificate": (
        "certificate",
        lambda s: {"sslcert": "", "sslkey": ""},
        "certificate",
    ),
}


@pytest.mark.parametrize("case", POSTGRES_REFUSALS, ids=list(POSTGRES_REFUSALS))
def test_a_refused_postgresql_connection_is_one_error_naming_the_setting(secured, tmp_path, case):
    path, change, reason = POSTGRES_REFUSALS[case]
    url = secured.database_url(path, **change(secured))
    # Without sslcert libpq would look in ~/.postgresql/; HOME is the empty tmp_path.
    env = command_env(tmp_path, {"DATABASE_URL": url})

    migrated = heartbeat(env, "migrate", cwd=tmp_path)

    assert migrated.returncode == 1, migrated.stderr
    assert "Traceback" not in migrated.stderr
    errors = errors_of(migrated)
    assert len(errors) == 1, migrated.stderr
    assert "DATABASE_URL" in errors[0]
    assert reason in errors[0]


def _status(port: int, path: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def _run_for(env: dict[str, str], args: list[str], cwd: Path, seconds: float) -> str:
    """Run a long-running command for `seconds`, read its /metrics, stop it: all it printed."""
    port = free_port()
    env = env | {"METRICS_PORT": str(port)}
    process = subprocess.Popen(
        [HEARTBEAT, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    metrics = ""
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(1)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    metrics = r.read().decode()
            except OSError:
                continue
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert metrics, f"no /metrics from {args}: {err}"
    return out + err + metrics


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_password_appears_in_any_output_of_any_command(secured, tmp_path, log_format):
    topic = unique("secrets")
    kafka = secured.kafka_env("sasl_ssl")
    common = {"LOG_LEVEL": "DEBUG", "LOG_FORMAT": log_format, "KAFKA_TOPIC": topic}
    common |= {"KAFKA_DLQ_TOPIC": f"{topic}-dlq", "KAFKA_AUTO_OFFSET_RESET": "earliest"}
    in_url = {"DATABASE_URL": secured.database_url("password")}
    in_pgpassword = {
        "DATABASE_URL": secured.database_url("password", password=""),
        "PGPASSWORD": PG_PASSWORD,
    }
    wrong_ca = {"KAFKA_SSL_CA_LOCATION": str(secured.other_ca)}
    outputs: list[str] = []
    for database in (in_url, in_pgpassword):
        env = command_env(tmp_path, kafka, common, database)
        failing_db = env | {
            "DATABASE_URL": env["DATABASE_URL"] + f" sslrootcert={secured.other_ca}"
        }
        for args in (
            ["settings"],
            ["migrate"],
            ["produce", "--count", "5", "--rate", "0"],
            ["tail", "--from-beginning", "--max-messages", "5", "--idle-timeout", "10"],
            ["stats"],
            ["dlq", "count"],
        ):
            result = heartbeat(env, *args, cwd=tmp_path)
            outputs.append(result.stdout + result.stderr)
        for args in (["migrate"], ["stats"]):
            result = heartbeat(failing_db, *args, cwd=tmp_path)
            assert result.returncode != 0
            outputs.append(result.stdout + result.stderr)
        outputs.append(_run_for(env, ["consume"], tmp_path, 8))
        outputs.append(_run_for(env | wrong_ca, ["produce", "--count", "5"], tmp_path, 13))
        outputs.append(_run_for(failing_db, ["consume"], tmp_path, 8))

    everything = "\n".join(outputs)
    assert "DEBUG" in everything or '"debug"' in everything.lower()  # the level took effect
    assert KAFKA_PASSWORD not in everything
    assert PG_PASSWORD not in everything


def test_a_kafka_broker_certificate_for_another_host_is_one_error_naming_the_setting(
    secured, tmp_path
):
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    (tls_dir / "ca.crt").write_bytes(secured.authority.ca_cert.read_bytes())
    cert, key = create_server_for(secured.authority, tmp_path / "other", "other.example")
    (tls_dir / "server.pem").write_bytes(key.read_bytes() + cert.read_bytes())
    security = KafkaSecurity(tls_dir, "heartbeat", KAFKA_PASSWORD)
    broker = KafkaBroker(tmp_path / "kafka", heap="256m", security=security)
    broker.start()
    try:
        address = {"KAFKA_BOOTSTRAP_SERVERS": broker.sasl_ssl_bootstrap_servers}
        env = command_env(tmp_path, secured.kafka_env("sasl_ssl"), address)
        tailed = heartbeat(env, "tail", "--idle-timeout", "1", cwd=tmp_path)
    finally:
        broker.stop(timeout=15)

    assert tailed.returncode == 1, tailed.stderr
    assert "Traceback" not in tailed.stderr
    errors = errors_of(tailed)
    assert len(errors) == 1, tailed.stderr
    assert "another host" in errors[0]


def _reason_is(kube: Kubectl, name: str, reason: str) -> None:
    kube.wait(
        f"heartbeatsimulation/{name}",
        f'jsonpath={{.status.conditions[?(@.type=="Ready")].reason}}={reason}',
        timeout=90,
    )


@pytest.mark.timeout(900)
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_password_appears_in_any_event_status_or_log_of_the_operator(
    kube_cluster, tmp_path, log_format
):
    """The operator holds the Kafka SASL password and the PostgreSQL one (in DATABASE_URL
    and PGPASSWORD) as any pod of the chart would, logs at DEBUG, and posts every kind of
    Event: its own actions, a spec it cannot honour, a crash-looping pod, and StatefulSets
    the API server refuses (whose message is the API server's own)."""
    kube = simulation_namespace(kube_cluster, "leak")
    namespace = kube.namespace
    secrets = {
        "KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "heartbeat",
        "KAFKA_SASL_PASSWORD": KAFKA_PASSWORD,
        "DATABASE_URL": f"postgresql://heartbeat:{PG_PASSWORD}@db.example:5432/heartbeat",
        "PGPASSWORD": PG_PASSWORD,
        "LOG_LEVEL": "DEBUG",
        "LOG_FORMAT": log_format,
        "OPERATOR_KAFKA_SASL_SECRET": "kafka-user",
        "OPERATOR_KAFKA_SASL_SECRET_KEY": "password",
    }
    outputs: list[str] = []
    try:
        kube.run(
            "create", "secret", "generic", "kafka-user", f"--from-literal=password={KAFKA_PASSWORD}"
        )  # fmt: skip
        kubeconfig = operator_kubeconfig(kube, namespace, tmp_path / "kubeconfig")

        operator = OperatorProcess(kubeconfig, namespace, tmp_path, env=secrets).start()
        try:
            kube.apply(simulation("ward", customers=4, replicas=2))
            kube.apply(simulation("crowd", customers=2, replicas=5))
            kube.wait("heartbeatsimulation/ward", "condition=Ready", timeout=90)
            pod = kube.find("pod", "ward-1")
            assert pod is not None
            kube.run(
                "patch", "pod", "ward-1", "--subresource=status", "--type=merge",
                "-p", json.dumps(crash_looping(pod, restarts=3)),
            )  # fmt: skip
            _reason_is(kube, "ward", "GeneratorCrashLooping")
            _reason_is(kube, "crowd", "TooManyReplicas")
            outputs.append(operator.get("/metrics")[1])
        finally:
            assert operator.stop() == 0, operator.logged()[-3000:]

        # Settings the API server refuses in every StatefulSet: its message becomes the
        # status and a Warning Event.
        refusing = secrets | {"OPERATOR_GENERATOR_SERVICE_ACCOUNT": "Not_A_Valid_Name"}
        operator = OperatorProcess(kubeconfig, namespace, tmp_path, env=refusing).start()
        try:
            kube.apply(simulation("refused", customers=3, replicas=1))
            _reason_is(kube, "refused", "StatefulSetRejected")
            outputs.append(operator.get("/metrics")[1])
        finally:
            assert operator.stop() == 0, operator.logged()[-3000:]

        wanted = {"Created", "TooManyReplicas", "GeneratorCrashLooping", "StatefulSetRejected"}
        events = wait_for(
            lambda: kube.items("events"),
            30,
            f"Events {sorted(wanted)}",
            0.3,
            until=lambda found: wanted <= {e["reason"] for e in found},
        )
        refused = [e for e in events if e["reason"] == "StatefulSetRejected"]
        assert "serviceAccountName" in refused[0]["message"], refused[0]["message"]
        outputs.append(json.dumps(events))
        outputs.append(json.dumps(kube.items("heartbeatsimulations")))
        outputs.append(json.dumps(kube.items("statefulsets")))
        outputs.append(operator.logged())
    finally:
        kube.run("delete", "namespace", namespace, "--wait=false")

    everything = "\n".join(outputs)
    logged = operator.logged()
    assert "DEBUG" in logged or '"debug"' in logged.lower()  # the level took effect
    assert KAFKA_PASSWORD not in everything
    assert PG_PASSWORD not in everything
