"""The pipeline's processes as containers of the built image, wired to the session's services.

`AppNetwork` follows the fixtures: on the testcontainers backend the services sit on a user
network, so the containers join it (kafka:19092, postgres:5432) and publish their metrics
port on the host's loopback; with local processes the containers share the host's network.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from heartbeat_localstack.docker import DockerCLI
from heartbeat_localstack.ports import free_port

METRICS_PORT_INSIDE = 8000


@dataclass(frozen=True)
class AppNetwork:
    """How a container of the image reaches Kafka and PostgreSQL, and how the host reaches it."""

    options: tuple[str, ...]
    bootstrap_servers: str
    database_url: str
    publishes: bool  # metrics on a published port (user network) or the host's own (host)

    @classmethod
    def for_services(cls, kafka_service, postgres_service, database: str) -> AppNetwork:
        dbname = str(conninfo_to_dict(database)["dbname"])
        network = getattr(kafka_service, "network_name", None)
        if network:
            return cls(
                options=("--network", network),
                bootstrap_servers=kafka_service.network_bootstrap_servers,
                database_url=postgres_service.network_conninfo(dbname),
                publishes=True,
            )
        return cls(
            options=("--network", "host"),
            bootstrap_servers=kafka_service.bootstrap_servers,
            database_url=make_conninfo(database),
            publishes=False,
        )


@dataclass
class AppContainer:
    """One detached `docker run` of the image; removed by `remove()`."""

    cli: DockerCLI
    image: str
    name: str = field(default_factory=lambda: f"heartbeat-app-{uuid.uuid4().hex[:8]}")
    metrics_port: int = 0  # on the host

    def start(self, network: AppNetwork, env: dict[str, str], *args: str) -> AppContainer:
        self.metrics_port = free_port()
        options = [*network.options, "--read-only", "--name", self.name]
        if network.publishes:
            options += ["--publish", f"127.0.0.1:{self.metrics_port}:{METRICS_PORT_INSIDE}"]
            inside = METRICS_PORT_INSIDE
        else:
            inside = self.metrics_port
        env = env | {
            "KAFKA_BOOTSTRAP_SERVERS": network.bootstrap_servers,
            "DATABASE_URL": network.database_url,
            "METRICS_PORT": str(inside),
        }
        for key, value in env.items():
            options += ["--env", f"{key}={value}"]
        self.cli.run(["run", "--detach", *options, self.image, *args])
        return self

    def stop(self, timeout: int = 10) -> tuple[float, int]:
        """`docker stop` (SIGTERM, SIGKILL after `timeout` s): seconds taken, exit code."""
        started = time.monotonic()
        self.cli.run(["stop", "--time", str(timeout), self.name], timeout=timeout + 30)
        took = time.monotonic() - started
        return took, self.exit_code()

    def exit_code(self) -> int:
        result = self.cli.run(["inspect", "--format", "{{.State.ExitCode}}", self.name])
        return int(result.stdout.strip())

    def logs(self) -> str:
        result = self.cli.run(["logs", "--tail", "40", self.name], check=False)
        return (result.stdout + result.stderr)[-6000:]

    def remove(self) -> None:
        self.cli.run(["rm", "--force", self.name], check=False)
