"""The development stack: one Kafka broker and one PostgreSQL server under one folder.

``up`` starts both (or adopts the ones a previous ``up`` left running there) and writes
``<dir>/env`` as KEY=value lines, so ``set -a; . <dir>/env`` points a shell at them.

Secure (``up --secure``), a throw-away CA in ``<dir>/tls`` signs the servers' certificate;
Kafka adds SASL_SSL (SCRAM-SHA-512) and mutual-TLS listeners, PostgreSQL takes only TLS
connections. ``<dir>/env`` then points at SASL_SSL and PostgreSQL with ``verify-full``, and
``<dir>/env.mtls`` holds the same for mutual TLS (Kafka SSL listener, PostgreSQL client
certificate). The passwords are random, kept in ``<dir>/secrets.json`` (mode 0600).
"""

from __future__ import annotations

import json
import logging
import secrets
import shlex
from collections.abc import Mapping
from pathlib import Path

from heartbeat_localstack import tls
from heartbeat_localstack.exceptions import LocalStackError
from heartbeat_localstack.kafka import KafkaBroker, KafkaSecurity
from heartbeat_localstack.maven import KAFKA_VERSION
from heartbeat_localstack.postgres import PostgresServer

logger = logging.getLogger(__name__)


def render_env(values: Mapping[str, str]) -> str:
    """KEY=value lines that a POSIX shell can source; values are quoted only when needed."""
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items())


class Stack:
    """Kafka in ``<directory>/kafka``, PostgreSQL in ``<directory>/postgres``."""

    def __init__(
        self, directory: Path, *, kafka_version: str = KAFKA_VERSION, secure: bool = False
    ) -> None:
        self.directory = Path(directory).resolve()
        self.secure = secure
        self.authority: tls.Authority | None = None
        security: KafkaSecurity | None = None
        pg_password: str | None = None
        if secure:
            self.authority = tls.Authority(self.directory / "tls")
            passwords = self._secrets()
            security = KafkaSecurity(self.authority.root, "heartbeat", passwords["kafka"])
            pg_password = passwords["postgres"]
        self.kafka = KafkaBroker(self.directory / "kafka", version=kafka_version, security=security)
        self.postgres = PostgresServer(
            self.directory / "postgres",
            password=pg_password,
            tls_dir=self.authority.root if self.authority else None,
        )

    @property
    def env_path(self) -> Path:
        return self.directory / "env"

    @property
    def mtls_env_path(self) -> Path:
        return self.directory / "env.mtls"

    def _secrets(self) -> dict[str, str]:
        """The stack's random passwords, made once and kept with mode 0600."""
        path = self.directory / "secrets.json"
        try:
            saved = json.loads(path.read_text())
            if isinstance(saved, dict) and {"kafka", "postgres"} <= saved.keys():
                return {key: str(value) for key, value in saved.items()}
        except (OSError, ValueError):
            pass
        made = {"kafka": secrets.token_urlsafe(18), "postgres": secrets.token_urlsafe(18)}
        self.directory.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(made) + "\n")
        return made

    def env(self) -> dict[str, str]:
        if not self.secure:
            return {"KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers, **self.postgres.env()}
        assert self.authority is not None
        assert self.kafka.security is not None
        ca = str(self.authority.ca_cert)
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.sasl_ssl_bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": self.kafka.security.scram_username,
            "KAFKA_SASL_PASSWORD": self.kafka.security.scram_password,
            "KAFKA_SSL_CA_LOCATION": ca,
            **self.postgres.env(),
            "PGHOST": "localhost",
            "PGSSLMODE": "verify-full",
            "PGSSLROOTCERT": ca,
        }

    def mtls_env(self) -> dict[str, str]:
        """Mutual TLS to both: Kafka's SSL listener and PostgreSQL's certificate user."""
        assert self.authority is not None
        cert, key = tls.create_client(self.authority, self.postgres.cert_user)
        ca = str(self.authority.ca_cert)
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.ssl_bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CA_LOCATION": ca,
            "KAFKA_SSL_CERTIFICATE_LOCATION": str(cert),
            "KAFKA_SSL_KEY_LOCATION": str(key),
            "PGHOST": "localhost",
            "PGPORT": str(self.postgres.port),
            "PGUSER": self.postgres.cert_user,
            "PGDATABASE": self.postgres.cert_user,
            "PGSSLMODE": "verify-full",
            "PGSSLROOTCERT": ca,
            "PGSSLCERT": str(cert),
            "PGSSLKEY": str(key),
        }

    def up(self) -> dict[str, str]:
        """Start what is not running yet, wait until both answer, write the env file.

        If either fails, whatever this call started is stopped again, so a failed ``up``
        leaves things as they were.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        kafka_was_running = self.kafka.is_running()
        postgres_was_running = self.postgres.is_running()
        if self.secure:
            if (kafka_was_running and self.kafka.sasl_ssl_port is None) or (
                postgres_was_running and not (self.postgres.data_dir / "tls-server.crt").exists()
            ):
                raise LocalStackError(
                    f"the stack in {self.directory} runs without security; stop it first "
                    "(make stack-down), then start it secure"
                )
            self.authority = tls.create_authority(self.directory / "tls")
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
        self.env_path.chmod(0o600)  # a secure stack's passwords are in it
        if self.secure:
            self.mtls_env_path.write_text(render_env(self.mtls_env()))
        else:
            self.mtls_env_path.unlink(missing_ok=True)
        return values

    def down(self) -> None:
        """Stop both; fine when neither runs."""
        self.kafka.stop()
        self.postgres.stop()
        self.env_path.unlink(missing_ok=True)
        self.mtls_env_path.unlink(missing_ok=True)

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
