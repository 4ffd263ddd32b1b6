"""Settings for every heartbeat process, read from the environment and ``.env``.

One frozen ``Settings`` object is built at the entry point and passed down.
Each field's environment variable is its name in upper case; each field's
description is the documentation (the README table and ``.env.example`` are
generated from it and a test keeps them in sync).

PostgreSQL: when ``DATABASE_URL`` is empty, libpq's own ``PG*`` variables
(``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGPASSWORD``, ``PGDATABASE``...) decide
where to connect, exactly as for ``psql``.
"""

from __future__ import annotations

import difflib
import io
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import (
    DirectoryPath,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from heartbeat.errors import SettingsError

DEFAULT_METRICS_PORTS = {"producer": 8001, "consumer": 8002, "operator": 8003}
"""Each long-running command's metrics port when METRICS_PORT is empty."""

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class SettingsBase(BaseSettings):
    """How every settings class of the project is read: the environment, then ``.env``;
    names in any case, unknown names ignored, an empty value meaning the default, frozen.

    A subclass adds its fields and, where its variables share a prefix, ``env_prefix``.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        case_sensitive=False,
        env_ignore_empty=True,
    )


class Settings(SettingsBase):
    """Every setting of the pipeline; see the README for the table."""

    # --- Kafka -----------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", min_length=1, description="Kafka bootstrap servers, comma separated."
    )
    kafka_topic: str = Field("heartbeats", min_length=1, description="Topic readings go to.")
    kafka_dlq_topic: str = Field(
        "heartbeats.dlq",
        min_length=1,
        description="Dead-letter topic for rejected messages (original bytes, `reason` header).",
    )
    kafka_topic_partitions: int = Field(
        6, ge=1, le=10_000, description="Partitions of each topic when the consumer creates it."
    )
    kafka_replication_factor: int = Field(
        1, ge=1, le=32, description="Replication factor of each topic when the consumer creates it."
    )
    kafka_consumer_group: str = Field(
        "heartbeat-consumer", min_length=1, description="Consumer group of the consumers."
    )
    kafka_auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest",
        description="Where a partition with no stored offset starts: earliest or latest.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism, for SASL_* protocols."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_ca_location: Path | None = Field(
        None, description="CA certificate (PEM) to verify the brokers, for SSL protocols."
    )
    kafka_ssl_certificate_location: Path | None = Field(
        None, description="Client certificate (PEM) for mutual TLS."
    )
    kafka_ssl_key_location: Path | None = Field(
        None, description="Client private key (PEM) for mutual TLS."
    )
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "zstd", description="Compression of produced messages."
    )
    kafka_session_timeout_seconds: float = Field(
        45.0,
        ge=6,
        le=1800,
        description="Consumer group session timeout: how long a silent member keeps its "
        "partitions. With static membership, how long a restarting pod may be away without "
        "a rebalance.",
    )
    kafka_group_instance_id: str | None = Field(
        None,
        min_length=1,
        max_length=249,
        description="Static group membership id (e.g. the pod name); empty is dynamic "
        "membership. Unique per consumer process.",
    )

    # --- PostgreSQL ------------------------------------------------------------
    database_url: SecretStr = Field(
        SecretStr(""),
        description="libpq connection string or URI; empty uses libpq's PG* variables.",
    )
    database_pool_size: int = Field(
        2, ge=1, le=100, description="Most PostgreSQL connections one process holds."
    )
    database_connect_timeout_seconds: float = Field(
        5.0, gt=0, le=300, description="Timeout of one PostgreSQL connection attempt."
    )
    database_statement_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Longest one PostgreSQL statement may run before it is cancelled and retried.",
    )
    database_lock_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Longest a PostgreSQL statement waits for a lock before it is cancelled "
        "and retried.",
    )
    migrations_dir: DirectoryPath | None = Field(
        None, description="Folder of SQL migrations; empty uses the ones shipped with the package."
    )

    # --- Storage lifecycle (`heartbeat maintain`) --------------------------------
    partition_interval: Literal["hour", "day", "week"] = Field(
        "day",
        description="Time span of one partition of the raw readings: hour, day or week "
        "(UTC; weeks start on Monday).",
    )
    partition_ahead_days: int = Field(
        3,
        ge=1,
        le=366,
        description="Days of partitions `heartbeat maintain` keeps made ahead of now, for "
        "readings and rollups.",
    )
    raw_retention_days: int = Field(
        7,
        ge=1,
        le=36_600,
        description="Days of raw readings kept; `heartbeat maintain` drops older partitions whole.",
    )
    rollup_retention_days: int = Field(
        90,
        ge=1,
        le=36_600,
        description="Days of per-minute rollups kept; at least RAW_RETENTION_DAYS.",
    )
    hourly_rollup_retention_days: int = Field(
        730,
        ge=1,
        le=36_600,
        description="Days of per-hour rollups kept (and of customers not seen since); at "
        "least ROLLUP_RETENTION_DAYS.",
    )
    maintenance_lock_timeout_seconds: float = Field(
        2.0,
        gt=0,
        le=600,
        description="Longest a step of `heartbeat maintain` waits for a table lock (writers "
        "queue behind a waiting drop) before it gives up and tries again.",
    )

    # --- Consumer --------------------------------------------------------------
    consumer_batch_max_messages: int = Field(
        20_000, ge=1, le=1_000_000, description="Most messages written in one transaction."
    )
    consumer_batch_max_wait_seconds: float = Field(
        0.05, gt=0, le=60, description="Longest a batch waits to fill before it is written."
    )
    consumer_max_future_skew_seconds: float = Field(
        300.0,
        ge=0,
        le=31_536_000,
        description="Readings stamped further in the future than this are rejected.",
    )

    consumer_stall_seconds: float = Field(
        180.0,
        ge=1,
        le=86_400,
        description="/readyz fails when an owned partition with lag has not advanced for this "
        "long.",
    )
    shutdown_timeout_seconds: float = Field(
        15.0,
        gt=0,
        le=3600,
        description="Longest a stop (SIGTERM) may take; past it the process exits 0 and an "
        "unwritten batch is read again.",
    )

    stale_customer_seconds: float = Field(
        300.0,
        gt=0,
        description="A customer whose newest reading is older than this counts as stale.",
    )

    # --- Producer --------------------------------------------------------------
    producer_customers: int = Field(
        100, ge=1, le=10_000_000, description="How many customers the producer simulates."
    )
    producer_first_customer: int = Field(
        1, ge=1, description="First customer id of the simulated range."
    )
    producer_shard_count: int = Field(
        1,
        ge=1,
        description="Producers sharing the customer range; each simulates a disjoint slice.",
    )
    producer_shard_index: int | None = Field(
        None,
        ge=0,
        description="This producer's slice (0-based); empty reads the ordinal at the end of "
        "HOSTNAME (a StatefulSet pod's name), else 0.",
    )
    producer_rate: float = Field(
        100.0, ge=0, description="Messages per second; 0 sends as fast as the broker takes them."
    )
    producer_count: int | None = Field(
        None, ge=0, description="Stop after this many messages; empty runs until stopped."
    )
    producer_seed: int | None = Field(
        None, description="Seed of the generator; the same seed gives the same readings."
    )
    producer_anomaly_rate: float = Field(
        0.04,
        ge=0,
        le=1,
        description="Average share of readings taken in episodes the consumer flags: above "
        "180 bpm (high) and, a fifth of them, below 45 bpm (low); each customer's own rate is "
        "drawn from the widest range centred on this within 0 and 1 (0 to twice this, up to "
        "0.5). A HeartbeatSimulation's anomalyRate sets it.",
    )
    producer_invalid_rate: float = Field(
        0.005,
        ge=0,
        le=1,
        description="Share of readings a faulty sensor reports outside the valid 30-220 bpm "
        "(they go to the dead-letter topic).",
    )
    producer_spike_probability: float = Field(
        0.04,
        ge=0,
        le=1,
        description="Chance that an unflagged reading carries a +-40 bpm movement artifact, "
        "kept within 46-178 bpm.",
    )

    # --- Retries ---------------------------------------------------------------
    retry_initial_seconds: float = Field(
        0.5, gt=0, le=60, description="First delay before retrying an unreachable service."
    )
    retry_max_seconds: float = Field(
        30.0, gt=0, le=3600, description="Longest delay between retries (capped exponential)."
    )

    # --- Metrics and health ----------------------------------------------------
    metrics_host: str = Field(
        "0.0.0.0", description="Address the /metrics, /healthz and /readyz server binds."
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port of that server; empty is 8001 for `produce`, 8002 for `consume`, "
        "8003 for `operator`; 0 picks a free one (logged).",
    )
    liveness_timeout_seconds: float = Field(
        120.0, gt=0, description="/healthz fails when the main loop has not turned for this long."
    )

    # --- Logging ---------------------------------------------------------------
    log_level: LogLevel = Field("INFO", description="Log level.")
    log_format: Literal["text", "json"] = Field("text", description="Log format: text or json.")
    log_file: Path | None = Field(
        None, description="Also log to this file, rotated by size; empty logs to stderr only."
    )
    log_file_max_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Size at which the log file is rotated."
    )
    log_file_backup_count: int = Field(5, ge=0, description="Rotated log files kept.")

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.retry_max_seconds < self.retry_initial_seconds:
            raise ValueError("RETRY_MAX_SECONDS must be at least RETRY_INITIAL_SECONDS")
        if self.producer_shard_count > self.producer_customers:
            raise ValueError("PRODUCER_SHARD_COUNT cannot exceed PRODUCER_CUSTOMERS")
        if (
            self.producer_shard_index is not None
            and self.producer_shard_index >= self.producer_shard_count
        ):
            raise ValueError("PRODUCER_SHARD_INDEX must be below PRODUCER_SHARD_COUNT")
        if self.kafka_security_protocol.startswith("SASL_") and not self.kafka_sasl_mechanism:
            raise ValueError("KAFKA_SASL_MECHANISM is required with a SASL_* protocol")
        if self.rollup_retention_days < self.raw_retention_days:
            raise ValueError("ROLLUP_RETENTION_DAYS must be at least RAW_RETENTION_DAYS")
        if self.hourly_rollup_retention_days < self.rollup_retention_days:
            raise ValueError("HOURLY_ROLLUP_RETENTION_DAYS must be at least ROLLUP_RETENTION_DAYS")
        return self

    def metrics_port_for(self, component: str) -> int:
        """METRICS_PORT, or ``component``'s own default so that each command can run beside
        the others on one machine."""
        if self.metrics_port is not None:
            return self.metrics_port
        return DEFAULT_METRICS_PORTS[component]

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable that sets ``field``."""
        return field.upper()


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, raising ``SettingsError`` that names every bad field.

    ``overrides`` (from command-line options) win over the environment; ``None``
    values are ignored so an option left unset does not hide the environment.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    variables = {**read_dotenv(), **os.environ}
    problems = [*empty_values(variables), *libpq_problems(os.environ)]
    if problems:
        raise SettingsError("\n".join(["invalid settings:", *problems]))
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from exc


DOTENV = Path(".env")


def read_dotenv(path: Path = DOTENV) -> dict[str, str]:
    """The variables ``path`` sets (none when it does not exist), as the settings read them.

    Raises ``SettingsError`` naming the file and line when it cannot be read or is not UTF-8.
    """
    if not path.is_file():
        return {}
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read it: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, byte = data.count(b"\n", 0, exc.start) + 1, data[exc.start]
        raise SettingsError(
            f"{path}: line {line} is not UTF-8 (byte {byte:#04x}); save the file as UTF-8"
        ) from None
    return {name: value or "" for name, value in dotenv_values(stream=io.StringIO(text)).items()}


def empty_values(variables: Mapping[str, str]) -> list[str]:
    """A line for each setting set to an empty value although its default is not empty.

    Empty means the default only where the default itself is empty; elsewhere (an empty
    KAFKA_BOOTSTRAP_SERVERS, say) it is a mistake that must not pass as the default.
    """
    given = {name.upper(): value for name, value in variables.items()}
    lines = []
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        value = given.get(name.upper())
        if default not in (None, "") and value is not None and not value.strip():
            lines.append(
                f"  {name.upper()}: is empty; give a value, or remove it for the default "
                f"{default!r}"
            )
    return lines


def libpq_problems(environ: Mapping[str, str]) -> list[str]:
    """A line for each malformed libpq variable that libpq would only warn about later."""
    port = environ.get("PGPORT")
    if port is None or all(
        part.strip().isdigit() and 1 <= int(part) <= 65535 for part in port.split(",")
    ):
        return []
    return [f"  PGPORT: expected a port number from 1 to 65535, got {port!r}"]


_LIBPQ_NAME = re.compile(r"PG[A-Z]+")


def libpq_from_dotenv(dotenv: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The PG* variables of ``.env`` that the environment does not set (the environment wins)."""
    return {
        name: value
        for name, value in dotenv.items()
        if _LIBPQ_NAME.fullmatch(name) and name not in environ
    }


def unknown_names(dotenv: Mapping[str, str], known: Iterable[str]) -> list[str]:
    """A warning for each name of ``.env`` that looks like a setting but is none.

    A name looks like a setting when it starts as one does (``KAFKA_``, ``LOG_``...); the
    warning names the closest real setting.
    """
    settings = sorted({name.upper() for name in known})
    prefixes = tuple({name.split("_")[0] + "_" for name in settings})
    warnings = []
    for name in dotenv:
        upper = name.upper()
        if upper in settings or not upper.startswith(prefixes):
            continue
        closest = difflib.get_close_matches(upper, settings, n=1, cutoff=0.6)
        hint = f"; did you mean {closest[0]}?" if closest else ""
        warnings.append(f".env: {name} is not a setting and is ignored{hint}")
    return warnings


def sources(
    environ: Mapping[str, str], dotenv: Mapping[str, str], options: Iterable[str] = ()
) -> dict[str, str]:
    """Where each field's value comes from: option, environment, .env or default."""
    environment = {name.upper(): value for name, value in environ.items() if value != ""}
    from_file = {name.upper(): value for name, value in dotenv.items() if value != ""}
    chosen = set(options)
    found = {}
    for name in Settings.model_fields:
        if name in chosen:
            found[name] = "option"
        elif name.upper() in environment:
            found[name] = "environment"
        elif name.upper() in from_file:
            found[name] = ".env"
        else:
            found[name] = "default"
    return found


def describe_validation_error(
    exc: ValidationError, *, prefix: str = "", title: str = "invalid settings:"
) -> str:
    """One message naming each bad field by its environment variable (``prefix`` + NAME)."""
    lines = [title]
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"])
        name = f"{prefix}{location.upper()}" if location else "settings"
        given = error.get("input")
        shown = (
            ""
            if location.endswith(("password", "url")) or isinstance(given, dict)
            else (f" (got {given!r})")
        )
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {name}: {message}{shown}")
    return "\n".join(lines)


def documented_fields(
    model: type[BaseSettings] = Settings, prefix: str = ""
) -> list[tuple[str, str, str]]:
    """(environment variable, default, description) of every field of ``model``, in order."""
    rows = []
    for name, field in model.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        shown = "" if default is None else str(default)
        rows.append((f"{prefix}{name.upper()}", shown, field.description or ""))
    return rows
