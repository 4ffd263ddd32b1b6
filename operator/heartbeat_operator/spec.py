"""The HeartbeatSimulation resource: its coordinates and its validated spec.

The CRD's OpenAPI schema (``charts/heartbeat/crds/``) already rejects what it can express
(``customers: 0``, negative replicas, an anomaly rate above 1...) and fills in defaults;
``parse_spec`` checks the same bounds again, because a resource can predate a CRD change,
and ``check_spec`` what a schema cannot say: more replicas than customers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from heartbeat_operator.exceptions import InvalidSpecError

GROUP = "heartbeat.dev"
VERSION = "v1alpha1"
PLURAL = "heartbeatsimulations"
KIND = "HeartbeatSimulation"
API_VERSION = f"{GROUP}/{VERSION}"

MAX_CUSTOMERS = 10_000_000
MAX_REPLICAS = 1000
TOPIC_PATTERN = r"^[a-zA-Z0-9._-]{1,249}$"

# Reasons of the Ready condition when the spec is the problem.
INVALID_SPEC = "InvalidSpec"
TOO_MANY_REPLICAS = "TooManyReplicas"


@dataclass(frozen=True)
class Problem:
    """Why a simulation cannot run as written; ``reason`` is CamelCase, for a condition.

    A ``blocking`` problem leaves the StatefulSet as it is; otherwise the operator runs
    the nearest valid thing and reports the difference.
    """

    reason: str
    message: str
    blocking: bool


class SimulationSpec(BaseModel):
    """``spec`` of a HeartbeatSimulation, with the CRD's defaults."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    customers: int = Field(ge=1, le=MAX_CUSTOMERS)
    first_customer: int = Field(1, ge=1, le=1_000_000_000, alias="firstCustomer")
    replicas: int = Field(1, ge=0, le=MAX_REPLICAS)
    paused: bool = False
    rate_per_replica: float = Field(10.0, ge=0, le=100_000, alias="ratePerReplica")
    anomaly_rate: float = Field(0.04, ge=0, le=1, alias="anomalyRate")
    seed: int | None = None
    topic: str | None = Field(None, pattern=TOPIC_PATTERN)

    @property
    def effective_replicas(self) -> int:
        """Generator pods to run: none while paused, never more than one per customer."""
        return 0 if self.paused else min(self.replicas, self.customers)

    @property
    def shard_count(self) -> int:
        """PRODUCER_SHARD_COUNT of the pods: how many slices the customers are cut into.

        Independent of ``paused`` (pausing and resuming only scales, it never rolls the
        pods) and at least 1 (a StatefulSet scaled to zero keeps a valid template).
        """
        return max(1, min(self.replicas, self.customers))


def parse_spec(raw: Mapping[str, Any] | None) -> SimulationSpec:
    """The validated spec, or ``InvalidSpecError`` naming every bad field."""
    try:
        return SimulationSpec.model_validate(dict(raw or {}))
    except ValidationError as exc:
        details = "; ".join(
            f"spec.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise InvalidSpecError(INVALID_SPEC, details) from exc


def check_spec(spec: SimulationSpec) -> Problem | None:
    """What keeps the spec from being run exactly as written, if anything.

    More replicas than customers would leave some replicas without a customer, so the
    operator runs one replica per customer instead and says so in the Ready condition.
    """
    if spec.replicas > spec.customers:
        return Problem(
            TOO_MANY_REPLICAS,
            f"spec.replicas ({spec.replicas}) is more than spec.customers ({spec.customers}); "
            f"running {spec.customers} replicas, one customer each",
            blocking=False,
        )
    return None
