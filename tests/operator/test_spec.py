"""The spec: defaults, bounds, and what the schema cannot say (more replicas than customers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from heartbeat_operator.exceptions import InvalidSpecError
from heartbeat_operator.spec import INVALID_SPEC, TOO_MANY_REPLICAS, check_spec, parse_spec


def test_a_spec_with_only_customers_gets_the_crd_defaults() -> None:
    spec = parse_spec({"customers": 10})
    assert (spec.replicas, spec.paused, spec.first_customer) == (1, False, 1)
    assert (spec.rate_per_replica, spec.anomaly_rate, spec.seed, spec.topic) == (
        10.0,
        0.04,
        None,
        None,
    )


def test_camel_case_fields_are_read() -> None:
    spec = parse_spec(
        {"customers": 5, "firstCustomer": 100, "ratePerReplica": 2.5, "anomalyRate": 0.5}
    )
    assert (spec.first_customer, spec.rate_per_replica, spec.anomaly_rate) == (100, 2.5, 0.5)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({}, "customers"),
        ({"customers": 0}, "customers"),
        ({"customers": 3, "replicas": -1}, "replicas"),
        ({"customers": 3, "anomalyRate": 1.5}, "anomalyRate"),
        ({"customers": 3, "ratePerReplica": -1}, "ratePerReplica"),
        ({"customers": 3, "topic": "no spaces"}, "topic"),
        ({"customers": 3, "firstCustomer": 0}, "firstCustomer"),
    ],
)
def test_a_spec_outside_the_schema_is_invalid_and_names_the_field(
    raw: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(raw)
    assert caught.value.reason == INVALID_SPEC
    assert f"spec.{field}" in caught.value.message


@pytest.mark.parametrize(
    ("raw", "effective", "shards"),
    [
        ({"customers": 10, "replicas": 3}, 3, 3),
        ({"customers": 10, "replicas": 0}, 0, 1),
        ({"customers": 10, "replicas": 3, "paused": True}, 0, 3),
        ({"customers": 2, "replicas": 5}, 2, 2),
        ({"customers": 2, "replicas": 5, "paused": True}, 0, 2),
    ],
)
def test_effective_replicas_and_shards(raw: dict[str, object], effective: int, shards: int) -> None:
    spec = parse_spec(raw)
    assert spec.effective_replicas == effective
    assert spec.shard_count == shards


def test_more_replicas_than_customers_is_a_non_blocking_problem_with_a_reason() -> None:
    problem = check_spec(parse_spec({"customers": 3, "replicas": 5}))
    assert problem is not None
    assert problem.reason == TOO_MANY_REPLICAS
    assert not problem.blocking
    assert "running 3 replicas" in problem.message


@pytest.mark.parametrize(("customers", "replicas"), [(3, 3), (3, 0), (100, 7)])
def test_replicas_up_to_customers_is_no_problem(customers: int, replicas: int) -> None:
    assert check_spec(parse_spec({"customers": customers, "replicas": replicas})) is None


def test_the_example_resource_is_a_valid_spec() -> None:
    example = Path(__file__).resolve().parents[2] / "operator/examples/heartbeatsimulation.yaml"
    body = yaml.safe_load(example.read_text())
    assert (body["apiVersion"], body["kind"]) == ("heartbeat.dev/v1alpha1", "HeartbeatSimulation")
    spec = parse_spec(body["spec"])
    assert check_spec(spec) is None
    assert (spec.customers, spec.replicas) == (1000, 4)
