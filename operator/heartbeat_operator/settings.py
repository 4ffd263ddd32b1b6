"""Settings of the operator itself, read from ``OPERATOR_*`` environment variables.

The pipeline's own settings (``KAFKA_*``, ``METRICS_PORT``, ``LOG_*``...) come from
``heartbeat.settings.Settings`` as for every other process; these are the ones only the
operator has. Both objects are built once at the entry point and passed down.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from heartbeat import __version__
from heartbeat.settings import SettingsBase, describe_validation_error
from heartbeat.settings import documented_fields as settings_documentation
from heartbeat_operator.exceptions import OperatorSettingsError

PostingLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
PullPolicy = Literal["Always", "IfNotPresent", "Never"]

# A quantity as the API server spells it: a signed decimal number, then a binary suffix
# (Ki .. Ei), a decimal one (n u m k M G T P E) or a decimal exponent (e3, E-2).
# ``kubernetes.utils.parse_quantity`` reads the amount, but it also takes spellings the
# API server refuses (``1 Gi``, ``NaN``, ``1_000``, ``1K``), so the form is checked first.
QUANTITY = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?")


def quantity_amount(text: str) -> Decimal:
    """The amount of a quantity in base units (cores, bytes); ``ValueError`` if it is none."""
    # Imported here: the OPERATOR_* table of `heartbeat settings` needs no Kubernetes client.
    from kubernetes.utils.quantity import parse_quantity

    if QUANTITY.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (like 100m, 0.5, 96Mi, 1Gi)")
    return Decimal(parse_quantity(text))  # type: ignore[no-untyped-call]


class OperatorSettings(SettingsBase):
    """Every OPERATOR_* setting; see the chart README for the table."""

    model_config = SettingsConfigDict(env_prefix="OPERATOR_")

    namespaces: str = Field(
        "",
        description="Namespaces whose HeartbeatSimulations are served, comma separated; "
        "empty serves every namespace (needs cluster-wide RBAC).",
    )
    resync_interval_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Every simulation is reconciled at least this often, so that drift "
        "(an edited or deleted StatefulSet) is repaired even when no event says so.",
    )
    generator_image: str = Field(
        f"heartbeat:{__version__}",
        min_length=1,
        description="Image of the generator pods (it must hold the `heartbeat` command).",
    )
    generator_image_pull_policy: PullPolicy = Field(
        "IfNotPresent", description="Pull policy of the generator image."
    )
    generator_service_account: str = Field(
        "",
        description="ServiceAccount of the generator pods; empty uses the namespace's "
        "default. Its token is never mounted.",
    )
    generator_cpu_request: str = Field("50m", description="CPU request of a generator pod.")
    generator_memory_request: str = Field("96Mi", description="Memory request of a generator pod.")
    generator_memory_limit: str = Field("256Mi", description="Memory limit of a generator pod.")
    generator_metrics_port: int = Field(
        8000, ge=1, le=65535, description="Port of a generator's /metrics, /healthz, /readyz."
    )
    kafka_sasl_secret: str = Field(
        "",
        description="Secret (in the simulation's namespace) holding the Kafka SASL password "
        "the generators use; the operator never copies the password itself.",
    )
    kafka_sasl_secret_key: str = Field(
        "kafka-sasl-password", min_length=1, description="Key of the password in that Secret."
    )
    kafka_tls_secret: str = Field(
        "",
        description="Secret (in the simulation's namespace) with the Kafka TLS files, mounted "
        "into the generators where KAFKA_SSL_*_LOCATION point.",
    )
    kafka_tls_mount_path: str = Field(
        "/etc/heartbeat/kafka-tls", description="Where that Secret is mounted."
    )
    posting_level: PostingLevel = Field(
        "WARNING",
        description="Operator log messages about a simulation at or above this level are "
        "also posted as its Kubernetes Events (its own actions always are).",
    )

    @field_validator("namespaces")
    @classmethod
    def _clean_namespaces(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        return ",".join(names)

    @field_validator("generator_cpu_request", "generator_memory_request", "generator_memory_limit")
    @classmethod
    def _check_quantity(cls, value: str, info: ValidationInfo) -> str:
        """Refuse here what the API server would refuse in every StatefulSet, so that the
        operator does not start instead of failing every reconciliation."""
        amount = quantity_amount(value)
        if amount < 0:
            raise ValueError(f"{value!r} is negative")
        if info.field_name == "generator_cpu_request" and amount % Decimal("0.001"):
            raise ValueError(f"{value!r} is finer than 1m, the smallest CPU amount")
        if info.field_name != "generator_cpu_request" and amount % 1:
            raise ValueError(f"{value!r} is not a whole number of bytes")
        request = info.data.get("generator_memory_request")
        limit = info.field_name == "generator_memory_limit"
        if limit and request is not None and amount < quantity_amount(request):
            raise ValueError(f"{value!r} is less than the memory request {request!r}")
        return value

    @property
    def namespace_list(self) -> tuple[str, ...]:
        """The served namespaces; empty means every namespace."""
        return tuple(self.namespaces.split(",")) if self.namespaces else ()

    @property
    def posting_level_number(self) -> int:
        return int(logging.getLevelName(self.posting_level))


def load_operator_settings(**overrides: object) -> OperatorSettings:
    """Build the settings, raising ``OperatorSettingsError`` that names every bad field."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return OperatorSettings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        message = describe_validation_error(
            exc, prefix="OPERATOR_", title="invalid operator settings:"
        )
        raise OperatorSettingsError(message) from exc


def documented_fields() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) of every OPERATOR_* setting, in order."""
    return settings_documentation(OperatorSettings, prefix="OPERATOR_")
