"""The development stack: one Kafka broker and one PostgreSQL server under one folder.

``up`` starts both (or adopts the ones a previous ``up`` left running there) and writes
``<dir>/env`` as KEY=value lines, so ``set -a; . <dir>/env`` points a shell at them.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping
from pathlib import Path

from heartbeat_localstack.kafka import KafkaBroker
from heartbeat_localstack.maven import KAFKA_VERSION
from heartbeat_localstack.postgres import PostgresServer

logger = logging.getLogger(__name__)


def render_env(values: Mapping[str, str]) -> str:
    """KEY=value lines that a POSIX shell can source; values are quoted only when needed."""
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items())


class Stack:
    """Kafka in ``<directory>/kafka``, PostgreSQL in ``<directory>/postgres``."""

    def __init__(self, directory: Path, *, kafka_version: str = KAFKA_VERSION) -> None:
        self.directory = Path(directory).resolve()
        self.kafka = KafkaBroker(self.directory / "kafka", version=kafka_version)
        self.postgres = PostgresServer(self.directory / "postgres")

    @property
    def env_path(self) -> Path:
        return self.directory / "env"

    def env(self) -> dict[str, str]:
        return {"KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers, **self.postgres.env()}

    def up(self) -> dict[str, str]:
        """Start what is not running yet, wait until both answer, write the env file.

        If either fails, whatever this call started is stopped again, so a failed ``up``
        leaves things as they were.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        kafka_was_running = self.kafka.is_running()
        postgres_was_running = self.postgres.is_running()
        try:
            self.kafka.start(wait=False)  # the JVM boots while PostgreSQL starts
            self.postgres.start()
            self.kafka.wait_ready()
        except BaseException:
            if not kafka_was_running:
                self.kafka.stop(timeout=10)
            if not postgres_was_running:
                self.postgres.stop(mode="immediate")
            raise
        values = self.env()
        self.env_path.write_text(render_env(values))
        return values

    def down(self) -> None:
        """Stop both; fine when neither runs."""
        self.kafka.stop()
        self.postgres.stop()
        self.env_path.unlink(missing_ok=True)

    def status(self) -> dict[str, str]:
        """What runs, per component, in words."""
        if self.kafka.is_running():
            kafka = f"running at {self.kafka.bootstrap_servers} (pid {self.kafka.pid})"
        else:
            kafka = "not running"
        if self.postgres.is_running():
            postgres = f"running at {self.postgres.host}:{self.postgres.port}"
        else:
            postgres = "not running"
        return {
            "Kafka": f"{kafka}; log {self.kafka.log_path}",
            "PostgreSQL": f"{postgres}; log {self.postgres.log_path}",
        }
