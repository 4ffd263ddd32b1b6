"""Kafka and PostgreSQL for the integration tests, as session-scoped pytest fixtures.

Load them from a conftest with ``pytest_plugins = ["tests.services"]`` (or
``from tests.services import *``). Fixtures:

    services_backend   "local" or "containers", chosen once per session
    kafka_service      .bootstrap_servers
    postgres_service   .conninfo, .env(), .stop(), .start() (same address after start)
    kafka_to_stop      a broker of the test's own on the same backend: .bootstrap_servers,
                       .stop(), .start() (same address and data after start)

For fault tests, whatever the backend, real local processes a test may kill or freeze,
one of each per test module (the shared services above stay untouched):

    own_kafka_broker    a `KafkaBroker`: .kill(), .start() on the same port and data
    own_kafka_cluster   a three-node `KafkaCluster`: .node(id).kill() / .start()
    own_postgres        a `PostgresServer`: .crash(), .hang(), .resume(), .start()

The backend comes from HEARTBEAT_TEST_SERVICES:

    local        real processes from `heartbeat_localstack` (Kafka jars from Maven Central, Debian's
                 PostgreSQL), state in temporary folders, fresh ports; never the
                 developer's .stack
    containers   testcontainers (needs a Docker engine): PostgreSQL through testcontainers'
                 PostgreSQL module, Kafka (KRaft) through `heartbeat_localstack.containers`,
                 on images built here (`python -m heartbeat_localstack.images services`,
                 built on first use and cached), all on one user network of the session
                 where containers reach them as kafka:19092 and postgres:5432; the host
                 reaches them on published loopback ports
    auto/unset   local when this machine can run the services as processes (Java, and
                 PostgreSQL's server programs), else containers when a Docker engine
                 answers (a laptop with Docker only), else local (which then says what
                 to install)

HEARTBEAT_TEST_KAFKA_IMAGE and HEARTBEAT_TEST_POSTGRES_IMAGE name other images to use.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psycopg
import pytest

from heartbeat_localstack.kafka import KafkaBroker
from heartbeat_localstack.kafka_cluster import KafkaCluster
from heartbeat_localstack.ports import free_port
from heartbeat_localstack.postgres import PostgresServer

__all__ = [
    "kafka_service",
    "kafka_to_stop",
    "own_kafka_broker",
    "own_kafka_cluster",
    "own_postgres",
    "postgres_service",
    "services_backend",
    "services_network",
]

logger = logging.getLogger(__name__)

BACKEND_VARIABLE = "HEARTBEAT_TEST_SERVICES"
BACKENDS = ("local", "containers")
DATABASE = "heartbeat"
KAFKA_ALIAS = "kafka"
POSTGRES_ALIAS = "postgres"
# The backend each session used, for the summary at the end of the run.
_USED: list[str] = []


class KafkaService(Protocol):
    @property
    def bootstrap_servers(self) -> str: ...


class RestartableKafka(Protocol):
    @property
    def bootstrap_servers(self) -> str: ...

    def stop(self) -> None: ...

    def start(self) -> None: ...


class PostgresService(Protocol):
    @property
    def conninfo(self) -> str: ...

    def env(self) -> dict[str, str]: ...

    def stop(self) -> None: ...

    def start(self) -> None: ...


def choose_backend(
    setting: str | None,
    docker_reachable: Callable[[], bool],
    local_services_available: Callable[[], bool] = lambda: True,
) -> str:
    """The backend for a HEARTBEAT_TEST_SERVICES value; only auto asks about the machine.

    Auto prefers processes, so starting a Docker engine (`make docker`) does not move a
    developer's runs onto containers; containers are the fallback where processes cannot run.
    """
    choice = (setting or "auto").strip().lower()
    if choice in BACKENDS:
        return choice
    if choice != "auto":
        raise pytest.UsageError(
            f"{BACKEND_VARIABLE}={setting!r}: expected local, containers or auto"
        )
    if local_services_available():
        return "local"
    return "containers" if docker_reachable() else "local"


def local_services_available() -> bool:
    """Whether Kafka and PostgreSQL can run here as processes: Java and the server programs."""
    import shutil

    from heartbeat_localstack.exceptions import MissingToolError
    from heartbeat_localstack.postgres import find_bindir

    try:
        find_bindir()
    except MissingToolError:
        return False
    return shutil.which("java") is not None


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
    setting = os.environ.get(BACKEND_VARIABLE)
    backend = choose_backend(setting, docker_reachable, local_services_available)
    how = "local processes" if backend == "local" else "testcontainers"
    _USED.append(f"{backend} ({how}; {BACKEND_VARIABLE}={setting or 'auto'})")
    logger.info("integration services run as %s", _USED[-1])
    return backend


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _USED:
        terminalreporter.write_line(f"integration services ran as {_USED[0]}")


class _Service(Protocol):
    def start(self) -> object: ...

    def stop(self) -> object: ...


ServiceT = TypeVar("ServiceT", bound=_Service)


def _running(service: ServiceT, *, stop: Callable[[], object] | None = None) -> Iterator[ServiceT]:
    """Start ``service``, yield it, and stop it however the tests using it ended."""
    try:
        service.start()
        yield service
    finally:
        (stop or service.stop)()


@contextlib.contextmanager
def _postgres_folder() -> Iterator[Path]:
    """A folder of its own for a PostgreSQL server, removed afterwards.

    As root the server runs as the postgres user, who must be able to traverse every
    parent folder. pytest keeps its temporary root private and makes it private again
    whenever a pytest session starts, even while this one runs; so the folder is under
    the system temp dir instead.
    """
    with tempfile.TemporaryDirectory(prefix="heartbeat-pg-", ignore_cleanup_errors=True) as base:
        os.chmod(base, 0o711)
        yield Path(base)


@pytest.fixture(scope="session")
def kafka_service(
    services_backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[KafkaService]:
    if services_backend == "containers":
        yield from _kafka_container(request.getfixturevalue("services_network"))
        return
    yield from _running(KafkaBroker(tmp_path_factory.mktemp("kafka")))


@pytest.fixture(scope="session")
def postgres_service(
    services_backend: str, request: pytest.FixtureRequest
) -> Iterator[PostgresService]:
    if services_backend == "containers":
        yield from _postgres_container(request.getfixturevalue("services_network"))
        return
    with _postgres_folder() as base:
        yield from _running(PostgresServer(base / "postgres", user=DATABASE, database=DATABASE))


@pytest.fixture
def kafka_to_stop(
    services_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[RestartableKafka]:
    """A broker of the test's own that it may stop and start; the shared one stays up."""
    if services_backend == "containers":
        network = request.getfixturevalue("services_network")
        yield from _kafka_container(network, alias=f"kafka-{os.urandom(4).hex()}")
        return
    yield from _running(KafkaBroker(tmp_path / "kafka"))


@pytest.fixture(scope="module")
def own_kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    yield from _running(KafkaBroker(tmp_path_factory.mktemp("own-kafka")))


@pytest.fixture(scope="module")
def own_kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    yield from _running(KafkaCluster(tmp_path_factory.mktemp("own-kafka-cluster"), nodes=3))


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    with _postgres_folder() as base:
        server = PostgresServer(base / "postgres", user=DATABASE, database=DATABASE)
        yield from _running(server, stop=lambda: server.stop(mode="immediate"))


# --- testcontainers ---------------------------------------------------------------------


def _docker_cli() -> Any:
    from heartbeat_localstack.docker import DockerCLI

    return DockerCLI()


def _kafka_image() -> str:
    from heartbeat_localstack.images.build import kafka_image

    return os.environ.get("HEARTBEAT_TEST_KAFKA_IMAGE") or kafka_image(_docker_cli())


def _postgres_image() -> str:
    from heartbeat_localstack.images.build import postgres_image

    return os.environ.get("HEARTBEAT_TEST_POSTGRES_IMAGE") or postgres_image(_docker_cli())


@pytest.fixture(scope="session")
def services_network() -> Iterator[Any]:
    """The session's user network (testcontainers' `Network`); containers find the services
    on it as kafka:19092 and postgres:5432."""
    from heartbeat_localstack.containers import Network

    with Network() as network:
        yield network


class _ContainerKafka:
    """A Kafka container that can be stopped and started like the local broker.

    stop()/start() stop and start the same container: data, port and address stay.
    """

    def __init__(self, node: Any) -> None:
        self._node = node

    @property
    def bootstrap_servers(self) -> str:
        return str(self._node.bootstrap_servers)

    @property
    def network_bootstrap_servers(self) -> str:
        """The address containers on the session's network use."""
        return str(self._node.network_bootstrap_servers)

    @property
    def network_name(self) -> str:
        return str(self._node.network_name)

    def stop(self) -> None:
        self._node.get_wrapped_container().stop(timeout=30)

    def start(self) -> None:
        self._node.get_wrapped_container().start()
        self._node.wait_ready()


def _kafka_container(network: Any, alias: str = KAFKA_ALIAS) -> Iterator[_ContainerKafka]:
    from heartbeat_localstack.containers import KafkaNode

    with KafkaNode(_kafka_image(), network=network, alias=alias) as node:
        yield _ContainerKafka(node)


class _ContainerPostgres:
    """A PostgreSQL container that can be stopped and started like the local server.

    stop()/start() stop and start the same container (its data stays). The container's
    port is bound to a fixed loopback port chosen before the first start, so the address,
    and with it `conninfo`, stays the same across a restart; a random binding would change.
    """

    host = "127.0.0.1"

    def __init__(self, container: Any, host_port: int) -> None:
        self._container = container
        self.port = host_port

    @property
    def conninfo(self) -> str:
        c = self._container
        return (
            f"host={self.host} port={self.port} user={c.username} "
            f"password={c.password} dbname={c.dbname}"
        )

    def network_conninfo(self, dbname: str | None = None) -> str:
        """The conninfo containers on the session's network use."""
        c = self._container
        return (
            f"host={POSTGRES_ALIAS} port=5432 user={c.username} "
            f"password={c.password} dbname={dbname or c.dbname}"
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


def _postgres_container(network: Any) -> Iterator[PostgresService]:
    # testcontainers' settings are in place: `network` came from heartbeat_localstack.containers.
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # releases before the `community` namespace
        from testcontainers.postgres import PostgresContainer  # type: ignore[no-redef]

    host_port = free_port()
    container = PostgresContainer(
        _postgres_image(), username=DATABASE, password=DATABASE, dbname=DATABASE, driver=None
    )
    container.ports["5432"] = ("127.0.0.1", host_port)  # loopback only, fixed across restarts
    container.with_network(network).with_network_aliases(POSTGRES_ALIAS)
    with container:
        yield _ContainerPostgres(container, host_port)
