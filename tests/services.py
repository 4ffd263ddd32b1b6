"""Kafka and PostgreSQL for the integration tests, as session-scoped pytest fixtures.

Load them from a conftest with ``pytest_plugins = ["tests.services"]`` (or
``from tests.services import *``). Fixtures:

    services_backend   "local" or "containers", chosen once per session
    kafka_service      .bootstrap_servers
    postgres_service   .conninfo, .env(), .stop(), .start() (same address after start)

For fault tests, whatever the backend, real local processes a test may kill or freeze,
one of each per test module (the shared services above stay untouched):

    own_kafka_broker    a `KafkaBroker`: .kill(), .start() on the same port and data
    own_kafka_cluster   a three-node `KafkaCluster`: .node(id).kill() / .start()
    own_postgres        a `PostgresServer`: .crash(), .hang(), .resume(), .start()

The backend comes from HEARTBEAT_TEST_SERVICES:

    local        real processes from `heartbeat_localstack` (Kafka jars from Maven Central, Debian's
                 PostgreSQL), state in temporary folders, fresh ports; never the
                 developer's .stack
    containers   testcontainers (needs a Docker engine)
    auto/unset   containers when a Docker engine answers, local otherwise
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pytest

from heartbeat_localstack.kafka import KafkaBroker
from heartbeat_localstack.kafka_cluster import KafkaCluster
from heartbeat_localstack.ports import free_port
from heartbeat_localstack.postgres import PostgresServer

__all__ = [
    "kafka_service",
    "own_kafka_broker",
    "own_kafka_cluster",
    "own_postgres",
    "postgres_service",
    "services_backend",
]

logger = logging.getLogger(__name__)

BACKEND_VARIABLE = "HEARTBEAT_TEST_SERVICES"
BACKENDS = ("local", "containers")
KAFKA_IMAGE = os.environ.get("HEARTBEAT_TEST_KAFKA_IMAGE", "confluentinc/cp-kafka:7.6.0")
POSTGRES_IMAGE = os.environ.get("HEARTBEAT_TEST_POSTGRES_IMAGE", "postgres:15")
DATABASE = "heartbeat"


class KafkaService(Protocol):
    @property
    def bootstrap_servers(self) -> str: ...


class PostgresService(Protocol):
    @property
    def conninfo(self) -> str: ...

    def env(self) -> dict[str, str]: ...

    def stop(self) -> None: ...

    def start(self) -> None: ...


def choose_backend(setting: str | None, docker_reachable: Callable[[], bool]) -> str:
    """The backend for a HEARTBEAT_TEST_SERVICES value; asks about Docker only for auto."""
    choice = (setting or "auto").strip().lower()
    if choice in BACKENDS:
        return choice
    if choice != "auto":
        raise pytest.UsageError(
            f"{BACKEND_VARIABLE}={setting!r}: expected local, containers or auto"
        )
    return "containers" if docker_reachable() else "local"


def docker_reachable() -> bool:
    """Whether a Docker engine answers a ping; False, quickly, when there is none."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker

        client = docker.from_env(timeout=2)
    except Exception:  # no SDK, bad DOCKER_HOST, ...: no engine as far as tests go
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def services_backend() -> str:
    backend = choose_backend(os.environ.get(BACKEND_VARIABLE), docker_reachable)
    logger.info("integration services run as %s (%s)", backend, BACKEND_VARIABLE)
    return backend


@pytest.fixture(scope="session")
def kafka_service(
    services_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaService]:
    if services_backend == "containers":
        yield from _kafka_container()
        return
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def postgres_service(services_backend: str) -> Iterator[PostgresService]:
    if services_backend == "containers":
        yield from _postgres_container()
        return
    # As root the server runs as the postgres user, who must be able to traverse every
    # parent folder. pytest keeps its temporary root private and makes it private again
    # whenever a pytest session starts, even while this one runs; so PostgreSQL gets a
    # folder of its own under the system temp dir, removed afterwards.
    with tempfile.TemporaryDirectory(prefix="heartbeat-pg-", ignore_cleanup_errors=True) as base:
        os.chmod(base, 0o711)
        server = PostgresServer(Path(base) / "postgres", user=DATABASE, database=DATABASE)
        try:
            server.start()
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def own_kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(tmp_path_factory.mktemp("own-kafka"))
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def own_kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("own-kafka-cluster"), nodes=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    # A folder the postgres user can reach, as for postgres_service.
    with tempfile.TemporaryDirectory(prefix="heartbeat-pg-", ignore_cleanup_errors=True) as base:
        os.chmod(base, 0o711)
        server = PostgresServer(Path(base) / "postgres", user=DATABASE, database=DATABASE)
        try:
            server.start()
            yield server
        finally:
            server.stop(mode="immediate")


# --- testcontainers ---------------------------------------------------------------------


def _testcontainers(module: str) -> Any:
    """testcontainers' Kafka or PostgreSQL module; newer releases moved them to `community`."""
    import importlib

    try:
        return importlib.import_module(f"testcontainers.community.{module}")
    except ImportError:
        return importlib.import_module(f"testcontainers.{module}")


class _ContainerKafka:
    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers


def _kafka_container() -> Iterator[KafkaService]:
    container = _testcontainers("kafka").KafkaContainer(KAFKA_IMAGE).with_kraft()
    with container:
        yield _ContainerKafka(container.get_bootstrap_server())


class _ContainerPostgres:
    """A PostgreSQL container that can be stopped and started like the local server.

    stop()/start() stop and start the same container (its data stays). The container's
    port is bound to a fixed host port chosen before the first start, so the address, and
    with it `conninfo`, stays the same across a restart; a random binding would change.
    """

    def __init__(self, container: Any, host_port: int) -> None:
        self._container = container
        self.port = host_port

    @property
    def host(self) -> str:
        return str(self._container.get_container_host_ip())

    @property
    def conninfo(self) -> str:
        c = self._container
        return (
            f"host={self.host} port={self.port} user={c.username} "
            f"password={c.password} dbname={c.dbname}"
        )

    def env(self) -> dict[str, str]:
        c = self._container
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": c.username,
            "PGPASSWORD": c.password,
            "PGDATABASE": c.dbname,
        }

    def stop(self) -> None:
        self._container.get_wrapped_container().stop()

    def start(self, timeout: float = 60.0) -> None:
        self._container.get_wrapped_container().start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.conninfo, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def _postgres_container() -> Iterator[PostgresService]:
    host_port = free_port()
    container = _testcontainers("postgres").PostgresContainer(
        POSTGRES_IMAGE, username=DATABASE, password=DATABASE, dbname=DATABASE, driver=None
    )
    container.with_bind_ports(5432, host_port)
    with container:
        yield _ContainerPostgres(container, host_port)
