"""The CRD in the chart (the one source the tests also apply) and its agreement with the code."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from heartbeat_operator.spec import GROUP, KIND, PLURAL, VERSION, SimulationSpec
from tests.support.kube import SIMULATION_CRD


@pytest.fixture(scope="module")
def version() -> dict[str, Any]:
    crd = yaml.safe_load(SIMULATION_CRD.read_text())
    assert crd["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    assert crd["spec"]["names"]["kind"] == KIND
    assert crd["spec"]["scope"] == "Namespaced"
    (only,) = crd["spec"]["versions"]
    assert only["name"] == VERSION
    return dict(only)


def spec_schema(version: dict[str, Any]) -> dict[str, Any]:
    return dict(version["schema"]["openAPIV3Schema"]["properties"]["spec"])


def test_kubectl_scale_goes_through_the_scale_subresource(version: dict[str, Any]) -> None:
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }


def test_kubectl_get_shows_customers_replicas_ready_status_and_age(
    version: dict[str, Any],
) -> None:
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    default = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert default == ["Customers", "Replicas", "Ready", "Status", "Age"]
    assert columns["Ready"]["jsonPath"] == ".status.readyReplicas"
    assert columns["Status"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert columns["Simulating"]["jsonPath"] == ".status.customers"


def test_the_schema_bounds_and_defaults_are_the_ones_the_operator_checks(
    version: dict[str, Any],
) -> None:
    schema = spec_schema(version)
    assert schema["required"] == ["customers"]
    fields = {f.alias or name: f for name, f in SimulationSpec.model_fields.items()}
    assert set(schema["properties"]) == set(fields)
    for name, prop in schema["properties"].items():
        field = fields[name]
        bounds = {type(m).__name__: m for m in field.metadata}
        if "minimum" in prop:
            assert bounds["Ge"].ge == prop["minimum"], name
        if "maximum" in prop:
            assert bounds["Le"].le == prop["maximum"], name
        if "default" in prop:
            assert field.default == prop["default"], name
        if "pattern" in prop:
            assert any(getattr(m, "pattern", None) == prop["pattern"] for m in field.metadata)


def test_the_status_schema_holds_what_the_operator_writes(version: dict[str, Any]) -> None:
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(status) == {
        "observedGeneration",
        "replicas",
        "readyReplicas",
        "customers",
        "selector",
        "conditions",
    }
    item = status["conditions"]["items"]
    assert item["required"] == ["type", "status", "reason", "message", "lastTransitionTime"]
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_names_too_long_for_pod_labels_are_refused(version: dict[str, Any]) -> None:
    rules = version["schema"]["openAPIV3Schema"]["x-kubernetes-validations"]
    assert any("size(self.metadata.name) <= 52" in rule["rule"] for rule in rules)
